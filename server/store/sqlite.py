"""The store on one SQLite file: the embedded default, for one server process.

WAL mode, so pulls read while a push writes: reads run in :meth:`SqliteStore.reading`
(a deferred transaction, one snapshot, never the write lock); every write
transaction begins ``BEGIN IMMEDIATE``, so there is one writer at a time and the
feed's ``seq`` (an INTEGER PRIMARY KEY) grows in commit order by construction.
The threads of one process queue for the writer in arrival order
(:class:`WriterQueue`), for at most ``write_wait`` seconds (HEMSYNC_WRITE_WAIT_SECONDS), then the request is
answered 503 with Retry-After (:class:`~server.errors.ServerBusy`) instead of
waiting in SQLite's busy handler, which polls and serves no one in order. Several
server processes on one file are safe but take turns; a region that runs
several uses server.store.postgres.
"""

import collections
import contextlib
import hashlib
import json
import os
import pathlib
import secrets
import sqlite3
import threading
import time

import sqlite_utils
from sqlite_utils.migrations import Migrations

from .. import timing
from ..errors import ServerBusy, StoreError
from .base import (DEVICE_COLUMNS, DEVICE_COUNTERS, ScopeKeys, Store, StoredRecord, encode_wire, index_columns,
                   known_fields)

__all__ = ["SqliteStore", "MIGRATIONS", "quote"]

MIGRATIONS = Migrations("hemsync-server")


class WriterQueue:
    """The process's one writer, handed to waiting threads first come, first served, with a time-out.

    ``threading.Lock`` wakes an arbitrary waiter, and a thread that has just
    released it often takes it again before the woken one runs, so under load a
    push could wait many turns while the median stays low. Handing the writer
    to the oldest waiter bounds each push's wait by the queue ahead of it.
    """

    def __init__(self):
        self._mutex = threading.Lock()
        self._waiting = collections.deque()
        self._held = False

    def acquire(self, timeout):
        """Take the writer, waiting at most ``timeout`` seconds behind the threads that came first."""
        with self._mutex:
            if not self._held:
                self._held = True
                return True
            turn = threading.Event()
            self._waiting.append(turn)
        if turn.wait(timeout):
            return True
        with self._mutex:
            if turn.is_set():  # handed over as the wait ran out: it is ours, and must be used or released
                return True
            self._waiting.remove(turn)
            return False

    def release(self):
        """Hand the writer to the oldest waiting thread, or free it."""
        with self._mutex:
            if self._waiting:
                self._waiting.popleft().set()
            else:
                self._held = False


def quote(identifier):
    """An SQL identifier, quoted (the only way a name enters SQL text here)."""
    return '"' + identifier.replace('"', '""') + '"'


@MIGRATIONS()
def m001_initial(db):
    """Users, devices, records and their feed, changes, quarantine, audit, scopes, clock."""
    db["users"].create({"id": str, "name": str, "role": str, "municipalities": str, "hsa_id": str,
                        "created_at": str}, pk="id", not_null={"name", "role", "municipalities"})
    db["devices"].create({
        "id": str, "user_id": str, "label": str, "token_hash": str, "created_at": str, "revoked_at": str,
        "last_sync_at": str, "last_seen_at": str, "client_version": str, "pending": int, "reported_rejected": int,
        "rejected_count": int, "last_op": int, "clock_offset_ms": int, "clock_flagged_at": str,
    }, pk="id", not_null={"user_id", "token_hash"}, defaults={"rejected_count": 0})
    db["devices"].create_index(["token_hash"], unique=True)
    db["records"].create({
        "type": str, "id": str, "patient_id": str, "municipality": str, "personnummer": str, "status": str,
        "assignee": str, "seq": int, "state": str, "updated_at": str,
    }, pk=("type", "id"), not_null={"seq", "state"})
    for columns in (["seq"], ["patient_id"], ["type", "municipality"], ["personnummer"], ["assignee"], ["id"]):
        db["records"].create_index(columns)
    db["feed"].create({"seq": int, "type": str, "id": str, "change_id": str, "at": str}, pk="seq")
    db["changes"].create({
        "change_id": str, "device_id": str, "user_id": str, "op": int, "record_type": str, "record_id": str,
        "original_hlc": str, "hlc": str, "result": str, "derived_from": str, "at": str,
    }, pk="change_id")
    db["changes"].create_index(["device_id", "op"])
    db["quarantine"].create({
        "id": int, "change_id": str, "device_id": str, "user_id": str, "record_type": str, "record_id": str,
        "code": str, "message": str, "change": str, "error": str, "at": str,
    }, pk="id")
    db["quarantine"].create_index(["device_id", "change_id"])
    db["quarantine"].create_index(["device_id", "record_id"])
    db["audit"].create({
        "id": int, "at": str, "kind": str, "user_id": str, "device_id": str, "patient_id": str,
        "record_type": str, "record_id": str, "change_id": str, "details": str, "key": str,
    }, pk="id", not_null={"at", "kind"})
    db["audit"].create_index(["patient_id", "id"])
    db["audit"].create_index(["key"], unique=True)
    db["device_records"].create({"device_id": str, "type": str, "id": str}, pk=("device_id", "type", "id"))
    db["scopes"].create({"id": int, "digest": str, "keys": str}, pk="id")
    db["scopes"].create_index(["digest"], unique=True)
    db["clock"].create({"id": int, "hlc": str}, pk="id")
    for statement in TRIGGERS:
        db.execute(statement)


