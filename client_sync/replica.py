"""The laptop's replica: one SQLite file holding what this device may see and what it did offline.

It keeps the server's state of every record in the device's scope (exactly as
pull shipped it, so fields a newer server sends are never dropped), the outbox
of local changes, the changes the server rejected with its reason, the staff
directory, the local access log, the settings of the login, the pull cursor and
the device's hybrid logical clock.

What a person sees is the server's state with the outbox applied on top, by the
same merge the server runs (:func:`schema.merge.apply_change`): the laptop never
has merge rules of its own. A local write runs that merge first, so a change
that breaks a rule is refused at once, offline, and never reaches the outbox.

An outbox change the server accepted stays (``acked``) until a pull brings a
server state that contains it, so the laptop never shows a record without the
user's own edit between push and pull, even when the pull is cut off.
"""

import contextlib
import dataclasses
import datetime as dt
import functools
import json
import os
import secrets
import sqlite3
import uuid

import sqlite_utils
from sqlite_utils.migrations import Migrations

from schema import records
from schema.change import make_change
from schema.clock import ZERO, Hlc, HybridClock, utcnow
from schema.dispatch import DispatchSettings
from schema.errors import Forbidden, HemsyncError
from schema.followup.due import TYPES as DUE_TYPES
from schema.followup.due import due_lists
from schema.followup.snapshot import Snapshot
from schema.merge import Actor, apply_change, view
from schema.recordtype import INDEX_COLUMNS, unflatten
from schema.wire import decode_state, record_digest, writers

from .directory import ReplicaDirectory
from .errors import AmbiguousId, ConflictNotFound, NotLoggedIn, OtherUser, RecordNotFound, RejectedNotFound, ReplicaDamaged
from .files import connect_private, private_directory

__all__ = [
    "Replica",
    "damaged",
    "LocalRecord",
    "WipeReport",
    "MIGRATIONS",
]

MIGRATIONS = Migrations("hemsync_replica")

SETUP = (
    "PRAGMA journal_mode=WAL",
    # FULL: a committed clinical note survives a power cut, not only a crash.
    "PRAGMA synchronous=FULL",
    # Deleted rows are overwritten with zeros, in the file and in the WAL, so a purge or
    # a wipe leaves no patient text in free pages.
    "PRAGMA secure_delete=ON",
)

#: Set while a wipe's deleted data may still have copies in the WAL; cleared by scrub().
SCRUB_PENDING = "scrub_pending"
#: Seconds a wipe waits for other connections to leave the WAL (see Replica.scrub).
SCRUB_WAIT = 30.0
#: Seconds an opening waits to finish a pending scrub: a command must not hang on it.
OPEN_SCRUB_WAIT = 1.0
BUSY_TIMEOUT_MS = 30_000
#: Every table that holds patient data or names people: what a wipe empties.
PATIENT_TABLES = ("records", "outbox", "rejected", "rejected_archive", "access_log", "staff")

SELECT_PENDING = """
SELECT op, change, acked
FROM outbox
WHERE record_type = ? AND record_id = ?
ORDER BY op
"""

SELECT_OUTBOX_VERSION = """
SELECT count(*), total(acked), (SELECT change FROM outbox WHERE record_type = ?1 AND record_id = ?2
                                ORDER BY op DESC LIMIT 1)
FROM outbox
WHERE record_type = ?1 AND record_id = ?2
"""

SELECT_OPEN_OR_PENDING = """
SELECT type, id FROM records WHERE open_conflicts > 0
UNION
SELECT record_type, record_id FROM outbox
"""

SELECT_REJECTED = """
SELECT change_id, change, error, rejected_at
FROM rejected
ORDER BY rejected_at, op
"""

SELECT_REJECTED_OF_RECORD = """
SELECT change_id, change, error, rejected_at
FROM rejected
WHERE record_type = ? AND record_id = ?
ORDER BY op
"""

SELECT_ARCHIVED = """
SELECT change_id, change, error, rejected_at, archived_at, outcome, replaced_by
FROM rejected_archive
ORDER BY archived_at, op
"""

ARCHIVE_REJECTED = """
INSERT INTO rejected_archive (change_id, op, record_type, record_id, change, code, error, rejected_at,
                              archived_at, outcome, replaced_by)
SELECT change_id, op, record_type, record_id, change, code, error, rejected_at, ?, ?, ?
FROM rejected
WHERE change_id = ?
"""

SELECT_UNSENT = """
SELECT change
FROM outbox
WHERE acked = 0
ORDER BY op
LIMIT ?
"""


@MIGRATIONS(name="0001_initial")
def _initial(db):
    db["settings"].create({"key": str, "value": str}, pk="key")
    # wire: the record exactly as pull shipped it (JSON), the source of truth for the
    # server's state; the other columns are derived from it for queries.
    db["records"].create(
        {"type": str, "id": str, "patient_id": str, "rev": int, "open_conflicts": int, "wire": str},
        pk=("type", "id"),
    )
    db["outbox"].create(
        {"op": int, "change_id": str, "record_type": str, "record_id": str, "change": str,
         "created_at": str, "acked": int},
        pk="op",
        defaults={"acked": 0},
        not_null={"change_id", "record_type", "record_id", "change"},
    )
    db["outbox"].create_index(["change_id"], unique=True)
    db["rejected"].create(
        {"change_id": str, "op": int, "record_type": str, "record_id": str, "change": str,
         "code": str, "error": str, "rejected_at": str},
        pk="change_id",
    )
    db["staff"].create({"id": str, "name": str, "role": str, "hsa_id": str, "entry": str}, pk="id")
    db["access_log"].create(
        {"id": str, "patient_id": str, "record_type": str, "record_id": str, "opened_at": str},
        pk="id",
    )


@MIGRATIONS(name="0002_lookup_indexes")
def _lookup_indexes(db):
    # A replica holds a municipality's patients: listing a patient's records and
    # replaying one record's outbox must not scan the whole file.
    db["records"].create_index(["patient_id"])
    db["outbox"].create_index(["record_type", "record_id"])


