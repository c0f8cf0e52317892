"""The region's follow-up figures (DOMAIN.md "Follow-up the region asks for"), each defined once.

:func:`figures` computes every figure of one calendar month (Swedish local
time) for one municipality, or the whole region, from a :class:`Snapshot`. Each
figure is ``{"value": ..., "counts": {...}}``: the counts it was computed from,
so a reader can check it. A figure that cannot be measured says why in
``reason`` with a ``value`` of None, and a month without any data for the
municipality says "no data" for every figure: never zeros that look like
measurements. Figures name no patient.

Decisions where the table is terse (taken here, once):

- a request "reached on_site in the month" by the time its ``on_site`` step was
  recorded; a request that skipped ``on_site`` never reached it;
- the 90th percentile is the nearest rank (the smallest value with at least 90 %
  of the values at or below it), the median the middle value (the mean of the
  two middle ones); both in minutes, rounded to one decimal;
- a visit is in the month of its ``started_at`` (else its ``signed_at``); a
  doctor visit (readmission split, continuity) is a home visit or round item
  with a doctor, not a phone consult;
- a stay is unplanned unless it says ``planned: true`` (an unknown stay counts
  as a readmission: the safe side for a measure of avoidable care); "1–30 days
  after" counts Swedish calendar days from the discharge date to the admission
  date;
- an index stay is of a patient in home care (:func:`in_home_care`) as the
  patient was recorded at the discharge;
- a SÄBO resident "died" when a doctor documented it (a visit with outcome
  ``died``) by the month's end; she leaves both sides of the share;
- an admission "reached arrived in the month" by the time that step was recorded;
- an event counts for the municipality the patient belonged to when it happened;
  a month "has data" when any event the figures count happened in it there.
"""

import math
import statistics

from ..records.visit_request import URGENCIES
from ..records.visit import OUTCOMES
from .calendar import Month, parse_time
from .patients import in_home_care, is_sabo
from .snapshot import is_doctor_visit, received_time, visit_time

__all__ = ["TYPES", "FIGURES", "SHARES", "NO_DATA", "NAMED_DOCTOR_TARGET", "READMISSION_DAYS", "VISIT_AFTER_DISCHARGE_DAYS",
           "CONTINUITY_MONTHS", "CONVERSATIONS", "figures", "has_data", "died_by"]

#: The record types the figures read.
TYPES = ("patient", "visit_request", "visit", "hospital_stay", "admission", "medication_review", "care_plan")
#: The keys of DOMAIN.md's table, in its order.
FIGURES = ("acute_visits", "minutes_to_on_site", "outcomes", "readmissions_30d", "named_doctor_share_sabo",
           "continuity_upc", "named_doctor_visit_share", "medication_reviews_done", "breakpoint_conversations_done",
           "enrollment_conversations_done", "sips_done", "direct_admissions")
#: The figures whose values (or each part of them) are shares of one, shown as percent.
SHARES = frozenset({"outcomes", "readmissions_30d", "named_doctor_share_sabo", "continuity_upc",
                    "named_doctor_visit_share"})
#: The region's target for the named-doctor share at SÄBO.
NAMED_DOCTOR_TARGET = 0.80
#: A readmission: an unplanned stay admitted this many days after a discharge (inclusive).
READMISSION_DAYS = (1, 30)
#: A doctor visit this many days after a discharge (inclusive) splits the readmission rate.
VISIT_AFTER_DISCHARGE_DAYS = 7
#: Continuity looks at the visits of the twelve months ending with the month.
CONTINUITY_MONTHS = 12
#: Why a measured figure has no value although the month has data (the pages translate these).
NO_DATA = {
    "on_site": "no request reached on_site in the month",
    "outcomes": "no signed home visit with an outcome in the month",
    "stays": "no hospital stay discharged in the month",
    "sabo": "no SÄBO resident at the end of the month",
    "continuity": "no patient with two doctor visits in the twelve months",
}
#: The care_plan kinds counted as done, by figure.
CONVERSATIONS = {"breakpoint_conversations_done": "breakpoint_conversation",
                 "enrollment_conversations_done": "enrollment_conversation", "sips_done": "sip"}