@MIGRATIONS()
def m002_op_gaps(db):
    """Device health counts operation numbers that never arrived (changes lost on the laptop)."""
    db["devices"].add_column("op_gaps", int, not_null_default=0)


# The first landing numbered two migrations m002: databases recorded that name, so it stays
# as the migration's name, and the function says where it stands.
@MIGRATIONS(name="m002_escalations")
def m002b_escalations(db):
    """The escalation feed: one entry per request and kind, whatever the number of server processes."""
    db["escalations"].create({
        "id": int, "request_id": str, "kind": str, "patient_id": str, "municipality": str, "at": str,
        "details": str,
    }, pk="id", not_null={"request_id", "kind", "at"})
    # The unique key is what makes "once per request" hold across processes: the second
    # insert of a racing instance is ignored, inside the transaction that would escalate.
    db["escalations"].create_index(["request_id", "kind"], unique=True)
    db["escalations"].create_index(["municipality", "id"])
    for statement in ESCALATION_TRIGGERS:
        db.execute(statement)


@MIGRATIONS()
def m003_municipalities(db):
    """The region's municipalities: a list the server keeps, so a typo cannot hide a patient."""
    db["municipalities"].create({"name": str, "folded": str, "added_at": str}, pk="name", not_null={"folded"})
    # Matching ignores case: "halmstad" is Halmstad, and cannot be added a second time.
    db["municipalities"].create_index(["folded"], unique=True)


@MIGRATIONS()
def m004_server_secret(db):
    """The server's random secret, made once per database: pull cursors are signed with it."""
    db["secrets"].create({"name": str, "value": str}, pk="name")
    db["secrets"].insert({"name": "cursor", "value": secrets.token_hex(32)})


@MIGRATIONS()
def m005_duplicates(db):
    """Duplicate patients, in full, for admins: the patients' own records carry only a notice."""
    db["duplicates"].create({"id": str, "status": str, "conflict": str, "at": str}, pk="id",
                            not_null={"status", "conflict"})


@MIGRATIONS()
def m006_passwords(db):
    """Web sign-in: one password hash per user (argon2id, set by an admin), never the password."""
    db["passwords"].create({"user_id": str, "hash": str, "set_at": str}, pk="user_id", not_null={"hash"})


@MIGRATIONS()
def m007_audit_by_user(db):
    """An admin follows up one person's reads (patientdatalagen): the audit log by user, newest first."""
    db["audit"].create_index(["user_id", "id"])


@MIGRATIONS()
def m008_records_by_patient_and_seq(db):
    """A page finds the first record of its scope after the cursor by one seek per patient (see SELECT_FIRST_SEQ)."""
    db.execute("DROP INDEX IF EXISTS idx_records_patient_id")
    db["records"].create_index(["patient_id", "seq"])


ESCALATION_TRIGGERS = (
    """CREATE TRIGGER escalations_append_only_update BEFORE UPDATE ON escalations
BEGIN SELECT RAISE(ABORT, 'the escalation feed is append only'); END""",
    """CREATE TRIGGER escalations_append_only_delete BEFORE DELETE ON escalations
BEGIN SELECT RAISE(ABORT, 'the escalation feed is append only'); END""",
)

TRIGGERS = (
    """CREATE TRIGGER audit_append_only_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append only'); END""",
    """CREATE TRIGGER audit_append_only_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append only'); END""",
    """CREATE TRIGGER records_never_deleted BEFORE DELETE ON records
BEGIN SELECT RAISE(ABORT, 'records are never deleted: mark them entered in error'); END""",
)

# The database's clock as the stored text, in the statement that writes it: asking for it
# first was a statement of its own, three per pushed change (make bench profile).
NOW_TEXT = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"

SELECT_RECORD = """
SELECT type, id, seq, patient_id, municipality, state
FROM records
WHERE type = ? AND id = ?
"""