@MIGRATIONS(name="0003_unsent_index")
def _unsent_index(db):
    # Accepted changes stay in the outbox until a pull brings them back: without this
    # index every batch of a long push scanned past all those already sent (make bench).
    db["outbox"].create_index(["acked", "op"])


@MIGRATIONS(name="0004_rejected_archive")
def _rejected_archive(db):
    # A rejected change leaves `rejected` only when its author fixed (resent) or discarded
    # it; it is kept here, never silently dropped.
    db["rejected_archive"].create(
        {"change_id": str, "op": int, "record_type": str, "record_id": str, "change": str,
         "code": str, "error": str, "rejected_at": str, "archived_at": str, "outcome": str, "replaced_by": str},
        pk="change_id",
    )
    db["rejected"].create_index(["record_type", "record_id"])


#: The columns of a server state besides patient_id that pages find and list records by: the index
#: columns the record types declare (schema.recordtype, as the server stores them), and two fields
#: read as they are: a name (a patient's, for the caseload) and the entered-in-error mark.
INDEXED = INDEX_COLUMNS[1:]
LISTED = ("name", "entered_in_error")
COLUMNS = (*INDEXED, *LISTED)


def _columns(wire):
    """The values of COLUMNS for a wire record (the patient's id first), read from its field values.

    A wire record's ``fields`` are the values its merge state shows (:func:`schema.wire.writers`
    checks that each has its write), so the merge state is not built (make bench: initial sync).
    """
    values = wire["fields"]
    index = records.get(wire["type"]).index_of(wire["id"], values.get)
    return [index["patient_id"], *(index[c] for c in INDEXED), *(values.get(name) for name in LISTED)]


INSERT_RECORD = f"""
INSERT OR REPLACE INTO records (type, id, rev, open_conflicts, wire, patient_id, {', '.join(COLUMNS)})
VALUES (?, ?, ?, ?, ?, ?, {', '.join('?' for _ in COLUMNS)})
"""


@MIGRATIONS(name="0005_index_columns")
def _index_columns(db):
    # A replica holds a municipality's 100,000 records (make bench): a page finds what it shows
    # by these columns, as the server does by its index, and a patient's records of a type in id
    # order, without reading the others of the type.
    for column in COLUMNS:
        db["records"].add_column(column, int if column == "entered_in_error" else str)
    for record_type, record_id, wire in db.execute("SELECT type, id, wire FROM records").fetchall():
        values = _columns(json.loads(wire))[1:]
        db.execute(f"UPDATE records SET {', '.join(f'{c} = ?' for c in COLUMNS)} WHERE type = ? AND id = ?",
                   [*values, record_type, record_id])
    db.execute("DROP INDEX IF EXISTS idx_records_patient_id")
    db["records"].create_index(["patient_id", "type", "id"])
    db["records"].create_index(["type", "status"])
    # Covers the caseload's list: every patient's name and personnummer without reading a state.
    db["records"].create_index(["type", "name", "personnummer", "entered_in_error", "id"])
    db.execute("CREATE INDEX idx_records_open_conflicts ON records (type, id) WHERE open_conflicts > 0")


def damaged(path, error):
    """The ReplicaDamaged error for a replica file SQLite cannot read (``error``: SQLite's)."""
    return ReplicaDamaged(
        f"the replica {path} is damaged and cannot be read ({error}): move it aside and keep it for your "
        "administrator (its unsent changes may be recoverable), then run `hemsync login --server URL` "
        "to start a fresh replica")


def change_id(device_id, op):
    """A change's id: the device's id, its operation number and a random salt.

    Unique because device ids are and a device numbers its changes; the salt
    keeps it unique even when a laptop restored from a backup numbers again.
    Unlike a UUID4 it compresses: the ids of a batch share their prefix, which
    is most of what a change id costs on the wire (measured with make bench).
    """
    return f"{device_id}.{op}.{secrets.token_hex(4)}"


@dataclasses.dataclass
class _Replay:
    """A record's server state with its outbox merged on top, and what that depends on (``version``)."""

    type: str
    id: str
    server: dict | None
    state: dict | None
    pending: list
    refused: list
    version: tuple

    def merge(self, change, acked, actor, now, options):
        """Merge one outbox change on top (or note it refused)."""
        try:
            self.state = apply_change(self.state, change, actor, now, options).state
        except HemsyncError as exc:
            self.refused.append({"change": change, "error": exc.to_dict()})
        if not acked:
            self.pending.append(change)

    def record(self):
        """The LocalRecord shown, or None when only refused local changes make it (nothing to show)."""
        if self.state is None:
            return None
        return LocalRecord(self.type, self.id, self.state, self.server, list(self.pending), list(self.refused))


@dataclasses.dataclass
class LocalRecord:
    """A record as this laptop shows it: the server's state with the outbox on top.

    ``state`` is the merged state; ``server`` the server's (None when only this
    laptop has it); ``pending`` the changes not yet accepted by the server;
    ``refused`` the local changes the merge now refuses on top of a newer server
    state (the server will most likely reject them too), each with the error;
    ``rejected`` the changes of this record the server rejected and nobody has
    fixed or discarded yet (filled in by :meth:`Replica.get`).
    """

    type: str
    id: str
    state: dict
    server: dict | None
    pending: list
    refused: list
    rejected: list = dataclasses.field(default_factory=list)

    @functools.cached_property
    def fields(self):
        """The record as a person sees it (fields and derived views); made once, a page asks for it often."""
        return view(self.state)

    @property
    def open_conflicts(self):
        """The record's open conflicts."""
        return [c for c in self.state["conflicts"] if c["status"] == "open"]

    @property
    def version(self):
        """The server's revision of the record (None when the server has not seen it)."""
        return self.server["rev"] if self.server else None

    @property
    def patient_ids(self):
        """The patients whose information this record shows (for the access log)."""
        return records.get(self.type).patients_shown(self.state)


