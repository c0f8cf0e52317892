"""A record's merge state, and how one field settles from all its writes.

Every write keeps the versions it was made on top of (``parents``: the version
its device saw; all competing versions, for a write that resolves a conflict).
A field's *heads* are its writes that no other write was made on top of. What
the field shows, and whether a person must decide, is the field's rule applied
to the heads — a function of the set of writes, not of the order they came in,
which is why every arrival order gives the same state. Writes that are not
shown and not competing in a conflict are the field's history.

    state = {"type", "id", "rev",
             "fields":    {path: write},     # the write each field shows
             "conflicts": [conflict, ...],   # open and resolved, in a stable order
             "history":   [write + field],   # every other write
             "changes":   [change id, ...],  # merged changes (idempotency)
             "bases":     {change id: base}} # only for types with record-level rules

    write = {"value", "version", "hlc", "device_id", "by", "parents"}
"""

import uuid

from .errors import OpenConflict, UnknownConflict
from .rules import write_key

__all__ = [
    "CONFLICT_NAMESPACE",
    "CONCURRENT_EDIT",
    "new_state",
    "conflict_id",
    "open_conflict",
    "field_writes",
    "heads",
    "shown_head",
    "settle",
    "seen_write",
    "saw",
    "concurrent_changes",
    "add_conflict",
    "expand_resolves",
    "refuse_while_open",
    "competitor",
    "value_of",
]

CONFLICT_NAMESPACE = uuid.UUID("5a1f0c2e-7d3b-4e55-9a61-0c8f4b2d6e17")
#: The kind of conflict that settling a field makes and unmakes; other kinds
#: (a sealed visit's late edit, a duplicate patient) stay until resolved.
CONCURRENT_EDIT = "concurrent_edit"
WRITE_KEYS = ("value", "version", "hlc", "device_id", "by", "parents", "other_fields")


def value_of(state, path):
    """The value a field of a merge state shows, or None when it has none."""
    write = state["fields"].get(path)
    return write["value"] if write else None


def new_state(record_type, record_id):
    """The state of a record no change has touched yet."""
    return {"type": record_type, "id": record_id, "rev": 0, "fields": {}, "conflicts": [],
            "history": [], "changes": []}


def conflict_id(record_type, record_id, field, versions):
    """A conflict's id: derived from what conflicts, so retries and replicas agree on it."""
    key = f"{record_type}/{record_id}/{field}/{','.join(sorted(versions))}"
    return str(uuid.uuid5(CONFLICT_NAMESPACE, key))


def open_conflict(state, path):
    """The open conflict on a field, if any."""
    return next((c for c in state["conflicts"] if c["field"] == path and c["status"] == "open"), None)


def competitor(write):
    """The part of a write kept in fields, conflicts and history."""
    out = {k: write[k] for k in WRITE_KEYS if k in write}
    out.setdefault("parents", [])
    return out


def field_writes(state, path):
    """Every write a field has had: shown, competing or in history (each once)."""
    found = {}
    shown = state["fields"].get(path)
    if shown is not None:
        found[shown["version"]] = shown
    for conflict in state["conflicts"]:
        if conflict["field"] == path and conflict.get("kind") == CONCURRENT_EDIT:
            for write in conflict["values"]:
                if not write.get("other_fields"):
                    found.setdefault(write["version"], write)
    for entry in state["history"]:
        if entry["field"] == path:
            found.setdefault(entry["version"], entry)
    return list(found.values())


def heads(writes):
    """The writes no other write was made on top of, in last-writer-wins order."""
    superseded = {p for w in writes for p in w.get("parents", ())}
    return sorted((w for w in writes if w["version"] not in superseded), key=write_key)


def shown_head(rule, tops):
    """The head a field shows: the rule's pick among its heads (in last-writer-wins order)."""
    shown = tops[-1]
    for write in tops[:-1]:
        shown = rule.decide(shown, write).winner
    return shown


def settle(ctx, path, writes, extra=(), rule_name=None):
    """Show, conflict and archive a field's writes by its rule; ``extra`` joins the conflict.

    ``extra`` are competitors a record-level rule adds (a change to another
    field made without seeing a discontinuation): when there are any, the field
    is in conflict whatever its own heads say.
    """
    state, rule = ctx.state, ctx.rtype.spec(path).rule
    if len(writes) == 1 and not extra:  # a field's first write: nothing to settle (most of a push)
        state["fields"][path] = competitor(writes[0])
        return writes[0]
    tops = heads(writes)
    shown = shown_head(rule, tops)
    clash = bool(extra) or any(rule.decide(shown, w).conflict for w in tops if w is not shown)
    competing = {w["version"] for w in tops} if clash else set()
    state["fields"][path] = competitor(shown)
    state["history"] = [h for h in state["history"] if h["field"] != path] + [
        {"field": path, **competitor(w)} for w in writes
        if w["version"] != shown["version"] and w["version"] not in competing
    ]
    state["history"].sort(key=lambda h: (h["field"], write_key(h)))
    state["conflicts"] = [c for c in state["conflicts"] if not (
        c["field"] == path and c["status"] == "open" and c.get("kind") == CONCURRENT_EDIT)]
    if clash:
        values = [competitor(w) for w in tops] + [competitor(e) for e in extra]
        add_conflict(ctx, path, values, rule_name or rule.name, CONCURRENT_EDIT)
    return shown


