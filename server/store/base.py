"""The store interface push, pull, auth and audit talk to, and what every implementation shares.

:class:`Store` is the contract; :class:`StoredRecord` and :class:`ScopeKeys` are
what it hands out and takes; :func:`index_columns` and :func:`encode_wire` make a
record's stored row from its merge state, the same way in every store. The
contract suite ``tests/server/test_store_contract.py`` runs against every
implementation (server.store.sqlite, server.store.postgres).

Writes happen inside :meth:`Store.transaction`: a push batch or a pulled page
commits whole or not at all. Write methods called outside one open their own.

The change feed: every write of a record appends a feed entry whose ``seq``
grows monotonically *in commit order* (a reader that has seen ``seq`` n has
seen every entry below it), and the record row carries the ``seq`` of its
latest write, so "records changed since a cursor" is one indexed range.
Records are never deleted (the law keeps them ten years), and the audit log
and the escalation feed are append only: the database itself refuses.
"""

import abc
import collections
import contextlib
import dataclasses
import functools
import json
import threading

from marshmallow import fields

from schema import records
from schema.merge import view
from schema.roles import ERROR_MARK
from schema.validation import StrictBool
from schema.wire import decode_state, encode_state

__all__ = ["Store", "StoredRecord", "ScopeKeys", "UnwaitedFailed", "ViewCache", "VIEWS", "index_columns",
           "known_fields", "encode_wire",
           "REQUEST_TYPE", "DEVICE_COLUMNS", "DEVICE_COUNTERS"]

#: The only record type ``ScopeKeys.requests`` matches.
REQUEST_TYPE = "visit_request"

#: The device columns :meth:`Store.update_device` may set, and those it may add to.
DEVICE_COLUMNS = frozenset({
    "label", "revoked_at", "last_sync_at", "last_seen_at", "client_version", "pending", "reported_rejected",
    "rejected_count", "last_op", "clock_offset_ms", "clock_flagged_at", "op_gaps",
})
DEVICE_COUNTERS = frozenset({"rejected_count", "op_gaps"})


class UnwaitedFailed(Exception):
    """Something failed inside :meth:`Store.unwaited`: roll the transaction back and do it again, waiting."""


@dataclasses.dataclass(frozen=True)
class StoredRecord:
    """A record as stored: its feed position, index columns and wire-encoded state (JSON text)."""

    type: str
    id: str
    seq: int
    patient_id: str | None
    municipality: str | None
    wire: str

    @functools.cached_property
    def state(self):
        """The decoded merge state, decoded once per stored record read (the push path asks for it often).

        Callers that change it (a hook adding a conflict) change this read's copy only: every
        read from the store is a new StoredRecord.
        """
        return decode_state(json.loads(self.wire))

    def view(self):
        """The record as a person sees it (:func:`schema.merge.view`): a fresh dict, decoded once per state.

        The pages read the same records on every poll (a board every 2 s per
        dispatcher), and a stored state's text names it exactly, so its view is made
        once per process and text (:data:`VIEWS`) and copied out.
        """
        return dict(VIEWS.view(self.wire))


class ViewCache:
    """Views of stored states by their text, the most recently used kept within ``budget`` characters of text.

    Bounded by the texts' size, not their number: a record keeps every value it no
    longer shows, so one edited all day holds 100 KB or more, and each edit is a
    new text. Bounded by number (30,000 texts), a soak of 200 laptops editing the
    same patients kept hundreds of MB of old states' texts and views by its
    thirteenth minute, growing on.
    """

    def __init__(self, budget):
        self.budget = budget
        self._views = collections.OrderedDict()
        self._used = 0
        self._lock = threading.Lock()

    def view(self, wire):
        """The view of the state stored as ``wire`` (shared: callers copy before they change it)."""
        with self._lock:
            found = self._views.get(wire)
            if found is not None:
                self._views.move_to_end(wire)
                return found
        made = view(decode_state(json.loads(wire)))
        with self._lock:
            if wire not in self._views:
                self._views[wire] = made
                self._used += len(wire)
                while self._used > self.budget:
                    old, _ = self._views.popitem(last=False)
                    self._used -= len(old)
        return made

    def held(self):
        """(texts kept, their characters)."""
        with self._lock:
            return len(self._views), self._used


