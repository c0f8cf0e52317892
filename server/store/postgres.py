"""The store on PostgreSQL: several server processes (and hosts) on one database.

psycopg 3 with a connection pool; every transaction is READ COMMITTED, so each
statement sees what committed before it.

**One writer at a time, taken at the first write.** A transaction takes one
transaction-level advisory lock (:data:`WRITE_LOCK`) just before its first
write (or its read of the server clock) and holds it to COMMIT. Reads before
it run concurrently (a pull's scope and page queries do); writers take turns,
as on SQLite, but only for their writing part. This is what keeps every
guarantee with several processes:

- *the feed in commit order, gap-free for readers*: feed numbers (an identity
  column) are drawn only under the lock, and the lock is released after the
  commit is visible, so a transaction that drew 41 has committed before anyone
  can draw 42: a reader that sees 42 sees 41, and a pull cursor never passes a
  change that commits late. (A number drawn by a change that was undone, a
  savepoint rolled back, is never used: a hole nobody fills, which a cursor may
  pass.) The alternative, a visibility horizon with ``pg_snapshot_xmin`` and an
  ``(xid, seq)`` cursor, lets writers run in parallel, but xid order is not commit
  order (two writes of one record could arrive newest first), a long transaction
  anywhere stalls every feed, and the cursor format would change: at a region's
  write rates (a push every few seconds per hundred laptops, each a few
  milliseconds of writing) the serial writer costs nothing measurable, and the
  cursors of SQLite and PostgreSQL stay the same integers;
- the audit log's, quarantine's and escalation feed's ids are drawn the same
  way, so their ``after=`` cursors never skip either;
- *the server clock (HLC) monotonic across processes*: :meth:`clock` inside a
  transaction takes the lock before it reads, and push saves the advanced clock
  before it commits: the next process to read it reads the newer one;
- *idempotent push*: the second of two processes given the same retried batch
  waits at :meth:`clock` until the first commits, then (READ COMMITTED) finds
  the first's stored results by change id and applies nothing twice;
- *exactly-once escalation*: a unique ``(request_id, kind)`` and
  ``ON CONFLICT DO NOTHING``;
- *device counters*: ``UPDATE … SET n = n + %s``, atomic in the database.

No deadlock between writers: every row lock a writer takes is taken after the
one advisory lock, except the rows of content-keyed tables a pull writes before
it audits (``scopes``, ``device_records``), which nothing holding the lock
writes, and a lone ``update_device`` outside a transaction (one statement, one
row, waiting for nothing while it holds it).

**When the database restarts** (or crashes, or is unreachable), every server process
lives through it. A statement whose session died (SQLSTATE class 08 or 57P, or a socket
closed under the driver) raises :class:`~server.errors.DatabaseUnavailable`: the request
is answered 503 ``database_unavailable`` with Retry-After, its transaction undone by the
database (a push whose COMMIT was lost in flight may have landed: the laptop's retry is
answered from the stored results, applied once). The pool checks a connection before it
hands it out (``ConnectionPool.check_connection``) and, finding one dead, checks every idle
one at once and discards the dead, so the next request gets a new session without delay;
while none can be made, a request waits at most
:data:`CONNECTION_WAIT` seconds, then is answered 503 too, never held. The pool reconnects
in the background, backing off (1 s, doubling) for at most :data:`RECONNECT_GIVE_UP` seconds
before a new request starts afresh, so the server serves again within seconds of the
database's return, however long it was away.

PostgreSQL's text cannot hold a NUL character, SQLite's can: a NUL in a value
bound to a statement (an id or a message made from bad input; record states are
JSON, where it is escaped) is bound as U+FFFD, so bad input is kept and found
(looked up the same way), never a failed statement.

Migrations are named (the names of server.store.sqlite's, one for one),
tracked in ``hemsync_migrations``, and applied in one transaction under an
advisory lock, so processes starting together migrate once.
"""

import contextlib
import hashlib
import json
import re
import secrets
import threading
import time
import zlib

import psycopg
from psycopg.rows import dict_row
from psycopg.types.string import StrDumperUnknown
from psycopg_pool import ConnectionPool, PoolTimeout

from .. import timing
from ..errors import DatabaseUnavailable, ServerBusy, StoreError
from .base import (DEVICE_COLUMNS, DEVICE_COUNTERS, ScopeKeys, Store, StoredRecord, UnwaitedFailed, encode_wire,
                   index_columns, known_fields)

__all__ = ["PostgresStore", "MIGRATIONS", "WRITE_LOCK", "redacted"]

#: The advisory lock every writing transaction holds from its first write to COMMIT.
WRITE_LOCK = zlib.crc32(b"hemsync.write")
#: The advisory lock the migrations run under.
MIGRATE_LOCK = zlib.crc32(b"hemsync.migrate")
#: Seconds to wait for the first connections when the store opens.
POOL_TIMEOUT = 30
#: Seconds a request waits for a connection from the pool: past it the database is restarting,
#: unreachable or saturated, and the request is a 503 with Retry-After rather than held longer.
CONNECTION_WAIT = 10
#: Seconds a client answered 503 database_unavailable waits before it tries again.
RETRY_AFTER = 2
#: Seconds the pool keeps retrying one new connection (backing off) before a new request starts afresh.
RECONNECT_GIVE_UP = 10
#: A process that stops between two statements of a transaction (hung, stopped, cut off) would hold
#: the write lock and stall every writer: PostgreSQL ends such a session after this long.
IDLE_IN_TRANSACTION = "60s"

NOW_TEXT = """to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"""

# --- migrations -------------------------------------------------------------------------

