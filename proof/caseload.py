"""A municipality's caseload on the server: thousands of patients, each with the records of two years of care.

Issue 11 times the doctor's pages on a replica holding "a municipality's 5,000
patients and 100,000 records". This builds that on the server, in Anna Berg's
municipalities (Halmstad, Laholm, Hylte), with a realistic mix per patient:
signed visits with a note (some amended), vitals with NEWS2, medications started,
changed and stopped, allergies and other warnings, visit requests (nearly all
completed, a few open and assigned to Anna), direct admissions, hospital stays,
and SÄBO rounds with an item per resident seen.

Every record is made by the merge (:func:`schema.merge.apply_change`: the
record's rules, NEWS2 stored on the observation, stamps) as the server acting
for the staff member who did it, and stored with :meth:`Store.put_record`, many
to a transaction: the store's bulk path, as :mod:`proof.followup_bench` builds a
year of a region. It skips what a page or a push adds around the merge (audit
rows of the writer, scope recomputation per change), which the bench does not
measure; the laptop then gets the records by a real sync.

Seeded: the same seed builds the same caseload.
"""

import datetime as dt
import random
import time
import uuid

from schema.change import make_change
from schema.clock import Hlc, utcnow
from schema.identity import make_test_personnummer
from schema.merge import SYSTEM, Actor, apply_change
from server import seed

from .workload import Workload

__all__ = ["build", "MIX", "MUNICIPALITIES"]

#: The laptop's doctor's municipalities: the caseload lives there.
MUNICIPALITIES = ("Halmstad", "Laholm", "Hylte")
#: Mean records of each type per patient (besides the patient), about 19: 5,000 patients make ~100,000 records.
#: A direct admission comes with each visit whose outcome it is (OUTCOMES' weights: one visit in twenty).
MIX = {"visit": 4.0, "amendment": 0.4, "observation": 7.6, "medication": 3.6, "warning": 1.2, "visit_request": 1.6,
       "hospital_stay": 0.3}
OUTCOMES = {"stays_home": 16, "direct_admission": 1, "emergency_department": 3}
#: A SÄBO unit's round every this many days, over the two years.
ROUND_EVERY_DAYS = 14
YEARS = 2
#: Records per store transaction.
BATCH = 2000
FIRST = ("Astrid", "Birger", "Dagny", "Einar", "Gunhild", "Harald", "Inga", "Josef", "Karin", "Lennart", "Majken",
         "Nils", "Ruth", "Sixten", "Sonja", "Tage", "Ulla", "Valter", "Viola", "Åke")
LAST = ("Andersson", "Bergström", "Dahlberg", "Ekström", "Forsberg", "Gustafsson", "Hedlund", "Isaksson", "Johansson",
        "Karlsson", "Lindqvist", "Magnusson", "Nyberg", "Olofsson", "Persson", "Sandberg", "Wallin", "Östlund")
DRUGS = (("Furosemid", "40 mg", "1 x 1"), ("Metoprolol", "50 mg", "1 x 1"), ("Paracetamol", "500 mg", "2 x 4"),
         ("Apixaban", "5 mg", "1 x 2"), ("Levaxin", "50 mikrog", "1 x 1"), ("Enalapril", "10 mg", "1 x 1"),
         ("Omeprazol", "20 mg", "1 x 1"), ("Oxykodon", "5 mg", "1 vb"), ("Sertralin", "50 mg", "1 x 1"),
         ("Kåvepenin", "1 g", "1 x 3"))
ALLERGIES = ("Penicillin: utslag", "Sulfa: andnöd", "Jordnötter: svullnad", "Kodein: illamående",
             "Latex: eksem")
CONDITIONS = ("Hjärtsvikt NYHA III", "KOL med syrgasbehandling", "Demens, ej beslutskapabel", "Diabetes typ 2",
              "Fallrisk")
HOSPITALS = (("Hallands sjukhus Halmstad", "Medicinavdelning 1"), ("Hallands sjukhus Varberg", "Geriatrik"))


class _Maker:
    """Makes records through the merge at chosen moments and stores them, counting what it made."""

    def __init__(self, store, rng):
        self.store, self.rng, self.counts = store, rng, {}

    def uuid(self):
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def make(self, record_type, fields, moment, by, later=()):
        """A record created by ``by`` at ``moment``, then each ``(moment, by, fields)`` of ``later``; its id."""
        record_id, state, change_id = self.uuid(), None, None
        for when, who, values in ((moment, by, fields), *later):
            change_id = self.uuid()
            change = make_change(record_type, record_id, values, state=state, change_id=change_id,
                                 hlc=str(Hlc(int(when.timestamp() * 1000), 0)), device_id="bench-caseload")
            state = apply_change(state, change, Actor(who, SYSTEM.role), when).state
        self.store.put_record(state, change_id)
        self.counts[record_type] = self.counts.get(record_type, 0) + 1
        return record_id


