"""The record state on the wire: a compact, lossless encoding shared by both sides.

A merge state keeps one write (value, version, hlc, device, by) per field; most
fields of a record were written by the same change, so the wire groups the
write metadata by change::

    {"type": "visit", "id": "...", "rev": 3,
     "fields": {"assessment": "...", "kind": "home_visit", ...},
     "writes": [["<change id>", "<hlc>", "<device>", "<user>", ["assessment", ...]], ...],
     "parents": {"assessment": ["<version it was written on top of>"]},
     "conflicts": [...], "history": [...]}

The integrity check (``hemsync verify``) compares digests of the canonical JSON
of these wire records, computed the same way on both sides (:func:`record_digest`,
:func:`scope_digest`).

``changes`` (the ids merged) is not shipped: every merged change left a write
in the fields, a conflict or the history, so :func:`decode_state` recomputes it.
"""

import hashlib
import json

__all__ = ["encode_state", "decode_state", "writers", "merged_changes", "canonical_json", "record_digest", "scope_digest"]


def encode_state(state):
    """The wire form of a merge state."""
    groups = {}
    for path, write in sorted(state["fields"].items()):
        key = (write["version"], write["hlc"], write["device_id"], write["by"])
        groups.setdefault(key, []).append(path)
    out = {
        "type": state["type"],
        "id": state["id"],
        "rev": state["rev"],
        "fields": {path: write["value"] for path, write in state["fields"].items()},
        "writes": [[*key, paths] for key, paths in groups.items()],
    }
    parents = {path: w["parents"] for path, w in state["fields"].items() if w.get("parents")}
    if parents:
        out["parents"] = parents
    if state.get("bases"):
        out["bases"] = state["bases"]
    if state["conflicts"]:
        out["conflicts"] = state["conflicts"]
    if state["history"]:
        out["history"] = state["history"]
    return out


def decode_state(wire, changes=True):
    """The merge state of a wire record; raises KeyError/ValueError on a malformed one.

    ``changes=False`` leaves out the ids of the merged changes (``changes``): a
    reader that never merges into the state (the follow-up) spares their work.
    """
    values = wire["fields"]
    parents = wire.get("parents", {})
    fields = {path: {"value": values[path], "version": version, "hlc": hlc, "device_id": device_id, "by": by,
                     "parents": parents.get(path, [])}
              for path, (version, hlc, device_id, by, _) in writers(wire).items()}
    state = {
        "type": wire["type"],
        "id": wire["id"],
        "rev": wire["rev"],
        "fields": fields,
        "conflicts": wire.get("conflicts", []),
        "history": wire.get("history", []),
    }
    if "bases" in wire:
        state["bases"] = wire["bases"]
    if changes:
        state["changes"] = merged_changes(state)
    return state


def writers(wire):
    """``{path: [version, hlc, device, user, paths]}``: the write group each field of a wire record keeps.

    A field named by two groups keeps the later one, as :func:`decode_state` does. Raises
    KeyError/ValueError when the record's fields and writes do not match (a malformed
    record): the laptop checks a pulled page by this without building merge states.
    """
    values = wire["fields"]
    found = {}
    for group in wire["writes"]:
        _, _, _, _, paths = group
        for path in paths:
            found[path] = group
    if found.keys() != values.keys():
        missing = sorted(set(values) - set(found))
        unknown = sorted(set(found) - set(values), key=str)
        raise ValueError(f"record {wire['id']}: fields without a write: {missing}, writes without a field: {unknown}")
    return found


def merged_changes(state):
    """The ids of every change merged into a state, from the writes it left."""
    versions = {w["version"] for w in state["fields"].values()}
    versions.update(h["version"] for h in state["history"])
    # a duplicate-patient conflict names the other patient's creation too: not a change of this record
    versions.update(w["version"] for c in state["conflicts"] if c.get("kind") != "duplicate_patient"
                    for w in c["values"])
    versions.update(c["resolved_version"] for c in state["conflicts"] if c.get("resolved_version"))
    versions.update(state.get("bases", ()))
    return sorted(versions)


def canonical_json(value):
    """The one canonical JSON text of a value: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def record_digest(wire):
    """SHA-256 (hex) of a record's canonical JSON, exactly as pull shipped it."""
    return hashlib.sha256(canonical_json(wire).encode("utf-8")).hexdigest()


def scope_digest(digests):
    """SHA-256 (hex) over ``"type/id digest\\n"`` lines sorted by ``type/id``."""
    text = "".join(f"{key} {digests[key]}\n" for key in sorted(digests))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
