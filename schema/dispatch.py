"""Dispatch: deadlines, the ordered queue, escalation and doctor suggestions.

Pure functions shared by the server and the laptops: no I/O and no wall clock, so
every function takes the times it needs (``now``, ``received_at``) as arguments.
Records are the plain dicts of the data dictionary, with ISO 8601 times that carry
an offset. Every datetime this module returns is aware and in UTC: one convention
that sorts and compares without surprises; ``QueueEntry.why`` shows Swedish local
time for people.
"""

from dataclasses import dataclass, fields, replace
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

from schema.clock import local_text
from schema.news2 import score

__all__ = [
    "CLOSED",
    "UNACCEPTED",
    "EMERGENCY_ADVICE",
    "DispatchSettings",
    "QueueEntry",
    "Suggestion",
    "DoctorLoad",
    "is_working_day",
    "deadline_for",
    "emergency_reasons",
    "is_out_of_hours",
    "queue_entries",
    "due_for_escalation",
    "suggest_doctors",
    "accepted_load",
    "doctors_on_duty",
]

EMERGENCY_ADVICE = "emergency: consider ambulance (112)"
CLOSED = frozenset({"completed", "cancelled"})
# A request in one of these states has no accepted doctor yet.
UNACCEPTED = frozenset({"requested", "triaged", "assigned"})
ACCEPTED_LOAD = frozenset({"accepted", "en_route", "on_site"})


@dataclass(frozen=True)
class DispatchSettings:
    """Dispatch settings; the server fills them from its HEMSYNC_* settings."""

    timezone: str = "Europe/Stockholm"
    workday_start: time = time(8)
    workday_end: time = time(16)
    working_weekdays: tuple[int, ...] = (0, 1, 2, 3, 4)  # Monday to Friday
    planned_days: int = 7
    risk_step: timedelta = timedelta(minutes=30)
    escalate_before: timedelta = timedelta(minutes=30)
    acute_window: timedelta = timedelta(hours=2)
    recent_discharge_days: int = 30
    on_duty_window: timedelta = timedelta(hours=2)

    def to_wire(self):
        """The settings as the handshake sends them to laptops (JSON: times as HH:MM, spans in minutes)."""
        return {"timezone": self.timezone, "workday_start": self.workday_start.strftime("%H:%M"),
                "workday_end": self.workday_end.strftime("%H:%M"), "working_weekdays": list(self.working_weekdays),
                "planned_days": self.planned_days, "risk_step_minutes": _minutes(self.risk_step),
                "escalate_before_minutes": _minutes(self.escalate_before),
                "acute_window_minutes": _minutes(self.acute_window),
                "recent_discharge_days": self.recent_discharge_days,
                "on_duty_window_minutes": _minutes(self.on_duty_window)}

    @classmethod
    def from_wire(cls, values):
        """The settings a handshake sent (:meth:`to_wire`); the defaults for what it did not send."""
        made, default = {}, cls()
        for name, value in (values or {}).items():
            if name in ("workday_start", "workday_end"):
                made[name] = time.fromisoformat(value)
            elif name == "working_weekdays":
                made[name] = tuple(value)
            elif name.endswith("_minutes") and hasattr(default, name[: -len("_minutes")]):
                made[name[: -len("_minutes")]] = timedelta(minutes=value)
            elif hasattr(default, name):
                made[name] = value
        return replace(default, **made)