#: A region's open board is 5,000 requests with their patients and vitals, about 15,000 states of a
#: kilobyte or two: they fit, with room for a nurse's lists. Bulk readers (an export) use
#: schema.merge.view directly and leave this to the pages.
VIEWS = ViewCache(budget=24_000_000)


@dataclasses.dataclass(frozen=True)
class ScopeKeys:
    """What a device may see, as sets of keys the store can match records against.

    ``full``: patients whose every record is in scope; ``lite``: patients of
    whom only ``lite_types`` are (a dispatcher's); ``municipalities``: records
    without a patient (rounds) by their municipality; ``requests``: single
    visit requests by id (a dispatcher's open requests), matched against
    records of type ``visit_request`` only: ids are made on laptops, so a record
    of another type may carry an open request's id.
    """

    full: frozenset = frozenset()
    lite: frozenset = frozenset()
    municipalities: frozenset = frozenset()
    requests: frozenset = frozenset()
    lite_types: tuple = ()

    PARTS = ("full", "lite", "municipalities", "requests")

    def __or__(self, other):
        return self._combine(other, frozenset.__or__)

    def __and__(self, other):
        return self._combine(other, frozenset.__and__)

    def __sub__(self, other):
        return self._combine(other, frozenset.__sub__)

    def __bool__(self):
        return any(getattr(self, part) for part in self.PARTS)

    def _combine(self, other, op):
        return dataclasses.replace(
            self, **{part: op(getattr(self, part), getattr(other, part)) for part in self.PARTS},
            lite_types=self.lite_types or other.lite_types,
        )

    def covers(self, record_type, record_id, patient_id, municipality):
        """True when a record with these index columns is in this scope."""
        if record_type == REQUEST_TYPE and record_id in self.requests:
            return True
        if patient_id is not None:
            return patient_id in self.full or (record_type in self.lite_types and patient_id in self.lite)
        return municipality in self.municipalities

    def to_json(self):
        """A canonical JSON text (sorted), so equal scopes have equal digests."""
        return json.dumps({part: sorted(getattr(self, part)) for part in self.PARTS}
                          | {"lite_types": sorted(self.lite_types)}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text):
        """The inverse of :meth:`to_json`."""
        data = json.loads(text)
        return cls(**{part: frozenset(data[part]) for part in cls.PARTS}, lite_types=tuple(data["lite_types"]))


def encode_wire(state):
    """A record's merge state as the JSON text it is stored and shipped as."""
    return json.dumps(encode_state(state), separators=(",", ":"), ensure_ascii=False)


def known_fields(record_type, names):
    """``names`` as a tuple, and those of them whose JSON is no string or number (booleans, lists, objects).

    Raises ValueError unless each name is a field of the record type's schema
    (or the error mark every record may carry).
    """
    known = records.get(record_type).validator.fields
    unknown = sorted(set(names) - set(known) - set(ERROR_MARK))
    if unknown:
        raise ValueError(f"{record_type} has no field {', '.join(unknown)}")
    structured = {name for name in names
                  if name == "entered_in_error" or isinstance(known.get(name), (StrictBool, fields.List, fields.Dict))}
    return tuple(names), structured


def index_columns(state):
    """The columns a record is found by, as its record type declares them (:meth:`RecordType.index_values`)."""
    return records.get(state["type"]).index_values(state)


