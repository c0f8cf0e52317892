"""Apply one change to one record's state: the three-way merge.

The merge is a pure function of (state, change, actor, now): no I/O, no wall
clock. The server runs it to sequence pushed changes; the laptop runs the same
function to show its own pending changes on top of the server's state.

A record state is a plain dict::

    {"type", "id", "rev",                   # rev counts the changes merged
     "fields":    {path: write},            # write = value, version, hlc, device_id, by
     "conflicts": [conflict, ...],          # open and resolved, in a stable order
     "history":   [write + field + why],    # every value no longer shown
     "changes":   [change id, ...]}         # merged change ids (idempotency)

A change carries ``change_id``, ``record_type``, ``record_id``, ``device_id``,
``op``, ``hlc``, ``fields``, ``base`` (for every field of the record the device
had, the version it saw) and optionally ``resolves`` (conflict ids).

Per field: a write whose base is the field's current version fast-forwards; a
write on top of one side of an open conflict replaces that side; any other
write is concurrent and the field's rule decides (see :mod:`schema.rules`).
Changes to *different* fields never collide: the merge only logs them as a
soft conflict. A change is either merged whole or rejected whole.
"""

import copy
import dataclasses
import datetime as dt
import uuid

from . import records
from .dispatch import DispatchSettings
from .errors import Forbidden, InvalidRecord
from .recordtype import flatten, unflatten
from .roles import check_change
from .rules import write_key
from .state import add_history, check_resolves, competitor, new_state, open_conflict, raise_conflict
from .validation import CLINICAL_FUTURE_LIMIT, load_fields

