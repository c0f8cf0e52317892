"""The demo region: Halland's six municipalities, SÄBO units, staff, patients and open requests.

Everything clinical is created by the seeded users through the same merge as a
push (server-side changes with deterministic ids), so the demo obeys every rule
and running the seed twice changes nothing. Every person is invented: patients
carry Skatteverket's published test personnummer or numbers generated with
``make_test_personnummer`` and marked as test data in their access notes.
"""

import datetime as dt
import uuid

from schema.clock import utcnow
from schema.identity import TEST_PERSONNUMMER, make_test_personnummer

from . import auth
from .writes import WriteApplier

__all__ = ["MUNICIPALITIES", "FACILITIES", "STAFF", "seed_demo", "demo_users"]

NAMESPACE = uuid.UUID("6d1f5a8e-3b0c-4c2a-9e47-1a2b3c4d5e6f")
MUNICIPALITIES = ("Halmstad", "Laholm", "Hylte", "Falkenberg", "Varberg", "Kungsbacka")
#: Invented SÄBO facilities and their units, one per municipality.
FACILITIES = {
    "Halmstad": ("Solbackens säbo", ("Avdelning Lärken", "Avdelning Svalan")),
    "Laholm": ("Lindgårdens säbo", ("Avdelning 1",)),
    "Hylte": ("Björkgårdens säbo", ("Avdelning Björken",)),
    "Falkenberg": ("Havsbrisens säbo", ("Avdelning Tången",)),
    "Varberg": ("Vallmons säbo", ("Avdelning Vallmon", "Avdelning Blåklinten")),
    "Kungsbacka": ("Ekhagens säbo", ("Avdelning Eken",)),
}
NURSES = (("Halmstad", "Maria Ek"), ("Laholm", "Karin Sjö"), ("Hylte", "Johan Ås"), ("Falkenberg", "Eva Strand"),
          ("Varberg", "Lars Mo"), ("Kungsbacka", "Nora Vik"))
#: (key, name, role, municipalities, HSA-id): invented staff with invented HSA-ids.
STAFF = (
    ("doctor-anna", "Anna Berg", "doctor", ("Halmstad", "Laholm", "Hylte"), "SE2321000131-E000000000101"),
    ("doctor-erik", "Erik Lind", "doctor", ("Falkenberg", "Varberg", "Kungsbacka"), "SE2321000131-E000000000102"),
    ("doctor-sara", "Sara Holm", "doctor", ("Halmstad",), "SE2321000131-E000000000103"),
    *((f"nurse-{m.lower()}", name, "nurse", (m,), f"SE2321000131-S0000000002{i:02d}")
      for i, (m, name) in enumerate(NURSES)),
    ("dispatcher-lena", "Lena Dahl", "dispatcher", MUNICIPALITIES, "SE2321000131-E000000000301"),
    ("admin-per", "Per Nyström", "admin", (), "SE2321000131-E000000000401"),
)
TEST_NOTE = "TESTDATA: invented person, generated test personnummer"
PUBLISHED_NOTE = "TESTDATA: Skatteverket's published test personnummer"
#: (urgency, reason, RETTS colour, vitals) of the demo requests, spread over the municipalities.
REQUESTS = (
    ("acute", "Andningspåverkad sedan i morse, sänkt allmäntillstånd", "orange",
     {"resp_rate": 26, "spo2": 91, "pulse": 118, "temperature": 38.9, "systolic_bp": 102, "consciousness": "A"}),
    ("urgent", "Nytillkommen förvirring, oklar orsak", "yellow",
     {"resp_rate": 18, "spo2": 95, "pulse": 92, "temperature": 37.6, "systolic_bp": 128, "consciousness": "C"}),
    ("planned", "Läkemedelsgenomgång efter utskrivning", None, None),
)


def _id(key):
    return str(uuid.uuid5(NAMESPACE, key))


def demo_users():
    """The demo staff as ``{key: user id}``."""
    return {key: _id(f"user/{key}") for key, *_ in STAFF}


