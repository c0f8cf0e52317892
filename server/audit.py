"""The audit log's entries: what patientdatalagen requires the server to remember.

Append only (the store refuses updates and deletes). Kinds:

- ``pull``: a page handed out records of a patient (one entry per patient per page); also
  an office read that showed a patient's data (the queue, suggestions, the escalation
  feed, a fetch), with the endpoint or command in ``details``;
- ``change``: a change was accepted (with its original and merged HLC);
- ``decision``: a merge rule chose something (which rule, what it chose);
- ``rejected``: a change was rejected (it is also in the quarantine);
- ``access``: a laptop opened a patient's records, logged offline and pushed later;
- ``access_refused``: an access entry a laptop pushed that the server refused (not
  UUID-shaped, a time in the future, an unknown record type, or a patient the device
  neither has in scope nor holds); kept, with the patient it named in ``details``
  only, so a laptop cannot write accesses into another patient's log;
- ``admin``: an admin's act (a user added, a device enrolled or revoked, a
  personnummer corrected, patients merged), with the admin as ``user_id``;
- ``admin_read``: an admin read the quarantine (clinical text) or the audit log;
  one entry per patient shown (or one without a patient when none was);
- ``auth_failed``: a call with a missing, unknown or revoked token (never the token:
  the first 12 hex digits of its SHA-256 at most), and the client address;
- ``escalation``: the escalation job marked a request (or flagged it for the on-call service).
"""

import datetime as dt

from schema import records
from schema.validation import CLINICAL_FUTURE_LIMIT, is_uuid

__all__ = ["patients_of", "pulled", "shown", "accepted", "decisions", "rejected", "accesses", "access_problem", "access_refused",
           "admin", "office_read", "quarantine_read", "audit_log_read", "duplicates_read", "auth_failed", "escalated"]


def patients_of(stored):
    """The patients whose data a stored record shows: its patient, or a round's residents.

    A record's patient is its ``patient_id`` column (:meth:`RecordType.index_values`), so only
    a record without one (a round) is decoded: a pull page logs 500 records (make bench).
    """
    if stored.patient_id is not None:
        return {stored.patient_id}
    return set(records.get(stored.type).patients_shown(stored.state))


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


def office_read(user, device, entries, via):
    """The ``pull`` entries of an office read (the queue, the escalation feed, suggestions), API and CLI alike.

    Each entry shown names a visit request and its patient, and both are logged
    as shown, like a pull; ``via`` is the endpoint or the command.
    """
    return shown(user, device, [(e["patient_id"], key) for e in entries
                                for key in (f"visit_request/{e['request_id']}", f"patient/{e['patient_id']}")], via)


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


def access_refused(user, device, entry, reason):
    """The ``access_refused`` entry of an access a laptop logged that the server does not take as true.

    The patient it names goes to ``details`` only: the patient's own log never
    shows an access the server could not check.
    """
    return {"kind": "access_refused", **_who(user, device), "patient_id": None,
            "key": f"access/{device['id']}/{entry.get('id')}",
            "details": {"reason": reason, "entry": {k: entry.get(k) for k in _ACCESS_FIELDS}}}


_ACCESS_FIELDS = ("id", "patient_id", "record_type", "record_id", "opened_at")


def admin(action, details, patient_id=None, user=None, device_id=None):
    """An ``admin`` entry: the act, and the admin who did it as its ``user_id``."""
    return {"kind": "admin", "user_id": user["id"] if user else None, "device_id": device_id,
            "patient_id": patient_id, "details": {"action": action, **details}}


def quarantine_read(user, device, entries, via):
    """The ``admin_read`` entries of an admin reading quarantined changes (which hold clinical text).

    ``entries`` are the quarantine entries shown (with their ``patient_id``);
    ``via`` is the endpoint or command.
    """
    shown_ids = {}
    for entry in entries:
        shown_ids.setdefault(entry.get("patient_id"), []).append(entry["id"])
    return _admin_read(user, device, "quarantine", via, shown_ids, {})


def audit_log_read(user, device, entries, via, patient_filter=None):
    """The ``admin_read`` entries of an admin reading the audit log (optionally one patient's)."""
    shown_ids = {}
    for entry in entries:
        shown_ids.setdefault(entry.get("patient_id"), []).append(entry["id"])
    return _admin_read(user, device, "audit", via, shown_ids, {"patient_id": patient_filter})


def duplicates_read(user, device, conflicts, via):
    """The ``admin_read`` entries of an admin reading the duplicate patients (one per patient shown)."""
    shown_ids = {}
    for conflict in conflicts:
        for patient_id in conflict["patients"]:
            shown_ids.setdefault(patient_id, []).append(conflict["id"])
    return _admin_read(user, device, "duplicates", via, shown_ids, {})


def _admin_read(user, device, what, via, shown_ids, query):
    # The read itself is logged even when it showed nothing; entries of no patient go together.
    groups = shown_ids or {None: []}
    return [{"kind": "admin_read", **_who(user, device), "patient_id": patient_id,
             "details": {"read": what, "via": via, "query": query, "entries": sorted(groups[patient_id])}}
            for patient_id in sorted(groups, key=lambda p: (p is not None, p or ""))]


def auth_failed(reason, address, endpoint, token_hash=None, device=None, locked_out=False):
    """The ``auth_failed`` entry of a call refused for its token (``reason``: missing, unknown, revoked).

    ``locked_out`` says this failure made the address wait (429) from now on.
    """
    return {"kind": "auth_failed", "user_id": device["user_id"] if device else None,
            "device_id": device["id"] if device else None, "patient_id": None,
            "details": {"reason": reason, "address": address, "endpoint": endpoint, "locked_out": locked_out,
                        "token_sha256_prefix": token_hash[:12] if token_hash else None}}


def access_problem(entry, now):
    """Why a laptop's access entry cannot be taken as true (its shape and time), or None.

    ``now`` is the server's time; an opening logged more than a day ahead of it
    (the bound on clinical times) did not happen.
    """
    for name in ("id", "patient_id"):
        if not is_uuid(entry.get(name)):
            return f"{name} is not a UUID"
    if entry.get("record_id") is not None and not is_uuid(entry["record_id"]):
        return "record_id is not a UUID"
    if entry.get("record_type") is not None and entry["record_type"] not in records.names():
        return f"record_type {entry['record_type']!r} is not a record type"
    try:
        opened = dt.datetime.fromisoformat(entry.get("opened_at") or "")
    except (TypeError, ValueError):
        return "opened_at is not an ISO 8601 time"
    if opened.tzinfo is None:
        return "opened_at has no UTC offset"
    if opened > now + CLINICAL_FUTURE_LIMIT:
        return "opened_at is more than a day in the future"
    return None


def escalated(entry):
    """The ``escalation`` entry of an escalation feed entry (made by the server, no user or device)."""
    return {"kind": "escalation", "user_id": None, "device_id": None, "patient_id": entry["patient_id"],
            "record_type": "visit_request", "record_id": entry["request_id"],
            "key": f"escalation/{entry['kind']}/{entry['request_id']}",
            "details": {"kind": entry["kind"], "at": entry["at"], "why": entry["details"].get("why")}}