UPSERT_RECORD = f"""
INSERT INTO records (type, id, patient_id, municipality, personnummer, status, assignee, seq, state, updated_at)
VALUES (:type, :id, :patient_id, :municipality, :personnummer, :status, :assignee, :seq, :state, {NOW_TEXT})
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

INSERT_FEED = f"""
INSERT INTO feed (type, id, change_id, at)
VALUES (?, ?, ?, {NOW_TEXT})
"""

# A record is in scope when its patient is a "full" one, or a "lite" one and its
# type is a lite type, or it has no patient and its municipality is in scope, or
# it is one of the single visit requests in scope. The key sets are bound as JSON arrays.
SCOPE_CONDITION = """(
     patient_id IN (SELECT value FROM json_each(:full))
  OR (patient_id IN (SELECT value FROM json_each(:lite))
      AND type IN (SELECT value FROM json_each(:lite_types)))
  OR (patient_id IS NULL AND municipality IN (SELECT value FROM json_each(:municipalities)))
  OR (type = 'visit_request' AND id IN (SELECT value FROM json_each(:requests)))
)"""

# The unary + keeps SQLite from answering the scope through the patient index (every record in
# scope, then sorted): a page walks the feed in seq order from the cursor and stops at the limit,
# so an initial sync costs O(records) in all, not O(records) per page (make bench at N=20,000).
SELECT_SINCE = f"""
SELECT type, id, seq, patient_id, municipality, state
FROM records
WHERE seq > :after
  AND seq <= :upto
  AND {SCOPE_CONDITION.replace("patient_id IN", "+patient_id IN").replace("AND id IN", "AND +id IN")}
ORDER BY seq
LIMIT :limit
"""

# The first seq of the scope after the cursor, by one index seek per key of the scope: a page's walk
# starts there instead of at the cursor. Without it a fresh laptop's first page walked every record
# the region wrote before its own municipality's (make bench SCALE=1000000: 1.3-2.7 s of a 1,000,000
# record store). Each part of SCOPE_CONDITION has its own term, so the walk can skip nothing in scope.
SELECT_FIRST_SEQ = """
SELECT min(first) FROM (
  SELECT (SELECT seq FROM records WHERE patient_id = keys.value AND seq > :after AND seq <= :upto
          ORDER BY seq LIMIT 1) AS first
  FROM json_each(:full) AS keys
  UNION ALL
  SELECT (SELECT seq FROM records WHERE patient_id = keys.value AND seq > :after AND seq <= :upto
            AND type IN (SELECT value FROM json_each(:lite_types))
          ORDER BY seq LIMIT 1)
  FROM json_each(:lite) AS keys
  UNION ALL
  SELECT (SELECT seq FROM records WHERE patient_id IS NULL AND seq > :after AND seq <= :upto
            AND municipality IN (SELECT value FROM json_each(:municipalities))
          ORDER BY seq LIMIT 1)
  UNION ALL
  SELECT (SELECT seq FROM records WHERE type = 'visit_request' AND id = keys.value AND seq > :after
            AND seq <= :upto)
  FROM json_each(:requests) AS keys
)
"""

SELECT_IN_SCOPE = f"""
SELECT type, id, patient_id, municipality
FROM records
WHERE {SCOPE_CONDITION}
ORDER BY seq
"""

# "+type": without it SQLite walks the primary key (type, id) for the ORDER BY, reading every patient
# to find one personnummer (every new patient's duplicate check grew with the region); the
# personnummer index finds the one or two rows.
SELECT_PATIENTS_BY_PERSONNUMMER = """
SELECT type, id, seq, patient_id, municipality, state
FROM records
WHERE personnummer = ? AND +type = 'patient'
ORDER BY id
"""

SELECT_PATIENTS_IN = """
SELECT id
FROM records
WHERE type = 'patient'
  AND municipality IN (SELECT value FROM json_each(?))
"""

SELECT_REQUEST_PATIENTS = """
SELECT DISTINCT patient_id
FROM records
WHERE type = 'visit_request'
  AND assignee = ?
  AND status NOT IN (SELECT value FROM json_each(?))
"""

SELECT_REQUESTS_WITH_STATUS = """
SELECT id, patient_id
FROM records
WHERE type = 'visit_request'
  AND status IN (SELECT value FROM json_each(?))
"""

SELECT_RECORDS_BY_ID = """
SELECT type, id, seq, patient_id, municipality, state
FROM records
WHERE type = ?
  AND id IN (SELECT value FROM json_each(?))
ORDER BY id
"""

SELECT_RECORDS_OF_TYPE = """
SELECT type, id, seq, patient_id, municipality, state
FROM records
WHERE type = ?
ORDER BY id
"""

# json_extract per field; for a boolean, list or object field json_type too: json_extract gives
# SQLite's value (1 for true, JSON text for an object), json_type says what the JSON held.
SELECT_FIELD_VALUES = """
SELECT id, patient_id, {columns}
FROM records
WHERE type = ?
ORDER BY id
"""
FIELD_VALUE_COLUMN = "json_extract(state, ?)"
FIELD_TYPE_COLUMN = "json_type(state, ?)"

SELECT_RECORDS_OF_PATIENTS = """
SELECT type, id, seq, patient_id, municipality, state
FROM records
WHERE type = ?
  AND patient_id IN (SELECT value FROM json_each(?))
