"""The server's one write path: every server-side write is applied here.

Push applies a device's changes through :class:`WriteApplier`; so do the admin
acts, the escalation job and the demo seed, with :meth:`WriteApplier.write`,
which builds the change (:func:`schema.change.make_change`) on the record's
current state and raises :class:`server.errors.ChangeRefused` when the merge
refuses it. What a change goes through, in order: a change id the device used
before gets its stored result (so a retried batch gets the same answers and
changes nothing), one another device used is rejected ``change_id_taken``; a
change building on one of the device's rejected changes is rejected
``depends_on_rejected``; the clock rule re-stamps an HLC too far ahead; the
scope is checked at the change's base; :func:`schema.merge.apply_change` merges
(every rule lives there); the records, the feed, the change and its result,
the audit entries and the device's health are written, and the record type's
``after_store`` hooks run (the duplicate-patient check). A rejected change
writes nothing but its result, its quarantine entry and an audit entry. A
push's applier (``batched``) reads the batch's records with the batch and holds
its change rows and audit entries, written together when the batch finishes.

A change is computed whole (its merge and any derived change) before anything
of it is written, so a rejection never leaves half a change behind. Each change
runs in a savepoint of the caller's transaction: an unexpected error while one
change merges (a bug, a record that cannot be decoded) undoes that change alone,
which is rejected ``merge_failed``, quarantined and audited; the batch and every
other device's sync go on.
"""

import dataclasses
import datetime as dt
import logging
import uuid

from schema import records
from schema.change import make_change
from schema.clock import HybridClock, stamp_incoming
from schema.errors import ChangeIdTaken, DependsOnRejected, HemsyncError, InvalidRecord, MergeFailed
from schema.merge import SYSTEM, Actor, apply_change
from schema.validation import check_envelope, require_uuid

from . import audit, scope
from .directory import StoreDirectory
from .errors import ChangeRefused, StoreError
from .settings import dispatch_settings
from .store import UnwaitedFailed, encode_wire

__all__ = ["WriteApplier", "op_gaps", "MAX_OP_STEP", "SERVER_DEVICE", "SERVER_USER"]

log = logging.getLogger(__name__)

#: A device numbers its changes 1, 2, 3, ...: an operation number further than this past
#: the last one seen is no honest jump, and would switch off gap detection for good.
MAX_OP_STEP = 1_000_000
#: The device and user written on the server's own changes (``escalated_at``, a discharge's follow-up).
SERVER_DEVICE = {"id": "hemsync-server"}
SERVER_USER = {"id": SYSTEM.user_id, "role": SYSTEM.role}