def _times(rng, now, n):
    """``n`` moments of the last YEARS years, oldest first."""
    span = int(YEARS * 365 * 86400)
    return sorted(now - dt.timedelta(seconds=rng.randrange(span)) for _ in range(n))


def _count(rng, mean):
    """A whole count whose mean is ``mean`` (the integer part, and one more with the fraction's chance)."""
    whole = int(mean)
    return whole + (rng.random() < mean - whole)


def _patient(make, rng, n, now, nurse):
    municipality = MUNICIPALITIES[n % len(MUNICIPALITIES)]
    sabo = n % 3 == 0
    facility, units = seed.FACILITIES[municipality]
    born = dt.date(1925 + rng.randrange(50), 1 + rng.randrange(12), 1 + rng.randrange(28))
    return make.make("patient", {
        "personnummer": make_test_personnummer(born, n % 1000),
        "name": f"{FIRST[n % len(FIRST)]} {LAST[(n // len(FIRST)) % len(LAST)]}",
        "municipality": municipality, "address": f"Testgatan {1 + n % 200}, {municipality}",
        "access_notes": seed.TEST_NOTE, "care_setting": "sabo" if sabo else "own_home",
        "facility": facility if sabo else None, "unit": units[n % len(units)] if sabo else None, "spo2_scale": 1,
    }, now - dt.timedelta(days=YEARS * 365 + 30), nurse), municipality, sabo and units[n % len(units)]


def _history(make, work, rng, patient_id, now, nurse, doctors, assigned_by=None):
    """One patient's two years: warnings, vitals, requests with their visits, medications, stays.

    How much care a patient needs varies widely: each patient's counts are MIX
    times an activity drawn from an exponential distribution (mean 1), so most
    patients have a few records and the busiest of 5,000 about eight times the mean.
    """
    activity = rng.expovariate(1.0)
    counts = {kind: _count(rng, mean * activity) for kind, mean in MIX.items()}
    for i in range(counts["warning"]):
        allergy = i == 0 and rng.random() < 0.7
        moment = _times(rng, now, 1)[0]
        later = [(moment + dt.timedelta(days=90), doctors[0], {"active": False,
                                                                "deactivation_reason": "Utredd, ej allergi"})] \
            if not allergy and rng.random() < 0.2 else []
        make.make("warning", {"patient_id": patient_id, "kind": "allergy" if allergy else "condition",
                              "text": rng.choice(ALLERGIES if allergy else CONDITIONS),
                              "severity": rng.choice(("high", "life_threatening")) if allergy else "low",
                              "source": "patient", "active": True}, moment, nurse, later)
    for moment in _times(rng, now, counts["observation"]):
        make.make("observation", {**work.vitals(patient_id), "measured_at": moment.isoformat(timespec="seconds")},
                  moment, nurse)
    visits = _times(rng, now - dt.timedelta(days=2), counts["visit"])
    requests = set(rng.sample(range(len(visits)), min(len(visits), counts["visit_request"])))
    amended = set(rng.sample(range(len(visits)), min(len(visits), counts["amendment"])))
    for i, started in enumerate(visits):
        doctor = rng.choice(doctors)
        request_id = None
        if i in requests:
            asked = started - dt.timedelta(minutes=rng.randrange(30, 600))
            request_id = make.make("visit_request", {
                "patient_id": patient_id, "reason": work.text(60),
                "urgency": rng.choice(("acute", "urgent", "planned")),
                "callback_phone": "035-000 00 00"}, asked, nurse,
                [(started, doctor, {"status": "completed", "assigned_doctor_id": doctor, "accepted_by": doctor})])
        signed = started + dt.timedelta(minutes=rng.randrange(20, 90))
        [outcome] = rng.choices(tuple(OUTCOMES), weights=tuple(OUTCOMES.values()))
        visit_id = make.make("visit", {
            "patient_id": patient_id, "request_id": request_id, "doctor_id": doctor, "kind": "home_visit",
            "started_at": started.isoformat(timespec="seconds"), "place": "Hemmet", "assessment": work.text(300),
            "plan": work.text(120), "outcome": outcome, "signed_at": signed.isoformat(timespec="seconds"),
            "signed_by": doctor}, signed, doctor)
        if i in amended:
            make.make("amendment", {"visit_id": visit_id, "patient_id": patient_id, "text": work.text(80)},
                      signed + dt.timedelta(hours=rng.randrange(2, 48)), doctor)
        if outcome == "direct_admission":
            hospital, ward = rng.choice(HOSPITALS)
            make.make("admission", {"patient_id": patient_id, "visit_id": visit_id, "hospital": hospital, "ward": ward,
                                    "reason": work.text(60)}, signed, doctor,
                      [(signed + dt.timedelta(minutes=40), doctor, {"status": "accepted",
                                                                    "accepted_by_name": "Avdelningsläkaren"})])
    for moment in _times(rng, now - dt.timedelta(days=12), counts["hospital_stay"]):
        hospital, ward = rng.choice(HOSPITALS)
        discharged = moment + dt.timedelta(days=rng.randrange(1, 12))
        make.make("hospital_stay", {"patient_id": patient_id, "hospital": hospital, "ward": ward,
                                    "admitted_at": moment.isoformat(timespec="seconds"),
                                    "discharged_at": discharged.isoformat(timespec="seconds"), "planned": False,
                                    "source": "discharge_notice"}, discharged, nurse)
    for moment in _times(rng, now, counts["medication"]):
        drug, strength, dose = rng.choice(DRUGS)
        doctor, later, roll = rng.choice(doctors), [], rng.random()
        if roll < 0.5:
            later.append((moment + dt.timedelta(days=rng.randrange(7, 120)), doctor, {"dose": "1 x 2"}))
        if roll < 0.25:
            later.append((moment + dt.timedelta(days=rng.randrange(121, 300)), doctor,
                          {"status": "discontinued", "reason": "Utsatt efter läkemedelsgenomgång"}))
        make.make("medication", {"patient_id": patient_id, "drug": drug, "strength": strength, "dose": dose,
                                 "route": "po", "start_date": moment.date().isoformat()}, moment, doctor,
                  [(m, d, v) for m, d, v in later if m < now])
    if assigned_by:
        make.make("visit_request", {"patient_id": patient_id, "reason": work.text(60), "urgency": "urgent",
                                    "callback_phone": "035-000 00 00"}, now - dt.timedelta(hours=2), nurse,
                  [(now - dt.timedelta(hours=1), assigned_by,
                    {"status": "assigned", "assigned_doctor_id": doctors[0]})])