REFUSE_FUNCTION = """
CREATE OR REPLACE FUNCTION hemsync_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '%', TG_ARGV[0] USING ERRCODE = 'restrict_violation';
END
$$
"""


def _refusing(table, events, message):
    """A trigger refusing ``events`` (``UPDATE OR DELETE``) on ``table`` with ``message``, and TRUNCATE too."""
    return (
        f"CREATE TRIGGER {table}_refuse BEFORE {events} ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION hemsync_refuse('{message}')",
        f"CREATE TRIGGER {table}_refuse_truncate BEFORE TRUNCATE ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION hemsync_refuse('{message}')",
    )


M001_INITIAL = (
    """CREATE TABLE users (
  id text PRIMARY KEY,
  name text NOT NULL,
  role text NOT NULL,
  municipalities text NOT NULL,
  hsa_id text,
  created_at text
)""",
    """CREATE TABLE devices (
  id text PRIMARY KEY,
  user_id text NOT NULL,
  label text,
  token_hash text NOT NULL UNIQUE,
  created_at text,
  revoked_at text,
  last_sync_at text,
  last_seen_at text,
  client_version text,
  pending bigint,
  reported_rejected bigint,
  rejected_count bigint DEFAULT 0,
  last_op bigint,
  clock_offset_ms bigint,
  clock_flagged_at text
)""",
    """CREATE TABLE records (
  type text NOT NULL,
  id text NOT NULL,
  patient_id text,
  municipality text,
  personnummer text,
  status text,
  assignee text,
  seq bigint NOT NULL,
  state text NOT NULL,
  updated_at text,
  PRIMARY KEY (type, id)
)""",
    "CREATE INDEX records_seq ON records (seq)",
    "CREATE INDEX records_patient_id ON records (patient_id)",
    "CREATE INDEX records_type_municipality ON records (type, municipality)",
    "CREATE INDEX records_personnummer ON records (personnummer)",
    "CREATE INDEX records_assignee ON records (assignee)",
    "CREATE INDEX records_id ON records (id)",
    """CREATE TABLE feed (
  seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  type text,
  id text,
  change_id text,
  at text
)""",
    """CREATE TABLE changes (
  change_id text PRIMARY KEY,
  device_id text,
  user_id text,
  op bigint,
  record_type text,
  record_id text,
  original_hlc text,
  hlc text,
  result text,
  derived_from text,
  at text
)""",
    "CREATE INDEX changes_device_op ON changes (device_id, op)",
    """CREATE TABLE quarantine (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  change_id text,
  device_id text,
  user_id text,
  record_type text,
  record_id text,
  code text,
  message text,
  change text,
  error text,
  at text
)""",
    "CREATE INDEX quarantine_device_change ON quarantine (device_id, change_id)",
    "CREATE INDEX quarantine_device_record ON quarantine (device_id, record_id)",
    """CREATE TABLE audit (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at text NOT NULL,
  kind text NOT NULL,
  user_id text,
  device_id text,
  patient_id text,
  record_type text,
  record_id text,
  change_id text,
  details text,
  key text UNIQUE
)""",
    "CREATE INDEX audit_patient ON audit (patient_id, id)",
    """CREATE TABLE device_records (
  device_id text,
  type text,
  id text,
  PRIMARY KEY (device_id, type, id)
)""",
    """CREATE TABLE scopes (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  digest text NOT NULL UNIQUE,
  keys text NOT NULL
)""",
    "CREATE TABLE clock (id integer PRIMARY KEY, hlc text)",
    REFUSE_FUNCTION,
    *_refusing("audit", "UPDATE OR DELETE", "the audit log is append only"),
    *_refusing("records", "DELETE", "records are never deleted: mark them entered in error"),
)

M002_OP_GAPS = ("ALTER TABLE devices ADD COLUMN op_gaps bigint NOT NULL DEFAULT 0",)

M002_ESCALATIONS = (
    """CREATE TABLE escalations (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  request_id text NOT NULL,
  kind text NOT NULL,
  patient_id text,
  municipality text,
  at text NOT NULL,
  details text,
  UNIQUE (request_id, kind)
)""",
    "CREATE INDEX escalations_municipality ON escalations (municipality, id)",
    *_refusing("escalations", "UPDATE OR DELETE", "the escalation feed is append only"),
)

M003_MUNICIPALITIES = (
    # Matching ignores case: "halmstad" is Halmstad, and cannot be added a second time.
    "CREATE TABLE municipalities (name text PRIMARY KEY, folded text NOT NULL UNIQUE, added_at text)",
)

M005_DUPLICATES = ("CREATE TABLE duplicates (id text PRIMARY KEY, status text NOT NULL, conflict text NOT NULL, at text)",)

M004_SERVER_SECRET = (
    "CREATE TABLE secrets (name text PRIMARY KEY, value text)",
    # The server's random secret, made once per database: pull cursors are signed with it.
    lambda: ("INSERT INTO secrets (name, value) VALUES ('cursor', %s)", (secrets.token_hex(32),)),
)

M006_PASSWORDS = ("CREATE TABLE passwords (user_id text PRIMARY KEY, hash text NOT NULL, set_at text)",)

# An admin follows up one person's reads (patientdatalagen): the audit log by user, newest first.
M007_AUDIT_BY_USER = ("CREATE INDEX audit_user_id ON audit (user_id, id)",)

# A page finds the first record of its scope after the cursor by one seek per patient (SELECT_FIRST_SEQ).
M008_RECORDS_BY_PATIENT_AND_SEQ = (
    "DROP INDEX IF EXISTS records_patient_id",
    "CREATE INDEX records_patient_id_seq ON records (patient_id, seq)",
)

