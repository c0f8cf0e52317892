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
from ..records.visit_request import status_writes
from ..rules import write_key
from .calendar import ZONE, local_date, parse_time

__all__ = ["PatientPast", "Snapshot", "visit_time", "received_time", "is_doctor_visit", "DOCTOR_VISIT_KINDS", "TYPES",
           "VALUE_FIELDS"]

#: Visits in which a doctor saw the patient (a phone consult is not a visit).
DOCTOR_VISIT_KINDS = ("home_visit", "round_item")
#: Types the follow-up reads (the figures and the due lists each name theirs); a snapshot ignores every other.
TYPES = ("patient", "visit_request", "visit", "hospital_stay", "admission", "medication", "medication_review",
         "care_plan")

#: What the follow-up reads of the types it needs no write times or derived views of: a store may hand
#: these over as values alone (``Store.field_values``), the cheap way a region's year is read.
VALUE_FIELDS = {
    "visit": ("patient_id", "doctor_id", "kind", "started_at", "signed_at", "outcome", "entered_in_error"),
    "hospital_stay": ("patient_id", "admitted_at", "discharged_at", "planned", "entered_in_error"),
    "medication": ("patient_id", "status", "entered_in_error"),
    "medication_review": ("patient_id", "date", "status", "entered_in_error"),
    "care_plan": ("patient_id", "kind", "date", "status", "entered_in_error"),
}


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
        # Each field's past is sorted when first asked for: most figures read a few fields of a patient.
        self._writes, self._fields = writes, {}
        first = min((w["hlc"] for found in writes.values() for w in found), default=None)
        self.created = Hlc.parse(first).time if first else None

    def _past(self, path):
        found = self._fields.get(path)
        if found is None and path in self._writes:
            unique = sorted({w["version"]: w for w in self._writes[path]}.values(), key=write_key)
            found = self._fields[path] = ([_time(w) for w in unique], [w["value"] for w in unique])
        return found

    def value_at(self, path, moment):
        """The value of ``path`` at ``moment`` (aware), or None when it had none."""
        found = self._past(path)
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
        seen = {path: self.value_at(path, moment) for path in self._writes}
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


def received_time(request):
    """When the server received a visit request."""
    return parse_time(request.get("received_at"))


def is_doctor_visit(visit):
    """A visit a doctor made to the patient, not entered in error, with a time."""
    return (visit.get("kind") in DOCTOR_VISIT_KINDS and bool(visit.get("doctor_id"))
            and not visit.get("entered_in_error") and visit_time(visit) is not None)


@dataclasses.dataclass
class Snapshot:
    """What the follow-up reads: patients with their past, and the other records as they are now.

    ``arrived_at`` holds, per admission id, when its ``arrived`` step was recorded; ``on_site_at``,
    per request id, when its first ``on_site`` step was.
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
    on_site_at: dict = dataclasses.field(default_factory=dict)
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
        if kind not in self._LISTS:
            return
        if kind == "visit_request":
            # Its step times, not its status history's text: the same steps, read once.
            self.add_values(kind, {"id": state["id"], **{p: w["value"] for p, w in state["fields"].items()}})
            on_site = next((w for w in status_writes(state) if w["value"] == "on_site"), None)
            if on_site is not None:
                self.on_site_at[state["id"]] = _time(on_site)
            return
        self.add_values(kind, view(state))
        status = state["fields"].get("status")
        if kind == "admission" and status is not None and status["value"] == "arrived":
            self.arrived_at[state["id"]] = _time(status)

    def add_values(self, kind, record):
        """Add one record as a person sees it (``{"id", field: value}``); one entered in error counts nowhere."""
        if not record.get("entered_in_error"):
            getattr(self, self._LISTS[kind]).append(record)

    def events(self, name):
        """Events of one kind by local month (``YYYY-MM``): ``[(moment, record), ...]`` each, computed once.

        The kinds, each placed by its time: ``visit`` (:func:`visit_time`),
        ``on_site`` and ``received`` (a request's step and receipt), ``admitted``
        and ``discharged`` (a stay's), ``arrived`` (an admission's), ``done`` (a
        review or conversation marked done, at the end of its ``date``). ``died``
        (a visit with outcome ``died``) is one list over all months.
        """
        cache = self.__dict__.setdefault("_events", {})
        if name == "died" and name not in cache:
            cache[name] = [(at, v) for events in self.events("visit").values() for at, v in events
                           if v.get("outcome") == "died"]
        if name not in cache:
            months = {}
            for moment, record in self._timed(name):
                if moment is not None:
                    local = moment.astimezone(self.zone)
                    months.setdefault(f"{local.year:04d}-{local.month:02d}", []).append((moment, record))
            cache[name] = months
        return cache[name]

    def _timed(self, name):
        if name == "visit":
            return ((visit_time(v), v) for v in self.visits)
        if name == "on_site":
            return ((self.on_site_at.get(r["id"]), r) for r in self.requests)
        if name == "received":
            return ((received_time(r), r) for r in self.requests)
        if name in ("admitted", "discharged"):
            return ((parse_time(s.get(f"{name}_at")), s) for s in self.stays)
        if name == "arrived":
            return ((self.arrived_at.get(a["id"]), a) for a in self.admissions)
        if name == "done":
            return ((self._date_end(r), r) for r in [*self.reviews, *self.care_plans] if r.get("status") == "done")
        raise ValueError(f"no events called {name!r}")

    def _date_end(self, record):
        day = local_date(record.get("date"), self.zone)
        return self.day_end(day) - dt.timedelta(microseconds=1) if day else None

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