def _minutes(span):
    return int(span.total_seconds() // 60)


@dataclass(frozen=True)
class QueueEntry:
    """One open request at its place in the dispatch queue, with the reasons for it."""

    position: int
    request_id: str
    patient_id: str
    urgency: str
    status: str
    received_at: datetime
    deadline: datetime
    effective_deadline: datetime
    news2: int | None
    news2_partial: bool
    emergency: bool
    emergency_reason: str | None
    advice: str | None
    flags: tuple[str, ...]
    override: int | None
    override_reason: str | None
    escalated_at: datetime | None
    out_of_hours: bool
    why: str

    def to_dict(self):
        """The entry as JSON-ready values: ISO 8601 strings for times, lists for tuples."""
        return {f.name: _json(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True)
class Suggestion:
    """A doctor suggested for a request, and why."""

    doctor_id: str
    name: str
    reason: str
    open_accepted: int


@dataclass(frozen=True)
class DoctorLoad:
    """A doctor's open work and last activity, for the dispatcher's "who is on duty and how loaded"."""

    doctor_id: str
    name: str
    municipalities: tuple[str, ...]
    assigned: int
    accepted: int
    last_seen: datetime | None
    on_duty: bool


@lru_cache(maxsize=None)
def _holidays(year):
    # Midsommarafton, julafton and nyårsafton are not public holidays in law but the
    # annual leave act (SFS 1977:480, 7 §) treats them as Sundays and practices are
    # closed: the library lists them in its DE_FACTO category, so we ask for it.
    # Sundays need no holiday entry (include_sundays stays off): weekends are
    # excluded by working_weekdays.
    return frozenset(
        holidays.country_holidays(
            "SE", years=year, categories=(holidays.PUBLIC, holidays.DE_FACTO)
        )
    )


def is_working_day(day, settings=DispatchSettings()):
    """Whether ``day`` (a date) is a working weekday and no Swedish (de facto) holiday."""
    return day.weekday() in settings.working_weekdays and day not in _holidays(day.year)


def _next_working_day(day, settings):
    day += timedelta(days=1)
    while not is_working_day(day, settings):
        day += timedelta(days=1)
    return day


def _utc(moment):
    """An aware datetime (or ISO 8601 string with offset) as a UTC datetime."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    # A naive time would silently be read in the host's zone: refuse it.
    if moment.tzinfo is None:
        raise ValueError(f"time without a UTC offset: {moment.isoformat()}")
    return moment.astimezone(timezone.utc)


def _local_at(day, at, settings):
    # Build the wall-clock time in Swedish local time, then convert: the offset is the
    # one of that day, whatever the offset was when the request came in.
    return datetime.combine(day, at, tzinfo=ZoneInfo(settings.timezone)).astimezone(timezone.utc)


def deadline_for(urgency, received_at, settings=DispatchSettings()):
    """The deadline (UTC) of a request of ``urgency`` received at ``received_at``.

    Acute: ``acute_window`` after receipt. Urgent: ``workday_end`` the same day when
    received on a working day before it, else ``workday_end`` of the next working day.
    Planned: ``workday_end`` of the ``planned_days``-th working day after the day of
    receipt, whatever the hour of receipt.
    """
    received = _utc(received_at)
    if urgency == "acute":
        # Added in UTC, so two hours are two hours across a daylight-saving change.
        return received + settings.acute_window
    local = received.astimezone(ZoneInfo(settings.timezone))
    day = local.date()
    if urgency == "urgent":
        if not (is_working_day(day, settings) and local.time() < settings.workday_end):
            day = _next_working_day(day, settings)
    elif urgency == "planned":
        for _ in range(settings.planned_days):
            day = _next_working_day(day, settings)
    else:
        raise ValueError(f"unknown urgency: {urgency!r}")
    return _local_at(day, settings.workday_end, settings)


def is_out_of_hours(received_at, settings=DispatchSettings()):
    """Whether ``received_at`` falls outside working hours (Swedish local time)."""
    local = _utc(received_at).astimezone(ZoneInfo(settings.timezone))
    return not (
        is_working_day(local.date(), settings)
        and settings.workday_start <= local.time() < settings.workday_end
    )


def _corrections(observations):
    """Each corrected observation's id mapped to its latest valid correction."""
    corrections = {}
    # Two corrections made apart: the later measurement wins, on every replica alike.
    valid = (o for o in observations.values()
             if o.get("supersedes_id") and not o.get("entered_in_error"))
    for observation in sorted(valid, key=lambda o: (_utc(o["measured_at"]), o["id"])):
        corrections[observation["supersedes_id"]] = observation
    return corrections


def _current_observation(observation_id, observations, corrections):
    """The request's observation as corrected since, or None when there is none."""
    observation = observations.get(observation_id)
    while observation is not None and observation["id"] in corrections:
        observation = corrections[observation["id"]]
    if observation is None or observation.get("entered_in_error"):
        return None
    return observation


def _risk_flags(news2, patient, now, settings):
    flags = []
    # A high score is at least a medium one: it must never be brought forward less.
    if news2 is not None and (news2.medium_risk or news2.emergency):
        flags.append("news2_medium")
    if patient.get("palliative"):
        flags.append("palliative")
    discharged_at = patient.get("discharged_at")
    today = _utc(now).astimezone(ZoneInfo(settings.timezone)).date()
    if discharged_at and (today - date.fromisoformat(discharged_at)).days <= (
        settings.recent_discharge_days
    ):
        flags.append("recent_discharge")
    return tuple(flags)


def _local_text(moment, settings):
    return local_text(moment, ZoneInfo(settings.timezone))


def _why(entry, settings):
    parts = []
    if entry.emergency:
        parts.append(f"emergency ({entry.emergency_reason})")
    if entry.override is not None:
        parts.append(
            f"override rank {entry.override} "
            f"({entry.override_reason or 'no reason given'})"
        )
    due = f"due {_local_text(entry.effective_deadline, settings)}"
    if entry.flags:
        minutes = int(settings.risk_step.total_seconds() // 60) * len(entry.flags)
        due += (
            f" (deadline {_local_text(entry.deadline, settings)} brought forward"
            f" {minutes} min: {', '.join(entry.flags)})"
        )
    parts.append(due)
    parts.append(f"received {_local_text(entry.received_at, settings)}")
    sentence = "; ".join(parts)
    return f"{sentence[0].upper()}{sentence[1:]}."


def emergency_reasons(news2, retts_colour):
    """Why to consider an ambulance (112): NEWS2 7 or more, RETTS red; empty when neither.

    The queue and the nurse's vitals form (as the vitals are typed) both ask this.
    """
    reasons = []
    if news2 is not None and news2.emergency:
        reasons.append(f"NEWS2 {news2.total}")
    # RETTS is shown as received, never recomputed (it is a licensed algorithm).
    if retts_colour == "red":
        reasons.append("RETTS red")
    return reasons


def _entry(request, patient, observations, corrections, now, settings):
    received = _utc(request["received_at"])
    deadline = (
        # The server fixed the deadline at receipt; recompute only when it is absent.
        _utc(request["deadline"]) if request.get("deadline")
        else deadline_for(request["urgency"], received, settings)
    )
    observation = _current_observation(request.get("observation_id"), observations, corrections)
    news2 = score(observation) if observation is not None else None
    reasons = emergency_reasons(news2, request.get("retts_colour"))
    flags = _risk_flags(news2, patient, now, settings)
    escalated_at = request.get("escalated_at")
    return QueueEntry(
        position=0,
        request_id=request["id"],
        patient_id=request["patient_id"],
        urgency=request["urgency"],
        status=request["status"],
        received_at=received,
        deadline=deadline,
        effective_deadline=deadline - settings.risk_step * len(flags),
        news2=news2.total if news2 is not None else None,
        news2_partial=news2.partial if news2 is not None else False,
        emergency=bool(reasons),
        emergency_reason=", ".join(reasons) or None,
        advice=EMERGENCY_ADVICE if reasons else None,
        flags=flags,
        override=request.get("priority_override"),
        override_reason=request.get("priority_override_reason"),
        escalated_at=_utc(escalated_at) if escalated_at else None,
        # Acute and received outside working hours: stamped by the server at receipt, for on-call.
        out_of_hours=bool(request.get("out_of_hours")),
        why="",
    )


def _order(entry):
    return (
        not entry.emergency,
        entry.override is None,
        entry.override or 0,
        entry.effective_deadline,
        entry.received_at,
        entry.request_id,
    )


def queue_entries(requests, patients, observations, now, settings=DispatchSettings(),
                  municipality=None):
    """The open requests in dispatch order, each with its position and the reasons.

    ``requests``, ``patients`` and ``observations`` are dicts of records keyed by id;
    ``municipality`` keeps only the requests of that municipality's patients.
    Requests the server has not received yet (no ``received_at``) are not in the
    queue: their deadline has not started.
    """
    corrections = _corrections(observations)
    entries = []
    for request in requests.values():
        if (request.get("entered_in_error") or request["status"] in CLOSED
                or not request.get("received_at")):
            continue
        patient = patients.get(request["patient_id"], {})
        if municipality is not None and patient.get("municipality") != municipality:
            continue
        entries.append(_entry(request, patient, observations, corrections, now, settings))
    entries.sort(key=_order)
    placed = [replace(entry, position=position) for position, entry in enumerate(entries, 1)]
    return [replace(entry, why=_why(entry, settings)) for entry in placed]


def due_for_escalation(entries, now, settings=DispatchSettings()):
    """Ids of the queued requests to escalate at ``now``, in queue order.

    Due: no accepted doctor (requested, triaged, assigned), no ``escalated_at`` yet, and
    an effective deadline less than ``escalate_before`` away or past. ``entries`` are
    the ``QueueEntry`` values of ``queue_entries``. The caller sets ``escalated_at`` only
    where it is still empty, so that several server processes escalate a request once.
    """
    now = _utc(now)
    return [
        entry.request_id
        for entry in entries
        if entry.status in UNACCEPTED
        and entry.escalated_at is None
        and entry.effective_deadline - now < settings.escalate_before
    ]


def accepted_load(requests):
    """Open accepted requests (accepted, en route, on site) per doctor id, over ``requests``.

    Computed once for a whole board and handed to :func:`suggest_doctors`, so a
    queue of thousands of requests is not counted again for each of them.
    """
    load = {}
    for request in requests:
        if request["status"] in ACCEPTED_LOAD and request.get("accepted_by") and not request.get("entered_in_error"):
            load[request["accepted_by"]] = load.get(request["accepted_by"], 0) + 1
    return load


def suggest_doctors(request, patient, doctors, load):
    """The doctors to suggest for ``request``, best first.

    The patient's named doctor, then doctors of the patient's municipality, then
    others; within each, fewest open accepted requests, then name. ``doctors`` are
    user dicts (other roles are skipped); ``load`` is :func:`accepted_load` of the
    open requests. The request's own acceptance does not count as load, so a
    re-assignment compares the doctors fairly.
    """
    own = None
    if request["status"] in ACCEPTED_LOAD and not request.get("entered_in_error"):
        own = request.get("accepted_by")
    suggestions = []
    for doctor in doctors:
        if doctor.get("role") != "doctor":
            continue
        if doctor["id"] == patient.get("named_doctor_id"):
            group, reason = 0, "named doctor (continuity)"
        elif patient.get("municipality") in doctor.get("municipalities", ()):
            group, reason = 1, "same municipality"
        else:
            group, reason = 2, "other"
        open_accepted = max(0, load.get(doctor["id"], 0) - (doctor["id"] == own))
        suggestions.append((group, Suggestion(doctor["id"], doctor["name"], reason, open_accepted)))
    suggestions.sort(key=lambda pair: (pair[0], pair[1].open_accepted, pair[1].name,
                                       pair[1].doctor_id))
    return [suggestion for _, suggestion in suggestions]


def doctors_on_duty(doctors, requests, last_seen, now, settings=DispatchSettings()):
    """Every doctor's load and whether they are on duty, on duty first, then least loaded, then name.

    A doctor is on duty when one of their devices synced within
    ``settings.on_duty_window`` before ``now`` (``last_seen`` maps doctor ids to
    aware datetimes): the region keeps no roster here, and a doctor whose laptop
    has been silent for hours cannot be counted on. ``assigned`` counts open
    requests assigned to them and not yet accepted; ``accepted`` is
    :func:`accepted_load`.
    """
    accepted = accepted_load(requests)
    assigned = {}
    for request in requests:
        if request["status"] in UNACCEPTED and request.get("assigned_doctor_id") and not request.get("entered_in_error"):
            assigned[request["assigned_doctor_id"]] = assigned.get(request["assigned_doctor_id"], 0) + 1
    loads = []
    for doctor in doctors:
        if doctor.get("role") != "doctor":
            continue
        seen = last_seen.get(doctor["id"])
        loads.append(DoctorLoad(doctor["id"], doctor["name"], tuple(doctor.get("municipalities", ())),
                                assigned.get(doctor["id"], 0), accepted.get(doctor["id"], 0), seen,
                                seen is not None and now - seen <= settings.on_duty_window))
    return sorted(loads, key=lambda d: (not d.on_duty, d.accepted + d.assigned, d.name, d.doctor_id))


def _json(value):
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value