def _rounds(make, work, rng, residents, now, doctors):
    """Every SÄBO unit's round each ROUND_EVERY_DAYS days, with an item per resident seen (up to eight)."""
    for (municipality, facility, unit), ids in sorted(residents.items()):
        day = now - dt.timedelta(days=YEARS * 365)
        while day < now:
            seen = rng.sample(ids, min(len(ids), 8))
            doctor = rng.choice(doctors[municipality])
            make.make("round", {
                "facility": facility, "unit": unit, "municipality": municipality, "date": day.date().isoformat(),
                "doctor_id": doctor, "status": "done",
                "items": {pid: {"question": work.text(40), "status": "done", "note": work.text(80)} for pid in seen}},
                day, doctor)
            day += dt.timedelta(days=ROUND_EVERY_DAYS)


def build(store, patients, open_requests, seed_=11, progress=print):
    """Add ``patients`` patients with their records to ``store`` (after the demo region); return counts by type.

    ``open_requests`` of them have an open request assigned to Anna Berg (today's list).
    """
    ids = seed.demo_users()
    doctors = {"Halmstad": [ids["doctor-anna"], ids["doctor-sara"]], "Laholm": [ids["doctor-anna"]],
               "Hylte": [ids["doctor-anna"]]}
    rng, now, start = random.Random(seed_), utcnow(), time.perf_counter()
    work = Workload(seed_, now)
    make = _Maker(store, rng)
    residents = {}
    for first in range(0, patients, BATCH // 20):
        with store.transaction():
            for n in range(first, min(first + BATCH // 20, patients)):
                nurse = ids[f"nurse-{MUNICIPALITIES[n % len(MUNICIPALITIES)].lower()}"]
                patient_id, municipality, unit = _patient(make, rng, n, now, nurse)
                if unit:
                    residents.setdefault((municipality, seed.FACILITIES[municipality][0], unit), []).append(patient_id)
                _history(make, work, rng, patient_id, now, nurse, doctors[municipality],
                         ids["dispatcher-lena"] if n < open_requests else None)
        if (first // (BATCH // 20)) % 25 == 24 or first + BATCH // 20 >= patients:
            progress(f"  caseload: {min(first + BATCH // 20, patients):,} patients, "
                     f"{sum(make.counts.values()):,} records ({time.perf_counter() - start:.0f} s)")
    with store.transaction():
        _rounds(make, work, rng, residents, now, doctors)
    return dict(make.counts)
