"""The due lists of DOMAIN.md: patients for whom something is due, each list defined once.

:func:`due_lists` takes a :class:`Snapshot` and the day (Swedish local date) and
returns, per list, one entry per patient: the patient's id, name and
municipality, since when it is due, and why: a ``reason`` code with its
``facts`` (for a page to say in its language) and ``why``, the same in English
words (for the command line). The lists name patients: whoever
shows them (the server's CLI and pages, the laptop) shows only patients in the
viewer's scope and audits the showing as a read. Patients entered in error
and those whose death a doctor documented are never listed.

Decisions where DOMAIN.md is terse: "the last 12 months" are the days after the
same date a year before; a medication review counts from its ``date``; the
discharge list looks back :data:`DISCHARGE_LOOKBACK_DAYS` days (a follow-up
missed a week ago is still worth a call) and a planned follow-up is any visit
request received since the discharge that was not cancelled.
"""

import datetime as dt

from .calendar import local_date
from .figures import VISIT_AFTER_DISCHARGE_DAYS, died_by
from .patients import age_on, in_home_care, is_sabo
from .snapshot import is_doctor_visit, received_time, visit_time

__all__ = ["TYPES", "LISTS", "REASONS", "MEDICATION_REVIEW_AGE", "MEDICATION_REVIEW_DRUGS", "DISCHARGE_LOOKBACK_DAYS",
           "due_lists"]

#: The record types the due lists read.
TYPES = ("patient", "visit_request", "visit", "hospital_stay", "medication", "medication_review", "care_plan")
#: Why a patient is on a list, by reason code, in English words (``since`` and the entry's facts fill them in).
REASONS = {
    "no_review_since_start": "aged %(age)s with %(drugs)s active medications; no review done since %(since)s",
    "no_review_in_a_year": "aged %(age)s with %(drugs)s active medications; no review done in the last 12 months",
    "no_named_doctor": "SÄBO resident without a named doctor",
    "no_enrollment_conversation": "moved into SÄBO %(since)s; no enrollment conversation done since",
    "no_breakpoint_conversation": "palliative; no breakpoint conversation done",
    "no_follow_up": "discharged %(since)s; no doctor visit within %(days)s days and no follow-up planned",
}
#: The lists, in the order DOMAIN.md gives them.
LISTS = ("medication_review_due", "sabo_without_named_doctor", "enrollment_conversation_due",
         "breakpoint_conversation_missing", "discharge_without_follow_up")
#: HSLF-FS 2017:37: patients this old or older ...
MEDICATION_REVIEW_AGE = 75
#: ... with at least this many active medications are offered a medication review.
MEDICATION_REVIEW_DRUGS = 5
#: How far back the discharge list looks for discharges without a follow-up.
DISCHARGE_LOOKBACK_DAYS = 30


def due_lists(snapshot, today, patient_ids=None):
    """Every due list on ``today`` (a local date): ``{list: [entry, ...]}``, entries sorted by name.

    ``patient_ids`` limits the lists to these patients (a viewer's scope); None
    means every patient (the server's own use, under the caller's check).
    """
    end = snapshot.day_end(today)
    dead = died_by(snapshot, end)
    patients = {pid: p.now for pid, p in snapshot.patients.items()
                if (patient_ids is None or pid in patient_ids) and pid not in dead and in_home_care(p.now)}
    done = _done_by_patient(snapshot, today)
    found = {name: [] for name in LISTS}
    for pid, patient in patients.items():
        for name, since, reason, facts in _due(snapshot, patient, done.get(pid, {}), today):
            found[name].append({"patient_id": pid, "name": patient.get("name"),
                                "municipality": patient.get("municipality"), "since": since, "reason": reason,
                                "facts": facts, "why": REASONS[reason] % {"since": since, **facts}})
    return {name: sorted(entries, key=lambda e: (e["name"] or "", e["patient_id"])) for name, entries in found.items()}


def _due(snapshot, patient, done, today):
    yield from _medication_review(snapshot, patient, done.get("medication_review", []), today)
    if is_sabo(patient) and not patient.get("named_doctor_id"):
        yield "sabo_without_named_doctor", patient.get("moved_in_at"), "no_named_doctor", {}
    moved_in = local_date(patient.get("moved_in_at"))
    if moved_in is not None and moved_in <= today and not any(
            d >= moved_in for d in done.get("enrollment_conversation", [])):
        yield "enrollment_conversation_due", moved_in.isoformat(), "no_enrollment_conversation", {}
    if patient.get("palliative") and not done.get("breakpoint_conversation"):
        yield "breakpoint_conversation_missing", None, "no_breakpoint_conversation", {}
    yield from _discharge(snapshot, patient, today)


def _medication_review(snapshot, patient, reviews, today):
    age = age_on(patient, today)
    if age is None or age < MEDICATION_REVIEW_AGE:
        return
    active = sum(1 for m in snapshot.by_patient("medications").get(patient["id"], ()) if m.get("status") == "active")
    if active < MEDICATION_REVIEW_DRUGS:
        return
    starts = [d for d in (local_date(patient.get("enrolled_at")), local_date(patient.get("moved_in_at")))
              if d is not None and d <= today]
    start = max(starts) if starts else None
    last = max(reviews) if reviews else None
    facts = {"age": age, "drugs": active}
    if start is not None and (last is None or last < start):
        yield "medication_review_due", start.isoformat(), "no_review_since_start", facts
    elif last is None or last <= _years_after(today, -1):
        yield "medication_review_due", _years_after(last, 1).isoformat() if last else None, "no_review_in_a_year", facts


def _discharge(snapshot, patient, today):
    first = today - dt.timedelta(days=DISCHARGE_LOOKBACK_DAYS)
    stays = snapshot.by_patient("stays").get(patient["id"], ())
    discharges = sorted({d for s in stays for d in [local_date(s.get("discharged_at"))] if d and first <= d <= today})
    patient_discharge = local_date(patient.get("discharged_at"))
    if patient_discharge is not None and first <= patient_discharge <= today:
        discharges = sorted({*discharges, patient_discharge})
    if not discharges:
        return
    day = discharges[-1]
    visited = any(is_doctor_visit(v) and 0 <= (local_date(visit_time(v)) - day).days <= VISIT_AFTER_DISCHARGE_DAYS
                  for v in snapshot.by_patient("visits").get(patient["id"], ()))
    planned = any(r.get("status") != "cancelled" and (local_date(received_time(r)) or dt.date.min) >= day
                  for r in snapshot.by_patient("requests").get(patient["id"], ()))
    if not visited and not planned:
        yield "discharge_without_follow_up", day.isoformat(), "no_follow_up", {"days": VISIT_AFTER_DISCHARGE_DAYS}


def _done_by_patient(snapshot, today):
    done = {}
    for record in [*snapshot.reviews, *snapshot.care_plans]:
        day = local_date(record.get("date"))
        if record.get("status") == "done" and day is not None and day <= today:
            kind = record.get("kind", "medication_review")
            done.setdefault(record["patient_id"], {}).setdefault(kind, []).append(day)
    return done


def _years_after(day, years):
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)
