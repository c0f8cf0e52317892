"""Apply one change to one record's state: the three-way merge.

The merge is a pure function of (state, change, actor, now): no I/O, no wall
clock. The server runs it to sequence pushed changes; the laptop runs the same
function to show its own pending changes on top of the server's state.

A record state is a plain dict::

    {"type", "id", "rev",                   # rev counts the changes merged
     "fields":    {path: write},            # write = value, version, hlc, device_id, by
     "conflicts": [conflict, ...],          # open and resolved, in a stable order
     "history":   [write + field],           # every value no longer shown
     "changes":   [change id, ...]}         # merged change ids (idempotency)

(see :mod:`schema.state` for how a field settles from its writes).

A change carries ``change_id``, ``record_type``, ``record_id``, ``device_id``,
``op``, ``hlc``, ``fields``, ``base`` (for every field of the record the device
had, the version it saw; for a field whose conflict it resolves, the list of
every competing version) and optionally ``resolves`` (the conflict ids).

Per field, the new write joins the field's writes and the field settles:
writes made on top of others supersede them, and the field's rule decides
among the rest (see :mod:`schema.state` and :mod:`schema.rules`). Changes to
*different* fields never collide: the merge only logs them as a soft
conflict. A change is either merged whole or rejected whole.
"""

import copy
import dataclasses
import datetime as dt
import uuid

from . import records
from .dispatch import DispatchSettings
from .errors import Forbidden, InvalidRecord
from .guards import fixed_placement
from .references import check_references
from .recordtype import flatten, unflatten
from .roles import check_change, check_role
from .rules import write_key
from .state import competitor, conflict_id, expand_resolves, field_writes, new_state, settle
from .validation import CLINICAL_FUTURE_LIMIT, check_envelope, load_fields

__all__ = [
    "Actor",
    "SYSTEM",
    "Outcome",
    "MergeContext",
    "apply_change",
    "view",
    "derived_id",
]

DERIVED_NAMESPACE = uuid.UUID("0b6e9f3a-2c47-4d1e-8f5a-6d2c9e1b7a40")
CLINICAL_ROLES = frozenset({"doctor"})


@dataclasses.dataclass(frozen=True)
class Actor:
    """Who makes a change, as authenticated by the server (or logged in on a laptop)."""

    user_id: str
    role: str


#: The server itself, for the fields only it writes (``escalated_at``). Any actor
#: with this role is the server acting (an admin command runs as
#: ``Actor(admin_id, SYSTEM.role)`` so its writes name the admin): it passes no
#: role check and no record type's guard, may set server fields, and every such
#: write syncs like any other.
SYSTEM = Actor("hemsync-server", "server")


@dataclasses.dataclass
class Outcome:
    """The merged state and what the merge did.

    ``result`` is ``applied``, ``conflict`` (applied and a conflict raised or
    joined) or ``duplicate`` (already merged: the state is unchanged).
    ``decisions`` are audit entries naming the rule that chose; ``derived`` are
    changes to other records the merge made (an amendment from a late edit of a
    sealed visit).
    """

    state: dict
    result: str
    decisions: list
    derived: list
    conflicts: list


@dataclasses.dataclass
class MergeContext:
    """What the record type's hooks see while one change merges.

    ``base`` is the versions the change's device had seen, by field (a copy:
    naming a conflict in ``resolves`` widens it to every competing version);
    ``memo`` lets hooks compute something once per change.
    """

    rtype: object
    state: dict
    change: dict
    actor: Actor
    values: dict
    creating: bool
    now: object
    options: dict
    base: dict = dataclasses.field(default_factory=dict)
    decisions: list = dataclasses.field(default_factory=list)
    derived: list = dataclasses.field(default_factory=list)
    conflicts: list = dataclasses.field(default_factory=list)
    skip: set = dataclasses.field(default_factory=set)
    memo: dict = dataclasses.field(default_factory=dict)

    def write(self, value):
        """A write of ``value`` by this change."""
        return {
            "value": value,
            "version": self.change["change_id"],
            "hlc": self.change["hlc"],
            "device_id": self.change["device_id"],
            "by": self.actor.user_id,
        }

    def current(self, path, default=None):
        """The value a field shows now."""
        write = self.state["fields"].get(path)
        return default if write is None else write["value"]

    def decide(self, **decision):
        """Log a merge decision for the audit log."""
        self.decisions.append({"change_id": self.change["change_id"], **decision})


