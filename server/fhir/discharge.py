"""Importing a hospital's discharge notice: the stay is created or updated through the one write path.

The notice (a transaction Bundle: server.fhir.hospital_stay) names its patient by
personnummer or samordningsnummer. The patient must be one hemsync knows, in the
importing client's municipalities, and only one: otherwise the notice is refused
and nothing is written (never a guess, never a new patient made up from a
notice). The stay's id derives from the hospital's id of the stay, and the
change's id from the stay, the client and the whole notice, so a notice sent
again finds its change stored and changes nothing (even after someone edited the
stay here; a notice refused before is refused again the same way); a corrected
notice changes only the fields that differ from the stay. The write is the client's (role ``integration``, scope and
audit as a push); the discharge's follow-up (the patient's discharge date, a
planned visit request) is then started by the record type's own hook.
"""

import json
import uuid

from schema.change import make_change
from schema.clock import utcnow
from schema.errors import InvalidRecord, UnknownReference
from schema.merge import view
from schema.records.hospital_stay import follow_up_request_id

from ..writes import WriteApplier
from .hospital_stay import from_fhir

__all__ = ["import_notice", "stay_id"]

NAMESPACE = uuid.UUID("9f3c1d52-8a4e-4b7f-a0c6-2d5e8f1b7c34")


def stay_id(notice, client_id):
    """The stay a notice names: by the hospital's identifier (with the client's id when it has no system)."""
    key = notice.stay_key if notice.has_system else f"{client_id}/{notice.stay_key}"
    return str(uuid.uuid5(NAMESPACE, f"discharge_notice/{key}"))


def _patient(store, keys, personnummer):
    found = [s for s in store.patients_with_personnummer(personnummer)
             if keys.covers(s.type, s.id, s.patient_id, s.municipality) and not view(s.state).get("entered_in_error")]
    if not found:
        raise UnknownReference(
            f"no patient with personnummer {personnummer} in this client's municipalities: hemsync does not "
            "guess or make up patients; register the patient in home care first, then send the notice again",
            details={"personnummer": [personnummer]})
    if len(found) > 1:
        raise UnknownReference(
            f"{len(found)} patient records share personnummer {personnummer}: an admin merges them first "
            "(hemsync-server duplicates), then send the notice again",
            details={"personnummer": [personnummer]}, code="ambiguous_reference")
    return found[0]


def import_notice(store, settings, device, user, keys, bundle, now=None):
    """Apply a discharge notice; return ``{"stay_id", "patient_id", "status", "follow_up_request_id"}``.

    ``status`` is ``created``, ``updated`` or ``unchanged``. Raises InvalidRecord
    (a notice that says too little), UnknownReference (no such patient, or two)
    or the merge's refusal (that change is kept in the quarantine; nothing else is written).
    """
    notice = from_fhir(bundle)
    now = now or utcnow()
    with store.transaction():
        patient = _patient(store, keys, notice.personnummer)
        record_id = stay_id(notice, user["id"])
        stored = store.get_record("hospital_stay", record_id)
        current = view(stored.state) if stored else {}
        if stored and current.get("patient_id") != patient.id:
            raise UnknownReference("the hospital's stay is held for another patient in hemsync: it was sent for the "
                                   "wrong patient before; mark that stay entered in error and send the notice "
                                   "under a new stay identifier", details={"identifier": [notice.stay_key]})
        sent = {"patient_id": patient.id, **notice.fields}
        # The change's id is the whole notice's: sent again, even after someone edited the stay here, it is
        # the change already applied, and changes nothing.
        change_id = str(uuid.uuid5(NAMESPACE, f"{device['id']}/{record_id}/{json.dumps(sent, sort_keys=True)}"))
        seen = store.get_change(change_id)
        fields = {} if seen else {k: v for k, v in sent.items() if current.get(k) != v}
        result = {"stay_id": record_id, "patient_id": patient.id,
                  "status": "unchanged" if not fields else "updated" if stored else "created"}
        refused = seen["result"].get("error") if seen and seen["result"]["result"] == "rejected" else None
        if fields:
            writes = WriteApplier(store, settings, device, user, now)
            applied = writes.apply(make_change("hospital_stay", record_id, fields,
                                               state=stored.state if stored else None, change_id=change_id,
                                               hlc=str(writes.clock.now())))
            writes.finish()
            refused = applied["error"] if applied["result"] == "rejected" else None
        request_id = follow_up_request_id(record_id)
        result["follow_up_request_id"] = request_id if store.get_record("visit_request", request_id) else None
    if refused:
        # Raised after the transaction: the refused change stays in the quarantine and the audit log.
        raise InvalidRecord(refused["message"], details=refused.get("details"), code=refused["code"])
    return result
