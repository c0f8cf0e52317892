"""Realistic records for the trials: home visits with a Swedish assessment, and their vitals.

The words come, drawn with a seeded generator, from the shared vocabulary of
clinical word forms (``<repo>/../shared/data/vocabulary-sv.txt``, or the file
named by ``HEMSYNC_VOCABULARY``). A visit and its vitals are together about
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

__all__ = ["vocabulary", "Workload", "VOCABULARY_ENV", "record_json", "as_one_row"]

VOCABULARY_ENV = "HEMSYNC_VOCABULARY"
DEFAULT_VOCABULARY = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data" / "vocabulary-sv.txt"


@functools.cache
def vocabulary(path=None):
    """The word forms, one a line (``HEMSYNC_VOCABULARY`` or ../shared/data/vocabulary-sv.txt)."""
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
