"""Realistic records for the trials: home visits with a Swedish assessment, and their vitals.

The words come, drawn with a seeded generator, from the benchmark vocabulary of
clinical word forms kept in the repository (``proof/data/vocabulary-sv.txt``, or
the file named by ``HEMSYNC_VOCABULARY``). A visit and its vitals are together about
650-750 bytes of JSON, the size the issue's targets speak of.
"""

import datetime as dt
import functools
import json
import os
import pathlib
import random
import uuid

from schema.identity import make_test_personnummer

__all__ = ["vocabulary", "Workload", "Editor", "shared_records", "VOCABULARY_ENV", "record_json", "as_one_row"]

VOCABULARY_ENV = "HEMSYNC_VOCABULARY"
DEFAULT_VOCABULARY = pathlib.Path(__file__).resolve().parent / "data" / "vocabulary-sv.txt"


@functools.cache
def vocabulary(path=None):
    """The word forms, one a line (``HEMSYNC_VOCABULARY``, else proof/data/vocabulary-sv.txt)."""
    path = pathlib.Path(path or os.environ.get(VOCABULARY_ENV) or DEFAULT_VOCABULARY)
    if not path.exists():
        raise SystemExit(f"no vocabulary at {path}: set {VOCABULARY_ENV} to the vocabulary-sv.txt file")
    words = tuple(w.strip() for w in path.read_text(encoding="utf-8").splitlines() if w.strip())
    if not words:
        raise SystemExit(f"the vocabulary {path} is empty")
    return words


