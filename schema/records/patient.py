"""patient: demographics and care setting; field by field, last writer wins.

The personnummer is fixed at creation (an admin corrects it, never a merge);
two patients with the same personnummer are a duplicate the server reports.
"""

import copy
import uuid

from marshmallow import fields, validate

from ..guards import immutable
from ..recordtype import FieldSpec, RecordType
from ..references import Ref
from ..rules import Immutable, write_key
from ..state import CONFLICT_NAMESPACE, value_of
from ..validation import IsoDate, Personnummer, RecordRef, RecordSchema, StrictBool, StrictInt, Text
from . import register

CARE_SETTINGS = ("own_home", "sabo", "short_term", "lss")


class PatientSchema(RecordSchema):
    personnummer = Personnummer(required=True)
    name = Text(required=True, allow_none=False, limit=200)
    address = Text(limit=500)
    access_notes = Text(limit=2000)
    phone = Text(limit=40)
    municipality = Text(required=True, allow_none=False, limit=100)
    care_setting = fields.String(allow_none=True, validate=validate.OneOf(CARE_SETTINGS))
    facility = Text(limit=200)
    unit = Text(limit=200)
    listed_health_centre = Text(limit=200)
    named_doctor_id = RecordRef()
    named_nurse_id = RecordRef()
    palliative = StrictBool(allow_none=True)
    discharged_at = IsoDate()
    enrolled_at = IsoDate()
    moved_in_at = IsoDate()
    spo2_scale = StrictInt(minimum=1, maximum=2)


def duplicate_conflict(states):
    """The high-severity *duplicate patient* conflict for patients sharing a personnummer.

    ``states`` are the merge states of every patient record with that
    personnummer. The id derives from the sorted patient ids, so each server and
    each retry names the same conflict; the server adds it to each of the
    records, and an admin merges them.
    """
    ids = sorted(s["id"] for s in states)
    writes = sorted((s["fields"]["personnummer"] for s in states), key=write_key)
    return {
        "id": str(uuid.uuid5(CONFLICT_NAMESPACE, "duplicate_patient/" + "/".join(ids))),
        "record_type": "patient",
        "record_id": ids[0],
        "field": "personnummer",
        "values": [{**{k: w[k] for k in ("value", "version", "hlc", "device_id", "by")},
                    "patient_id": s["id"]} for s, w in zip(sorted(states, key=lambda s: write_key(
                        s["fields"]["personnummer"])), writes)],
        "severity": "high",
        "status": "open",
        "rule": "duplicate_patient",
        "kind": "duplicate_patient",
        "resolution": None,
        "resolved_by": None,
        "patients": ids,
    }


DUPLICATE_NOTICE = "a possible duplicate of this patient went to an admin for review"


def duplicate_notice(conflict, state):
    """The duplicate-patient conflict as one patient's record carries it: nothing of the others.

    The full conflict (every record's id, author and device) is for admins only,
    who merge duplicates; a laptop holding one of the records learns that a
    possible duplicate is under review and nothing more, so creating a patient
    cannot be used to find out whether, where and by whom a person is known.
    """
    own = [v for v in conflict["values"] if v["patient_id"] == state["id"]]
    return {**{k: v for k, v in conflict.items() if k not in ("values", "patients", "record_id")},
            "record_id": state["id"], "values": [{k: v for k, v in w.items() if k != "patient_id"} for w in own],
            "message": DUPLICATE_NOTICE}


def flag_duplicates(writes, state, before):
    """After a patient is stored: raise the duplicate-patient conflict on every patient sharing its personnummer.

    Runs for a new patient and for one whose personnummer an admin corrected.
    The full conflict (every record, author and device) is kept for admins, who
    merge duplicates; each patient's state gets only a notice that a possible
    duplicate is under review (:func:`duplicate_notice`), written to the feed so
    every device holding one of them sees it. Returns the conflict ids raised.
    """
    personnummer = value_of(state, "personnummer")
    if not personnummer or (before is not None and value_of(before, "personnummer") == personnummer):
        return []
    same = writes.store.patients_with_personnummer(personnummer)
    if len(same) < 2:
        return []
    conflict = duplicate_conflict([s.state for s in same])
    writes.store.save_duplicate(conflict)
    for stored in same:
        patient = stored.state
        if any(c["id"] == conflict["id"] for c in patient["conflicts"]):
            continue
        patient["conflicts"].append(duplicate_notice(conflict, patient))
        writes.annotate(patient, conflict["id"], {"rule": "duplicate_patient", "action": "conflict",
                                                  "conflict": conflict["id"], "patients": conflict["patients"]})
    return [conflict["id"]]


def resolve_duplicate(state, conflict_id, kept_id, admin_id):
    """The patient state with its duplicate-patient conflict (or notice) resolved: ``kept_id`` is kept."""
    resolved = copy.deepcopy(state)
    for conflict in resolved["conflicts"]:
        if conflict["id"] == conflict_id and conflict["status"] == "open":
            conflict.update(status="resolved", resolution=kept_id, resolved_by=admin_id)
    return resolved


RECORD = register(RecordType(
    name="patient",
    creators=frozenset({"doctor", "nurse"}),
    editors=frozenset({"doctor", "nurse"}),
    schema=PatientSchema,
    index={"municipality": "municipality", "personnummer": "personnummer"},
    changes_scope=True,
    severity="low",
    fields={"personnummer": FieldSpec(rule=Immutable(), severity="high"),
            "municipality": FieldSpec(ref=Ref.municipality()),
            "named_doctor_id": FieldSpec(ref=Ref.person("doctor")),
            "named_nurse_id": FieldSpec(ref=Ref.person("nurse"))},
    guards=(immutable("personnummer"),),
    after_store=(flag_duplicates,),
    patient_field="id",
))