def figures(snapshot, month, municipality=None):
    """Every figure of ``month`` (a :class:`Month` or ``YYYY-MM``) for ``municipality`` (None: the region)."""
    month = month if isinstance(month, Month) else Month.parse(month, snapshot.zone)
    where = _Where(snapshot, municipality)
    report = {"period": month.key, "municipality": municipality}
    if not has_data(snapshot, month, municipality):
        reason = f"no data for {municipality or 'the region'} in {month.key}"
        report.update({key: {"value": None, "reason": reason, "counts": {}} for key in FIGURES})
        return report
    report["acute_visits"] = _acute_visits(snapshot, month, where)
    report["minutes_to_on_site"] = _minutes_to_on_site(snapshot, month, where)
    report["outcomes"] = _outcomes(snapshot, month, where)
    report["readmissions_30d"] = _readmissions(snapshot, month, where)
    report["named_doctor_share_sabo"] = _named_doctor_share(snapshot, month, where)
    report["continuity_upc"], report["named_doctor_visit_share"] = _continuity(snapshot, month, where)
    done = _in_month(snapshot, "done", month, where)
    report["medication_reviews_done"] = _count([r for r in done if "kind" not in r], "reviews_done_in_month")
    for key, kind in CONVERSATIONS.items():
        report[key] = _count([r for r in done if r.get("kind") == kind], "care_plans_done_in_month")
    report["direct_admissions"] = _count(_in_month(snapshot, "arrived", month, where), "admissions_arrived")
    return report


def has_data(snapshot, month, municipality=None):
    """True when anything the figures count happened in the month in the municipality (or the region)."""
    month = month if isinstance(month, Month) else Month.parse(month, snapshot.zone)
    where = _Where(snapshot, municipality)
    # The events the figures count first (they are indexed anyway); receipts and admissions last.
    return any(where.holds(record["patient_id"], moment)
               for name in ("visit", "on_site", "discharged", "done", "arrived", "received", "admitted")
               for moment, record in snapshot.events(name).get(month.key, ()))


def died_by(snapshot, moment):
    """The ids of patients whose death a doctor documented (a visit with outcome ``died``) by ``moment``."""
    return {v["patient_id"] for at, v in snapshot.events("died") if at <= moment}


# --- the figures ------------------------------------------------------------------

def _acute_visits(snapshot, month, where):
    reached = [r for r in _in_month(snapshot, "on_site", month, where) if r.get("urgency") == "acute"]
    return _count(reached, "acute_requests_on_site")


def _minutes_to_on_site(snapshot, month, where):
    value, counts = {}, {}
    reached = [(at, r) for at, r in snapshot.events("on_site").get(month.key, ())
               if received_time(r) and where.holds(r["patient_id"], at)]
    for urgency in URGENCIES:
        minutes = sorted((at - received_time(r)).total_seconds() / 60 for at, r in reached
                         if r.get("urgency") == urgency)
        counts[urgency] = len(minutes)
        value[urgency] = ({"median": round(statistics.median(minutes), 1), "p90": round(_nearest_rank(minutes, 0.9), 1)}
                          if minutes else None)
    return _measured(value if any(counts.values()) else None, counts, NO_DATA["on_site"])


def _outcomes(snapshot, month, where):
    signed = [v for v in _in_month(snapshot, "visit", month, where)
              if v.get("kind") == "home_visit" and v.get("signed_at")]
    by_outcome = {name: sum(1 for v in signed if v.get("outcome") == name) for name in OUTCOMES}
    with_outcome = sum(by_outcome.values())
    counts = {"signed_home_visits": len(signed), "with_outcome": with_outcome,
              "without_outcome": len(signed) - with_outcome, **by_outcome}
    value = {name: n / with_outcome for name, n in by_outcome.items()} if with_outcome else None
    return _measured(value, counts, NO_DATA["outcomes"])