ORDER BY id
"""

SELECT_DEVICES = """
SELECT devices.*, users.name AS user_name, users.role AS user_role
FROM devices
JOIN users ON users.id = devices.user_id
ORDER BY users.name, devices.created_at
"""

CHANGE_COLUMNS = ("change_id", "device_id", "user_id", "op", "record_type", "record_id", "original_hlc", "hlc",
                  "result", "derived_from", "at")
INSERT_CHANGES = f"""
INSERT INTO changes ({", ".join(CHANGE_COLUMNS)})
VALUES {{rows}}
"""
CHANGE_ROW = f"({', '.join('?' * (len(CHANGE_COLUMNS) - 1))}, COALESCE(?, {NOW_TEXT}))"

SELECT_CHANGES = """
SELECT *
FROM changes
WHERE change_id IN ({ids})
"""
#: Ids bound per look-up statement (SQLite allows 32,766 parameters; a batch is at most HEMSYNC_MAX_BATCH).
LOOK_UP_CHUNK = 500

# A rejected change of this device among the ids, or a record this device failed to
# create (rejected, and not created since by anyone).
SELECT_REJECTED_REFS = """
SELECT change_id AS ref
FROM quarantine
WHERE device_id = :device_id
  AND change_id IN (SELECT value FROM json_each(:change_ids))
UNION
SELECT record_id AS ref
FROM quarantine
WHERE device_id = :device_id
  AND record_id IN (SELECT value FROM json_each(:record_ids))
  AND record_id NOT IN (SELECT id FROM records)
"""

INSERT_QUARANTINE = f"""
INSERT INTO quarantine (change_id, device_id, user_id, record_type, record_id, code, message, change, error, at)
VALUES (:change_id, :device_id, :user_id, :record_type, :record_id, :code, :message, :change, :error,
        COALESCE(:at, {NOW_TEXT}))
"""

# The patient a quarantined change is about: its record's, else the patient it created or named.
SELECT_QUARANTINED = """
SELECT quarantine.*,
       COALESCE(records.patient_id,
                CASE WHEN quarantine.record_type = 'patient' THEN quarantine.record_id END,
                CASE WHEN json_type(quarantine.change, '$.fields.patient_id') = 'text'
                     THEN json_extract(quarantine.change, '$.fields.patient_id') END) AS patient_id
FROM quarantine
LEFT JOIN records ON records.type = quarantine.record_type AND records.id = quarantine.record_id
WHERE quarantine.id > ?
ORDER BY quarantine.id
LIMIT ?
"""

AUDIT_COLUMNS = ("kind", "user_id", "device_id", "patient_id", "record_type", "record_id", "change_id", "details",
                 "key", "at")
INSERT_AUDIT = f"""
INSERT OR IGNORE INTO audit ({", ".join(AUDIT_COLUMNS)})
VALUES {{rows}}
"""
AUDIT_ROW = f"({', '.join('?' * (len(AUDIT_COLUMNS) - 1))}, COALESCE(?, {NOW_TEXT}))"

HOLD = "INSERT OR IGNORE INTO device_records (device_id, type, id) VALUES {rows}"
RELEASE = "DELETE FROM device_records WHERE (device_id, type, id) IN (VALUES {rows})"
HOLDING_ROW = "(?, ?, ?)"

#: Rows one multi-row statement carries (:func:`_execute_rows`); their values are bound, never spliced.
ROWS_PER_STATEMENT = 200

SELECT_AUDIT = """
SELECT *
FROM audit
WHERE id > :after
  AND (:patient_id IS NULL OR patient_id = :patient_id)
ORDER BY id
LIMIT :limit
"""

SELECT_RECENT_AUDIT = """
SELECT *
FROM audit
WHERE (:patient_id IS NULL OR patient_id = :patient_id)
  AND (:user_id IS NULL OR user_id = :user_id)
ORDER BY id DESC
LIMIT :limit
"""

INSERT_ESCALATION = """
INSERT OR IGNORE INTO escalations (request_id, kind, patient_id, municipality, at, details)
VALUES (:request_id, :kind, :patient_id, :municipality, :at, :details)
"""

SELECT_ESCALATIONS_NEWEST = """
SELECT *
FROM escalations
WHERE (:municipality IS NULL OR municipality = :municipality)
ORDER BY id DESC
LIMIT :limit
"""

SELECT_ESCALATIONS_AFTER = """
SELECT *
FROM escalations
WHERE id > :after
  AND (:municipality IS NULL OR municipality = :municipality)