def record_json(value):
    """The UTF-8 JSON text of a record, as sizes are counted here."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class Workload:
    """A seeded source of patients, visits, vitals and edits; the same seed gives the same records."""

    def __init__(self, seed=0, now=None):
        self.rng = random.Random(seed)
        self.words = vocabulary()
        self.now = now or dt.datetime.now(dt.timezone.utc)
        self._serial = 0

    def uuid(self):
        """A UUID from the seeded generator (reproducible ids)."""
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def text(self, chars):
        """Words from the vocabulary, about ``chars`` characters, ending with a full stop."""
        out, length = [], 0
        while length < chars:
            word = self.rng.choice(self.words)
            out.append(word)
            length += len(word) + 1
        return " ".join(out).capitalize() + "."

    def patient(self, municipality):
        """The fields of a new patient (generated test personnummer, marked as test data)."""
        self._serial += 1
        born = dt.date(1925 + self.rng.randrange(70), 1 + self.rng.randrange(12), 1 + self.rng.randrange(28))
        return {
            "personnummer": make_test_personnummer(born, self.rng.randrange(1000)),
            "name": f"Testperson {self._serial}",
            "municipality": municipality,
            "address": f"Testgatan {self.rng.randrange(1, 200)}",
            "access_notes": "TESTDATA: invented person, generated test personnummer",
            "care_setting": self.rng.choice(("own_home", "sabo")),
            "spo2_scale": 1,
        }

    def visit(self, patient_id):
        """The fields of a home visit: its start and a ~400-character assessment."""
        started = self.now - dt.timedelta(minutes=self.rng.randrange(30, 600))
        return {
            "patient_id": patient_id,
            "kind": "home_visit",
            "started_at": started.isoformat(timespec="seconds"),
            "assessment": self.text(380),
        }

    def vitals(self, patient_id):
        """The fields of an observation (vitals) taken at the visit."""
        return {
            "patient_id": patient_id,
            "measured_at": (self.now - dt.timedelta(minutes=self.rng.randrange(5, 600))).isoformat(
                timespec="seconds"),
            "resp_rate": self.rng.randrange(12, 28),
            "spo2": self.rng.randrange(88, 100),
            "supplemental_o2": self.rng.random() < 0.1,
            "temperature": round(self.rng.uniform(36.0, 39.5), 1),
            "systolic_bp": self.rng.randrange(90, 170),
            "pulse": self.rng.randrange(55, 125),
            "consciousness": self.rng.choice("AAAAAC"),
        }

    def visit_with_vitals(self, patient_id):
        """``(visit id, visit fields, observation id, observation fields)`` of one documented visit."""
        return self.uuid(), self.visit(patient_id), self.uuid(), self.vitals(patient_id)


def as_one_row(visit_id, visit, vitals):
    """A documented visit as one JSON-ready row: the visit with its vitals nested (the ceiling's row)."""
    return {"id": visit_id, **visit, "vitals": {k: v for k, v in vitals.items() if k != "patient_id"}}


class Editor:
    """Realistic edits of shared records by one laptop's user: the kind that conflicts between laptops.

    ``shared`` holds the ids every laptop knows: ``patients``, ``care_plans``
    and ``medications`` (one each per patient). Patients' contact fields are
    last writer wins; care plan text and medication doses keep both and raise
    conflicts, which doctors resolve; vitals are appended; doctors document
    their own visits.
    """

    def __init__(self, work, role, shared):
        self.work, self.rng, self.role, self.shared = work, work.rng, role, shared
        self.own_visits = []

    def edit(self, replica):
        """Make one change on ``replica`` (it may be refused by a rule: the caller counts that).

        ``shared`` may be replaced by another set while laptops work (the soak's new
        patients): until this replica has synced the new set's patients, there is
        nothing to edit and nothing is changed (None).
        """
        rng, work, shared = self.rng, self.work, self.shared
        kinds = ["contact", "contact", "care_plan", "vitals", "warning"]
        if self.role == "doctor":
            kinds += ["dose", "dose", "visit", "visit", "resolve"]
        kind = rng.choice(kinds)
        index = rng.randrange(len(shared["patients"]))
        patient = shared["patients"][index]
        if replica.local("patient", patient) is None:
            return None
        if kind == "contact":
            field = rng.choice(("phone", "address", "access_notes"))
            value = {"phone": f"035-{rng.randrange(100000, 999999)}", "address": f"Testgatan {rng.randrange(1, 300)}",
                     "access_notes": "TESTDATA: " + work.text(40)}[field]
            return replica.write("patient", patient, {field: value})
        if kind == "care_plan":
            return replica.write("care_plan", shared["care_plans"][index], {"content": work.text(120)})
        if kind == "vitals":
            return replica.write("observation", work.uuid(), work.vitals(patient))
        if kind == "warning":
            return replica.write("warning", work.uuid(), {
                "patient_id": patient, "kind": rng.choice(("allergy", "condition")), "text": work.text(30),
                "severity": rng.choice(("low", "high")), "active": True})
        if kind == "dose":
            return replica.write("medication", shared["medications"][index],
                                 {"dose": f"{rng.randrange(1, 4)} tablett(er) x {rng.randrange(1, 4)}"})
        if kind == "visit":
            if self.own_visits and rng.random() < 0.5:
                return replica.write("visit", rng.choice(self.own_visits), {"plan": work.text(80)})
            visit_id = work.uuid()
            self.own_visits.append(visit_id)
            return replica.write("visit", visit_id, work.visit(patient))
        # Conflicts of the patients at hand: earlier sets' records stay as they were left, so no record's
        # state grows for the whole run (the soak's flat memory needs the records' growth to end too).
        at_hand = {*shared["patients"], *shared["care_plans"], *shared["medications"]}
        conflicts = [c for c in replica.conflicts()
                     if c["record_type"] in ("care_plan", "medication", "patient") and c["record_id"] in at_hand]
        if not conflicts:
            return replica.write("care_plan", shared["care_plans"][index], {"content": work.text(120)})
        conflict = rng.choice(conflicts)
        value = rng.choice(conflict["values"])["value"]
        return replica.write(conflict["record_type"], conflict["record_id"], {conflict["field"]: value},
                             resolves=[conflict["id"]])


def shared_records(replica, work, municipality, patients=10):
    """Create the shared patients with a care plan and a medication each on a doctor's laptop; return the ids."""
    shared = {"patients": [], "care_plans": [], "medications": []}
    with replica.transaction():
        for _ in range(patients):
            patient = work.uuid()
            replica.write("patient", patient, work.patient(municipality))
            care_plan, medication = work.uuid(), work.uuid()
            replica.write("care_plan", care_plan, {"patient_id": patient, "kind": "care_plan",
                                                   "content": work.text(120), "status": "planned"})
            replica.write("medication", medication, {"patient_id": patient, "drug": "Paracetamol",
                                                     "strength": "500 mg", "dose": "1 tablett x 3",
                                                     "route": "oral", "status": "active"})
            shared["patients"].append(patient)
            shared["care_plans"].append(care_plan)
            shared["medications"].append(medication)
    return shared