def view(state):
    """The record as a person sees it: ``{"id": ..., field: value, ...}``."""
    rtype = records.get(state["type"])
    values = {path: w["value"] for path, w in state["fields"].items()}
    record = {"id": state["id"], **unflatten(values, rtype.nested)}
    for hook in rtype.views:
        record.update(hook(state))
    return record


def apply_change(state, change, actor, now, options=None):
    """Merge ``change`` into ``state`` (``None`` for a new record) as ``actor`` at ``now``.

    ``now`` is an aware datetime: the time of receipt on the server, the local
    time on a laptop. ``options`` may carry ``dispatch`` (DispatchSettings) and
    ``directory`` (a :class:`schema.references.Directory`: references are checked
    against it, and a new observation takes its patient's SpO2 scale from it).

    Returns an :class:`Outcome`; raises a :class:`schema.errors.HemsyncError`
    when the change must be rejected, leaving ``state`` untouched.
    """
    rtype = records.get(change["record_type"])
    if state is not None and change["change_id"] in state["changes"]:
        return Outcome(state, "duplicate", [], [], [])
    check_envelope(rtype, change)
    _check_base_known(state, change)
    state = copy.deepcopy(state) if state is not None else new_state(rtype.name, change["record_id"])
    creating = not state["fields"]
    server = actor.role == SYSTEM.role
    if not server:
        check_role(rtype, actor.role, creating)
    values = _validated(rtype, change, creating, now, refused=_client_refused(rtype, actor))
    options = {"dispatch": DispatchSettings(), **(options or {})}
    ctx = MergeContext(rtype, state, change, actor, values, creating, now, options, dict(change.get("base") or {}))
    open_before = {c["id"] for c in state["conflicts"] if c["status"] == "open"}
    expand_resolves(ctx)
    if not server:
        check_change(ctx)
        fixed_placement(ctx)
        check_references(ctx)
        for guard in rtype.guards:
            guard(ctx)
    if creating:
        for name, stamp in rtype.on_create.items():
            if name not in ctx.values:
                ctx.values[name] = stamp(ctx)
    if rtype.keeps_bases:
        state.setdefault("bases", {})[change["change_id"]] = ctx.base
    for path in sorted(ctx.values):
        if path not in ctx.skip:
            _merge_field(ctx, path, ctx.values[path])
    _log_soft_conflicts(ctx)
    for hook in rtype.after_merge:
        hook(ctx)
    state["rev"] += 1
    state["changes"].append(change["change_id"])
    state["changes"].sort()
    raised = [c["id"] for c in state["conflicts"] if c["status"] == "open" and c["id"] not in open_before]
    return Outcome(state, "conflict" if raised else "applied", ctx.decisions, ctx.derived, raised)


def derived_id(change_id, purpose):
    """A deterministic id for a record or change the merge derives from a change."""
    return str(uuid.uuid5(DERIVED_NAMESPACE, f"{change_id}/{purpose}"))


def _client_refused(rtype, actor):
    """Fields a change may not carry: server and stamped fields, except from the server itself."""
    return frozenset() if actor.role == SYSTEM.role else rtype.server_fields | rtype.stamped_fields


def _validated(rtype, change, creating, now, refused):
    fields = change.get("fields")
    if not isinstance(fields, dict) or not fields:
        raise InvalidRecord("a change must set at least one field", details={"fields": ["empty"]})
    refused = sorted(refused & set(fields))
    if refused:
        raise Forbidden(
            f"{', '.join(refused)} {'is' if len(refused) == 1 else 'are'} set by the server "
            "from who you are and when it arrives: leave it out",
            details={name: ["set by the server"] for name in refused},
            code="forbidden_field",
        )
    loaded = load_fields(rtype.validator, fields, creating=creating)
    loaded.pop("id", None)
    if loaded.get("entered_in_error") and not loaded.get("entered_in_error_reason"):
        raise InvalidRecord(
            "marking a record entered in error needs entered_in_error_reason: say why",
            details={"entered_in_error_reason": ["required with entered_in_error"]},
            code="missing_field",
        )
    _check_clinical_times(rtype, loaded, now)
    return flatten(loaded, rtype.nested)