ORDER BY id
LIMIT :limit
"""

class SqliteStore(Store):
    """The store on one SQLite file: WAL mode, one connection per thread, migrations at open."""

    def __init__(self, path, write_wait=30.0):
        self.path = str(path)
        self.write_wait = write_wait
        self._writer = WriterQueue()
        if self.path != ":memory:":
            _owner_only(pathlib.Path(self.path))
        self._local = threading.local()
        self._connections = []
        self._lock = threading.Lock()
        self._device_notes = {}
        self.migrate()

    def migrate(self):
        """Apply pending migrations (named and ordered, so an older database upgrades itself)."""
        conn = sqlite3.connect(self.path, timeout=30)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            MIGRATIONS.apply(sqlite_utils.Database(conn))
        finally:
            conn.close()

    def migrations(self):
        conn = sqlite3.connect(self.path, timeout=30)
        try:
            return [m.name for m in MIGRATIONS.applied(sqlite_utils.Database(conn))]
        finally:
            conn.close()

    def table_rows(self, table, key):
        """Every row of one of the store's tables, in key order (for copy-to and its check)."""
        order = ", ".join(quote(c) for c in key)
        return (dict(row) for row in self._conn().execute(f"SELECT * FROM {quote(table)} ORDER BY {order}"))

    def backup(self, path):
        """Copy the database to ``path`` with SQLite's online backup API: consistent, while pushes go on."""
        target = pathlib.Path(path)
        if target.resolve() == pathlib.Path(self.path).resolve():
            raise StoreError(f"the backup must go to another file than the database {self.path}")
        if target.exists():
            raise StoreError(f"{target} exists already: give a new file, so no earlier backup is overwritten")
        _owner_only(target)  # patient data: readable by its owner only, like the database
        copy = sqlite3.connect(target)
        try:
            # Pages in steps, so writers are held up for a moment at a time, not for the whole copy.
            self._conn().backup(copy, pages=1024)
        finally:
            copy.close()

    def _conn(self):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # isolation_level=None: transactions are begun explicitly, as BEGIN IMMEDIATE,
            # so a push's reads and writes hold the write lock from the start.
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            # FULL: an acknowledged push is on disk; a laptop drops what the server acknowledged.
            conn.execute("PRAGMA synchronous=FULL")
            # Another process holding the writer is waited for as long as this process's own queue.
            conn.execute(f"PRAGMA busy_timeout={int(self.write_wait * 1000)}")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextlib.contextmanager
    def transaction(self, wait=None):
        """A write transaction; ``wait``: seconds to queue for the writer (default ``write_wait``), then ServerBusy.

        Device bookkeeping noted while the writer was busy (:meth:`note_device`) is
        written by the next transaction that commits.
        """
        conn = self._conn()
        if getattr(self._local, "reading", False):
            raise StoreError("a write transaction cannot start inside reading(): write after the read ends")
        if conn.in_transaction:
            yield self
            return
        queued = time.perf_counter()
        acquired = self._writer.acquire(timeout=self.write_wait if wait is None else wait)
        timing.waited("writer", time.perf_counter() - queued)
        if not acquired:
            raise ServerBusy(f"the server is busy writing (waited {self.write_wait:g} s for the database): "
                             "try again shortly", retry_after=1)
        try:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    raise ServerBusy("the server is busy writing (another process holds the database): "
                                     "try again shortly", retry_after=1) from exc
                raise StoreError(f"could not start a write transaction on {self.path}: {exc}") from exc
            except sqlite3.Error as exc:
                raise StoreError(f"could not start a write transaction on {self.path}: {exc}") from exc
            with conn:
                yield self
                self._write_device_notes(conn)
        finally:
            self._writer.release()

    @contextlib.contextmanager
    def reading(self):
        conn = self._conn()
        if conn.in_transaction:
            yield self
            return
        # DEFERRED: the snapshot is taken at the first read and no lock is ever asked for,
        # so a pull reads while a push writes (WAL) and sees one consistent state.
        conn.execute("BEGIN DEFERRED")
        self._local.reading = True
        try:
            yield self
        finally:
            self._local.reading = False
            conn.execute("COMMIT")

    @contextlib.contextmanager
    def savepoint(self):
        conn = self._conn()
        if not conn.in_transaction:
            raise StoreError("a savepoint needs an open transaction")
        conn.execute("SAVEPOINT change")
        try:
            yield self
        except BaseException:
            conn.execute("ROLLBACK TO change")
            conn.execute("RELEASE change")
            raise
        conn.execute("RELEASE change")

    def close(self):
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    def _write(self, sql, params=()):
        with self.transaction():
            return self._conn().execute(sql, params)

    def _rows(self, sql, params=()):
        return [dict(row) for row in self._conn().execute(sql, params).fetchall()]

    # users and devices
    def add_user(self, user):
        row = {**user, "municipalities": json.dumps(list(user["municipalities"]))}
        columns = ", ".join(quote(c) for c in row)
        self._write(f"INSERT INTO users ({columns}) VALUES ({', '.join('?' * len(row))})", list(row.values()))

    def get_user(self, user_id):
        rows = self._rows("SELECT * FROM users WHERE id = ?", (user_id,))
        return _user(rows[0]) if rows else None

    def users(self):
        return [_user(r) for r in self._rows("SELECT * FROM users ORDER BY name, id")]

    def add_municipality(self, name):
        with self.transaction():
            cursor = self._conn().execute(
                "INSERT OR IGNORE INTO municipalities (name, folded, added_at) VALUES (?, ?, ?)",
                (name, name.casefold(), _now_text(self._conn())))
            return cursor.rowcount == 1

    def municipalities(self):
        return [r[0] for r in self._conn().execute("SELECT name FROM municipalities ORDER BY name")]

    def add_device(self, device):
        columns = ", ".join(quote(c) for c in device)
        self._write(f"INSERT INTO devices ({columns}) VALUES ({', '.join('?' * len(device))})",
                    list(device.values()))

    def get_device(self, device_id):
        rows = self._rows("SELECT * FROM devices WHERE id = ?", (device_id,))
        return rows[0] if rows else None

    def device_by_token_hash(self, token_hash):
        rows = self._rows("SELECT * FROM devices WHERE token_hash = ?", (token_hash,))
        return rows[0] if rows else None

    def update_device(self, device_id, values=None, increments=None):
        values, increments = values or {}, increments or {}
        unknown = (set(values) - DEVICE_COLUMNS) | (set(increments) - DEVICE_COUNTERS)
        if unknown:
            raise StoreError(f"not a device column: {', '.join(sorted(unknown))}")
        assignments = [f"{quote(c)} = ?" for c in values]
        assignments += [f"{quote(c)} = COALESCE({quote(c)}, 0) + ?" for c in increments]
        if assignments:
            self._write(f"UPDATE devices SET {', '.join(assignments)} WHERE id = ?",
                        [*values.values(), *increments.values(), device_id])

    def note_device(self, device_id, values):
        """Written at once when the writer is free, else by the transaction that holds it, as it commits.

        A handshake only says when a laptop was last seen, its version and outbox
        size: it must not queue behind pushes for the one writer (issue 17: three
        pushing threads once held another device's handshake 2.25 s). What a
        process ends with unwritten is said again at the device's next handshake.
        """
        unknown = set(values) - DEVICE_COLUMNS
        if unknown:
            raise StoreError(f"not a device column: {', '.join(sorted(unknown))}")
        with self._lock:
            self._device_notes.setdefault(device_id, {}).update(values)
        try:
            with self.transaction(wait=0):
                pass
        except ServerBusy:
            pass

    def _write_device_notes(self, conn):
        with self._lock:
            notes, self._device_notes = self._device_notes, {}
        for device_id, values in notes.items():
            conn.execute(f"UPDATE devices SET {', '.join(f'{quote(c)} = ?' for c in values)} WHERE id = ?",
                         [*values.values(), device_id])

    def devices(self):
        return self._rows(SELECT_DEVICES)

    # clock
    def clock(self):
        rows = self._rows("SELECT hlc FROM clock WHERE id = 1")
        return rows[0]["hlc"] if rows else None

    def save_clock(self, hlc):
        self._write("INSERT INTO clock (id, hlc) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET hlc = excluded.hlc",
                    (hlc,))

    # records
    def get_record(self, record_type, record_id):
        row = self._conn().execute(SELECT_RECORD, (record_type, record_id)).fetchone()
        return _record(row) if row else None

    def put_record(self, state, change_id, wire=None):
        with self.transaction():
            conn = self._conn()
            seq = conn.execute(INSERT_FEED, (state["type"], state["id"], change_id)).lastrowid
            conn.execute(UPSERT_RECORD, {
                "type": state["type"], "id": state["id"], **index_columns(state), "seq": seq,
                "state": wire if wire is not None else encode_wire(state),
            })

    def head(self):
        return self._conn().execute("SELECT COALESCE(MAX(seq), 0) FROM feed").fetchone()[0]

    def records_since(self, after, keys, limit, upto=None):
        params = {**_scope_params(keys), "after": after, "limit": limit,
                  "upto": upto if upto is not None else 2 ** 62}
        conn = self._conn()
        first = conn.execute(SELECT_FIRST_SEQ, params).fetchone()[0]
        if first is None:
            return []
        return [_record(row) for row in conn.execute(SELECT_SINCE, {**params, "after": first - 1})]

    def records_in(self, keys):
        if not keys:
            return []
        return [tuple(row) for row in self._conn().execute(SELECT_IN_SCOPE, _scope_params(keys))]

    def patients_with_personnummer(self, personnummer):
        return [_record(r) for r in self._conn().execute(SELECT_PATIENTS_BY_PERSONNUMMER, (personnummer,))]

    def patients_in(self, municipalities):
        return [r[0] for r in self._conn().execute(SELECT_PATIENTS_IN, (json.dumps(sorted(municipalities)),))]

    def request_patients(self, assignee, excluded_statuses):
        rows = self._conn().execute(SELECT_REQUEST_PATIENTS, (assignee, json.dumps(sorted(excluded_statuses))))
        return [r[0] for r in rows]

    def requests_with_status(self, statuses):
        rows = self._conn().execute(SELECT_REQUESTS_WITH_STATUS, (json.dumps(sorted(statuses)),))
        return [tuple(r) for r in rows]

    def get_records(self, record_type, ids):
        rows = self._conn().execute(SELECT_RECORDS_BY_ID, (record_type, json.dumps(sorted(ids))))
        return [_record(row) for row in rows]

    def records_of_type(self, record_type):
        return [_record(row) for row in self._conn().execute(SELECT_RECORDS_OF_TYPE, (record_type,))]

    def field_values(self, record_type, names):
        names, structured = known_fields(record_type, names)
        paths = {name: f'$.fields."{name}"' for name in names}
        typed = [name for name in names if name in structured]
        columns = [FIELD_VALUE_COLUMN] * len(names) + [FIELD_TYPE_COLUMN] * len(typed)
        params = [*paths.values(), *(paths[name] for name in typed), record_type]
        rows = self._conn().execute(SELECT_FIELD_VALUES.format(columns=", ".join(columns)), params)
        return [_field_row(row, names, typed) for row in rows]

    def records_of_patients(self, record_type, patient_ids):
        rows = self._conn().execute(SELECT_RECORDS_OF_PATIENTS, (record_type, json.dumps(sorted(patient_ids))))
        return [_record(row) for row in rows]

    # scopes and device holdings
    def save_scope(self, keys):
        text = keys.to_json()
        digest = hashlib.sha256(text.encode()).hexdigest()
        with self.transaction():
            conn = self._conn()
            conn.execute("INSERT OR IGNORE INTO scopes (digest, keys) VALUES (?, ?)", (digest, text))
            return conn.execute("SELECT id FROM scopes WHERE digest = ?", (digest,)).fetchone()[0]

    def get_scope(self, scope_id):
        row = self._conn().execute("SELECT keys FROM scopes WHERE id = ?", (scope_id,)).fetchone()
        return ScopeKeys.from_json(row[0]) if row else None

    def hold(self, device_id, pairs):
        with self.transaction():
            _execute_rows(self._conn(), HOLD, HOLDING_ROW, [(device_id, t, i) for t, i in pairs])

    def release(self, device_id, pairs):
        with self.transaction():
            _execute_rows(self._conn(), RELEASE, HOLDING_ROW, [(device_id, t, i) for t, i in pairs])

    def holds(self, device_id, record_type, record_id):
        row = self._conn().execute("SELECT 1 FROM device_records WHERE device_id = ? AND type = ? AND id = ?",
                                   (device_id, record_type, record_id)).fetchone()
        return row is not None

    # changes and quarantine
    def get_change(self, change_id):
        rows = self._rows("SELECT * FROM changes WHERE change_id = ?", (change_id,))
        if not rows:
            return None
        return {**rows[0], "result": json.loads(rows[0]["result"])}

    def get_changes(self, change_ids):
        # Bound one by one, not as a JSON array: an id may hold a NUL, which json_each does not give back.
        ids, found = sorted(change_ids), {}
        for first in range(0, len(ids), LOOK_UP_CHUNK):
            chunk = ids[first:first + LOOK_UP_CHUNK]
            for row in self._rows(SELECT_CHANGES.format(ids=", ".join("?" * len(chunk))), chunk):
                found[row["change_id"]] = {**row, "result": json.loads(row["result"])}
        return found

    def save_changes(self, changes):
        rows = [[*(change[c] for c in CHANGE_COLUMNS[:-3]), json.dumps(change["result"]), change.get("derived_from"),
                 change.get("at") or None] for change in changes]
        if rows:
            with self.transaction():
                _execute_rows(self._conn(), INSERT_CHANGES, CHANGE_ROW, rows)

    def rejected_refs(self, device_id, change_ids, record_ids):
        rows = self._conn().execute(SELECT_REJECTED_REFS, {
            "device_id": device_id, "change_ids": json.dumps(sorted(change_ids)),
            "record_ids": json.dumps(sorted(record_ids)),
        })
        return {r[0] for r in rows}

    def quarantine(self, entry):
        row = {**entry, "change": json.dumps(entry["change"]), "error": json.dumps(entry["error"])}
        with self.transaction():
            self._conn().execute(INSERT_QUARANTINE, {**row, "at": row.get("at") or None})

    def quarantined(self, after=0, limit=100):
        rows = self._rows(SELECT_QUARANTINED, (after, limit))
        return [{**r, "change": json.loads(r["change"]), "error": json.loads(r["error"])} for r in rows]

    # audit
    def audit(self, entries):
        rows = [[e["kind"], *(e.get(c) for c in AUDIT_COLUMNS[1:-3]), json.dumps(e.get("details") or {}),
                 e.get("key"), e.get("at") or None] for e in entries]
        if not rows:
            return 0
        with self.transaction():
            conn = self._conn()
            before = conn.total_changes
            _execute_rows(conn, INSERT_AUDIT, AUDIT_ROW, rows)
            return conn.total_changes - before

    def audit_log(self, patient_id=None, after=0, limit=100):
        rows = self._rows(SELECT_AUDIT, {"patient_id": patient_id, "after": after, "limit": limit})
        return [{**r, "details": json.loads(r["details"])} for r in rows]

    def recent_audit(self, patient_id=None, user_id=None, limit=100):
        rows = self._rows(SELECT_RECENT_AUDIT, {"patient_id": patient_id, "user_id": user_id, "limit": limit})
        return [{**r, "details": json.loads(r["details"])} for r in rows]


    def server_secret(self):
        secret = getattr(self, "_secret", None)
        if secret is None:
            row = self._conn().execute("SELECT value FROM secrets WHERE name = 'cursor'").fetchone()
            if row is None:
                raise StoreError(f"{self.path} has no server secret: run `hemsync-server init` to upgrade it")
            secret = self._secret = bytes.fromhex(row[0])
        return secret

    # duplicate patients
    def save_duplicate(self, conflict):
        with self.transaction():
            self._conn().execute(
                "INSERT INTO duplicates (id, status, conflict, at) VALUES (?, ?, ?, ?) ON CONFLICT (id) "
                "DO UPDATE SET status = excluded.status, conflict = excluded.conflict",
                (conflict["id"], conflict["status"], json.dumps(conflict, ensure_ascii=False), _now_text(self._conn())))

    def duplicates(self, status=None):
        rows = self._rows("SELECT conflict FROM duplicates WHERE ? IS NULL OR status = ? ORDER BY at, id",
                          (status, status))
        return [json.loads(r["conflict"]) for r in rows]

    # escalation feed
    def add_escalation(self, entry):
        row = {"patient_id": None, "municipality": None, **entry, "details": json.dumps(entry.get("details") or {})}
        with self.transaction():
            cursor = self._conn().execute(INSERT_ESCALATION, row)
            return cursor.lastrowid if cursor.rowcount == 1 else None

    def escalations(self, after=None, limit=100, municipality=None):
        params = {"after": after, "limit": limit, "municipality": municipality}
        rows = self._rows(SELECT_ESCALATIONS_NEWEST if after is None else SELECT_ESCALATIONS_AFTER, params)
        return [{**r, "details": json.loads(r["details"])} for r in rows]

    # web sign-in
    def set_password_hash(self, user_id, password_hash):
        with self.transaction():
            self._conn().execute(
                "INSERT INTO passwords (user_id, hash, set_at) VALUES (?, ?, ?) ON CONFLICT (user_id) "
                "DO UPDATE SET hash = excluded.hash, set_at = excluded.set_at",
                (user_id, password_hash, _now_text(self._conn())))

    def password_hash(self, user_id):
        rows = self._rows("SELECT hash FROM passwords WHERE user_id = ?", (user_id,))
        return rows[0]["hash"] if rows else None