__all__ = [
    "Actor",
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
    """What the record type's hooks see while one change merges."""

    rtype: object
    state: dict
    change: dict
    actor: Actor
    values: dict
    creating: bool
    now: object
    options: dict
    decisions: list = dataclasses.field(default_factory=list)
    derived: list = dataclasses.field(default_factory=list)
    conflicts: list = dataclasses.field(default_factory=list)
    skip: set = dataclasses.field(default_factory=set)

    @property
    def base(self):
        """The versions the change's device had seen, by field."""
        return self.change.get("base") or {}

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
    time on a laptop. ``options`` may carry ``dispatch`` (DispatchSettings).

    Returns an :class:`Outcome`; raises a :class:`schema.errors.HemsyncError`
    when the change must be rejected, leaving ``state`` untouched.
    """
    rtype = records.get(change["record_type"])
    if state is not None and change["change_id"] in state["changes"]:
        return Outcome(state, "duplicate", [], [], [])
    state = copy.deepcopy(state) if state is not None else new_state(rtype.name, change["record_id"])
    creating = not state["fields"]
    values = _validated(rtype, change, creating, now)
    options = {"dispatch": DispatchSettings(), **(options or {})}
    ctx = MergeContext(rtype, state, change, actor, values, creating, now, options)
    check_change(ctx)
    check_resolves(ctx)
    for guard in rtype.guards:
        guard(ctx)
    if creating:
        for name, stamp in rtype.on_create.items():
            if name not in ctx.values:
                ctx.values[name] = stamp(ctx)
    for path in sorted(ctx.values):
        if path not in ctx.skip:
            _merge_field(ctx, path, ctx.values[path])
    _log_soft_conflicts(ctx)
    for hook in rtype.after_merge:
        hook(ctx)
    state["rev"] += 1
    state["changes"].append(change["change_id"])
    state["changes"].sort()
    state["history"].sort(key=lambda h: (h["field"], write_key(h)))
    result = "conflict" if ctx.conflicts else "applied"
    return Outcome(state, result, ctx.decisions, ctx.derived, ctx.conflicts)


def derived_id(change_id, purpose):
    """A deterministic id for a record or change the merge derives from a change."""
    return str(uuid.uuid5(DERIVED_NAMESPACE, f"{change_id}/{purpose}"))


def _validated(rtype, change, creating, now):
    fields = change.get("fields")
    if not isinstance(fields, dict) or not fields:
        raise InvalidRecord("a change must set at least one field", details={"fields": ["empty"]})
    refused = sorted((rtype.server_fields | rtype.stamped_fields) & set(fields))
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


def _check_clinical_times(rtype, values, now):
    limit = now + CLINICAL_FUTURE_LIMIT
    for name in rtype.clinical_times & set(values):
        if values[name] is not None and dt.datetime.fromisoformat(values[name]) > limit:
            raise InvalidRecord(
                f"{name} {values[name]} is more than 24 hours in the future: check the device's date",
                details={name: ["more than 24 hours in the future"]},
            )


def _merge_field(ctx, path, value):
    state, new = ctx.state, ctx.write(value)
    spec = ctx.rtype.spec(path)
    current = state["fields"].get(path)
    parent = ctx.base.get(path)
    conflict = open_conflict(state, path)
    resolves = set(ctx.change.get("resolves") or ())
    if current is None:
        state["fields"][path] = new
        return
    if conflict is not None and conflict["id"] in resolves:
        _resolve(ctx, path, conflict, new)
        return
    competitors = {w["version"]: w for w in conflict["values"]} if conflict else {}
    if parent in competitors:
        add_history(state, path, competitors[parent], "superseded")
        conflict["values"] = [w for w in conflict["values"] if w["version"] != parent]
        raise_conflict(ctx, path, [new], conflict["rule"])
        _show(state, path, spec.rule, conflict)
        ctx.decide(rule=conflict["rule"], field=path, action="replaced_competitor", conflict=conflict["id"])
    elif parent == current["version"]:
        add_history(state, path, current, "superseded")
        state["fields"][path] = new
    elif conflict is not None:
        raise_conflict(ctx, path, [new], conflict["rule"])
        _show(state, path, spec.rule, conflict)
        ctx.decide(rule=conflict["rule"], field=path, action="joined_conflict", conflict=conflict["id"])
    else:
        verdict = spec.rule.decide(current, new)
        state["fields"][path] = verdict.winner
        if verdict.conflict:
            raised = raise_conflict(ctx, path, [current, new], verdict.rule)
            ctx.decide(rule=verdict.rule, field=path, action="conflict", conflict=raised["id"],
                       shown=verdict.winner["version"])
        else:
            add_history(state, path, verdict.loser, verdict.rule)
            ctx.decide(rule=verdict.rule, field=path, action="chose",
                       winner=verdict.winner["version"], loser=verdict.loser["version"])


def _show(state, path, rule, conflict):
    """While a conflict is open the field shows its rule's pick among the competitors."""
    shown = conflict["values"][0]
    for write in conflict["values"][1:]:
        shown = rule.decide(shown, write).winner
    state["fields"][path] = competitor(shown)


def _resolve(ctx, path, conflict, new):
    if conflict["severity"] in ("high", "medium") and ctx.actor.role not in CLINICAL_ROLES:
        raise Forbidden(
            f"conflict {conflict['id']} on {path} is clinical: a doctor must resolve it",
            details={"resolves": [conflict["id"]]},
        )
    for write in conflict["values"]:
        add_history(ctx.state, path, write, "resolved")
    current = ctx.state["fields"][path]
    if not any(w["version"] == current["version"] for w in conflict["values"]):
        add_history(ctx.state, path, current, "resolved")
    ctx.state["fields"][path] = new
    conflict.update(status="resolved", resolution=new["value"], resolved_by=ctx.actor.user_id,
                    resolved_version=new["version"])
    ctx.decide(rule="resolution", field=path, action="resolved", conflict=conflict["id"])


def _log_soft_conflicts(ctx):
    if ctx.creating or not ctx.base:
        return
    for path, write in sorted(ctx.state["fields"].items()):
        if path not in ctx.values and ctx.base.get(path, write["version"]) != write["version"]:
            ctx.decide(rule="soft_conflict", field=path, action="both_applied", other=write["version"])