#: The migrations, named and ordered as server.store.sqlite's are.
MIGRATIONS = (
    ("m001_initial", M001_INITIAL),
    ("m002_op_gaps", M002_OP_GAPS),
    ("m002_escalations", M002_ESCALATIONS),  # the second m002 of the first landing: the name databases recorded
    ("m003_municipalities", M003_MUNICIPALITIES),
    ("m004_server_secret", M004_SERVER_SECRET),
    ("m005_duplicates", M005_DUPLICATES),
    ("m006_passwords", M006_PASSWORDS),
    ("m007_audit_by_user", M007_AUDIT_BY_USER),
    ("m008_records_by_patient_and_seq", M008_RECORDS_BY_PATIENT_AND_SEQ),
)

CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS hemsync_migrations (
  name text PRIMARY KEY,
  applied_at text NOT NULL
)
"""

# --- statements -------------------------------------------------------------------------

SELECT_RECORD = """
SELECT type, id, seq, patient_id, municipality, state
FROM records
WHERE type = %s AND id = %s
"""

# The feed entry and the record's row in one statement (one round trip): the record takes the feed's new seq.
PUT_RECORD = f"""
WITH entry AS (
  INSERT INTO feed (type, id, change_id, at)
  VALUES (%(type)s, %(id)s, %(change_id)s, {NOW_TEXT})
  RETURNING seq
)
INSERT INTO records (type, id, patient_id, municipality, personnummer, status, assignee, seq, state, updated_at)
SELECT %(type)s, %(id)s, %(patient_id)s, %(municipality)s, %(personnummer)s, %(status)s, %(assignee)s, entry.seq,
       %(state)s, {NOW_TEXT}
FROM entry
ON CONFLICT (type, id) DO UPDATE SET
  patient_id = excluded.patient_id,
  municipality = excluded.municipality,
  personnummer = excluded.personnummer,
  status = excluded.status,
  assignee = excluded.assignee,
  seq = excluded.seq,
  state = excluded.state,
  updated_at = excluded.updated_at
"""

# The server's HLC never goes back, whichever process saves last (fixed-width text: "C" order is time order).
SAVE_CLOCK = """
INSERT INTO clock (id, hlc)
VALUES (1, %s)
ON CONFLICT (id) DO UPDATE SET
  hlc = GREATEST(clock.hlc COLLATE "C", excluded.hlc COLLATE "C")
"""

# The same scope rule as SQLite's (server.store.sqlite SCOPE_CONDITION), the key sets bound as arrays.
SCOPE_CONDITION = """(
     patient_id = ANY(%(full)s::text[])
  OR (patient_id = ANY(%(lite)s::text[]) AND type = ANY(%(lite_types)s::text[]))
  OR (patient_id IS NULL AND municipality = ANY(%(municipalities)s::text[]))
  OR (type = 'visit_request' AND id = ANY(%(requests)s::text[]))
)"""

SELECT_SINCE = f"""
SELECT type, id, seq, patient_id, municipality, state
FROM records
WHERE seq > %(after)s
  AND seq <= %(upto)s
  AND {SCOPE_CONDITION}
ORDER BY seq
LIMIT %(limit)s
"""

# The first seq of the scope after the cursor, by one index seek per key (as server.store.sqlite's): a page's
# walk starts there, so it does not read every record the region wrote before the scope's first one.
SELECT_FIRST_SEQ = """
SELECT min(first) AS first FROM (
  SELECT (SELECT seq FROM records WHERE patient_id = keys.value AND seq > %(after)s AND seq <= %(upto)s
          ORDER BY seq LIMIT 1) AS first
  FROM unnest(%(full)s::text[]) AS keys (value)
  UNION ALL
  SELECT (SELECT seq FROM records WHERE patient_id = keys.value AND seq > %(after)s AND seq <= %(upto)s
            AND type = ANY(%(lite_types)s::text[])
          ORDER BY seq LIMIT 1)
  FROM unnest(%(lite)s::text[]) AS keys (value)
  UNION ALL
  SELECT (SELECT seq FROM records WHERE patient_id IS NULL AND seq > %(after)s AND seq <= %(upto)s
            AND municipality = ANY(%(municipalities)s::text[])
          ORDER BY seq LIMIT 1)
  UNION ALL
  SELECT (SELECT seq FROM records WHERE type = 'visit_request' AND id = keys.value AND seq > %(after)s
            AND seq <= %(upto)s)
  FROM unnest(%(requests)s::text[]) AS keys (value)
) AS firsts
"""

SELECT_IN_SCOPE = f"""
SELECT type, id, patient_id, municipality
FROM records
WHERE {SCOPE_CONDITION}
ORDER BY seq
"""

SELECT_PATIENTS_BY_PERSONNUMMER = """
SELECT type, id, seq, patient_id, municipality, state
FROM records
WHERE personnummer = %s AND type = 'patient'
ORDER BY id
"""

SELECT_PATIENTS_IN = """
SELECT id
FROM records
WHERE type = 'patient'
  AND municipality = ANY(%s::text[])
"""

SELECT_REQUEST_PATIENTS = """
SELECT DISTINCT patient_id
FROM records
WHERE type = 'visit_request'
  AND assignee = %s
  AND NOT (status = ANY(%s::text[]))
"""

SELECT_REQUESTS_WITH_STATUS = """
SELECT id, patient_id
FROM records
WHERE type = 'visit_request'
  AND status = ANY(%s::text[])
"""

SELECT_RECORDS_BY_ID = """
SELECT type, id, seq, patient_id, municipality, state
FROM records
WHERE type = %s
  AND id = ANY(%s::text[])
