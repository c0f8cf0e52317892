"""The demo region with one record of every clinical type the seed does not make, for the FHIR tests."""

import datetime as dt
import uuid

from schema.clock import utcnow
from server.seed import demo_users, seed_demo
from server.writes import WriteApplier

__all__ = ["seed_every_type", "HALMSTAD_PATIENT", "VARBERG_PATIENT"]

NAMESPACE = uuid.UUID("0b0e8a2c-51a5-4f39-9f5c-7e1f6d2b9a10")
HALMSTAD_PATIENT = "a1efbc86-0e13-5283-821c-8ef18ea4a3ea"  # the seed's patient/Halmstad/0


def _id(key):
    return str(uuid.uuid5(NAMESPACE, key))


def _seed_patient(municipality, index=0):
    return str(uuid.uuid5(uuid.UUID("6d1f5a8e-3b0c-4c2a-9e47-1a2b3c4d5e6f"), f"patient/{municipality}/{index}"))


VARBERG_PATIENT = _seed_patient("Varberg")


def seed_every_type(store, settings, municipality="Halmstad", doctor="doctor-anna", now=None):
    """Seed the demo region, then give a patient of ``municipality`` a visit (signed, amended), a medication,
    a medication review, a care plan, an admission, a hospital stay (discharged, with follow-up), a condition
    warning and a warning entered in error.

    Every write goes through the one write path as the demo doctor; returns the patient's id.
    """
    now = now or utcnow()
    seed_demo(store, settings, now=now)
    users = {key: store.get_user(uid) for key, uid in demo_users().items()}
    patient = _seed_patient(municipality)
    tag = municipality.lower()

    def write(record_type, key, fields, who=doctor):
        with store.transaction():
            applier = WriteApplier(store, settings, {"id": f"seed/{who}"}, users[who], now)
            applier.write(record_type, _id(f"{tag}/{key}"), fields, change_id=_id(f"change/{tag}/{key}/{len(fields)}"
                                                                                   f"/{sorted(fields)}"))
            applier.finish()
        return _id(f"{tag}/{key}")

    visit = write("visit", "visit", {
        "patient_id": patient, "kind": "home_visit", "started_at": (now - dt.timedelta(hours=1)).isoformat(),
        "ended_at": (now - dt.timedelta(minutes=30)).isoformat(), "place": "hemmet",
        "assessment": "Lunginflammation, opåverkad.", "plan": "Amoxicillin 750 mg x 3 i 7 dagar <kontroll>.",
        "outcome": "stays_home"})
    write("visit", "visit", {"signed_at": now.isoformat()})
    write("amendment", "amendment", {"patient_id": patient, "visit_id": visit, "text": "Tillägg: ring dottern."})
    write("medication", "medication", {"patient_id": patient, "drug": "Amoxicillin", "strength": "750 mg",
                                       "dose": "1 tablett", "route": "oral", "frequency": "3 gånger dagligen",
                                       "start_date": now.date().isoformat(), "status": "active"})
    write("medication_review", "review", {"patient_id": patient, "date": now.date().isoformat(),
                                          "participants": "läkare, sjuksköterska", "findings": "Dubbelförskrivning",
                                          "decisions": "Sätt ut Alvedon", "status": "done"})
    write("care_plan", "sip", {"patient_id": patient, "kind": "sip", "date": now.date().isoformat(),
                               "participants": "patient, dotter", "content": "Trygg hemma", "status": "planned"})
    write("admission", "admission", {"patient_id": patient, "visit_id": visit, "hospital": "Hallands sjukhus",
                                     "ward": "Medicin 3", "reason": "Syrgasbehov", "status": "proposed"})
    write("hospital_stay", "stay", {"patient_id": patient, "hospital": "Hallands sjukhus Halmstad", "ward": "Medicin 3",
                                    "admitted_at": (now - dt.timedelta(days=5)).isoformat(),
                                    "discharged_at": (now - dt.timedelta(days=1)).isoformat(), "planned": False,
                                    "source": "manual", "follow_up": "Kontroll av vikt och ödem inom en vecka"})
    write("warning", "condition", {"patient_id": patient, "kind": "condition", "text": "Hjärtsvikt",
                                   "severity": "high", "source": "journal", "active": True})
    write("warning", "mistake", {"patient_id": patient, "kind": "allergy", "text": "Latex", "severity": "low",
                                 "source": "patient", "active": True})
    write("warning", "mistake", {"entered_in_error": True, "entered_in_error_reason": "fel patient"})
    return patient