def add_conflict(ctx, path, values, rule, kind, severity=None, key=None):
    """Record an open conflict on ``path`` (once: its id derives from what conflicts)."""
    unique = {}
    for value in values:
        unique.setdefault(value["version"], value)
    values = sorted(unique.values(), key=write_key)
    cid = conflict_id(ctx.rtype.name, ctx.state["id"], path, key or [v["version"] for v in values])
    if not any(c["id"] == cid for c in ctx.state["conflicts"]):
        ctx.state["conflicts"].append({
            "id": cid,
            "record_type": ctx.rtype.name,
            "record_id": ctx.state["id"],
            "field": path,
            "values": values,
            "severity": severity or ctx.rtype.severity_of(path),
            "status": "open",
            "rule": rule,
            "kind": kind,
            "resolution": None,
            "resolved_by": None,
        })
        ctx.state["conflicts"].sort(key=lambda c: (c["field"], c["id"]))
        ctx.conflicts.append(cid)
    return cid


def seen_write(state, path, version):
    """The write of ``path`` with this version, wherever the state keeps it now."""
    return next((w for w in field_writes(state, path) if w["version"] == version), None)


def saw(state, base, path, version):
    """True when a change with this ``base`` had seen the write ``version`` of ``path``.

    It had if the version it saw for ``path`` is that write or was made on top
    of it, directly or through other writes.
    """
    seen = base.get(path)
    frontier = list(seen) if isinstance(seen, list) else [seen] if seen else []
    parents = {w["version"]: w.get("parents", ()) for w in field_writes(state, path)}
    visited = set()
    while frontier:
        current = frontier.pop()
        if current == version:
            return True
        if current not in visited:
            visited.add(current)
            frontier.extend(parents.get(current, ()))
    return False


def concurrent_changes(ctx, field, pivot):
    """Changes to fields other than ``field`` concurrent with its write ``pivot``, one entry each.

    Concurrent means neither had seen the other (needs the record type to keep
    bases). Each entry is a competitor whose value is what that change set,
    ``{field: value}``, so a record-level conflict shows what would be lost.
    """
    state, bases = ctx.state, ctx.state.get("bases", {})
    pivot_base = bases.get(pivot["version"], {})
    # a change that wrote ``field`` itself competes through the field's own writes
    own = {w["version"] for w in field_writes(state, field)}
    entries = {}
    for path in sorted(state["fields"]):
        if path == field:
            continue
        for write in field_writes(state, path):
            version = write["version"]
            if version in own or saw(state, bases.get(version, {}), field, pivot["version"]) \
                    or saw(state, pivot_base, path, version):
                continue
            entry = entries.setdefault(version, {**competitor(write), "value": {}, "parents": [],
                                                 "other_fields": True})
            entry["value"][path] = write["value"]
    return list(entries.values())


def expand_resolves(ctx):
    """A change naming a conflict is made on top of every competing value the device saw in it.

    The laptop names the conflict and lists its competing versions in ``base``.
    When the record still holds that conflict, the merge takes its versions from
    there; when a concurrent edit has widened it meanwhile (its id changed), the
    versions the device listed stand, and the new edit stays in conflict with
    the resolution — two concurrent edits, nothing refused, nothing lost. A name
    that matches neither is refused.
    """
    for cid in ctx.change.get("resolves") or ():
        conflict = next((c for c in ctx.state["conflicts"] if c["id"] == cid), None)
        if conflict is not None and conflict["field"] in ctx.values:
            # A conflict someone else resolved meanwhile is still expanded: two
            # concurrent resolutions are two concurrent edits of the field.
            if conflict["kind"] in (CONCURRENT_EDIT, "resolution"):
                ctx.base[conflict["field"]] = sorted(v["version"] for v in conflict["values"])
            continue
        listed = [path for path, seen in ctx.base.items() if path in ctx.values and isinstance(seen, list)
                  and conflict_id(ctx.rtype.name, ctx.state["id"], path, seen) == cid]
        if not listed:
            raise UnknownConflict(
                f"conflict {cid} is not a conflict on a field this change sets: list its competing "
                "versions in base (hemsync resolve does), or sync and resolve it again",
                details={"resolves": [cid]},
            )


def refuse_while_open(ctx, what):
    """Reject an act (signing) that may not happen while the record has an open conflict."""
    if any(c["status"] == "open" for c in ctx.state["conflicts"]):
        raise OpenConflict(f"{what} is refused while the record has an open conflict: resolve it first")