@dataclasses.dataclass
class WriteApplier:
    """Applies the changes of one device and user: merges, persists, audits; holds the clock and scope."""

    store: object
    settings: dict
    device: dict
    user: dict
    now: dt.datetime
    #: Keep the change rows and audit entries and write them together in :meth:`finish` (a push's batch).
    batched: bool = False

    def __post_init__(self):
        self.clock = HybridClock(self.store.clock() or "0000000000000000-000000")
        self.actor = Actor(self.user["id"], self.user["role"])
        self.options = {"dispatch": dispatch_settings(self.settings),
                        "directory": StoreDirectory(self.store, read=self._known if self.batched else None)}
        self.max_ahead_ms = self.settings["HEMSYNC_MAX_CLOCK_AHEAD"] * 1000
        self._keys = None
        self._server = None
        self._looked_up = {}
        self._read = {}
        self._held = _HeldRows() if self.batched else None
        self.rejected = 0
        self.ops = []
        self.restamped = []
        self.ahead_ms = None

    @property
    def keys(self):
        """The device's scope, recomputed after a write that may have changed it."""
        if self._keys is None:
            self._keys = scope.keys_for(self.store, self.user)
        return self._keys

    def look_up(self, changes):
        """Read what a batch's changes need from the store before they are applied one by one.

        Which of their change ids are stored, in one query, and the records they
        change, in one query per record type (a change read its record with a
        statement of its own, a round trip on PostgreSQL). Each answer is used at
        most once: a push's batch repeats no change id, and a record a batch
        changes twice is read again for the second. What this write path stores
        since drops its answer (a derived or server-made change's id, a written
        record), so it is asked again when it comes. The transaction holds the
        write lock already, so nothing else changes them meanwhile.
        """
        change_ids = [change["change_id"] for change in changes]
        found = self.store.get_changes(change_ids)
        self._looked_up.update((change_id, found.get(change_id)) for change_id in change_ids)
        wanted = {}
        for change in changes:
            # The patient a new record names, too: the merge reads it (an observation its patient's SpO2 scale).
            for record_type, record_id in ((change["record_type"], change["record_id"]),
                                           ("patient", _claimed_patient(change))):
                # A malformed id (a NUL, which the stores' id lists do not carry) is read on its own when it comes.
                if isinstance(record_id, str) and "\x00" not in record_id:
                    wanted.setdefault(record_type, set()).add(record_id)
        for record_type, ids in wanted.items():
            stored = {record.id: record for record in self.store.get_records(record_type, ids)}
            self._read.update(((record_type, record_id), stored.get(record_id)) for record_id in ids)

    def _stored(self, record_type, record_id):
        """The stored record of this type and id (or None): as :meth:`look_up` read it, once, else read now."""
        key = (record_type, record_id)
        if key in self._read:
            return self._read.pop(key)
        return self.store.get_record(record_type, record_id)

    def _known(self, record_type, record_id):
        """The stored record for a look-up that only reads it (the merge's directory): read once per batch.

        Kept until this write path stores the record (:meth:`_put`), or until a change's
        savepoint is rolled back (what was read inside it may have been undone).
        """
        key = (record_type, record_id)
        if key not in self._read:
            self._read[key] = self.store.get_record(record_type, record_id)
        return self._read[key]

    def _put(self, state, change_id, wire=None):
        """Store a record's state; a read of it made with the batch no longer holds."""
        self._read.pop((state["type"], state["id"]), None)
        self.store.put_record(state, change_id, wire)

    def apply(self, change):
        """Apply one change (or return its stored result); return its result for the response."""
        seen = self._stored_change(change["change_id"])
        if seen is not None:
            return seen["result"] if seen["device_id"] == self.device["id"] else self._taken(change)
        mark = self._held.mark() if self._held is not None else None
        try:
            with self.store.savepoint():
                return self._merge(change)
        except UnwaitedFailed:
            raise  # the batch is done again, waiting per change: this change fails alone there
        except Exception:  # noqa: BLE001 - one change's failure must not block the batch
            if mark is not None:
                self._held.undo(mark)  # what the rolled-back savepoint would have written
            self._read.clear()
            log.exception("merging change %s of device %s failed", change["change_id"], self.device["id"])
            self._keys = None
            error = MergeFailed("the server could not merge this change; it is kept in quarantine for an "
                                "admin. Discard it (`hemsync discard`) or correct and send it again",
                                details={"change_id": [change["change_id"]]})
            return self._reject(change, error, None)

    def _stored_change(self, change_id):
        """The stored change with this id (held for the batch's end, or in the store), or None."""
        if change_id in self._looked_up:
            return self._looked_up.pop(change_id)
        if self._held is not None and change_id in self._held.changes:
            return self._held.changes[change_id]
        return self.store.get_change(change_id)

    def write(self, record_type, record_id, fields, *, change_id=None):
        """Apply a server-side change of ``fields`` on top of the record's current state; return its result.

        ``change_id`` names a change a retried run must apply once (derived
        from what it does); by default a fresh one. Raises ChangeRefused when
        the merge refuses it: a server-side change is made to fit the rules,
        so a refusal is a bug, and the caller's transaction is rolled back whole.
        """
        stored = self._stored(record_type, record_id)
        result = self.apply(make_change(record_type, record_id, fields, state=stored.state if stored else None,
                                        change_id=change_id or str(uuid.uuid4()), hlc=str(self.clock.now())))
        if result["result"] == "rejected":
            raise ChangeRefused(f"the merge refused {', '.join(sorted(fields))} on {record_type} {record_id}: "
                                f"{result['error']['message']}", details={"error": result["error"]})
        return result

    def server_writes(self):
        """The write path as the server itself, sharing this one's clock and transaction.

        For ``after_store`` hooks whose consequences are the server's acts, not
        the pushing user's (a discharge opening a visit request a nurse's role
        would not allow a doctor): they are written on the server's device with
        ids derived from what they do, so a retried or re-synced change finds
        them stored and acts once, whoever pushed it.
        """
        if self.user["id"] == SERVER_USER["id"]:
            return self
        if self._server is None:
            self._server = WriteApplier(self.store, self.settings, SERVER_DEVICE, SERVER_USER, self.now)
            self._server.clock = self.clock
            # What it stores is no longer unstored for this batch, and a record it writes is read afresh.
            self._server._looked_up, self._server._read = self._looked_up, self._read
            self._server._held = self._held  # and its rows are written with the batch's
        # What the server writes may bring a patient's records into this device's scope.
        self._keys = None
        return self._server

    def _taken(self, change):
        """Refuse a change whose id another device used, without touching that device's change.

        The id's stored result is the other device's, so this rejection is
        quarantined and audited but stored under no id; a retry finds it in the
        quarantine and gets the same answer without doubling anything.
        """
        error = ChangeIdTaken(
            f"change id {change['change_id']} was used by another device: make a new change "
            "(a change id is made of the device's id and its operation number)",
            details={"change_id": [change["change_id"]]})
        if self.store.rejected_refs(self.device["id"], {change["change_id"]}, ()):
            return _rejection(change, error)
        return self._reject(change, error, None, keep_result=False)

    def _merge(self, change):
        stamp = None
        try:
            self._check_op(change.get("op"))
            require_uuid(change["record_id"], "record_id")
            stamp = self._stamp(change)
            merged = {**change, "hlc": stamp.hlc, "device_id": self.device["id"]}
            # Before anything reads the base (the dependency check walks it): a base
            # of any other shape is this change's invalid_value, never a crash.
            check_envelope(records.get(merged["record_type"]), merged)
            self._check_dependencies(merged)
            stored = self._stored(merged["record_type"], merged["record_id"])
            if stored is not None:
                scope.check_existing(self.store, self.device, self.user, self.keys, stored)
            outcomes = self._compute(merged, stored)
        except HemsyncError as error:
            return self._reject(change, error, stamp)
        return self._write(merged, stamp, outcomes)

    def _check_op(self, op):
        if op is None:
            return  # a client older than operation numbers
        last = max([self.device.get("last_op") or 0, *self.ops])
        if not 0 < op <= last + MAX_OP_STEP:
            raise InvalidRecord(
                f"op {op} is no next operation number of this device (its last was {last}): "
                "operation numbers count 1, 2, 3, ...",
                details={"op": [f"expected 1 to {last + MAX_OP_STEP}"]})
        self.ops.append(op)

    def _stamp(self, change):
        records.get(change["record_type"])
        try:
            stamp = stamp_incoming(change["hlc"], self.clock, self.max_ahead_ms)
        except ValueError as exc:
            raise InvalidRecord(str(exc), details={"hlc": [str(exc)]}) from exc
        self.ahead_ms = stamp.ahead_ms if self.ahead_ms is None else max(self.ahead_ms, stamp.ahead_ms)
        if stamp.restamped:
            self.restamped.append(stamp)
        return stamp

    def _check_dependencies(self, change):
        if not self.device.get("rejected_count") and not self.rejected:
            return  # nothing of this device was ever rejected: nothing to depend on
        versions = set()
        for seen in (change.get("base") or {}).values():
            versions.update(v for v in (seen if isinstance(seen, list) else [seen]) if isinstance(v, str))
        refs = {v for k, v in change["fields"].items() if k.endswith("_id") and isinstance(v, str)}
        if versions:
            # An edit of a record whose creation was rejected; a new record (empty base)
            # reusing the id is a fresh attempt, such as the corrected version of it.
            refs.add(change["record_id"])
        hits = self.store.rejected_refs(self.device["id"], versions, refs)
        if hits:
            raise DependsOnRejected(
                "this change builds on a change of this device that was rejected "
                f"({', '.join(sorted(hits))}): see `hemsync rejected`, fix or discard that one first",
                details={"depends_on": sorted(hits)},
            )

    def _compute(self, change, stored):
        """The outcome of the change and of every change it derives, with their wire texts, before any write."""
        outcome = apply_change(stored.state if stored else None, change, self.actor, self.now, self.options)
        scope.check_placed(self.keys, self.user, outcome.state, stored)
        outcomes = [(change, outcome, stored.state if stored else None)]
        for derived in outcome.derived:
            # A derived change (an amendment from a late edit of a sealed visit) merges
            # with the same actor, and is rejected together with the change it came from.
            base = self._stored(derived["record_type"], derived["record_id"])
            base = base.state if base else None
            outcomes.append((derived, apply_change(base, derived, self.actor, self.now, self.options), base))
        return [(made, outcome, before, self._wire(outcome)) for made, outcome, before in outcomes]

    def _wire(self, outcome):
        """The state's stored text; refused when it would grow the record past the size limit."""
        if outcome.result == "duplicate":
            return None
        wire = encode_wire(outcome.state)
        limit = self.settings["HEMSYNC_MAX_RECORD_BYTES"]
        if len(wire.encode()) > limit:
            raise MergeFailed(
                f"this change would grow {outcome.state['type']} {outcome.state['id']} past {limit} bytes: "
                "shorten the text, or ask an admin (the record's history is kept in full)",
                details={"record_id": [outcome.state["id"]], "max_bytes": limit}, code="record_too_large")
        return wire

    def _write(self, change, stamp, outcomes):
        conflicts = list(outcomes[0][1].conflicts)
        entries = []
        for made, outcome, before, wire in outcomes:
            if outcome.result == "duplicate":
                continue
            rtype = records.get(made["record_type"])
            self._put(outcome.state, made["change_id"], wire)
            patient_id = rtype.patient_of(outcome.state)
            for hook in rtype.after_store:
                conflicts += hook(self, outcome.state, before)
            entries.append(audit.accepted(self.user, self.device, made, stamp, patient_id, outcome.result))
            entries.extend(audit.decisions(self.user, self.device, made, outcome.decisions, patient_id))
            if made is not change:
                self._save_change(self._row(made, stamp, {"change_id": made["change_id"],
                                                          "result": outcome.result}), unasked=True)
            if rtype.changes_scope:
                self._keys = None
        result = {"change_id": change["change_id"], "result": "conflict" if conflicts else "applied",
                  "hlc": stamp.hlc, "restamped": stamp.restamped, "conflicts": conflicts}
        if stamp.restamped:
            result["original_hlc"] = stamp.original_hlc
        self._audit(entries)
        self._save_change(self._row(change, stamp, result))
        return result

    def _reject(self, change, error, stamp, keep_result=True):
        self.rejected += 1
        result = _rejection(change, error)
        stored = self._stored(change["record_type"], change["record_id"])
        patient_id = stored.patient_id if stored else _claimed_patient(change)
        self.store.quarantine({
            "change_id": change["change_id"], "device_id": self.device["id"], "user_id": self.user["id"],
            "record_type": change["record_type"], "record_id": change["record_id"], "code": error.code,
            "message": error.message, "change": change, "error": error.to_dict(),
        })
        self._audit([audit.rejected(self.user, self.device, change, error.to_dict(), patient_id)])
        if keep_result:
            self._save_change(self._row(change, stamp, result))
        return result

    def _save_change(self, row, unasked=False):
        """Store a change's row, or hold it for the batch's end; ``unasked``: its id was not looked up first.

        A held row is refused here when its id is stored, as the store's key would
        refuse it: a derived change's id is made from its change's, but a device
        could have sent one under that id before.
        """
        self._looked_up.pop(row["change_id"], None)
        if self._held is None:
            self.store.save_change(row)
            return
        if unasked and self._stored_change(row["change_id"]) is not None:
            raise StoreError(f"change id {row['change_id']} is stored already")
        self._held.changes[row["change_id"]] = row

    def _audit(self, entries):
        if self._held is None:
            self.store.audit(entries)
        else:
            self._held.audit.extend(entries)

    def _row(self, change, stamp, result):
        return {
            "change_id": change["change_id"], "device_id": self.device["id"], "user_id": self.user["id"],
            "op": change.get("op"), "record_type": change["record_type"], "record_id": change["record_id"],
            "original_hlc": stamp.original_hlc if stamp else change.get("hlc"),
            "hlc": stamp.hlc if stamp else None, "result": result, "derived_from": change.get("derived_from"),
        }

    def annotate(self, state, change_id, decision):
        """Store a server-made addition to a record's state (a conflict notice) and audit its decision.

        For ``after_store`` hooks of record types: the state reaches every
        device holding the record through the feed.
        """
        self._put(state, change_id)
        patient_id = records.get(state["type"]).patient_of(state)
        self._audit(audit.decisions(None, None, {"record_type": state["type"], "record_id": state["id"],
                                                 "change_id": None}, [decision], patient_id))

    def finish(self, pending=None, ops=()):
        """Persist the held rows, the server clock and the device's health, in the batch's transaction."""
        if self._held is not None:
            # In the order they were made: the audit log's ids keep the order of its entries.
            self.store.save_changes(list(self._held.changes.values()))
            self.store.audit(self._held.audit)
            self._held.undo((0, 0))
        self.store.save_clock(str(self.clock.last))
        values = {"last_sync_at": self.now.isoformat(timespec="milliseconds")}
        if pending is not None:
            values["pending"] = pending
        device = self.store.get_device(self.device["id"])
        if device is None:
            return
        increments = {"rejected_count": self.rejected}
        if ops:
            values["last_op"] = max([*ops, device["last_op"] or 0])
            increments["op_gaps"] = op_gaps(device["last_op"] or 0, ops)
        if self.ahead_ms is not None:
            values["clock_offset_ms"] = self.ahead_ms
        if self.restamped:
            values["clock_flagged_at"] = values["last_sync_at"]
        self.store.update_device(self.device["id"], values, increments)