ORDER BY id
"""

SELECT_RECORDS_OF_TYPE = """
SELECT type, id, seq, patient_id, municipality, state
FROM records
WHERE type = %s
ORDER BY id
"""

# The state is text: cast once per row, then each field is a jsonb value psycopg decodes.
SELECT_FIELD_VALUES = """
SELECT id, patient_id, {columns}
FROM (SELECT id, patient_id, state::jsonb -> 'fields' AS f FROM records WHERE type = %s) AS r
ORDER BY id
"""
FIELD_VALUE_COLUMN = "f -> %s::text"

SELECT_RECORDS_OF_PATIENTS = """
SELECT type, id, seq, patient_id, municipality, state
FROM records
WHERE type = %s
  AND patient_id = ANY(%s::text[])
ORDER BY id
"""

SELECT_DEVICES = """
SELECT devices.*, users.name AS user_name, users.role AS user_role
FROM devices
JOIN users ON users.id = devices.user_id
ORDER BY users.name, devices.created_at
"""

INSERT_CHANGE = f"""
INSERT INTO changes (change_id, device_id, user_id, op, record_type, record_id, original_hlc, hlc, result,
                     derived_from, at)
VALUES (%(change_id)s, %(device_id)s, %(user_id)s, %(op)s, %(record_type)s, %(record_id)s, %(original_hlc)s,
        %(hlc)s, %(result)s, %(derived_from)s, COALESCE(%(at)s, {NOW_TEXT}))
"""

SELECT_CHANGES = """
SELECT *
FROM changes
WHERE change_id = ANY(%s::text[])
"""

SELECT_REJECTED_REFS = """
SELECT change_id AS ref
FROM quarantine
WHERE device_id = %(device_id)s
  AND change_id = ANY(%(change_ids)s::text[])
UNION
SELECT record_id AS ref
FROM quarantine
WHERE device_id = %(device_id)s
  AND record_id = ANY(%(record_ids)s::text[])
  AND record_id NOT IN (SELECT id FROM records)
"""

INSERT_QUARANTINE = f"""
INSERT INTO quarantine (change_id, device_id, user_id, record_type, record_id, code, message, change, error, at)
VALUES (%(change_id)s, %(device_id)s, %(user_id)s, %(record_type)s, %(record_id)s, %(code)s, %(message)s,
        %(change)s, %(error)s, COALESCE(%(at)s, {NOW_TEXT}))
"""

# The patient of a quarantined change's record; the fallbacks (the patient it created or named) are
# taken from the change in Python, which reads any JSON text the way SQLite's json_extract does.
SELECT_QUARANTINED = """
SELECT quarantine.*, records.patient_id AS record_patient_id
FROM quarantine
LEFT JOIN records ON records.type = quarantine.record_type AND records.id = quarantine.record_id
WHERE quarantine.id > %s
ORDER BY quarantine.id
LIMIT %s
"""

INSERT_AUDIT = f"""
INSERT INTO audit (at, kind, user_id, device_id, patient_id, record_type, record_id, change_id, details, key)
VALUES (COALESCE(%(at)s, {NOW_TEXT}), %(kind)s, %(user_id)s, %(device_id)s, %(patient_id)s, %(record_type)s,
        %(record_id)s, %(change_id)s, %(details)s, %(key)s)
ON CONFLICT (key) DO NOTHING
"""

SELECT_AUDIT = """
SELECT *
FROM audit
WHERE id > %(after)s
  AND (%(patient_id)s::text IS NULL OR patient_id = %(patient_id)s)
ORDER BY id
LIMIT %(limit)s
"""

SELECT_RECENT_AUDIT = """
SELECT *
FROM audit
WHERE (%(patient_id)s::text IS NULL OR patient_id = %(patient_id)s)
  AND (%(user_id)s::text IS NULL OR user_id = %(user_id)s)
ORDER BY id DESC
LIMIT %(limit)s
"""

INSERT_ESCALATION = """
INSERT INTO escalations (request_id, kind, patient_id, municipality, at, details)
VALUES (%(request_id)s, %(kind)s, %(patient_id)s, %(municipality)s, %(at)s, %(details)s)
ON CONFLICT (request_id, kind) DO NOTHING
RETURNING id
"""

SELECT_ESCALATIONS_NEWEST = """
SELECT *
FROM escalations
WHERE (%(municipality)s::text IS NULL OR municipality = %(municipality)s)
ORDER BY id DESC
LIMIT %(limit)s
"""

SELECT_ESCALATIONS_AFTER = """
SELECT *
FROM escalations
WHERE id > %(after)s
  AND (%(municipality)s::text IS NULL OR municipality = %(municipality)s)
ORDER BY id
LIMIT %(limit)s
"""

UPSERT_DUPLICATE = f"""
INSERT INTO duplicates (id, status, conflict, at)
VALUES (%s, %s, %s, {NOW_TEXT})
ON CONFLICT (id) DO UPDATE SET
  status = excluded.status,
  conflict = excluded.conflict
