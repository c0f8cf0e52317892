"""A region's store, loaded fast: ``records`` stored records of other municipalities, for ``make bench SCALE=``.

Issue 14 asks whether push and sync stay flat when the server already holds a
region's ten years (1,000,000 records). Pushing them through the API would take
the better part of an hour, so they are written straight into the server's store
(its SQLite file, or its PostgreSQL database) before it starts, as a push would
have left them:

- patients (one per ~200 records, spread over ``MUNICIPALITIES`` municipalities of
  their own) merged one by one by the real merge (:func:`schema.merge.apply_change`),
  each with a personnummer no bench patient has (born 1900-1924);
- their home visits and vitals cloned from a pool of ``TEMPLATES`` visits and
  observations the real merge made: each clone is its template's stored text with
  the record, patient and change ids replaced, so it is a state the merge produced,
  decoded and re-encoded the same way;
- for every record, in the order a push writes them: its feed row and the record
  with its ``seq`` and index columns, its change row (``applied``) and its ``change``
  audit entry, by the store's own statements (``executemany``, ``CHUNK`` records a
  transaction), so the feed is gap-free and the store is one the server can serve.

Only the feed and record rows are written differently per store (:data:`RECORD_WRITERS`):
SQLite's numbers them from the feed's head in the same transaction, PostgreSQL's
draws each number from the feed's identity under the store's write lock, in one
statement with its record (the store's ``PUT_RECORD``, pipelined), as a push does.
The change rows and audit entries go through the store's ``save_changes`` and ``audit``.

The records are outside the bench doctor's municipality: the bench's laptops must
not see them, only walk past them (the question is whether anything walks them all).
"""

import datetime as dt
import json
import os
import time

from schema.change import make_change
from schema.clock import HybridClock, Stamp
from schema.identity import make_test_personnummer
from schema.merge import Actor, apply_change
from server import audit, auth
from server.store import open_store
from server.store import postgres as postgres_store
from server.store import sqlite as sqlite_store
from server.store.base import encode_wire, index_columns

from .workload import Workload

__all__ = ["preload", "RECORD_WRITERS", "MUNICIPALITIES", "TEMPLATES", "CHUNK"]

MUNICIPALITIES = 10
#: Visits (and as many observations) the real merge makes; every other record is a clone of one.
TEMPLATES = 500
#: Records written per transaction.
CHUNK = 20_000
#: Visits per patient (each with its observation), as the bench's own workload has.
VISITS_PER_PATIENT = 100


def preload(database, records, seed=7, progress=print):
    """Write ``records`` stored records of other municipalities into the store ``database``.

    ``database`` is what :func:`server.store.open_store` takes: a SQLite path or a PostgreSQL
    URL. The store must exist (migrated) and no server may be writing to it. Returns
    ``{"records": ..., "patients": ..., "load_s": ...}``.
    """
    start = time.perf_counter()
    store = open_store(database)
    try:
        written, patients = _load(store, records, seed, progress)
    finally:
        store.close()
    return {"records": written, "patients": patients, "load_s": round(time.perf_counter() - start, 1)}