@dataclasses.dataclass
class _HeldRows:
    """A batch's change rows (by id) and audit entries, written together when it finishes.

    One statement each per batch instead of one each per change; a change whose
    savepoint is rolled back drops what it held (:meth:`undo`), as the savepoint
    drops what it wrote.
    """

    changes: dict = dataclasses.field(default_factory=dict)
    audit: list = dataclasses.field(default_factory=list)

    def mark(self):
        """Where the held rows end now, for :meth:`undo`."""
        return len(self.changes), len(self.audit)

    def undo(self, mark):
        """Drop what was held after ``mark``."""
        for change_id in list(self.changes)[mark[0]:]:
            del self.changes[change_id]
        del self.audit[mark[1]:]


def op_gaps(last_op, ops):
    """How many operation numbers after ``last_op`` a batch skips: changes that never arrived.

    A device numbers its changes 1, 2, 3, ... and pushes them in order, so a
    hole means changes were lost on the laptop (a restored backup, a bug) and
    shows in device health.
    """
    fresh = {op for op in ops if op > last_op}
    return max(fresh) - last_op - len(fresh) if fresh else 0


def _rejection(change, error):
    """A rejected change's result, as the push answers it."""
    return {"change_id": change["change_id"], "result": "rejected", "error": error.to_dict()}


def _claimed_patient(change):
    """The patient a new record names (it may not exist): a rejection's audit entry's, a batch's read."""
    try:
        return records.get(change.get("record_type")).claimed_patient(change)
    except HemsyncError:
        return None