"""


class NulFreeText(StrDumperUnknown):
    """Binds text with each NUL character (which PostgreSQL's text cannot hold) as U+FFFD."""

    def dump(self, obj):
        return super().dump(obj.replace("\x00", "\ufffd") if "\x00" in obj else obj)


def _configure(conn):
    conn.adapters.register_dumper(str, NulFreeText)


def _connection_lost(error):
    """True when a driver error means the session is gone: the database shut down, crashed or is starting.

    SQLSTATE class 08 (connection exception) and 57P (admin or crash shutdown, cannot connect now),
    or none at all (the socket closed under the driver).
    """
    state = error.sqlstate or ""
    return state == "" or state.startswith(("08", "57P"))


def quote(identifier):
    """An SQL identifier, quoted (the only way a name enters SQL text here)."""
    return '"' + identifier.replace('"', '""') + '"'


def redacted(url):
    """The database URL without its password, for messages and logs."""
    return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", str(url))


class PostgresStore(Store):
    """The store on one PostgreSQL database: a pool of connections, one per thread's open transaction."""

    def __init__(self, url, max_connections=16, connect_timeout=10, write_wait=30.0):
        self.url = url
        self.write_wait = write_wait
        try:
            # One plain connection first: its error says what is wrong (no server, no such database, ...).
            psycopg.connect(url, connect_timeout=connect_timeout).close()
        except psycopg.Error as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
            raise StoreError(f"could not connect to {redacted(url)}: {reason}. Is PostgreSQL running there, "
                             "and does the database exist (createdb)?") from exc
        self._local = threading.local()
        self._pool = ConnectionPool(url, min_size=1, max_size=max_connections, open=False, timeout=POOL_TIMEOUT,
                                    kwargs={"autocommit": True, "row_factory": dict_row,
                                            "options": f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION}"},
                                    # A connection broken by a database restart is replaced, not handed out.
                                    check=self._check_connection, configure=_configure,
                                    # The pool's reconnection backs off without a cap (1 s, doubling) until
                                    # it gives up: left at 300 s, a minute's outage kept the server at 503 for
                                    # tens of seconds after the database was back. Given up sooner, the next
                                    # request starts a fresh attempt at once.
                                    reconnect_timeout=RECONNECT_GIVE_UP, name="hemsync")
        try:
            self._pool.open(wait=True, timeout=POOL_TIMEOUT)
        except PoolTimeout as exc:
            self._pool.close()
            raise StoreError(f"could not connect to {redacted(url)}: is PostgreSQL running, and does the "
                             "database exist (createdb)?") from exc
        self.migrate()

    def __repr__(self):
        return f"PostgresStore({redacted(self.url)!r})"

    def _check_connection(self, conn):
        """The pool's check before it hands out a connection; a dead one means every idle one died too.

        The pool tries its idle connections one by one, backing off longer after each dead one
        (1 s, 2 s, 4 s, ...): after a restart, a pool of a few idle connections held a request
        past :data:`CONNECTION_WAIT`. Found dead, the whole pool is checked at once instead.
        """
        try:
            ConnectionPool.check_connection(conn)
        except psycopg.Error:
            self._pool.check()  # drops the dead idle connections and starts making new ones
            raise

    def migrate(self):
        """Apply pending migrations (named and ordered, so an older database upgrades itself)."""
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))
            conn.execute(CREATE_MIGRATIONS_TABLE)
            applied = {row["name"] for row in conn.execute("SELECT name FROM hemsync_migrations")}
            for name, statements in MIGRATIONS:
                if name in applied:
                    continue
                for statement in statements:
                    sql, params = statement() if callable(statement) else (statement, None)
                    conn.execute(sql, params)
                conn.execute(f"INSERT INTO hemsync_migrations (name, applied_at) VALUES (%s, {NOW_TEXT})", (name,))

    def migrations(self):
        """The names of the applied migrations, in the order they were applied."""
        return [r["name"] for r in self._rows("SELECT name FROM hemsync_migrations ORDER BY applied_at, name")]

    # connections and transactions
    @contextlib.contextmanager
    def _connection(self):
        """This thread's open transaction's connection, else one from the pool for one statement."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            yield conn
            return
        try:
            with self._pool.connection(timeout=CONNECTION_WAIT) as conn:
                yield conn
        except PoolTimeout as exc:
            raise DatabaseUnavailable(f"the server got no connection to its database within {CONNECTION_WAIT} s "
                                      "(restarting, unreachable or saturated): try again shortly",
                                      retry_after=RETRY_AFTER) from exc
        except psycopg.OperationalError as exc:
            if not _connection_lost(exc):
                raise
            # The pool discards the broken connection when it comes back; the next request gets a new one.
            raise DatabaseUnavailable("the server lost its connection to the database (restarting?): try again "
                                      "shortly; a push is applied once however often it is sent",
                                      retry_after=RETRY_AFTER) from exc

    @contextlib.contextmanager
    def transaction(self):
        if getattr(self._local, "conn", None) is not None:
            yield self
            return
        with self._connection() as conn:
            self._local.conn, self._local.locked, self._local.pipeline = conn, False, None
            self._local.unwaited = False
            try:
                with conn.transaction():
                    yield self
            finally:
                self._local.conn = None

    @contextlib.contextmanager
    def savepoint(self):
        """A savepoint whose writes are pipelined: sent without waiting, answered together when it ends.

        A pushed change read what it needs before (the batch's look-up, the merge's
        reads, which still wait for their answers), so its writes (the feed and
        record, the audit rows, the change) and the savepoint's release cost one
        round trip, not one each. A write's error surfaces when the savepoint ends
        (or at the next read) and rolls the savepoint back as before; so, inside
        one, :meth:`audit` does not wait to count its new entries.
        """
        conn = getattr(self._local, "conn", None)
        if conn is None:
            raise StoreError("a savepoint needs an open transaction")
        if self._local.unwaited:
            yield from self._unwaited_savepoint()
            return
        locked, outer = self._local.locked, self._local.pipeline
        with conn.pipeline() as pipeline:
            self._local.pipeline = pipeline
            try:
                conn.execute("SAVEPOINT change")
                yield self
                conn.execute("RELEASE SAVEPOINT change")
                pipeline.sync()
            except BaseException:
                # A lock taken after a savepoint is released when it is rolled back to.
                self._local.locked = locked
                _roll_back_to_savepoint(conn, pipeline)
                raise
            finally:
                self._local.pipeline = outer

    def _unwaited_savepoint(self):
        # No SAVEPOINT statement: a failure here undoes the whole transaction (the caller does it
        # again, waiting), so there is nothing to roll back to, and two statements a change fewer.
        try:
            yield self
        except UnwaitedFailed:
            raise
        except Exception as exc:
            # What was sent before it may have failed unseen: nothing here can be undone alone.
            raise UnwaitedFailed(f"a savepoint failed in a batch of unwaited writes: {exc!r}") from exc

    @contextlib.contextmanager
    def unwaited(self):
        """The batch's writes pipelined whole: one round trip for all of them, at the end.

        A push's change costs no round trip of its own; reads still wait for
        their answers. A refused write aborts the pipeline, and the statements
        after it are skipped unseen: so any failure inside raises UnwaitedFailed,
        and the caller rolls back and does the batch again in savepoints that
        wait. Savepoints inside send nothing: a failure in one undoes the whole. A lost
        connection stays what it is (the request is answered 503).
        """
        conn = getattr(self._local, "conn", None)
        if conn is None:
            raise StoreError("unwaited writes need an open transaction")
        try:
            with conn.pipeline() as pipeline:
                self._local.unwaited, self._local.pipeline = True, pipeline
                try:
                    yield self
                finally:
                    self._local.unwaited, self._local.pipeline = False, None
        except psycopg.Error as exc:
            if _connection_lost(exc):
                raise
            raise UnwaitedFailed(f"a write of a batch of unwaited writes failed: {exc!r}") from exc

    def _lock_writes(self):
        """Take the write lock for the rest of this thread's open transaction (once)."""
        if not self._local.locked:
            # Bounded like SQLite's writer: past write_wait the request is a 503 with Retry-After.
            self._local.conn.execute(f"SET LOCAL lock_timeout = {int(self.write_wait * 1000)}")
            queued = time.perf_counter()
            try:
                self._local.conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
                if self._local.pipeline is not None:
                    self._local.pipeline.sync()  # wait for the lock here, where waiting too long is answered
            except psycopg.errors.LockNotAvailable as exc:
                raise ServerBusy(f"the server is busy writing (waited {self.write_wait:g} s for the database's "
                                 "write lock): try again shortly", retry_after=1) from exc
            finally:
                timing.waited("writer", time.perf_counter() - queued)
            self._local.conn.execute("SET LOCAL lock_timeout = 0")
            self._local.locked = True

    def table_rows(self, table, key):
        """Every row of one of the store's tables, in key order (for copy-to and its check)."""
        order = ", ".join(quote(c) for c in key)
        return iter(self._rows(f"SELECT * FROM {quote(table)} ORDER BY {order}"))

    def backup(self, path):
        raise StoreError(f"back up {redacted(self.url)} with PostgreSQL's own tools (pg_dump, or base backups "
                         "and WAL archiving: docs/deploy.md), not hemsync-server backup")

    def close(self):
        self._pool.close()

    def _write(self, sql, params=None):
        """Execute one write in this thread's transaction (or its own), holding the write lock."""
        with self.transaction():
            self._lock_writes()
            return self._local.conn.execute(sql, params)

    def _rows(self, sql, params=None):
        with self._connection() as conn:
            return conn.execute(sql, params).fetchall()

    def _one(self, sql, params=None):
        rows = self._rows(sql, params)
        return rows[0] if rows else None

    # users and devices
    def add_user(self, user):
        row = {**user, "municipalities": json.dumps(list(user["municipalities"]))}
        columns = ", ".join(quote(c) for c in row)
        self._write(f"INSERT INTO users ({columns}) VALUES ({', '.join(['%s'] * len(row))})", list(row.values()))

    def get_user(self, user_id):
        row = self._one("SELECT * FROM users WHERE id = %s", (user_id,))
        return _user(row) if row else None

    def users(self):
        return [_user(r) for r in self._rows("SELECT * FROM users ORDER BY name, id")]

    def add_municipality(self, name):
        cursor = self._write(f"INSERT INTO municipalities (name, folded, added_at) VALUES (%s, %s, {NOW_TEXT}) "
                             "ON CONFLICT DO NOTHING", (name, name.casefold()))
        return cursor.rowcount == 1

    def municipalities(self):
        return [r["name"] for r in self._rows("SELECT name FROM municipalities ORDER BY name")]

    def add_device(self, device):
        columns = ", ".join(quote(c) for c in device)
        self._write(f"INSERT INTO devices ({columns}) VALUES ({', '.join(['%s'] * len(device))})",
                    list(device.values()))

    def get_device(self, device_id):
        return self._one("SELECT * FROM devices WHERE id = %s", (device_id,))

    def device_by_token_hash(self, token_hash):
        return self._one("SELECT * FROM devices WHERE token_hash = %s", (token_hash,))

    def update_device(self, device_id, values=None, increments=None):
        values, increments = values or {}, increments or {}
        unknown = (set(values) - DEVICE_COLUMNS) | (set(increments) - DEVICE_COUNTERS)
        if unknown:
            raise StoreError(f"not a device column: {', '.join(sorted(unknown))}")
        assignments = [f"{quote(c)} = %s" for c in values]
        # Added in the database, so two processes counting at once lose neither's increment.
        assignments += [f"{quote(c)} = COALESCE({quote(c)}, 0) + %s" for c in increments]
        if not assignments:
            return
        sql = f"UPDATE devices SET {', '.join(assignments)} WHERE id = %s"
        params = [*values.values(), *increments.values(), device_id]
        if getattr(self._local, "conn", None) is None:
            # One statement on one row, waiting for nothing while it holds it: no write lock needed.
            with self._connection() as conn:
                conn.execute(sql, params)
        else:
            self._write(sql, params)

    def devices(self):
        return self._rows(SELECT_DEVICES)

    # clock
    def clock(self):
        if getattr(self._local, "conn", None) is not None:
            # Read under the write lock: no other process moves the clock until this transaction ends.
            self._lock_writes()
        row = self._one("SELECT hlc FROM clock WHERE id = 1")
        return row["hlc"] if row else None

    def save_clock(self, hlc):
        self._write(SAVE_CLOCK, (hlc,))

    # records
    def get_record(self, record_type, record_id):
        row = self._one(SELECT_RECORD, (record_type, record_id))
        return _record(row) if row else None

    def put_record(self, state, change_id, wire=None):
        # Under the write lock: feed numbers are drawn in the order their transactions commit.
        self._write(PUT_RECORD, {
            "type": state["type"], "id": state["id"], "change_id": change_id, **index_columns(state),
            "state": wire if wire is not None else encode_wire(state),
        })

    def head(self):
        return self._one("SELECT COALESCE(MAX(seq), 0) AS head FROM feed")["head"]

    def records_since(self, after, keys, limit, upto=None):
        params = {**_scope_params(keys), "after": after, "limit": limit,
                  "upto": upto if upto is not None else 2 ** 62}
        first = self._one(SELECT_FIRST_SEQ, params)["first"]
        if first is None:
            return []
        return [_record(row) for row in self._rows(SELECT_SINCE, {**params, "after": first - 1})]

    def records_in(self, keys):
        if not keys:
            return []
        rows = self._rows(SELECT_IN_SCOPE, _scope_params(keys))
        return [(r["type"], r["id"], r["patient_id"], r["municipality"]) for r in rows]

    def patients_with_personnummer(self, personnummer):
        return [_record(r) for r in self._rows(SELECT_PATIENTS_BY_PERSONNUMMER, (personnummer,))]

    def patients_in(self, municipalities):
        return [r["id"] for r in self._rows(SELECT_PATIENTS_IN, (sorted(municipalities),))]

    def request_patients(self, assignee, excluded_statuses):
        rows = self._rows(SELECT_REQUEST_PATIENTS, (assignee, sorted(excluded_statuses)))
        return [r["patient_id"] for r in rows]

    def requests_with_status(self, statuses):
        return [(r["id"], r["patient_id"]) for r in self._rows(SELECT_REQUESTS_WITH_STATUS, (sorted(statuses),))]

    def get_records(self, record_type, ids):
        return [_record(r) for r in self._rows(SELECT_RECORDS_BY_ID, (record_type, sorted(ids)))]

    def records_of_type(self, record_type):
        return [_record(r) for r in self._rows(SELECT_RECORDS_OF_TYPE, (record_type,))]

    def field_values(self, record_type, names):
        names, _ = known_fields(record_type, names)
        columns = ", ".join(f"{FIELD_VALUE_COLUMN} AS v{i}" for i in range(len(names)))
        rows = self._rows(SELECT_FIELD_VALUES.format(columns=columns), (*names, record_type))
        return [{"id": row["id"], "patient_id": row["patient_id"],
                 **{name: row[f"v{i}"] for i, name in enumerate(names) if row[f"v{i}"] is not None}} for row in rows]

    def records_of_patients(self, record_type, patient_ids):
        return [_record(r) for r in self._rows(SELECT_RECORDS_OF_PATIENTS, (record_type, sorted(patient_ids)))]

    # scopes and device holdings: keyed by content, written by pulls before they take the write lock
    def save_scope(self, keys):
        text = keys.to_json()
        digest = hashlib.sha256(text.encode()).hexdigest()
        with self.transaction():
            conn = self._local.conn
            conn.execute("INSERT INTO scopes (digest, keys) VALUES (%s, %s) ON CONFLICT (digest) DO NOTHING",
                         (digest, text))
            return conn.execute("SELECT id FROM scopes WHERE digest = %s", (digest,)).fetchone()["id"]

    def get_scope(self, scope_id):
        row = self._one("SELECT keys FROM scopes WHERE id = %s", (scope_id,))
        return ScopeKeys.from_json(row["keys"]) if row else None

    def hold(self, device_id, pairs):
        pairs = sorted(set(pairs))  # in one order, so two pulls of one device cannot deadlock
        if pairs:
            with self.transaction():
                self._local.conn.cursor().executemany(
                    "INSERT INTO device_records (device_id, type, id) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                    [(device_id, t, i) for t, i in pairs])

    def release(self, device_id, pairs):
        pairs = sorted(set(pairs))
        if pairs:
            with self.transaction():
                self._local.conn.cursor().executemany(
                    "DELETE FROM device_records WHERE device_id = %s AND type = %s AND id = %s",
                    [(device_id, t, i) for t, i in pairs])

    def holds(self, device_id, record_type, record_id):
        return self._one("SELECT 1 AS held FROM device_records WHERE device_id = %s AND type = %s AND id = %s",
                         (device_id, record_type, record_id)) is not None

    # changes and quarantine
    def get_change(self, change_id):
        row = self._one("SELECT * FROM changes WHERE change_id = %s", (change_id,))
        return {**row, "result": json.loads(row["result"])} if row else None

    def get_changes(self, change_ids):
        # An array is bound without NulFreeText: its NULs are replaced here, and the rows
        # found answer every id asked for that reads the same once replaced.
        asked = {}
        for change_id in change_ids:
            asked.setdefault(change_id.replace("\x00", "\ufffd"), []).append(change_id)
        found = {}
        for row in self._rows(SELECT_CHANGES, (sorted(asked),)):
            found.update((change_id, {**row, "result": json.loads(row["result"])})
                         for change_id in asked[row["change_id"]])
        return found

    def save_changes(self, changes):
        rows = [{"derived_from": None, "at": None, **change, "result": json.dumps(change["result"])}
                for change in changes]
        if rows:
            with self.transaction():
                self._lock_writes()
                self._local.conn.cursor().executemany(INSERT_CHANGE, rows)

    def rejected_refs(self, device_id, change_ids, record_ids):
        rows = self._rows(SELECT_REJECTED_REFS, {"device_id": device_id, "change_ids": sorted(change_ids),
                                                 "record_ids": sorted(record_ids)})
        return {r["ref"] for r in rows}

    def quarantine(self, entry):
        row = {"at": None, **entry, "change": json.dumps(entry["change"]), "error": json.dumps(entry["error"])}
        self._write(INSERT_QUARANTINE, row)

    def quarantined(self, after=0, limit=100):
        entries = []
        for row in self._rows(SELECT_QUARANTINED, (after, limit)):
            entry = {k: v for k, v in row.items() if k != "record_patient_id"}
            change, error = json.loads(row["change"]), json.loads(row["error"])
            entries.append({**entry, "change": change, "error": error,
                            "patient_id": _quarantined_patient(row, change)})
        return entries

    # audit
    def audit(self, entries):
        rows = [{"user_id": None, "device_id": None, "patient_id": None, "record_type": None, "record_id": None,
                 "change_id": None, "key": None, "at": None, **e, "details": json.dumps(e.get("details") or {})}
                for e in entries]
        if not rows:
            return 0
        with self.transaction():
            self._lock_writes()
            cursor = self._local.conn.cursor()
            cursor.executemany(INSERT_AUDIT, rows)
            return None if self._local.pipeline else cursor.rowcount

    def audit_log(self, patient_id=None, after=0, limit=100):
        rows = self._rows(SELECT_AUDIT, {"patient_id": patient_id, "after": after, "limit": limit})
        return [{**r, "details": json.loads(r["details"])} for r in rows]

    def recent_audit(self, patient_id=None, user_id=None, limit=100):
        rows = self._rows(SELECT_RECENT_AUDIT, {"patient_id": patient_id, "user_id": user_id, "limit": limit})
        return [{**r, "details": json.loads(r["details"])} for r in rows]

    def server_secret(self):
        secret = getattr(self, "_secret", None)
        if secret is None:
            row = self._one("SELECT value FROM secrets WHERE name = 'cursor'")
            if row is None:
                raise StoreError(f"{redacted(self.url)} has no server secret: run `hemsync-server init` to upgrade it")
            secret = self._secret = bytes.fromhex(row["value"])
        return secret

    # duplicate patients
    def save_duplicate(self, conflict):
        self._write(UPSERT_DUPLICATE, (conflict["id"], conflict["status"], json.dumps(conflict, ensure_ascii=False)))

    def duplicates(self, status=None):
        rows = self._rows("SELECT conflict FROM duplicates WHERE %s::text IS NULL OR status = %s ORDER BY at, id",
                          (status, status))
        return [json.loads(r["conflict"]) for r in rows]

    # escalation feed
    def add_escalation(self, entry):
        row = {"patient_id": None, "municipality": None, **entry, "details": json.dumps(entry.get("details") or {})}
        # The unique (request_id, kind) makes a racing process's insert a no-op, once the first commits.
        found = self._write(INSERT_ESCALATION, row).fetchone()
        return found["id"] if found else None

    def escalations(self, after=None, limit=100, municipality=None):
        params = {"after": after, "limit": limit, "municipality": municipality}
        rows = self._rows(SELECT_ESCALATIONS_NEWEST if after is None else SELECT_ESCALATIONS_AFTER, params)
        return [{**r, "details": json.loads(r["details"])} for r in rows]

    # web sign-in
    def set_password_hash(self, user_id, password_hash):
        self._write(f"INSERT INTO passwords (user_id, hash, set_at) VALUES (%s, %s, {NOW_TEXT}) ON CONFLICT (user_id) "
                    "DO UPDATE SET hash = excluded.hash, set_at = excluded.set_at",
                    (user_id, password_hash))

    def password_hash(self, user_id):
        row = self._one("SELECT hash FROM passwords WHERE user_id = %s", (user_id,))
        return row["hash"] if row else None


def _roll_back_to_savepoint(conn, pipeline):
    """Undo a pipelined savepoint whose block or writes failed.

    What was sent before is answered first (an error there is the one already
    raised, or is undone with the rest); then the savepoint is rolled back to,
    which also ends the failed state an erring write left the transaction in.
    """
    try:
        pipeline.sync()
    except psycopg.Error:
        pass
    conn.execute("ROLLBACK TO SAVEPOINT change")
    conn.execute("RELEASE SAVEPOINT change")
    pipeline.sync()


def _user(row):
    return {**row, "municipalities": json.loads(row["municipalities"])}


def _record(row):
    return StoredRecord(row["type"], row["id"], row["seq"], row["patient_id"], row["municipality"], row["state"])


def _scope_params(keys):
    return {part: sorted(getattr(keys, part)) for part in ScopeKeys.PARTS} | {"lite_types": sorted(keys.lite_types)}


def _quarantined_patient(row, change):
    """The patient a quarantined change is about: its record's, else the patient it created or named."""
    if row["record_patient_id"] is not None:
        return row["record_patient_id"]
    if row["record_type"] == "patient":
        return row["record_id"]
    fields = change.get("fields") if isinstance(change, dict) else None
    named = fields.get("patient_id") if isinstance(fields, dict) else None
    return named if isinstance(named, str) else None