@dataclasses.dataclass(frozen=True)
class WipeReport:
    """What a wipe deleted; ``scrubbed`` False while another connection keeps old copies in the WAL."""

    records: int
    unsent_changes: int
    rejected: int
    access_log: int
    scrubbed: bool = True


class Replica:
    """One laptop's SQLite replica (see the module docstring)."""

    def __init__(self, path, *, wall_ms=None):
        self.path = os.fspath(path)
        private_directory(os.path.dirname(os.path.abspath(self.path)))
        # isolation_level=None: no implicit transactions; every grouped write says
        # BEGIN IMMEDIATE itself (see transaction()), so two processes never
        # deadlock upgrading a read lock.
        self.conn = None
        try:
            self.conn = connect_private(self.path, SETUP, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            self.db = sqlite_utils.Database(self.conn)
            with self.transaction():
                MIGRATIONS.apply(self.db)
        except sqlite3.OperationalError:
            self.close()
            raise  # locked or unreachable, not damaged
        except sqlite3.DatabaseError as exc:
            self.close()
            raise damaged(self.path, exc) from exc
        self._wall_ms = wall_ms
        self._last_write = None  # the _Replay of the record written last, for the next write of it
        if self.setting(SCRUB_PENDING):
            self.scrub(wait=OPEN_SCRUB_WAIT)  # a wipe another program blocked: finish it now if it let go

    def close(self):
        """Close the SQLite connection."""
        if self.conn is not None:
            self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @contextlib.contextmanager
    def transaction(self):
        """One write transaction (BEGIN IMMEDIATE); nested blocks join the outer one."""
        if self.conn.in_transaction:
            with self.db.atomic():
                yield
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- settings -------------------------------------------------------------

    def setting(self, key, default=None):
        """A stored setting (JSON value), or ``default``."""
        row = self.conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def set_setting(self, key, value):
        """Store a setting (JSON value)."""
        self.conn.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value)),
        )

    def settings(self):
        """Every stored setting, as a dict."""
        return {k: json.loads(v) for k, v in self.conn.execute("SELECT key, value FROM settings")}

    def login(self, server_url, token, handshake, *, wait=SCRUB_WAIT):
        """Store the server, the token and who the handshake says this device is; return the WipeReport or None.

        A different user or device than before starts from an empty replica (it
        held another person's scope), wiped like a revoked one (see wipe());
        that is refused while changes wait.
        """
        user, device = handshake["user"], handshake["device"]
        report = None
        with self.transaction():
            known_user, known_device = self.setting("user"), self.setting("device")
            switching = known_user is not None and (
                known_user["id"] != user["id"] or (known_device or {}).get("id") != device["id"])
            if switching:
                waiting = self.unsent_count()
                if waiting:
                    raise OtherUser(
                        f"{waiting} change(s) of {known_user['name']} have not reached the server: "
                        "sync as them before logging in as someone else")
                report = self._delete_patient_data()
                for key in ("cursor", "op"):
                    self.conn.execute("DELETE FROM settings WHERE key = ?", (key,))
            self.set_setting("server_url", server_url.rstrip("/"))
            self.set_setting("token", token)
            self.apply_handshake(handshake)
        if report is not None:
            report = dataclasses.replace(report, scrubbed=self.scrub(wait))
        return report

    def apply_handshake(self, answer):
        """Store what a handshake said: who this is, the staff directory, the server's clock."""
        with self.transaction():
            self.set_setting("user", answer["user"])
            self.set_setting("device", answer["device"])
            self.set_setting("municipalities", answer.get("municipalities"))
            self.set_setting("dispatch", answer.get("dispatch"))
            self.set_setting("server", {k: answer.get(k) for k in (
                "server_version", "min_client_version", "max_clock_ahead_ms", "page_size", "max_batch")})
            if answer.get("server_time"):
                offset = utcnow() - dt.datetime.fromisoformat(answer["server_time"])
                self.set_setting("clock_offset_ms", round(offset.total_seconds() * 1000))
            self.conn.execute("DELETE FROM staff")
            for person in answer.get("staff") or []:
                self.conn.execute(
                    "INSERT INTO staff (id, name, role, hsa_id, entry) VALUES (?, ?, ?, ?, ?)",
                    (person["id"], person.get("name"), person.get("role"), person.get("hsa_id"),
                     json.dumps(person)),
                )

    def merge_options(self):
        """What the merge needs from this laptop: the region's dispatch settings, a directory of what it holds."""
        return {"dispatch": self.dispatch_settings(), "directory": ReplicaDirectory(self)}

    def dispatch_settings(self):
        """The region's dispatch settings as the last handshake sent them (the defaults before one)."""
        return DispatchSettings.from_wire(self.setting("dispatch"))

    def actor(self):
        """Who writes on this laptop, as the merge needs it; NotLoggedIn before a login."""
        user = self.setting("user")
        if user is None or self.setting("device") is None:
            raise NotLoggedIn("this replica has no login: run `hemsync login --server URL`")
        return Actor(user["id"], user["role"])

    def device_id(self):
        """The id of this device, from the handshake."""
        self.actor()
        return self.setting("device")["id"]

    def staff(self):
        """The staff directory (no tokens: the server never sends them)."""
        return [json.loads(e) for (e,) in self.conn.execute("SELECT entry FROM staff ORDER BY name, id")]

    def staff_name(self, user_id):
        """A person's name from the staff directory, or the id itself."""
        row = self.conn.execute("SELECT name FROM staff WHERE id = ?", (user_id,)).fetchone()
        return row[0] if row and row[0] else user_id

    def _clock(self):
        last = self.setting("hlc")
        clock = HybridClock(last=Hlc.parse(last) if last else ZERO)
        if self._wall_ms is not None:
            clock.wall_ms = self._wall_ms
        return clock

    # -- reading ----------------------------------------------------------------

    def server_state(self, record_type, record_id):
        """The server's state of a record (a merge state), or None."""
        row = self.conn.execute(
            "SELECT wire FROM records WHERE type = ? AND id = ?", (record_type, record_id)).fetchone()
        return decode_state(json.loads(row[0])) if row else None

    def local(self, record_type, record_id, *, now=None):
        """The record as this laptop shows it (a LocalRecord), or None; not logged as an opening."""
        replayed = self._replay(record_type, record_id, now or utcnow())
        return replayed.record() if replayed else None

    def _replay(self, record_type, record_id, now):
        """The record's server state with its outbox merged on top (a _Replay), or None when it is not here."""
        server = self.server_state(record_type, record_id)
        rows = self.conn.execute(SELECT_PENDING, (record_type, record_id)).fetchall()
        if server is None and not rows:
            return None
        replayed = _Replay(record_type, record_id, server, server, [], [], self._version(record_type, record_id))
        if rows:
            actor, options = self.actor(), self.merge_options()
            for _, text, acked in rows:
                replayed.merge(json.loads(text), bool(acked), actor, now, options)
        return replayed

    def _version(self, record_type, record_id):
        """What a replay of a record depends on here: its server revision, its outbox rows, who writes.

        The newest outbox change is part of it (its HLC makes it unique), so a
        write rolled back and made again with the same operation number differs.
        """
        rev = self.conn.execute("SELECT rev FROM records WHERE type = ? AND id = ?", (record_type, record_id)).fetchone()
        rows = self.conn.execute(SELECT_OUTBOX_VERSION, (record_type, record_id)).fetchone()
        return (rev[0] if rev else None, *rows, json.dumps(self.setting("user")))

    def local_all(self, record_type, *, now=None):
        """Every record of a type as this laptop shows it, ordered by id: for reading, not for merging into.

        Only the records with outbox rows are replayed; the others are the
        server's state as it is, read in one query and decoded without the ids
        of their merged changes, which only a merge needs (a municipality's
        patients are thousands, and the caseload page reads them all). A write
        replays its record afresh (:meth:`write`).
        """
        records.get(record_type)
        replayed = self._with_changes(record_type)
        rows = self.conn.execute("SELECT id, wire FROM records WHERE type = ?", (record_type,))
        return self._reading(record_type, rows, replayed, now)

    def _with_changes(self, record_type):
        """The ids of the records of a type that have outbox rows (they are shown replayed)."""
        return {i for (i,) in self.conn.execute(
            "SELECT DISTINCT record_id FROM outbox WHERE record_type = ?", (record_type,))}

    def _reading(self, record_type, rows, replayed, now):
        """LocalRecords, by id, of server states ``(id, wire)`` and of the ids in ``replayed`` (for reading).

        A record without outbox rows is its server state, decoded without the
        merge's change ids (only a merge needs them); one with rows is replayed.
        """
        found = {}
        for record_id, wire in rows:
            if record_id not in replayed:
                state = decode_state(json.loads(wire), changes=False)
                found[record_id] = LocalRecord(record_type, record_id, state, state, [], [])
        for record_id in replayed:
            local = self.local(record_type, record_id, now=now)
            if local is not None:
                found[record_id] = local
        return [found[i] for i in sorted(found)]

    def local_fields(self, record_type, names):
        """``{id: {"id": id, name: value}}``: some fields of every record of a type, as shown (not logged).

        For a list of thousands (the caseload): ``names`` are among COLUMNS, read
        from the records table (an index can cover them), so no state is read or
        decoded; only the records with local changes are replayed.
        """
        records.get(record_type)
        unknown = set(names) - set(COLUMNS)
        if unknown:
            raise ValueError(f"not a column of the replica's records: {sorted(unknown)}")
        replayed = self._with_changes(record_type)
        found = {}
        for record_id, *values in self.conn.execute(
                f"SELECT id, {', '.join(names)} FROM records WHERE type = ?", (record_type,)):
            if record_id not in replayed:
                found[record_id] = {"id": record_id, **dict(zip(names, values))}
        for record_id in replayed:
            local = self.local(record_type, record_id)
            if local is not None:
                fields = local.fields
                found[record_id] = {"id": record_id, **{name: fields.get(name) for name in names}}
        return found

    def local_in(self, record_type, ids, *, now=None):
        """The records of a type with these ids as this laptop shows them (not logged), ordered by id."""
        records.get(record_type)
        ids = list(ids)
        replayed = self._with_changes(record_type) & set(ids)
        rows = self.conn.execute(
            "SELECT id, wire FROM records WHERE type = ? AND id IN (SELECT value FROM json_each(?))",
            (record_type, json.dumps(ids)))
        return self._reading(record_type, rows, replayed, now)

    def full_id(self, record_type, prefix):
        """The id of the one record of this type whose id is ``prefix`` or starts with it (not logged).

        RecordNotFound when none does, AmbiguousId when several do.
        """
        records.get(record_type)
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        found = [i for (i,) in self.conn.execute(
            "SELECT id FROM records WHERE type = ? AND id LIKE ? ESCAPE '\\' "
            "UNION SELECT record_id FROM outbox WHERE record_type = ? AND record_id LIKE ? ESCAPE '\\' "
            "UNION SELECT record_id FROM rejected WHERE record_type = ? AND record_id LIKE ? ESCAPE '\\' "
            "ORDER BY 1 LIMIT 3", (record_type, pattern) * 3)]
        if prefix in found:
            return prefix
        if not found or not prefix:
            raise RecordNotFound(f"no {record_type} with an id starting {prefix!r} in this replica "
                                 "(sync, or check the id)")
        if len(found) > 1:
            raise AmbiguousId(f"several {record_type} ids start with {prefix!r} ({', '.join(found[:2])}, ...): "
                              "type more of the id")
        return found[0]

    def local_naming(self, record_type, value, *, statuses=None, now=None):
        """The records of a type whose server state or unsent changes hold ``value`` somewhere (not logged).

        A cheap superset for "assigned to or accepted by this doctor": a record
        whose fields name the doctor now names her in the server's state or in one
        of its outbox changes, so only those are replayed; the caller checks the
        fields of what comes back. ``statuses`` narrows the server states to those
        whose status column (the type's index) is one of them (None: no status),
        through its index: a doctor's open requests or rounds, not the thousands
        she has completed.
        """
        records.get(record_type)
        narrowed, wanted = "", []
        if statuses is not None:
            statuses = list(statuses)
            wanted = [s for s in statuses if s is not None]
            either = [f"status IN ({', '.join('?' for _ in wanted)})",
                      *(["status IS NULL"] if None in statuses else [])]
            narrowed = f"AND ({' OR '.join(either)})"
        # Ordered here, not by SQL: an ORDER BY makes SQLite walk the primary key of the whole type.
        ids = sorted(i for (i,) in self.conn.execute(
            f"SELECT id FROM records WHERE type = ? {narrowed} AND instr(wire, ?) > 0 "
            "UNION SELECT record_id FROM outbox WHERE record_type = ? AND instr(change, ?) > 0",
            (record_type, *wanted, value, record_type, value)))
        found = (self.local(record_type, i, now=now) for i in ids)
        return [r for r in found if r is not None]

    def visit_of_request(self, request_id, doctor_id):
        """The doctor's visit (a LocalRecord) answering this request, not entered in error, or None (not logged)."""
        asked = self.local("visit_request", request_id)
        if asked is None:
            return None
        found = [v for v in self.local_of_patient("visit", asked.fields["patient_id"])
                 if v.fields.get("request_id") == request_id and v.fields.get("doctor_id") == doctor_id
                 and not v.fields.get("entered_in_error")]
        return found[0] if found else None

    def local_of_patient(self, record_type, patient_id, *, now=None):
        """The records of a type about one patient as this laptop shows them (not logged), ordered by id.

        Those the server sent are found by the indexed patient column and read as
        :meth:`local_all` reads (for reading, not for merging into); those made
        here and not yet pulled back, by their outbox rows.
        """
        records.get(record_type)
        rows = self.conn.execute("SELECT id, wire FROM records WHERE patient_id = ? AND type = ?",
                                 (patient_id, record_type)).fetchall()
        replayed = {i for (i,) in self.conn.execute(
            "SELECT DISTINCT o.record_id FROM outbox o WHERE o.record_type = ? AND (o.record_id IN "
            "(SELECT value FROM json_each(?)) OR NOT EXISTS "
            "(SELECT 1 FROM records r WHERE r.type = o.record_type AND r.id = o.record_id))",
            (record_type, json.dumps([i for i, _ in rows])))}
        found = self._reading(record_type, rows, replayed, now)
        return [r for r in found if r.fields.get("patient_id") == patient_id]

    def get(self, record_type, record_id):
        """Open a record with its rejected changes (logged in the access log); RecordNotFound when it is not here.

        A record whose creation the server rejected exists nowhere but in the
        rejected changes: it is shown as they made it, with their rejection,
        until its author fixes or discards them.
        """
        records.get(record_type)
        rejected = [self._rejected_row(*row) for row in self.conn.execute(
            SELECT_REJECTED_OF_RECORD, (record_type, record_id))]
        found = self.local(record_type, record_id) or self._as_rejected(record_type, record_id, rejected)
        if found is None:
            raise RecordNotFound(f"no {record_type} {record_id} in this replica (sync, or check the id)")
        found.rejected = rejected
        self.log_access([found])
        return found

    def _as_rejected(self, record_type, record_id, rejected):
        """The record as its rejected changes made it (None when they make none), for get()."""
        state, actor, now = None, self.actor(), utcnow()
        for item in rejected:
            try:
                state = apply_change(state, item["change"], actor, now, self.merge_options()).state
            except HemsyncError:
                continue  # an edit on top of a creation that no longer fits: shown in the list, not merged
        return LocalRecord(record_type, record_id, state, None, [], []) if state else None

    def list(self, record_type, where=None):
        """Open the records of a type whose fields equal ``where`` (each logged as an opening)."""
        where = where or {}
        found = [r for r in self.local_all(record_type)
                 if all(_matches(r.fields.get(k), v) for k, v in where.items())]
        self.log_access(found)
        return found

    def history(self, record_type, record_id):
        """Every value a record's fields have had, oldest first (logged as an opening)."""
        found = self.get(record_type, record_id)
        rows = [{**w, "field": path, "why": "current"} for path, w in found.state["fields"].items()]
        rows += [{"why": "earlier", **h} for h in found.state["history"]]
        rows += [{**w, "field": c["field"], "why": f"competing ({c['status']} conflict {c['id']})"}
                 for c in found.state["conflicts"] for w in c["values"]]
        seen, unique = set(), []
        for row in sorted(rows, key=lambda r: (r["hlc"], r["field"], r["why"] != "current")):
            if (row["field"], row["version"]) not in seen:
                seen.add((row["field"], row["version"]))
                unique.append(row)
        return unique

    def conflicts(self, include_resolved=False):
        """The conflicts of every record (open ones unless asked); each record shown is logged as an opening."""
        shown = self._conflicts(include_resolved)
        self.log_access(list({(r.type, r.id): r for r, _ in shown}.values()))
        return [conflict for _, conflict in shown]

    def _conflicts(self, include_resolved=False):
        """``(LocalRecord, conflict)`` pairs in a stable order; not logged (the caller shows or logs)."""
        found = []
        for record_type, record_id in self.conn.execute(SELECT_OPEN_OR_PENDING).fetchall():
            local = self.local(record_type, record_id)
            if local is None:
                continue
            for conflict in local.state["conflicts"]:
                if include_resolved or conflict["status"] == "open":
                    found.append((local, {**conflict, "record_type": record_type, "record_id": record_id}))
        return sorted(found, key=lambda p: (p[1]["record_type"], p[1]["record_id"], p[1]["field"], p[1]["id"]))

    def find_conflict(self, conflict_id):
        """The open conflict whose id is ``conflict_id`` or starts with it (not logged: resolving it is).

        ConflictNotFound when none is, AmbiguousId when several are.
        """
        found = [c for _, c in self._conflicts() if conflict_id and c["id"].startswith(conflict_id)]
        exact = [c for c in found if c["id"] == conflict_id]
        if not found:
            raise ConflictNotFound(f"no open conflict {conflict_id} in this replica (`hemsync conflicts` lists them)")
        if len(found) > 1 and not exact:
            raise AmbiguousId(f"several open conflicts start with {conflict_id!r}: type more of the id")
        return (exact or found)[0]

    # -- writing ----------------------------------------------------------------

    def resolve(self, conflict_id, value):
        """Resolve an open conflict (its id or a unique start): its field takes ``value``; return the LocalRecord.

        One write naming the conflict, so the merge decides whether it may close it
        (`hemsync resolve` and the conflicts page alike).
        """
        conflict = self.find_conflict(conflict_id)
        fields = unflatten({conflict["field"]: value}, records.get(conflict["record_type"]).nested)
        return self.write(conflict["record_type"], conflict["record_id"], fields, resolves=[conflict["id"]])

    def write(self, record_type, record_id, fields, *, resolves=None, now=None):
        """Record a local change in the outbox, after the merge accepted it; return the new LocalRecord.

        The record returned is shown to the writer, so it is logged as an opening.
        Raises :class:`schema.errors.HemsyncError` (and writes nothing) when a
        rule refuses the change.
        """
        records.get(record_type)
        actor, device_id, now = self.actor(), self.device_id(), now or utcnow()
        with self.transaction():
            replayed = self._last_write
            if replayed is None or (replayed.type, replayed.id) != (record_type, record_id) \
                    or replayed.version != self._version(record_type, record_id):
                replayed = self._replay(record_type, record_id, now) or _Replay(
                    record_type, record_id, None, None, [], [], self._version(record_type, record_id))
            clock, op = self._clock(), self.setting("op", 0) + 1
            change = make_change(record_type, record_id, fields, state=replayed.state,
                                 change_id=change_id(device_id, op), hlc=str(clock.now()), op=op,
                                 device_id=device_id, resolves=resolves)
            text = json.dumps(change)
            # raises: the change breaks a rule, and nothing is written
            state = apply_change(replayed.state, json.loads(text), actor, now, self.merge_options()).state
            self.conn.execute(
                "INSERT INTO outbox (op, change_id, record_type, record_id, change, created_at, acked) "
                "VALUES (?, ?, ?, ?, ?, ?, 0)",
                (op, change["change_id"], record_type, record_id, text, now.isoformat()),
            )
            self.set_setting("op", op)
            self.set_setting("hlc", str(clock.last))
            # The record as a replay would now make it, without replaying: the new change
            # merged on what this write saw. Kept for the next write of the same record,
            # which uses it while nothing else of the record has changed here.
            replayed = dataclasses.replace(replayed, state=state, pending=[*replayed.pending, json.loads(text)],
                                           version=self._version(record_type, record_id))
            self._last_write = replayed
            written = replayed.record()
            self.log_access([written])
            return written

    def log_access(self, found):
        """Write one access-log entry per patient shown by each opened record (LocalRecords)."""
        self._log_openings([(patient, r.type, r.id) for r in found for patient in r.patient_ids])

    def _log_openings(self, shown):
        """Write an access-log entry per ``(patient_id, record_type, record_id)`` shown."""
        opened_at = utcnow().isoformat()
        entries = [(str(uuid.uuid4()), patient, rtype, rid, opened_at) for patient, rtype, rid in shown]
        if entries:
            with self.transaction():
                self.conn.executemany(
                    "INSERT INTO access_log (id, patient_id, record_type, record_id, opened_at) "
                    "VALUES (?, ?, ?, ?, ?)", entries)

    def dispatch_view(self):
        """Requests, patients and observations as dicts by id, for the queue and suggestions.

        Opening the queue shows patient information, so each request shown is
        logged as an opening of its patient's records.
        """
        requests = self.local_all("visit_request")
        self.log_access(requests)
        views = {kind: {r.id: r.fields for r in self.local_all(kind)} for kind in ("patient", "observation")}
        return {r.id: r.fields for r in requests}, views["patient"], views["observation"]

    def due_lists(self, today):
        """The due lists on ``today`` over what this laptop holds (its user's scope), offline.

        Computed by the same definitions as the server's (:mod:`schema.followup.due`);
        each patient a list shows is logged as an opening of the patient's record.
        Forbidden for a dispatcher, as on the server: her laptop holds only what
        her open requests need, not a caseload.
        """
        role = self.actor().role
        if role not in ("doctor", "nurse"):
            raise Forbidden(f"a {role} does not see the due lists: they are for doctors and nurses",
                            details={"role": [role]})
        snapshot = Snapshot.of(r.state for kind in DUE_TYPES for r in self.local_all(kind))
        lists = due_lists(snapshot, today)
        self._log_openings(sorted({(e["patient_id"], "patient", e["patient_id"])
                                   for entries in lists.values() for e in entries}))
        return lists

    # -- the sync's side ----------------------------------------------------------

    def unsent_count(self):
        """Local changes the server has not yet accepted."""
        return self.conn.execute("SELECT count(*) FROM outbox WHERE acked = 0").fetchone()[0]

    def rejected_count(self):
        """Local changes the server rejected."""
        return self.conn.execute("SELECT count(*) FROM rejected").fetchone()[0]

    def unsent(self, limit):
        """The oldest ``limit`` unsent changes, in operation order."""
        return [json.loads(c) for (c,) in self.conn.execute(SELECT_UNSENT, (limit,))]

    def outbox(self):
        """Every outbox row (unsent and accepted-but-not-pulled), in operation order."""
        return [{"op": op, "acked": bool(acked), "created_at": created, "change": json.loads(c)}
                for op, acked, created, c in self.conn.execute(
                    "SELECT op, acked, created_at, change FROM outbox ORDER BY op")]

    def rejected(self, archived=False):
        """The changes the server rejected, with its reason, oldest first (logged as openings).

        ``archived``: instead, the ones already fixed or discarded, with when,
        the outcome and, for a fixed one, the change that replaced it.
        """
        if archived:
            found = [{**self._rejected_row(i, c, e, at), "archived_at": when, "outcome": outcome,
                      "replaced_by": by}
                     for i, c, e, at, when, outcome, by in self.conn.execute(SELECT_ARCHIVED)]
        else:
            found = [self._rejected_row(*row) for row in self.conn.execute(SELECT_REJECTED)]
        self._log_openings([(p, i["change"]["record_type"], i["change"]["record_id"])
                            for i in found for p in self._change_patients(i["change"])])
        return found

    def fix(self, change_id, corrections, *, now=None):
        """Correct and resend a rejected change: a new change of its fields with ``corrections`` on top.

        The new change is made on top of what this laptop shows now, through the
        normal local merge; for a record whose creation was rejected that is a
        fresh creation (an empty base), which the server accepts for the same id.
        The rejected change moves to the archive as ``fixed``. Returns the record.
        """
        item = self._rejected_item(change_id)
        change = item["change"]
        with self.transaction():
            local = self.local(change["record_type"], change["record_id"], now=now)
            open_ids = {c["id"] for c in local.open_conflicts} if local else set()
            resolves = [c for c in change.get("resolves") or () if c in open_ids]
            written = self.write(change["record_type"], change["record_id"], {**change["fields"], **corrections},
                                 resolves=resolves, now=now)
            self._archive(change_id, "fixed", written.pending[-1]["change_id"])
        return written

    def discard(self, change_id):
        """Give up a rejected change: it moves to the archive as ``discarded`` (kept, never dropped)."""
        self._rejected_item(change_id)
        with self.transaction():
            self._archive(change_id, "discarded", None)

    def _rejected_item(self, change_id):
        row = self.conn.execute("SELECT change_id, change, error, rejected_at FROM rejected WHERE change_id = ?",
                                (change_id,)).fetchone()
        if row is None:
            raise RejectedNotFound(f"no rejected change {change_id} waiting here (`hemsync rejected` lists them)")
        return self._rejected_row(*row)

    def _archive(self, change_id, outcome, replaced_by):
        self.conn.execute(ARCHIVE_REJECTED, (utcnow().isoformat(), outcome, replaced_by, change_id))
        self.conn.execute("DELETE FROM rejected WHERE change_id = ?", (change_id,))

    @staticmethod
    def _rejected_row(change_id, change, error, rejected_at):
        return {"change_id": change_id, "change": json.loads(change), "error": json.loads(error),
                "rejected_at": rejected_at}

    def _change_patients(self, change):
        """The patients whose information a change shows: from its fields, else from the record here."""
        rtype = records.get(change["record_type"])
        if rtype.patient_field is None:  # a round: one item per resident
            return sorted(change["fields"].get("items") or {})
        patient = rtype.claimed_patient(change)
        if not patient:
            row = self.conn.execute("SELECT patient_id FROM records WHERE type = ? AND id = ?",
                                    (change["record_type"], change["record_id"])).fetchone()
            patient = row[0] if row else None
        return [patient] if patient else []

    def record_results(self, results, server_hlc=None):
        """Record the server's answers to pushed changes, in one transaction; return the counts."""
        counts = {"applied": 0, "conflict": 0, "rejected": 0}
        now = utcnow().isoformat()
        with self.transaction():
            for result in results:
                row = self.conn.execute(
                    "SELECT op, change FROM outbox WHERE change_id = ?", (result["change_id"],)).fetchone()
                if row is None:
                    continue  # recorded from an earlier answer to the same batch
                if result["result"] == "rejected":
                    error = result.get("error") or {"code": "rejected", "message": "rejected", "details": {}}
                    change = json.loads(row[1])
                    self.conn.execute(
                        "INSERT OR REPLACE INTO rejected (change_id, op, record_type, record_id, change, code, "
                        "error, rejected_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (result["change_id"], row[0], change["record_type"], change["record_id"], row[1],
                         error.get("code"), json.dumps(error), now))
                    self.conn.execute("DELETE FROM outbox WHERE change_id = ?", (result["change_id"],))
                    counts["rejected"] += 1
                else:
                    self.conn.execute("UPDATE outbox SET acked = 1 WHERE change_id = ?", (result["change_id"],))
                    counts["conflict" if result["result"] == "conflict" else "applied"] += 1
            if server_hlc:
                self._observe(server_hlc)
        return counts

    def access_entries(self, limit):
        """The oldest ``limit`` access-log entries not yet pushed."""
        return [dict(zip(("id", "patient_id", "record_type", "record_id", "opened_at"), row))
                for row in self.conn.execute(
                    "SELECT id, patient_id, record_type, record_id, opened_at FROM access_log "
                    "ORDER BY opened_at, id LIMIT ?", (limit,))]

    def drop_access_entries(self, ids):
        """Forget access-log entries the server has accepted (its audit log holds them now)."""
        with self.transaction():
            self.conn.executemany("DELETE FROM access_log WHERE id = ?", [(i,) for i in ids])

    def access_count(self):
        """Access-log entries waiting to be pushed."""
        return self.conn.execute("SELECT count(*) FROM access_log").fetchone()[0]

    def apply_page(self, wires, purge, cursor, *, texts=None, before_commit=None):
        """Store one pulled page and its cursor in one transaction.

        ``texts``: each record's JSON text as the page shipped it, stored as it is
        (None: encoded here). ``before_commit`` is called inside the transaction,
        after the page is written and before it commits (the crash tests stop the
        process there). The page is written one statement per table (executemany),
        not one per record: a fresh laptop's initial sync is a few hundred pages.
        """
        # A malformed record fails the page before any write.
        rows, latest = _record_rows(wires, texts)
        # In primary-key order the index is written page by page, not at random places (make bench: initial
        # sync); the sort is stable, so a record twice in a page still keeps its last state.
        rows.sort(key=_primary_key)
        with self.transaction():
            acked = self.conn.execute("SELECT 1 FROM outbox WHERE acked = 1 LIMIT 1").fetchone() is not None
            self.conn.executemany(INSERT_RECORD, rows)
            if acked:
                # The server's states now hold these changes: the view needs them no more.
                self.conn.executemany("DELETE FROM outbox WHERE acked = 1 AND change_id = ?",
                                      [(c,) for wire in wires for c in decode_state(wire)["changes"]])
            self.conn.executemany("DELETE FROM records WHERE type = ? AND id = ?",
                                  [(m["type"], m["id"]) for m in purge])
            self.conn.executemany("DELETE FROM outbox WHERE acked = 1 AND record_type = ? AND record_id = ?",
                                  [(m["type"], m["id"]) for m in purge])
            if latest:
                self._observe(latest)
            self.set_setting("cursor", cursor)
            if before_commit is not None:
                before_commit()

    def finish_pull(self):
        """At the head of the feed every accepted change is in a pulled state (or out of scope)."""
        with self.transaction():
            self.conn.execute("DELETE FROM outbox WHERE acked = 1")

    def store_records(self, wires):
        """Replace the server's state of some records (verify's repair), in one transaction."""
        rows, _ = _record_rows(wires)
        with self.transaction():
            self.conn.executemany(INSERT_RECORD, rows)

    def delete_records(self, keys):
        """Delete server states by (type, id) (verify's repair of records no longer in scope)."""
        with self.transaction():
            self.conn.executemany("DELETE FROM records WHERE type = ? AND id = ?", keys)

    def digests(self):
        """``{"type/id": digest}`` of every server state this replica holds."""
        return {f"{t}/{i}": record_digest(json.loads(w))
                for t, i, w in self.conn.execute("SELECT type, id, wire FROM records")}

    def record_count(self):
        """Server states held."""
        return self.conn.execute("SELECT count(*) FROM records").fetchone()[0]

    def wipe(self, *, wait=SCRUB_WAIT):
        """Delete every patient record, change and log of this replica (a revoked device); keep nothing clinical.

        The rows go in one transaction; then :meth:`scrub` removes every other copy
        of them from the file and its WAL (waiting up to ``wait`` seconds for
        other connections). The report says whether that succeeded.
        """
        with self.transaction():
            report = self._delete_patient_data()
            for key in ("token", "cursor"):
                self.conn.execute("DELETE FROM settings WHERE key = ?", (key,))
            self.set_setting("wiped_at", utcnow().isoformat())
        return dataclasses.replace(report, scrubbed=self.scrub(wait))

    def scrub(self, wait=SCRUB_WAIT):
        """Leave no copy of deleted rows in the file or its WAL; return whether that succeeded.

        Deleted rows are zeroed in place (secure_delete), but the WAL still holds
        the frames written before, and free pages linger until VACUUM. Emptying
        the WAL (checkpoint TRUNCATE) must wait until no other connection reads
        from it: SQLite keeps the frames an open read transaction's snapshot
        needs, and nothing can safely overwrite them under it. So this waits up
        to ``wait`` seconds for such readers (another `hemsync` process is done
        within a sync's step); when one holds on longer (a stuck process, another
        program), it returns False and leaves SCRUB_PENDING set, and every later
        opening of the replica tries again.
        """
        self.conn.execute(f"PRAGMA busy_timeout = {max(int(wait * 1000), 0)}")
        try:
            self.conn.execute("VACUUM")
            if self._checkpoint_truncate():
                with self.transaction():
                    self.conn.execute("DELETE FROM settings WHERE key = ?", (SCRUB_PENDING,))
                return self._checkpoint_truncate()  # the clearing write, too, leaves the WAL empty
            return False
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            return False
        finally:
            self.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")

    def _checkpoint_truncate(self):
        busy, _, _ = self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return not busy

    def _delete_patient_data(self):
        report = WipeReport(
            records=self.record_count(),
            unsent_changes=self.conn.execute("SELECT count(*) FROM outbox").fetchone()[0],
            rejected=self.rejected_count(),
            access_log=self.access_count(),
        )
        for table in PATIENT_TABLES:
            self.conn.execute(f"DELETE FROM [{table}]")
        self.set_setting(SCRUB_PENDING, True)  # in the same transaction: a crash before the scrub is caught up
        return report

    def _observe(self, hlc):
        clock = self._clock()
        clock.observe(hlc)
        self.set_setting("hlc", str(clock.last))


def _primary_key(row):
    return row[0], row[1]


def _record_rows(wires, texts=None):
    """The ``records`` rows of pulled records and the newest hlc of their writes; raises on a malformed one.

    Each row holds the record's server state as shipped (``texts``, else encoded here)
    and the columns derived from it, read from the wire form: building each merge state
    (:func:`decode_state`) and encoding it again were most of a fresh laptop's initial
    sync (make bench).
    """
    if texts is None:
        texts = [json.dumps(wire) for wire in wires]
    rows, latest = [], None
    for text, wire in zip(texts, wires, strict=True):
        kept = writers(wire).values()
        newest = max((group[1] for group in kept), default=None)
        if newest is not None and (latest is None or newest > latest):
            latest = newest
        open_conflicts = sum(1 for c in wire.get("conflicts", []) if c.get("status") == "open")
        rows.append((wire["type"], wire["id"], wire["rev"], open_conflicts, text, *_columns(wire)))
    return rows, latest


def _matches(value, wanted):
    """--where compares as text, so `--where palliative=true` and `--where spo2_scale=2` work."""
    if isinstance(value, bool):
        return str(value).lower() == wanted.lower()
    return value is not None and str(value) == wanted

