"""hospital_stay: a patient's stay in hospital, and the discharge follow-up it starts.

Doctors and nurses create and edit stays; every field is last writer wins except
``follow_up`` (the text the ward asks for), whose concurrent edits keep both and
raise a conflict. A stay reaches the server from a direct admission that arrived
(:mod:`schema.records.admission`), from an imported discharge notice, or by hand.

When a stay's ``discharged_at`` is set for a patient in home care, the server
(:func:`follow_discharge`) moves the patient's ``discharged_at`` to the discharge
date and, when the ward asks for follow-up, opens one ``planned`` visit request:
assigned to the patient's named doctor, or in the municipality's queue when the
patient has none. Both writes go through the server's write path as the server,
with ids derived from the stay, so a discharge synced again, retried or edited
acts once.
"""

import uuid

from marshmallow import fields, validate

from ..followup.calendar import local_date
from ..followup.patients import in_home_care
from ..recordtype import FieldSpec, RecordType
from ..references import Ref
from ..roles import INTEGRATION
from ..rules import KeepBoth
from ..validation import IsoDateTime, RecordRef, RecordSchema, StrictBool, Text
from . import register

__all__ = ["RECORD", "SOURCES", "follow_discharge", "follow_up_request_id", "stay_id_for_admission"]

SOURCES = ("direct_admission", "discharge_notice", "manual")
#: Room left in a visit request's reason (4000 characters) for the ward's text.
FOLLOW_UP_LIMIT = 3000
_NAMESPACE = uuid.UUID("3c7e2b90-5f14-4d6a-b8e1-9a0d4c6f2e15")


class HospitalStaySchema(RecordSchema):
    patient_id = RecordRef(required=True, allow_none=False)
    hospital = Text(required=True, allow_none=False, limit=200)
    ward = Text(limit=200)
    admitted_at = IsoDateTime(required=True, allow_none=False)
    discharged_at = IsoDateTime()
    planned = StrictBool(allow_none=True)
    source = fields.String(allow_none=True, validate=validate.OneOf(SOURCES))
    admission_id = RecordRef()
    follow_up = Text(limit=FOLLOW_UP_LIMIT)


def stay_id_for_admission(admission_id):
    """The id of the stay a direct admission creates when it arrives: one stay per admission."""
    return str(uuid.uuid5(_NAMESPACE, f"admission_stay/{admission_id}"))


def follow_up_request_id(stay_id):
    """The id of the visit request a discharge's follow-up opens: one request per stay."""
    return str(uuid.uuid5(_NAMESPACE, f"discharge_follow_up/{stay_id}"))


def follow_discharge(writes, state, before):
    """After a stay is stored: the discharge's consequences for a patient in home care.

    Moves the patient's ``discharged_at`` forward to the stay's discharge date
    (never back: a later edit of an older stay leaves a newer discharge shown)
    and, when the ward asks for follow-up, opens the stay's planned visit
    request, once. A stay entered in error, not yet discharged, or of a patient
    outside home care starts nothing. Returns no conflicts.
    """
    stay = _values(state)
    discharged = local_date(stay.get("discharged_at"))
    if discharged is None or stay.get("entered_in_error"):
        return []
    stored = writes.store.get_record("patient", stay["patient_id"])
    patient = _values(stored.state) if stored is not None else None
    if patient is None or not in_home_care(patient):
        return []
    server = writes.server_writes()
    shown = local_date(patient.get("discharged_at"))
    if shown is None or shown < discharged:
        server.write("patient", patient["id"], {"discharged_at": discharged.isoformat()},
                     change_id=str(uuid.uuid5(_NAMESPACE, f"patient_discharged_at/{state['id']}/{discharged}")))
    asked = (stay.get("follow_up") or "").strip()
    request_id = follow_up_request_id(state["id"])
    if asked and writes.store.get_record("visit_request", request_id) is None:
        server.write("visit_request", request_id, _follow_up_request(writes, stay, patient, discharged, asked),
                     change_id=str(uuid.uuid5(_NAMESPACE, f"follow_up_request/{request_id}")))
    return []


def _values(state):
    return {"id": state["id"], **{path: write["value"] for path, write in state["fields"].items()}}


def _follow_up_request(writes, stay, patient, discharged, asked):
    where = ", ".join(p for p in (stay.get("hospital"), stay.get("ward")) if p)
    values = {"patient_id": patient["id"], "urgency": "planned", "status": "requested",
              "reason": f"Uppföljning efter utskrivning {discharged} ({where}): {asked}"}
    doctor = writes.store.get_user(patient.get("named_doctor_id")) if patient.get("named_doctor_id") else None
    if doctor is not None and doctor["role"] == "doctor":
        values.update(status="assigned", assigned_doctor_id=doctor["id"])
    return values


RECORD = register(RecordType(
    name="hospital_stay",
    # An integration client imports the hospitals' discharge notices (server.fhir.discharge).
    creators=frozenset({"doctor", "nurse", INTEGRATION}),
    editors=frozenset({"doctor", "nurse", INTEGRATION}),
    schema=HospitalStaySchema,
    severity="low",
    fields={"follow_up": FieldSpec(rule=KeepBoth(), severity="medium", clinical=True),
            "admitted_at": FieldSpec(clinical_time=True),
            "discharged_at": FieldSpec(clinical_time=True),
            "admission_id": FieldSpec(ref=Ref.record("admission"))},
    after_store=(follow_discharge,),
))
