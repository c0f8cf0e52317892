"""The records the follow-up reads, as of a moment: patients with their past, and every event's time.

A :class:`Snapshot` is built from merge states (the server's store, the laptop's
replica, a test's own). Events are placed by their clinical time (a visit's
``started_at``, a stay's ``discharged_at``) or, where no clinical time exists,
by the time the step was recorded (the HLC of the write: a request's ``on_site``,
an admission's ``arrived``). A patient's fields are read as they were at a
moment from the record's writes (its history keeps every earlier value), so a
patient who moved counts where she lived when the event happened.
"""

import bisect
import dataclasses
import datetime as dt

from ..clock import Hlc
from ..merge import view
from ..rules import write_key
from .calendar import ZONE, local_date, parse_time

__all__ = ["PatientPast", "Snapshot", "visit_time", "is_doctor_visit", "DOCTOR_VISIT_KINDS"]

#: Visits in which a doctor saw the patient (a phone consult is not a visit).
DOCTOR_VISIT_KINDS = ("home_visit", "round_item")
#: Types the follow-up reads; a snapshot ignores every other.
TYPES = ("patient", "visit_request", "visit", "hospital_stay", "admission", "medication", "medication_review",
         "care_plan")


def _time(write):
    return Hlc.parse(write["hlc"]).time


class PatientPast:
    """A patient record and its past: the values its fields held at any moment.

    A field shows, at a moment, the last write (by HLC) made by then. Before the
    record existed (entered after the fact) it shows what it was created with,
    so a patient entered late is placed where she was first recorded. Being
    entered in error is read from the record as it is now: it was never true.
    """

    def __init__(self, state):
        self.id = state["id"]
        self.now = view(state)
        writes = {}
        for path, write in state["fields"].items():
            writes.setdefault(path, []).append(write)
        for write in state["history"]:
            writes.setdefault(write["field"], []).append(write)
        for conflict in state["conflicts"]:
            if conflict.get("field") in state["fields"]:
                writes[conflict["field"]].extend(v for v in conflict["values"] if "hlc" in v and "version" in v)
        self._fields = {}
        for path, found in writes.items():
            unique = sorted({w["version"]: w for w in found}.values(), key=write_key)
            self._fields[path] = ([_time(w) for w in unique], [w["value"] for w in unique])
        firsts = [times[0] for times, _ in self._fields.values()]
        self.created = min(firsts) if firsts else None

    def value_at(self, path, moment):
        """The value of ``path`` at ``moment`` (aware), or None when it had none."""
        found = self._fields.get(path)
        if found is None:
            return None
        times, values = found
        if self.created is not None and moment < self.created:
            return values[0] if times[0] == self.created else None
        # Writes come sorted by HLC, so their times are sorted too.
        index = bisect.bisect_right(times, moment)
        return values[index - 1] if index else None

    def at(self, moment):
        """The patient as a person would have seen it at ``moment`` (entered in error as it is now)."""
        seen = {path: self.value_at(path, moment) for path in self._fields}
        return {"id": self.id, **seen, "entered_in_error": bool(self.now.get("entered_in_error"))}

    def known_by(self, moment, zone=ZONE):
        """True when the patient was in care by ``moment``: recorded by then, or enrolled or moved in by then."""
        if self.created is not None and self.created <= moment:
            return True
        day = moment.astimezone(zone).date()
        return any(local_date(self.now.get(name), zone) is not None and local_date(self.now.get(name), zone) < day
                   for name in ("enrolled_at", "moved_in_at"))

    def municipality_at(self, moment):
        """Where the patient belonged at ``moment``."""
        return self.value_at("municipality", moment)


def visit_time(visit):
    """When a visit happened: its start, else its signature; None when it says neither."""
    return parse_time(visit.get("started_at")) or parse_time(visit.get("signed_at"))


def is_doctor_visit(visit):
    """A visit a doctor made to the patient, not entered in error, with a time."""
    return (visit.get("kind") in DOCTOR_VISIT_KINDS and bool(visit.get("doctor_id"))
            and not visit.get("entered_in_error") and visit_time(visit) is not None)


@dataclasses.dataclass
class Snapshot:
    """What the follow-up reads: patients with their past, and the other records as they are now.

    ``arrived_at`` holds, per admission id, when its ``arrived`` step was recorded.
    """

    patients: dict = dataclasses.field(default_factory=dict)
    requests: list = dataclasses.field(default_factory=list)
    visits: list = dataclasses.field(default_factory=list)
    stays: list = dataclasses.field(default_factory=list)
    admissions: list = dataclasses.field(default_factory=list)
    medications: list = dataclasses.field(default_factory=list)
    reviews: list = dataclasses.field(default_factory=list)
    care_plans: list = dataclasses.field(default_factory=list)
    arrived_at: dict = dataclasses.field(default_factory=dict)
    zone: object = ZONE

    _LISTS = {"visit_request": "requests", "visit": "visits", "hospital_stay": "stays", "admission": "admissions",
              "medication": "medications", "medication_review": "reviews", "care_plan": "care_plans"}

    @classmethod
    def of(cls, states, zone=ZONE):
        """A snapshot of these merge states (any types; those the follow-up does not read are skipped)."""
        snapshot = cls(zone=zone)
        for state in states:
            snapshot.add(state)
        return snapshot

    def add(self, state):
        """Add one merge state."""
        kind = state["type"]
        if kind == "patient":
            self.patients[state["id"]] = PatientPast(state)
            return
        name = self._LISTS.get(kind)
        if name is None:
            return
        record = view(state)
        if record.get("entered_in_error"):
            return
        getattr(self, name).append(record)
        status = state["fields"].get("status")
        if kind == "admission" and status is not None and status["value"] == "arrived":
            self.arrived_at[state["id"]] = _time(status)

    def by_patient(self, name):
        """One of the record lists (``"visits"``, ``"stays"``, ...) grouped by patient id (computed once)."""
        cache = self.__dict__.setdefault("_grouped", {})
        if name not in cache:
            grouped = {}
            for record in getattr(self, name):
                grouped.setdefault(record["patient_id"], []).append(record)
            cache[name] = grouped
        return cache[name]

    def day_end(self, day):
        """The moment a local calendar day ends (00:00 of the next day), aware UTC."""
        return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=self.zone).astimezone(
            dt.timezone.utc)

    def local_date(self, value):
        """The local calendar date of a time or date."""
        return local_date(value, self.zone)