class Store(abc.ABC):
    """The operations push, pull, auth and audit need; one implementation per database."""

    @abc.abstractmethod
    def transaction(self):
        """A context manager: one write transaction (joins one already open on this thread)."""

    def reading(self):
        """A context manager: reads that see one consistent state and never wait for the writer.

        Nothing may be written inside it (write after it ends, in :meth:`transaction`).
        This default is :meth:`transaction`, for a store whose transactions take the write
        lock only at their first write (PostgreSQL).
        """
        return self.transaction()

    @abc.abstractmethod
    def savepoint(self):
        """A context manager inside an open transaction: what it wrote is undone if it raises.

        A store may send the writes inside it without waiting for each answer
        (PostgreSQL pipelines them): a write's error then surfaces when the
        savepoint ends, and undoes it all the same.
        """

    def unwaited(self):
        """A context manager inside an open transaction: its writes, savepoints' too, need not be waited for.

        A store may send them all and wait for their answers once, when it ends
        (PostgreSQL pipelines them; SQLite has nothing to wait for). Then a failure
        cannot be undone alone: whatever fails inside it (a write the database
        refuses, an error in a savepoint's block) raises :class:`UnwaitedFailed`, and
        the caller rolls the transaction back and does its work again without this.
        """
        return contextlib.nullcontext(self)

    @abc.abstractmethod
    def migrations(self):
        """The names of the migrations applied to this database, in the order they were applied."""

    @abc.abstractmethod
    def backup(self, path):
        """Write a consistent copy of the whole database to ``path`` while it serves (where the store can)."""

    @abc.abstractmethod
    def close(self):
        """Release the store's connections."""

    # users and devices
    @abc.abstractmethod
    def add_user(self, user):
        """Add a user: ``{"id", "name", "role", "municipalities", "hsa_id", "created_at"}``."""

    @abc.abstractmethod
    def get_user(self, user_id):
        """The user with this id, or None."""

    @abc.abstractmethod
    def users(self):
        """Every user, by name."""

    # the region's municipalities
    @abc.abstractmethod
    def add_municipality(self, name):
        """Add a municipality to the region's list (as the region spells it); True when it was new."""

    @abc.abstractmethod
    def municipalities(self):
        """The region's municipalities, by name."""

    @abc.abstractmethod
    def add_device(self, device):
        """Add a device: ``{"id", "user_id", "label", "token_hash", "created_at"}``."""

    @abc.abstractmethod
    def get_device(self, device_id):
        """The device with this id, or None."""

    @abc.abstractmethod
    def device_by_token_hash(self, token_hash):
        """The device whose token has this SHA-256 hash, or None."""

    @abc.abstractmethod
    def update_device(self, device_id, values=None, increments=None):
        """Set columns of a device's health (``values``) and add to counters (``increments``)."""

    def note_device(self, device_id, values):
        """Set columns of a device's health that need not wait for the writer (a handshake's last seen).

        Here it is :meth:`update_device`: a store whose writers take row locks does
        not hold one device's bookkeeping behind another device's push.
        """
        self.update_device(device_id, values)

    @abc.abstractmethod
    def devices(self):
        """Every device with its user's name and role, for device health."""

    # the server's clock
    @abc.abstractmethod
    def clock(self):
        """The server clock's last HLC (a string), or None before the first."""

    @abc.abstractmethod
    def save_clock(self, hlc):
        """Persist the server clock's last HLC."""

    # records and the feed
    @abc.abstractmethod
    def get_record(self, record_type, record_id):
        """The :class:`StoredRecord` of this type and id, or None."""

    @abc.abstractmethod
    def put_record(self, state, change_id, wire=None):
        """Store a record's merge state as its newest write, at a new feed ``seq`` (the record's, read back).

        ``wire`` is the state already encoded as the JSON text of :func:`encode_wire`, when the
        caller has it (push measures it against the record size limit)."""

    @abc.abstractmethod
    def head(self):
        """The feed's last ``seq`` (0 when empty)."""

    @abc.abstractmethod
    def records_since(self, after, keys, limit, upto=None):
        """Records in scope ``keys`` with ``after < seq <= upto`` (no bound: None), by seq, at most ``limit``."""

    @abc.abstractmethod
    def records_in(self, keys):
        """``(type, id, patient_id, municipality)`` of every record in scope ``keys`` (for purge markers)."""

    @abc.abstractmethod
    def patients_with_personnummer(self, personnummer):
        """The stored patient records with this personnummer."""

    @abc.abstractmethod
    def patients_in(self, municipalities):
        """Ids of the patients of these municipalities."""

    @abc.abstractmethod
    def request_patients(self, assignee, excluded_statuses):
        """Patient ids of requests belonging to ``assignee`` whose status is not excluded."""

    @abc.abstractmethod
    def requests_with_status(self, statuses):
        """``(request id, patient id)`` of every visit request whose status is one of ``statuses``."""

    @abc.abstractmethod
    def get_records(self, record_type, ids):
        """The :class:`StoredRecord` of this type with one of these ids, by id."""

    @abc.abstractmethod
    def records_of_type(self, record_type):
        """Every :class:`StoredRecord` of this type, by id (the follow-up's reads: one indexed range)."""

    @abc.abstractmethod
    def field_values(self, record_type, names):
        """Every record of this type as ``{"id", "patient_id", name: value, ...}``, by id, without decoding it.

        Only the named fields of the type's schema are read, and only those that
        hold a value appear: the record as a person sees it, cut to what a caller
        (the follow-up's figures) needs, read by the database's JSON functions.
        Raises ValueError for a name the type does not have.
        """

    @abc.abstractmethod
    def records_of_patients(self, record_type, patient_ids):
        """The :class:`StoredRecord` of this type that belong to one of these patients, by id."""

    # scope snapshots and what each device holds
    @abc.abstractmethod
    def save_scope(self, keys):
        """Store a :class:`ScopeKeys` (deduplicated by content); return its id."""

    @abc.abstractmethod
    def get_scope(self, scope_id):
        """The :class:`ScopeKeys` with this id, or None."""

    @abc.abstractmethod
    def hold(self, device_id, pairs):
        """Note that a device was handed these ``(type, id)`` records."""

    @abc.abstractmethod
    def release(self, device_id, pairs):
        """Note that a device was told to purge these ``(type, id)`` records."""

    @abc.abstractmethod
    def holds(self, device_id, record_type, record_id):
        """True when the device was handed this record and not told to purge it."""

    # changes and quarantine
    @abc.abstractmethod
    def get_change(self, change_id):
        """The stored change (with its ``result``) with this id, or None."""

    @abc.abstractmethod
    def get_changes(self, change_ids):
        """The stored changes among these ids, by id (one query for a push's whole batch)."""

    def save_change(self, change):
        """Store a merged or rejected change and its result under its ``change_id``."""
        self.save_changes([change])

    @abc.abstractmethod
    def save_changes(self, changes):
        """Store merged or rejected changes, each with its result under its ``change_id`` (one statement)."""

    @abc.abstractmethod
    def rejected_refs(self, device_id, change_ids, record_ids):
        """Which of these ids name a rejected change of the device, or a record whose creation it had rejected."""

    @abc.abstractmethod
    def quarantine(self, entry):
        """Keep a rejected change with its error for an admin."""

    @abc.abstractmethod
    def quarantined(self, after=0, limit=100):
        """Quarantined changes after an entry id, oldest first, each with the ``patient_id`` it is about."""

    # duplicate patients (admins only)
    @abc.abstractmethod
    def save_duplicate(self, conflict):
        """Keep (or update, by id) a full duplicate-patient conflict for admins."""

    @abc.abstractmethod
    def duplicates(self, status=None):
        """The duplicate-patient conflicts, oldest first, optionally of one status."""

    # the audit log (append only)
    @abc.abstractmethod
    def audit(self, entries):
        """Append audit entries; ones whose ``key`` was seen before are skipped. Return how many were new.

        Inside a savepoint whose writes are pipelined (PostgreSQL) the count is not waited for: None.
        """

    @abc.abstractmethod
    def audit_log(self, patient_id=None, after=0, limit=100):
        """Audit entries after an entry id, oldest first, optionally of one patient."""

    @abc.abstractmethod
    def recent_audit(self, patient_id=None, user_id=None, limit=100):
        """The newest audit entries, newest first, optionally of one patient and of one user (for a person reading)."""

    # the server's own secret
    @abc.abstractmethod
    def server_secret(self):
        """The server's random secret (bytes) for signing pull cursors; made when the store was created."""

    # the escalation feed (append only)
    @abc.abstractmethod
    def add_escalation(self, entry):
        """Append ``{"request_id", "kind", "patient_id", "municipality", "at", "details"}`` unless the feed
        holds this request and kind already; return its new id, or None when it was there (another
        process was first)."""

    @abc.abstractmethod
    def escalations(self, after=None, limit=100, municipality=None):
        """Escalation feed entries: newest first, or oldest first after an entry id (a cursor)."""

    # web sign-in (server.web.signin)
    @abc.abstractmethod
    def set_password_hash(self, user_id, password_hash):
        """Keep a user's password hash (an argon2 string), replacing any earlier one."""

    @abc.abstractmethod
    def password_hash(self, user_id):
        """A user's password hash, or None when none was set."""