def _readmissions(snapshot, month, where):
    stays_of, visits_of = snapshot.by_patient("stays"), snapshot.by_patient("visits")
    low, high = READMISSION_DAYS
    groups = {"all": [0, 0], "visited_within_7d": [0, 0], "not_visited_within_7d": [0, 0]}
    for discharged, stay in snapshot.events("discharged").get(month.key, ()):
        patient = snapshot.patients.get(stay["patient_id"])
        if not where.holds(stay["patient_id"], discharged) or patient is None \
                or not in_home_care(patient.at(discharged)):
            continue
        day = snapshot.local_date(discharged)
        readmitted = any(other is not stay and other.get("planned") is not True
                         and parse_time(other.get("admitted_at")) is not None
                         and low <= (snapshot.local_date(other["admitted_at"]) - day).days <= high
                         for other in stays_of[stay["patient_id"]])
        visited = any(is_doctor_visit(v)
                      and 0 <= (snapshot.local_date(visit_time(v)) - day).days <= VISIT_AFTER_DISCHARGE_DAYS
                      for v in visits_of.get(stay["patient_id"], ()))
        for name in ("all", "visited_within_7d" if visited else "not_visited_within_7d"):
            groups[name][0] += 1
            groups[name][1] += readmitted
    value = {name: (readmitted / index if index else None) for name, (index, readmitted) in groups.items()}
    counts = {f"{name}_{part}": n for name, pair in groups.items()
              for part, n in zip(("index_stays", "readmitted"), pair)}
    counts = {"index_stays": counts.pop("all_index_stays"), "readmitted": counts.pop("all_readmitted"), **counts}
    return _measured(value if groups["all"][0] else None, counts, NO_DATA["stays"])


def _named_doctor_share(snapshot, month, where):
    end = month.end
    dead = died_by(snapshot, end)
    residents, named = 0, 0
    for patient in snapshot.patients.values():
        if patient.value_at("care_setting", end) != "sabo" or patient.id in dead:
            continue
        moved_in = snapshot.local_date(patient.value_at("moved_in_at", end))
        if (moved_in is not None and moved_in > month.last) or not patient.known_by(end, snapshot.zone) \
                or not is_sabo(patient.at(end)) or not where.holds(patient.id, end):
            continue
        residents += 1
        named += bool(patient.value_at("named_doctor_id", end))
    figure = _measured(named / residents if residents else None,
                       {"sabo_residents": residents, "with_named_doctor": named},
                       NO_DATA["sabo"])
    return {**figure, "target": NAMED_DOCTOR_TARGET}


def _continuity(snapshot, month, where):
    end = month.end
    visits = {}
    for back in range(CONTINUITY_MONTHS):
        for _, visit in snapshot.events("visit").get(month.shifted(-back).key, ()):
            if is_doctor_visit(visit):
                visits.setdefault(visit["patient_id"], []).append(visit["doctor_id"])
    upcs, named_visits, total = [], 0, 0
    for patient_id, doctors in sorted(visits.items()):
        if len(doctors) < 2 or not where.holds(patient_id, end) or patient_id not in snapshot.patients:
            continue
        upcs.append(max(doctors.count(d) for d in set(doctors)) / len(doctors))
        named = snapshot.patients[patient_id].value_at("named_doctor_id", end)
        named_visits += doctors.count(named) if named else 0
        total += len(doctors)
    counts = {"patients": len(upcs), "visits": total}
    upc = _measured(sum(upcs) / len(upcs) if upcs else None, counts,
                    NO_DATA["continuity"])
    share = _measured(named_visits / total if total else None, {**counts, "by_named_doctor": named_visits},
                      NO_DATA["continuity"])
    return upc, share


# --- helpers --------------------------------------------------------------------


class _Where:
    """Which patients an event counts for: those of the municipality when it happened (all, for the region)."""

    def __init__(self, snapshot, municipality):
        self.snapshot, self.municipality = snapshot, municipality

    def holds(self, patient_id, moment):
        if self.municipality is None:
            return True
        patient = self.snapshot.patients.get(patient_id)
        place = patient.municipality_at(moment) if patient else None
        return place is not None and place.casefold() == self.municipality.casefold()


def _in_month(snapshot, name, month, where):
    """The records of the events ``name`` in the month, of patients of the municipality then."""
    return [record for moment, record in snapshot.events(name).get(month.key, ())
            if where.holds(record["patient_id"], moment)]


def _count(found, name):
    return {"value": len(found), "counts": {name: len(found)}}


def _nearest_rank(values, share):
    return values[max(0, math.ceil(share * len(values)) - 1)]


def _measured(value, counts, reason):
    return {"value": value, "counts": counts} if value is not None else {"value": None, "reason": reason,
                                                                           "counts": counts}