def seed_demo(store, settings, now=None):
    """Create the demo region (idempotent); return a summary of what it holds.

    Raises ChangeRefused (and keeps nothing) when the merge refuses a change of the seed.
    """
    now = now or utcnow()
    ids = demo_users()
    for municipality in MUNICIPALITIES:
        auth.add_municipality(store, municipality)
    for key, name, role, municipalities, hsa_id in STAFF:
        if store.get_user(ids[key]) is None:
            auth.add_user(store, name, role, municipalities, hsa_id=hsa_id, user_id=ids[key])
    users = {key: store.get_user(uid) for key, uid in ids.items()}
    results = []

    def change(user_key, key, record_type, fields, change_key=None):
        writes = WriteApplier(store, settings, {"id": f"seed/{user_key}"}, users[user_key], now)
        results.append(writes.write(record_type, _id(key), fields, change_id=_id(f"change/{change_key or key}")))
        writes.finish()

    with store.transaction():
        serial = 0
        for m_index, municipality in enumerate(MUNICIPALITIES):
            nurse = f"nurse-{municipality.lower()}"
            facility, units = FACILITIES[municipality]
            residents = []
            for p_index in range(3):
                serial += 1
                key = f"patient/{municipality}/{p_index}"
                personnummer, name, note = _person(serial)
                sabo = p_index < 2
                change(nurse, key, "patient", {
                    "personnummer": personnummer, "name": name, "municipality": municipality,
                    "address": f"Testgatan {serial}, {municipality}",
                    "access_notes": note, "care_setting": "sabo" if sabo else "own_home",
                    "facility": facility if sabo else None, "unit": units[p_index % len(units)] if sabo else None,
                    "palliative": p_index == 2 and m_index % 2 == 0, "spo2_scale": 1,
                })
                if sabo:
                    residents.append(_id(key))
            first = _id(f"patient/{municipality}/0")
            change(nurse, f"warning/{municipality}", "warning", {
                "patient_id": first, "kind": "allergy", "text": "Penicillin: utslag", "severity": "high",
                "source": "patient", "active": True})
            urgency, reason, colour, vitals = REQUESTS[m_index % len(REQUESTS)]
            request_key = f"request/{municipality}/{urgency}"
            observation_id = None
            if vitals:
                change(nurse, f"observation/{municipality}", "observation", {
                    "patient_id": first, "measured_at": (now - dt.timedelta(minutes=20)).isoformat(), **vitals})
                observation_id = _id(f"observation/{municipality}")
            change(nurse, request_key, "visit_request", {
                "patient_id": first, "reason": reason, "urgency": urgency, "retts_colour": colour,
                "observation_id": observation_id, "callback_phone": "035-000 00 00"})
            doctor = next(k for k, _, r, ms, _ in STAFF if r == "doctor" and municipality in ms)
            change(doctor, f"round/{municipality}", "round", {
                "facility": facility, "unit": units[0], "municipality": municipality,
                "date": (now + dt.timedelta(days=1)).date().isoformat(), "doctor_id": ids[doctor],
                "status": "planned",
                "items": {pid: {"question": "Ordinarie rondbesök", "status": "open"} for pid in residents}})
        # The dispatcher assigns Halmstad's acute request to Anna Berg: an assigned request in the queue.
        halmstad = f"request/Halmstad/{REQUESTS[0][0]}"
        change("dispatcher-lena", halmstad, "visit_request",
               {"status": "assigned", "assigned_doctor_id": ids["doctor-anna"]}, change_key=f"{halmstad}/assign")
    return {"users": [store.get_user(uid) for uid in ids.values()], "changes": len(results)}


def _person(serial):
    """A test personnummer, the person's name and the test-data note."""
    if serial <= len(TEST_PERSONNUMMER):
        names = ("Tolvan Tolvansson", "Testa Testsson", "Hundra Testsson", "Samordna Testsson")
        return TEST_PERSONNUMMER[serial - 1], names[serial - 1], PUBLISHED_NOTE
    born = dt.date(1925 + serial, 1 + serial % 12, 1 + serial % 28)
    return make_test_personnummer(born, 900 + serial), f"Testperson {serial}", TEST_NOTE