def _load(store, records, seed, progress):
    """The load into an open store; returns ``(records written, patients)``."""
    write_records, settle = RECORD_WRITERS[type(store)]
    work, clock = Workload(seed), HybridClock()
    names = [f"Skalby {i + 1}" for i in range(MUNICIPALITIES)]
    for name in names:
        auth.add_municipality(store, name)
    user = auth.add_user(store, "Region Skalby", "doctor", names)
    device, _ = auth.enroll(store, user["id"], "scale preload")
    writer = _Writer(store, write_records, user, device, clock, work)
    patients = max(1, records // (2 * VISITS_PER_PATIENT + 1))
    where = getattr(store, "path", None) or repr(store)  # a PostgreSQL URL's password is left out
    progress(f"scale: {records:,} records ({patients:,} patients) into {where} ...")
    patient_ids = []
    for i in range(patients):
        fields = work.patient(names[i % len(names)])
        born = dt.date(1900, 1, 1) + dt.timedelta(days=i % 9000)
        fields["personnummer"] = make_test_personnummer(born, (i // 9000) % 1000)
        patient_ids.append(writer.merged("patient", work.uuid(), fields))
    templates = writer.templates()
    written = patients
    while written < records:
        patient_id = patient_ids[written % patients]
        template = templates[(written // 2) % len(templates)]
        writer.clone(template[written % 2], patient_id)
        written += 1
        if written % 200_000 == 0:
            progress(f"scale: {written:,} records ...")
    writer.flush()
    store.save_clock(str(clock.last))
    settle(store)
    return written, patients


def _sqlite_records(store, rows):
    """Feed and record rows into SQLite: numbered from the feed's head, in this transaction (the single writer)."""
    conn = store._conn()
    first = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM feed").fetchone()[0] + 1
    conn.executemany(sqlite_store.INSERT_FEED, [(r["type"], r["id"], r["change_id"]) for r in rows])
    conn.executemany(sqlite_store.UPSERT_RECORD, [{**r, "seq": first + n} for n, r in enumerate(rows)])


def _sqlite_settle(store):
    """Checkpoint the WAL into the file and flush it to disk: the region's store is at rest when its server starts.

    Otherwise the first minutes the bench measures pay the kernel writing back the load's gigabytes.
    """
    store._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    descriptor = os.open(store.path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _postgres_records(store, rows):
    """Feed and record rows into PostgreSQL: the store's PUT_RECORD, each number drawn under its write lock.

    psycopg pipelines ``executemany``: one round trip for the chunk, not one a record.
    """
    store._lock_writes()
    store._local.conn.cursor().executemany(postgres_store.PUT_RECORD, rows)


def _postgres_settle(store):
    """Vacuum, analyze and checkpoint: the region's database is at rest when its server starts.

    Otherwise autovacuum (which a million inserted rows set off) and the checkpoint of the load's
    WAL run while the bench measures, and the planner has no statistics of the loaded tables.
    """
    with store._connection() as conn:
        conn.execute("VACUUM (ANALYZE)")
        conn.execute("CHECKPOINT")


#: What differs per store: how a chunk's feed and record rows are written, and how the loaded store is settled.
RECORD_WRITERS = {
    sqlite_store.SqliteStore: (_sqlite_records, _sqlite_settle),
    postgres_store.PostgresStore: (_postgres_records, _postgres_settle),
}


class _Writer:
    """Stored records in chunks: the feed row, the record, the change and its audit entry, as a push writes them."""

    def __init__(self, store, write_records, user, device, clock, work):
        self.store, self.write_records = store, write_records
        self.user, self.device, self.clock, self.work = user, device, clock, work
        self.actor = Actor(user["id"], user["role"])
        self.now = dt.datetime.now(dt.timezone.utc)
        self.op = 0
        self.pending = []

    def merged(self, record_type, record_id, fields):
        """Merge a new record by the real merge and queue it; return its id."""
        state, change = self._merge(record_type, record_id, fields)
        self._queue(state["type"], record_id, index_columns(state), encode_wire(state), change)
        return record_id

    def templates(self):
        """``TEMPLATES`` (visit, observation) pairs of one patient, merged, not stored: what clones copy."""
        patient_id = self.work.uuid()
        pairs = []
        for _ in range(TEMPLATES):
            visit_id, visit, observation_id, vitals = self.work.visit_with_vitals(patient_id)
            pairs.append(tuple(self._template(t, i, f, patient_id)
                               for t, i, f in (("visit", visit_id, visit), ("observation", observation_id, vitals))))
        return pairs

    def _template(self, record_type, record_id, fields, patient_id):
        state, change = self._merge(record_type, record_id, fields)
        columns = index_columns(state)
        assert columns["patient_id"] == patient_id and patient_id not in json.dumps(
            {k: v for k, v in columns.items() if k != "patient_id"}), "a clone's columns would keep the template's"
        return {"type": record_type, "id": record_id, "patient_id": patient_id, "change_id": change["change_id"],
                "hlc": change["hlc"], "fields": sorted(fields), "columns": columns, "wire": encode_wire(state)}

    def clone(self, template, patient_id):
        """Queue a copy of ``template`` for another record of ``patient_id`` (new record and change ids)."""
        record_id, change_id = self.work.uuid(), self._change_id()
        wire = (template["wire"].replace(template["id"], record_id).replace(template["patient_id"], patient_id)
                .replace(template["change_id"], change_id))
        change = {"change_id": change_id, "record_type": template["type"], "record_id": record_id, "op": self.op,
                  "hlc": template["hlc"], "fields": template["fields"]}
        self._queue(template["type"], record_id, {**template["columns"], "patient_id": patient_id}, wire, change)

    def _merge(self, record_type, record_id, fields):
        change = make_change(record_type, record_id, fields, state=None, change_id=self._change_id(),
                             hlc=str(self.clock.now()), op=self.op, device_id=self.device["id"])
        return apply_change(None, change, self.actor, self.now).state, change

    def _change_id(self):
        self.op += 1
        return f"{self.device['id']}.{self.op}.{self.work.rng.getrandbits(32):08x}"

    def _queue(self, record_type, record_id, columns, wire, change):
        self.pending.append((record_type, record_id, columns, wire, change))
        if len(self.pending) >= CHUNK:
            self.flush()

    def flush(self):
        """Write the queued records in one transaction."""
        if not self.pending:
            return
        store, user, device = self.store, self.user, self.device
        with store.transaction():
            self.write_records(store, [{"type": t, "id": i, "change_id": c["change_id"], **columns, "state": wire}
                                       for t, i, columns, wire, c in self.pending])
            store.save_changes([{
                "change_id": c["change_id"], "device_id": device["id"], "user_id": user["id"], "op": c["op"],
                "record_type": t, "record_id": i, "original_hlc": c["hlc"], "hlc": c["hlc"],
                "result": {"change_id": c["change_id"], "result": "applied", "hlc": c["hlc"],
                           "restamped": False, "conflicts": []}} for t, i, _, _, c in self.pending])
            store.audit([audit.accepted(user, device, c, Stamp(c["hlc"], False, c["hlc"], 0), columns["patient_id"],
                                        "applied") for _, _, columns, _, c in self.pending])
        self.pending = []
