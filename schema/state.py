"""A record's merge state and the bookkeeping on it: conflicts and history.

Shared by the merge and by the record types' own rules, which raise conflicts
and consult what a device had seen. See :mod:`schema.merge` for the shape.
"""

import uuid

from .errors import OpenConflict, UnknownConflict
from .rules import write_key

__all__ = [
    "CONFLICT_NAMESPACE",
    "new_state",
    "conflict_id",
    "open_conflict",
    "seen_write",
    "raise_conflict",
    "check_resolves",
    "refuse_while_open",
    "add_history",
    "competitor",
]

CONFLICT_NAMESPACE = uuid.UUID("5a1f0c2e-7d3b-4e55-9a61-0c8f4b2d6e17")


def new_state(record_type, record_id):
    """The state of a record no change has touched yet."""
    return {"type": record_type, "id": record_id, "rev": 0, "fields": {}, "conflicts": [],
            "history": [], "changes": []}


def conflict_id(record_type, record_id, field, generation):
    """A conflict's id: the same on every server and every retry of the same history."""
    return str(uuid.uuid5(CONFLICT_NAMESPACE, f"{record_type}/{record_id}/{field}/{generation}"))


def open_conflict(state, path):
    """The open conflict on a field, if any (there is at most one at a time)."""
    return next((c for c in state["conflicts"] if c["field"] == path and c["status"] == "open"), None)


def seen_write(state, path, version):
    """The write of ``path`` with this version, wherever the state keeps it now."""
    current = state["fields"].get(path)
    if current is not None and current["version"] == version:
        return current
    for conflict in state["conflicts"]:
        if conflict["field"] == path:
            for write in conflict["values"]:
                if write["version"] == version:
                    return write
    return next((h for h in state["history"] if h["field"] == path and h["version"] == version), None)


def raise_conflict(ctx, path, writes, rule, severity=None):
    """Open a conflict on ``path`` holding ``writes``, or add them to the open one."""
    conflict = open_conflict(ctx.state, path)
    if conflict is None:
        generation = sum(1 for c in ctx.state["conflicts"] if c["field"] == path)
        conflict = {
            "id": conflict_id(ctx.rtype.name, ctx.state["id"], path, generation),
            "record_type": ctx.rtype.name,
            "record_id": ctx.state["id"],
            "field": path,
            "values": [],
            "severity": severity or ctx.rtype.severity_of(path),
            "status": "open",
            "rule": rule,
            "generation": generation,
            "resolution": None,
            "resolved_by": None,
        }
        ctx.state["conflicts"].append(conflict)
        ctx.state["conflicts"].sort(key=lambda c: (c["field"], c["generation"]))
    known = {w["version"] for w in conflict["values"]}
    conflict["values"].extend(competitor(w) for w in writes if w["version"] not in known)
    conflict["values"].sort(key=write_key)
    if conflict["id"] not in ctx.conflicts:
        ctx.conflicts.append(conflict["id"])
    return conflict


def check_resolves(ctx):
    """Every conflict a change names must exist on a field the change sets."""
    for cid in ctx.change.get("resolves") or ():
        conflict = next((c for c in ctx.state["conflicts"] if c["id"] == cid), None)
        if conflict is None or conflict["field"] not in ctx.values:
            raise UnknownConflict(
                f"conflict {cid} is not a conflict on a field this change sets: "
                "set the conflicting field and name its conflict",
                details={"resolves": [cid]},
            )


def refuse_while_open(ctx, what):
    """Reject an act (signing) that may not happen while the record has an open conflict."""
    if any(c["status"] == "open" for c in ctx.state["conflicts"]):
        raise OpenConflict(f"{what} is refused while the record has an open conflict: resolve it first")


def add_history(state, path, write, why):
    """Keep a write no longer shown in the record's history (once)."""
    entry = {"field": path, **competitor(write), "why": why}
    if not any(h["field"] == path and h["version"] == entry["version"] for h in state["history"]):
        state["history"].append(entry)


def competitor(write):
    """The part of a write kept in conflicts and history."""
    return {k: write[k] for k in ("value", "version", "hlc", "device_id", "by")}