def _execute_rows(conn, sql, row, rows):
    """Run ``sql`` with its ``{rows}`` as ``row`` once for each of ``rows``: one statement per chunk, not per row.

    Each statement SQLite runs lets go of Python's interpreter, and the thread must
    queue to take it back behind the threads with work to do, holding the writer
    all the while: with one other thread busy, a transaction storing 20 rows took
    90 ms one INSERT a row and 11 ms in one statement (0.3 ms with none busy). A
    pull's write under ``make load`` every 10 s was 198 statements on average, now 7.
    """
    for first in range(0, len(rows), ROWS_PER_STATEMENT):
        chunk = rows[first:first + ROWS_PER_STATEMENT]
        conn.execute(sql.format(rows=", ".join([row] * len(chunk))), [value for values in chunk for value in values])


def _owner_only(path):
    """Create the database file (and its directory, when missing) readable by its owner only.

    SQLite gives the -wal and -shm files the database file's mode, so making the
    file 0600 before SQLite opens it keeps the patient data in all three private.
    A database left readable by others by an older version is tightened too.

    An existing file is never opened here: closing a descriptor of it would drop every
    POSIX lock this process holds on it, those of SQLite connections already open on it
    too, and another process would then take the WAL away from under them.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        try:
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass  # made meanwhile by another process, which SQLite may have open: leave it be
    if os.name == "posix":
        for name in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            if name.exists() and name.stat().st_mode & 0o077:
                os.chmod(name, 0o600)


def _now_text(conn):
    return conn.execute("SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now')").fetchone()[0]


def _user(row):
    return {**row, "municipalities": json.loads(row["municipalities"])}


def _record(row):
    return StoredRecord(row["type"], row["id"], row["seq"], row["patient_id"], row["municipality"], row["state"])


def _scope_params(keys):
    return {part: json.dumps(sorted(getattr(keys, part))) for part in ScopeKeys.PARTS} | {
        "lite_types": json.dumps(sorted(keys.lite_types))}


_JSON_CONSTANTS = {"true": True, "false": False}


def _field_row(row, names, typed):
    """A field_values row: each field that holds a value, as JSON has it (true, not 1; objects decoded)."""
    found = {"id": row[0], "patient_id": row[1]}
    for i, name in enumerate(names):
        if row[2 + i] is not None:
            found[name] = row[2 + i]
    for i, name in enumerate(typed):
        kind = row[2 + len(names) + i]
        if kind in _JSON_CONSTANTS:
            found[name] = _JSON_CONSTANTS[kind]
        elif kind in ("object", "array"):
            found[name] = json.loads(found[name])
    return found
