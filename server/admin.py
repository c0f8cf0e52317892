"""Admin acts that are not sync merges: correcting a personnummer, merging duplicate patients.

A personnummer is fixed at creation and no pushed change may alter it
(``immutable_field``); two patient records with the same personnummer raise a
duplicate-patient conflict for an admin. Both acts run here as the server on
the admin's behalf (``Actor(admin_id, SYSTEM.role)``), through the one server write
path (:mod:`server.writes`) as every change, so every value is kept in history, every
device gets the result through the feed, and each act is audited with its reason.
"""

from schema import records
from schema.errors import InvalidRecord
from schema.identity import normalize_personnummer
from schema.clock import utcnow
from schema.merge import SYSTEM
from schema.records.patient import resolve_duplicate

from . import audit, auth
from .errors import NotFound
from .writes import WriteApplier

__all__ = ["correct_personnummer", "merge_patients", "ADMIN_DEVICE"]

#: The device id written on changes made by server-side admin commands.
ADMIN_DEVICE = "server-admin"


def correct_personnummer(store, settings, patient_id, personnummer, reason, admin_id):
    """Correct a patient's personnummer as admin ``admin_id``; return the new patient state."""
    admin, reason = _admin(store, admin_id, reason, "correct a personnummer")
    new = normalize_personnummer(personnummer)
    with store.transaction():
        stored = _patient(store, patient_id)
        if stored.state["fields"]["personnummer"]["value"] != new:
            writes = _writes(store, settings, admin)
            writes.write("patient", patient_id, {"personnummer": new})
            writes.finish()
            store.audit([audit.admin("correct_personnummer", {"reason": reason}, patient_id=patient_id,
                                     user=admin)])
    return store.get_record("patient", patient_id).state


def merge_patients(store, settings, kept_id, duplicate_id, reason, admin_id):
    """Merge a duplicate patient record into the one kept; return ``{"moved": n, "conflict": id}``.

    Every record of the duplicate is moved to the kept patient (``patient_id``),
    the duplicate is marked entered in error ("merged into ..."), never deleted,
    and the duplicate-patient conflict is resolved on both records.
    """
    admin, reason = _admin(store, admin_id, reason, "merge duplicate patients")
    if kept_id == duplicate_id:
        # Merged into itself, the one record would be marked entered in error and lost from view.
        raise InvalidRecord("choose two different records: one to keep, one to merge into it",
                            details={"duplicate": [duplicate_id]})
    with store.transaction():
        kept, duplicate = _patient(store, kept_id), _patient(store, duplicate_id)
        conflict = next((c for c in store.duplicates(status="open")
                         if {kept_id, duplicate_id} <= set(c["patients"])), None)
        if conflict is None:
            raise InvalidRecord(f"patients {kept_id} and {duplicate_id} are not flagged as duplicates: "
                                "only records sharing a personnummer are merged",
                                details={"duplicate": [duplicate_id]})
        writes = _writes(store, settings, admin)
        moved = 0
        for name in records.names():
            if records.get(name).patient_field != "patient_id":
                continue
            for stored in store.records_of_patients(name, [duplicate_id]):
                writes.write(name, stored.id, {"patient_id": kept_id})
                moved += 1
        writes.write("patient", duplicate_id, {"entered_in_error": True,
                                               "entered_in_error_reason": f"merged into patient {kept_id}: {reason}"})
        writes.finish()
        store.save_duplicate({**conflict, "status": "resolved", "resolution": kept_id, "resolved_by": admin_id})
        for patient_id in conflict["patients"]:
            state = resolve_duplicate(store.get_record("patient", patient_id).state, conflict["id"], kept_id,
                                      admin_id)
            store.put_record(state, conflict["id"])
        store.audit([audit.admin("merge_patients", {"reason": reason, "kept": kept_id, "duplicate": duplicate_id,
                                                    "moved_records": moved}, patient_id=patient_id, user=admin)
                     for patient_id in (kept_id, duplicate_id)])
    return {"moved": moved, "conflict": conflict["id"]}


def _admin(store, admin_id, reason, act):
    admin = auth.acting_admin(store, admin_id, act)
    if not (reason or "").strip():
        raise InvalidRecord(f"say why you {act} (--reason)", details={"reason": ["required"]})
    return admin, reason.strip()


def _patient(store, patient_id):
    stored = store.get_record("patient", patient_id)
    if stored is None:
        raise NotFound(f"no patient {patient_id}", details={"patient_id": [patient_id]})
    return stored


def _writes(store, settings, admin):
    """The write path acting as the server on the admin's behalf: the writes name the admin."""
    return WriteApplier(store, settings, {"id": ADMIN_DEVICE}, {"id": admin["id"], "role": SYSTEM.role}, utcnow())
