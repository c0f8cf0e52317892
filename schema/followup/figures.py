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
  two middle ones); both in whole minutes, rounded to one decimal;
- a visit is in the month of its ``started_at`` (else its ``signed_at``); a
  doctor visit (readmission split, continuity) is a home visit or round item
  with a doctor, not a phone consult;
- a stay is unplanned unless it says ``planned: true`` (an unknown stay counts
  as a readmission: the safe side for a measure of avoidable care); "1–30 days
  after" counts Swedish calendar days from the discharge date to the admission
  date;
- an event counts for the municipality the patient belonged to when it happened.
"""

import datetime as dt
import math
import statistics

from ..records.visit_request import URGENCIES
from ..records.visit import OUTCOMES
from .calendar import Month, parse_time
from .patients import in_home_care, is_sabo
from .snapshot import is_doctor_visit, visit_time

__all__ = ["FIGURES", "NAMED_DOCTOR_TARGET", "READMISSION_DAYS", "VISIT_AFTER_DISCHARGE_DAYS", "CONTINUITY_MONTHS",
           "CONVERSATIONS", "figures", "has_data", "died_by"]

#: The keys of DOMAIN.md's table, in its order.
FIGURES = ("acute_visits", "minutes_to_on_site", "outcomes", "readmissions_30d", "named_doctor_share_sabo",
           "continuity_upc", "named_doctor_visit_share", "medication_reviews_done", "breakpoint_conversations_done",
           "enrollment_conversations_done", "sips_done", "direct_admissions")
#: The region's target for the named-doctor share at SÄBO.
NAMED_DOCTOR_TARGET = 0.80
#: A readmission: an unplanned stay admitted this many days after a discharge (inclusive).
READMISSION_DAYS = (1, 30)
#: A doctor visit this many days after a discharge (inclusive) splits the readmission rate.
VISIT_AFTER_DISCHARGE_DAYS = 7
#: Continuity looks at the visits of the twelve months ending with the month.
CONTINUITY_MONTHS = 12
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
    report["medication_reviews_done"] = _done(snapshot.reviews, month, where, "reviews")
    for key, kind in CONVERSATIONS.items():
        report[key] = _done([p for p in snapshot.care_plans if p.get("kind") == kind], month, where, "care_plans")
    report["direct_admissions"] = _direct_admissions(snapshot, month, where)
    return report


def has_data(snapshot, month, municipality=None):
    """True when anything the figures count happened in the month in the municipality (or the region)."""
    where = _Where(snapshot, municipality)
    events = [*((r["patient_id"], t) for r in snapshot.requests for t in [_received(r)] if t),
              *((v["patient_id"], visit_time(v)) for v in snapshot.visits if visit_time(v)),
              *((s["patient_id"], t) for s in snapshot.stays for t in (_parsed(s, "admitted_at"),
                                                                         _parsed(s, "discharged_at")) if t),
              *((a["patient_id"], snapshot.arrived_at[a["id"]]) for a in snapshot.admissions
                if a["id"] in snapshot.arrived_at),
              *((r["patient_id"], snapshot.day_end(d) - _EPSILON) for r in [*snapshot.reviews, *snapshot.care_plans]
                if r.get("status") == "done" for d in [snapshot.local_date(r.get("date"))] if d)]
    return any(month.holds(moment) and where.holds(patient_id, moment) for patient_id, moment in events)


def died_by(snapshot, moment):
    """The ids of patients whose death a doctor documented (a visit with outcome ``died``) by ``moment``."""
    return {v["patient_id"] for v in snapshot.visits
            if v.get("outcome") == "died" and visit_time(v) is not None and visit_time(v) <= moment}


# --- the figures ------------------------------------------------------------------

def _acute_visits(snapshot, month, where):
    reached = [r for r in snapshot.requests if r.get("urgency") == "acute" and _in(month, where, r, _on_site(r))]
    return {"value": len(reached), "counts": {"acute_requests_on_site": len(reached)}}


def _minutes_to_on_site(snapshot, month, where):
    value, counts = {}, {}
    for urgency in URGENCIES:
        minutes = sorted((_on_site(r) - _received(r)).total_seconds() / 60 for r in snapshot.requests
                         if r.get("urgency") == urgency and _received(r) and _in(month, where, r, _on_site(r)))
        counts[urgency] = len(minutes)
        value[urgency] = ({"median": round(statistics.median(minutes), 1), "p90": round(_nearest_rank(minutes, 0.9), 1)}
                          if minutes else None)
    return _measured(value if any(counts.values()) else None, counts, "no request reached on_site in the month")


def _outcomes(snapshot, month, where):
    signed = [v for v in snapshot.visits if v.get("kind") == "home_visit" and v.get("signed_at")
              and _in(month, where, v, visit_time(v))]
    by_outcome = {name: sum(1 for v in signed if v.get("outcome") == name) for name in OUTCOMES}
    with_outcome = sum(by_outcome.values())
    counts = {"signed_home_visits": len(signed), "with_outcome": with_outcome,
              "without_outcome": len(signed) - with_outcome, **by_outcome}
    value = {name: n / with_outcome for name, n in by_outcome.items()} if with_outcome else None
    return _measured(value, counts, "no signed home visit with an outcome in the month")


def _readmissions(snapshot, month, where):
    stays_of, visits_of = snapshot.by_patient("stays"), snapshot.by_patient("visits")
    low, high = READMISSION_DAYS
    groups = {"all": [0, 0], "visited_within_7d": [0, 0], "not_visited_within_7d": [0, 0]}
    for stay in snapshot.stays:
        discharged = _parsed(stay, "discharged_at")
        if not _in(month, where, stay, discharged):
            continue
        patient = snapshot.patients.get(stay["patient_id"])
        if patient is None or not in_home_care(patient.at(discharged)):
            continue
        day = snapshot.local_date(discharged)
        readmitted = any(other is not stay and other.get("planned") is not True
                         and _parsed(other, "admitted_at") is not None
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
    return _measured(value if groups["all"][0] else None, counts, "no hospital stay discharged in the month")


def _named_doctor_share(snapshot, month, where):
    end = month.end
    dead = died_by(snapshot, end)
    residents = [p.at(end) for p in snapshot.patients.values()
                 if p.known_by(end, snapshot.zone) and p.id not in dead and where.holds(p.id, end)]
    residents = [p for p in residents if is_sabo(p)
                 and not (snapshot.local_date(p.get("moved_in_at")) or month.first) > month.last]
    named = sum(1 for p in residents if p.get("named_doctor_id"))
    figure = _measured(named / len(residents) if residents else None,
                       {"sabo_residents": len(residents), "with_named_doctor": named},
                       "no SÄBO resident at the end of the month")
    return {**figure, "target": NAMED_DOCTOR_TARGET}


def _continuity(snapshot, month, where):
    first, end = month.shifted(1 - CONTINUITY_MONTHS).start, month.end
    visits = {}
    for visit in snapshot.visits:
        if is_doctor_visit(visit) and first <= visit_time(visit) < end:
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
                    "no patient with two doctor visits in the twelve months")
    share = _measured(named_visits / total if total else None, {**counts, "by_named_doctor": named_visits},
                      "no patient with two doctor visits in the twelve months")
    return upc, share


def _done(found, month, where, name):
    done = [r for r in found if r.get("status") == "done" and _on_day(month, where, r)]
    return {"value": len(done), "counts": {f"{name}_done_in_month": len(done)}}


def _direct_admissions(snapshot, month, where):
    arrived = [a for a in snapshot.admissions if _in(month, where, a, snapshot.arrived_at.get(a["id"]))]
    return {"value": len(arrived), "counts": {"admissions_arrived": len(arrived)}}


# --- helpers --------------------------------------------------------------------

_EPSILON = dt.timedelta(microseconds=1)


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


def _in(month, where, record, moment):
    return moment is not None and month.holds(moment) and where.holds(record["patient_id"], moment)


def _on_day(month, where, record):
    day = where.snapshot.local_date(record.get("date"))
    return day is not None and month.holds(day) and where.holds(record["patient_id"],
                                                                where.snapshot.day_end(day) - _EPSILON)


def _parsed(record, name):
    return parse_time(record.get(name))


def _received(request):
    return _parsed(request, "received_at")


def _on_site(request):
    steps = [parse_time(s.get("at")) for s in request.get("status_history") or () if s.get("status") == "on_site"]
    steps = [s for s in steps if s is not None]
    return min(steps) if steps else None


def _nearest_rank(values, share):
    return values[max(0, math.ceil(share * len(values)) - 1)]


def _measured(value, counts, reason):
    return {"value": value, "counts": counts} if value is not None else {"value": None, "reason": reason,
                                                                           "counts": counts}
