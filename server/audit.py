"""The audit log's entries: what patientdatalagen requires the server to remember.

Append only (the store refuses updates and deletes). Kinds:

- ``pull``: a page handed out records of a patient (one entry per patient per page); also
  an office read that showed a patient's data (the queue, suggestions, the escalation
  feed, a fetch), with the endpoint or command in ``details``;
- ``change``: a change was accepted (with its original and merged HLC);
- ``decision``: a merge rule chose something (which rule, what it chose);
- ``rejected``: a change was rejected (it is also in the quarantine);
- ``access``: a laptop opened a patient's records, logged offline and pushed later;
- ``admin``: enrolment, revocation, a personnummer correction;
- ``escalation``: the escalation job marked a request (or flagged it for the on-call service).
"""

from schema import records

__all__ = ["patients_of", "pulled", "shown", "accepted", "decisions", "rejected", "accesses", "admin",
           "escalated"]


def patients_of(stored):
    """The patients whose data a stored record shows: its patient, or a round's residents."""
    if stored.patient_id:
        return {stored.patient_id}
    nested = records.get(stored.type).nested
    if not nested:
        return set()
    return {path.split(".")[1] for path in stored.state["fields"] if path.split(".")[0] in nested}


def _who(user, device):
    return {"user_id": user["id"] if user else None, "device_id": device["id"] if device else None}


def pulled(user, device, handed_out, cursor):
    """One ``pull`` entry per patient whose records this page handed out."""
    by_patient = {}
    for stored in handed_out:
        for patient_id in patients_of(stored):
            by_patient.setdefault(patient_id, []).append(f"{stored.type}/{stored.id}")
    return [{"kind": "pull", **_who(user, device), "patient_id": patient_id,
             "details": {"records": sorted(handed), "cursor": cursor}}
            for patient_id, handed in sorted(by_patient.items())]


def shown(user, device, pairs, endpoint):
    """One ``pull`` entry per patient whose data a read showed; ``pairs`` are ``(patient_id, "type/id")``."""
    by_patient = {}
    for patient_id, key in pairs:
        if patient_id:
            by_patient.setdefault(patient_id, set()).add(key)
    return [{"kind": "pull", **_who(user, device), "patient_id": patient_id,
             "details": {"records": sorted(keys), "endpoint": endpoint}}
            for patient_id, keys in sorted(by_patient.items())]


def accepted(user, device, change, stamp, patient_id, result):
    """The ``change`` entry of an accepted change, keeping its original HLC."""
    return {"kind": "change", **_who(user, device), "patient_id": patient_id,
            "record_type": change["record_type"], "record_id": change["record_id"],
            "change_id": change["change_id"],
            "details": {"result": result, "op": change.get("op"), "fields": sorted(change["fields"]),
                        "original_hlc": stamp.original_hlc, "hlc": stamp.hlc, "restamped": stamp.restamped,
                        "ahead_ms": stamp.ahead_ms, "derived_from": change.get("derived_from")}}


def decisions(user, device, change, made, patient_id):
    """One ``decision`` entry per merge decision (which rule chose what)."""
    return [{"kind": "decision", **_who(user, device), "patient_id": patient_id,
             "record_type": change["record_type"], "record_id": change["record_id"],
             "change_id": change["change_id"], "details": decision} for decision in made]


def rejected(user, device, change, error, patient_id):
    """The ``rejected`` entry of a change the server refused."""
    return {"kind": "rejected", **_who(user, device), "patient_id": patient_id,
            "record_type": change.get("record_type"), "record_id": change.get("record_id"),
            "change_id": change.get("change_id"), "details": {"error": error}}


def accesses(user, device, entries):
    """``access`` entries for openings logged on a laptop; keyed by their id so a retry adds nothing."""
    return [{"kind": "access", **_who(user, device), "patient_id": e["patient_id"],
             "record_type": e.get("record_type"), "record_id": e.get("record_id"),
             "key": f"access/{device['id']}/{e['id']}",
             "details": {"opened_at": e["opened_at"], "entry_id": e["id"]}} for e in entries]


def admin(action, details, patient_id=None, user=None):
    """An ``admin`` entry: an enrolment, a revocation, a correction."""
    return {"kind": "admin", "user_id": user["id"] if user else None, "patient_id": patient_id,
            "details": {"action": action, **details}}


def escalated(entry):
    """The ``escalation`` entry of an escalation feed entry (made by the server, no user or device)."""
    return {"kind": "escalation", "user_id": None, "device_id": None, "patient_id": entry["patient_id"],
            "record_type": "visit_request", "record_id": entry["request_id"],
            "key": f"escalation/{entry['kind']}/{entry['request_id']}",
            "details": {"kind": entry["kind"], "at": entry["at"], "why": entry["details"].get("why")}}
