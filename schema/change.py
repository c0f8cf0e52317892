"""Where a change is built: every writer (the laptop, the server's own acts, the tests) makes it here.

A change names its record, the fields it sets and, in ``base``, the version of
every field of the state it was made on, so the merge knows what the writer had
seen. A resolution of conflicts lists in its base every competing version it
resolves. The function is pure: the caller supplies the ids and the clock.
"""

__all__ = ["make_change", "versions_of"]


def versions_of(state):
    """The base a change made on ``state`` carries: each field's version (empty for a new record)."""
    return {path: write["version"] for path, write in state["fields"].items()} if state else {}


def make_change(record_type, record_id, fields, *, state, change_id, hlc, op=None, device_id=None,
                resolves=None, base=None):
    """A change setting ``fields`` on top of ``state`` (None for a new record).

    ``base`` overrides the base taken from ``state`` (a test laptop sending a
    change built on an older view); ``resolves`` lists conflict ids the change
    resolves, and their competing versions join the base. ``device_id`` is left
    out when None: the server stamps it from the authenticated device.
    """
    if base is None:
        base = versions_of(state)
    # Copied, so a resolution's versions never leak into the caller's dict; any other
    # shape is sent as it is (the tests send poisoned ones, the merge refuses them).
    change = {"change_id": change_id, "record_type": record_type, "record_id": record_id, "op": op,
              "hlc": hlc, "base": dict(base) if isinstance(base, dict) else base, "fields": dict(fields)}
    if device_id is not None:
        change["device_id"] = device_id
    if resolves:
        change["resolves"] = list(resolves)
        for conflict in state["conflicts"] if state else ():
            if conflict["id"] in resolves:
                change["base"][conflict["field"]] = sorted(v["version"] for v in conflict["values"])
    return change
