"""Move a server from its SQLite file to PostgreSQL: ``hemsync-server copy-to postgresql://…``.

Everything moves as it is, in one PostgreSQL transaction: records with their feed
numbers (so laptops' pull cursors stay valid), the feed, changes and their results,
the audit log and the escalation feed with their ids, quarantine, devices with
their health, scopes and holdings, the server clock and the server's secret (so
signed cursors stay valid). Then each table is compared: row counts and a SHA-256
digest of its rows in key order, on both sides; any difference rolls the copy back.
The target must be empty (just made by ``init``, or new); stop the SQLite server
first, so nothing is written while it is copied.
"""

import hashlib
import json

from ..errors import StoreError
from .postgres import redacted

__all__ = ["TABLES", "copy_store", "table_digests"]

#: Every table and its key, in an order that copies what others refer to first.
TABLES = (
    ("users", ("id",)), ("municipalities", ("name",)), ("devices", ("id",)), ("feed", ("seq",)),
    ("records", ("type", "id")), ("changes", ("change_id",)), ("quarantine", ("id",)), ("audit", ("id",)),
    ("device_records", ("device_id", "type", "id")), ("scopes", ("id",)), ("clock", ("id",)),
    ("escalations", ("id",)), ("duplicates", ("id",)), ("secrets", ("name",)), ("passwords", ("user_id",)),
)
#: Tables whose key is drawn by the database (identity columns), to be carried on after the copy.
IDENTITY = {"feed": "seq", "quarantine": "id", "audit": "id", "scopes": "id", "escalations": "id"}


def table_digests(store):
    """``{table: (rows, sha256 of the rows in key order)}`` of a store, either kind."""
    digests = {}
    for table, key in TABLES:
        digest, count = hashlib.sha256(), 0
        # Sorted here, not by the database: PostgreSQL's text order follows its locale, SQLite's the code points.
        for row in sorted(store.table_rows(table, key), key=lambda r: tuple(r[k] for k in key)):
            digest.update(json.dumps(sorted(row.items()), ensure_ascii=False, default=str).encode())
            count += 1
        digests[table] = (count, digest.hexdigest())
    return digests


def copy_store(source, target):
    """Copy every row of ``source`` (a SqliteStore) into the empty ``target`` (a PostgresStore); verify it.

    Return the digests both sides agree on; raise StoreError (nothing copied) when the
    target is not empty or a table differs after the copy.
    """
    with target.transaction():
        conn = target._local.conn
        target._lock_writes()
        full = [t for t, _ in TABLES if t != "secrets" and conn.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone()]
        if full:
            raise StoreError(f"{redacted(target.url)} is not empty ({', '.join(full)} hold rows): copy into a new "
                             "database (createdb, then hemsync-server --db URL init)")
        conn.execute("DELETE FROM secrets")  # the source's secret replaces the one made by init
        for table, key in TABLES:
            rows = list(source.table_rows(table, key))
            if not rows:
                continue
            columns = list(rows[0])
            names = ", ".join(f'"{c}"' for c in columns)
            overriding = " OVERRIDING SYSTEM VALUE" if table in IDENTITY else ""
            conn.cursor().executemany(
                f"INSERT INTO {table} ({names}){overriding} VALUES ({', '.join(['%s'] * len(columns))})",
                [tuple(r[c] for c in columns) for r in rows])
        for table, column in IDENTITY.items():
            conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                         f"GREATEST((SELECT MAX({column}) FROM {table}), 1), (SELECT COUNT(*) > 0 FROM {table}))")
        expected, copied = table_digests(source), table_digests(target)
        differ = [t for t in expected if expected[t] != copied[t]]
        if differ:
            raise StoreError(f"the copy differs from the source in {', '.join(differ)}: nothing was copied")
    return copied