def _check_base_known(state, change):
    """A base may name only versions the record has merged: they become the write's parents.

    A device saw nothing else. A version the record does not have yet (another
    device's next change id, say) would make that later write an ancestor of
    this one and this one of it: a cycle that leaves the field no head, so every
    later change to the field failed to merge.
    """
    known = set(state["changes"]) if state is not None else set()
    unknown = sorted({v for seen in (change.get("base") or {}).values()
                      for v in (seen if isinstance(seen, list) else [seen]) if v is not None} - known)
    if unknown:
        raise InvalidRecord(
            f"base names versions this record never had ({', '.join(unknown[:3])}"
            f"{', ...' if len(unknown) > 3 else ''}): send the versions the device saw, from its last sync",
            details={"base": [f"unknown version {v}" for v in unknown[:10]]})


def _check_clinical_times(rtype, values, now):
    limit = now + CLINICAL_FUTURE_LIMIT
    for name in rtype.clinical_times & set(values):
        if values[name] is not None and dt.datetime.fromisoformat(values[name]) > limit:
            raise InvalidRecord(
                f"{name} {values[name]} is more than 24 hours in the future: check the device's date",
                details={name: ["more than 24 hours in the future"]},
            )


def _merge_field(ctx, path, value):
    new = {**ctx.write(value), "parents": _parents(ctx.base.get(path))}
    writes = field_writes(ctx.state, path)
    before = ctx.state["fields"].get(path)
    if len(new["parents"]) > 1:
        _record_resolution(ctx, path, new, writes)
    shown = settle(ctx, path, [*writes, new])
    if before is not None and before["version"] not in new["parents"]:
        ctx.decide(rule=ctx.rtype.spec(path).rule.name, field=path, action="concurrent",
                   shown=shown["version"], other=before["version"])


def _parents(seen):
    if seen is None:
        return []
    return sorted(seen) if isinstance(seen, list) else [seen]


def _record_resolution(ctx, path, new, writes):
    """A write made on top of every competing value resolves their conflict: keep a record of it."""
    if ctx.rtype.severity_of(path) in ("high", "medium") and ctx.actor.role not in CLINICAL_ROLES:
        raise Forbidden(
            f"the conflict on {path} is clinical: a doctor must resolve it",
            details={path: ["a doctor resolves clinical conflicts"]},
        )
    known = {w["version"]: w for w in writes}
    for conflict in ctx.state["conflicts"]:
        known.update((v["version"], v) for v in conflict["values"] if v["version"] not in known)
    resolved = [competitor(known[v]) for v in new["parents"] if v in known]
    cid = conflict_id(ctx.rtype.name, ctx.state["id"], path, new["parents"])
    earlier = next((c for c in ctx.state["conflicts"] if c["id"] == cid and c["status"] == "resolved"), None)
    if earlier is not None and write_key(earlier["resolved"]) > write_key(new):
        return  # two resolutions of one conflict: the record names the later, the field settles both
    ctx.state["conflicts"] = [c for c in ctx.state["conflicts"] if c["id"] != cid]
    ctx.state["conflicts"].append({
        "id": cid, "record_type": ctx.rtype.name, "record_id": ctx.state["id"], "field": path,
        "values": sorted(resolved, key=write_key), "severity": ctx.rtype.severity_of(path),
        "status": "resolved", "rule": ctx.rtype.spec(path).rule.name, "kind": "resolution",
        "resolution": new["value"], "resolved_by": ctx.actor.user_id, "resolved_version": new["version"],
        "resolved": competitor(new),
    })
    ctx.state["conflicts"].sort(key=lambda c: (c["field"], c["id"]))
    ctx.decide(rule="resolution", field=path, action="resolved", conflict=cid)


def _log_soft_conflicts(ctx):
    if ctx.creating or not ctx.base:
        return
    for path, write in sorted(ctx.state["fields"].items()):
        if path not in ctx.values and path in ctx.base and ctx.base[path] != write["version"]:
            ctx.decide(rule="soft_conflict", field=path, action="both_applied", other=write["version"])
