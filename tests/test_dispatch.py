"""Dispatch: deadlines on the Swedish working calendar, queue order, escalation, suggestions."""

from datetime import date, datetime, time, timedelta

import pytest

from schema.dispatch import (
    DispatchSettings,
    DoctorLoad,
    Suggestion,
    deadline_for,
    due_for_escalation,
    is_out_of_hours,
    is_working_day,
    queue_entries,
    accepted_load,
    doctors_on_duty,
    suggest_doctors,
)

SETTINGS = DispatchSettings()
NOW = datetime.fromisoformat("2025-05-14T09:00+02:00")  # a Wednesday in summer time

NORMAL_VITALS = {"resp_rate": 16, "spo2": 97, "spo2_scale": 1, "supplemental_o2": False,
                 "temperature": 37.0, "systolic_bp": 130, "pulse": 70, "consciousness": "A"}


def observation(id, **vitals):
    return {"id": id, "patient_id": "p-plain", "measured_at": "2025-05-14T07:50+02:00",
            **vitals}


OBSERVATIONS = {o["id"]: o for o in [
    observation("o-normal", **NORMAL_VITALS),
    # resp rate 3 + SpO2 3 + oxygen 2
    observation("o-news2-8", **{**NORMAL_VITALS, "resp_rate": 26, "spo2": 91,
                                "supplemental_o2": True}),
    # resp rate 3 + SpO2 3 + temperature 1
    observation("o-news2-7", **{**NORMAL_VITALS, "resp_rate": 26, "spo2": 91,
                                "temperature": 38.5}),
    # resp rate 2 + temperature 1 + pulse 2
    observation("o-news2-5", **{**NORMAL_VITALS, "resp_rate": 22, "temperature": 38.5,
                                "pulse": 115}),
    # resp rate 2 + SpO2 2 + oxygen 2 + temperature 1: high, yet no single parameter scores 3
    observation("o-news2-7-spread", **{**NORMAL_VITALS, "resp_rate": 22, "spo2": 93,
                                       "supplemental_o2": True, "temperature": 38.5}),
    observation("o-single-3", **{**NORMAL_VITALS, "consciousness": "C"}),
    observation("o-partial-8", resp_rate=26, spo2=91, spo2_scale=1, supplemental_o2=True),
    observation("o-partial-6", resp_rate=26, spo2=91, spo2_scale=1),
]}


def patient(id, **fields):
    return {"id": id, "municipality": "Umeå", "palliative": False, "discharged_at": None,
            "named_doctor_id": None, **fields}


PATIENTS = {p["id"]: p for p in [
    patient("p-plain"),
    patient("p-palliative", palliative=True),
    patient("p-discharged", discharged_at="2025-04-14"),  # 30 days before NOW
    patient("p-every-risk", palliative=True, discharged_at="2025-05-01"),
    patient("p-skelleftea", municipality="Skellefteå"),
]}


def request(id, **fields):
    return {"id": id, "patient_id": "p-plain", "urgency": "urgent", "status": "requested",
            "received_at": "2025-05-14T08:00+02:00", "deadline": None, "retts_colour": None,
            "observation_id": None, "priority_override": None,
            "priority_override_reason": None, "assigned_doctor_id": None, "accepted_by": None,
            "escalated_at": None, **fields}


def queue(*requests, patients=PATIENTS, observations=OBSERVATIONS, now=NOW, municipality=None):
    return queue_entries({r["id"]: r for r in requests}, patients, observations, now, SETTINGS,
                         municipality=municipality)


def order(*requests, **options):
    return [entry.request_id for entry in queue(*requests, **options)]


def at(text):
    return datetime.fromisoformat(text)


# --- the working calendar ------------------------------------------------------------

@pytest.mark.parametrize("day, working", [
    (date(2025, 5, 14), True),    # Wednesday
    (date(2025, 5, 17), False),   # Saturday
    (date(2025, 5, 18), False),   # Sunday
    (date(2025, 5, 29), False),   # Kristi himmelsfärdsdag
    (date(2025, 6, 20), False),   # midsommarafton (de facto)
    (date(2025, 12, 24), False),  # julafton (de facto)
    (date(2025, 12, 25), False),  # juldagen
    (date(2025, 12, 31), False),  # nyårsafton (de facto)
    (date(2026, 1, 5), True),     # trettondagsafton: only a bank half-day
    (date(2026, 1, 6), False),    # trettondedag jul
])
def test_working_days_are_weekdays_except_public_and_de_facto_holidays(day, working):
    assert is_working_day(day, SETTINGS) is working


@pytest.mark.parametrize("received, out_of_hours", [
    ("2025-05-14T07:59+02:00", True),
    ("2025-05-14T08:00+02:00", False),
    ("2025-05-14T15:59+02:00", False),
    ("2025-05-14T16:00+02:00", True),
    ("2025-05-17T10:00+02:00", True),   # Saturday
    ("2025-06-20T10:00+02:00", True),   # midsommarafton
    ("2025-03-28T06:30Z", True),        # 07:30 in winter time
    ("2025-03-31T06:30Z", False),       # 08:30 in summer time
])
def test_out_of_hours_is_outside_08_to_16_swedish_time_or_on_a_non_working_day(
        received, out_of_hours):
    assert is_out_of_hours(at(received), SETTINGS) is out_of_hours


# --- deadlines ---------------------------------------------------------------------

@pytest.mark.parametrize("received", [
    "2025-05-14T07:59+02:00", "2025-05-14T08:00+02:00", "2025-05-14T15:59+02:00",
    "2025-05-14T16:00+02:00", "2025-05-17T03:00+02:00", "2025-06-20T12:00+02:00",
])
def test_acute_deadline_is_two_hours_after_receipt_at_any_hour_on_any_day(received):
    assert deadline_for("acute", at(received), SETTINGS) == at(received) + timedelta(hours=2)


@pytest.mark.parametrize("received, due", [
    # 01:30 CET -> 04:30 CEST: two hours elapsed, three on the wall clock.
    ("2025-03-30T00:30Z", "2025-03-30T02:30Z"),
    ("2025-03-30T01:30Z", "2025-03-30T03:30Z"),
    # 02:30 CEST -> 03:30 CET: two hours elapsed, one on the wall clock.
    ("2025-10-26T02:30+02:00", "2025-10-26T02:30Z"),
    ("2025-10-26T01:30Z", "2025-10-26T03:30Z"),
])
def test_acute_deadline_counts_elapsed_time_across_daylight_saving_changes(received, due):
    assert deadline_for("acute", at(received), SETTINGS) == at(due)


@pytest.mark.parametrize("received", [
    "2025-05-14T07:59+02:00", "2025-05-14T08:00+02:00", "2025-05-14T15:59+02:00",
])
def test_urgent_request_before_16_on_a_working_day_is_due_at_16_the_same_day(received):
    assert deadline_for("urgent", at(received), SETTINGS) == at("2025-05-14T16:00+02:00")


@pytest.mark.parametrize("received, due", [
    ("2025-05-14T16:00+02:00", "2025-05-15T16:00+02:00"),
    ("2025-05-16T16:00+02:00", "2025-05-19T16:00+02:00"),  # Friday -> Monday
    ("2025-12-23T16:00+01:00", "2025-12-29T16:00+01:00"),  # over julafton to annandag jul
])
def test_urgent_request_after_16_is_due_next_working_day_at_16(received, due):
    assert deadline_for("urgent", at(received), SETTINGS) == at(due)


@pytest.mark.parametrize("received, due", [
    ("2025-05-17T10:00+02:00", "2025-05-19T16:00+02:00"),  # Saturday
    ("2025-05-18T07:00+02:00", "2025-05-19T16:00+02:00"),  # Sunday
    ("2025-06-20T10:00+02:00", "2025-06-23T16:00+02:00"),  # midsommarafton
    ("2025-12-25T09:00+01:00", "2025-12-29T16:00+01:00"),  # juldagen
])
def test_urgent_request_on_a_non_working_day_is_due_next_working_day_at_16(received, due):
    assert deadline_for("urgent", at(received), SETTINGS) == at(due)


@pytest.mark.parametrize("received, due", [
    ("2025-03-28T17:00+01:00", "2025-03-31T14:00Z"),  # Friday in winter -> Monday in summer
    ("2025-03-30T00:30Z", "2025-03-31T14:00Z"),       # the night of the change
    ("2025-10-24T17:00+02:00", "2025-10-27T15:00Z"),  # Friday in summer -> Monday in winter
])
def test_urgent_deadline_across_a_daylight_saving_change_is_16_local_time(received, due):
    assert deadline_for("urgent", at(received), SETTINGS) == at(due)


@pytest.mark.parametrize("received, due", [
    ("2025-05-14T07:59+02:00", "2025-05-23T16:00+02:00"),
    ("2025-05-14T08:00+02:00", "2025-05-23T16:00+02:00"),
    ("2025-05-14T15:59+02:00", "2025-05-23T16:00+02:00"),
    ("2025-05-14T16:00+02:00", "2025-05-23T16:00+02:00"),
    ("2025-05-17T10:00+02:00", "2025-05-27T16:00+02:00"),  # Saturday
    ("2025-05-18T10:00+02:00", "2025-05-27T16:00+02:00"),  # Sunday
    ("2025-06-19T10:00+02:00", "2025-07-01T16:00+02:00"),  # over midsommarafton
    ("2025-12-22T10:00+01:00", "2026-01-08T16:00+01:00"),  # over jul, nyår, trettondagen
    ("2025-03-26T10:00+01:00", "2025-04-04T14:00Z"),       # into summer time
    ("2025-10-22T10:00+02:00", "2025-10-31T15:00Z"),       # into winter time
])
def test_planned_deadline_is_16_on_the_seventh_working_day_after_the_day_of_receipt(
        received, due):
    assert deadline_for("planned", at(received), SETTINGS) == at(due)


def test_deadlines_are_returned_in_utc():
    deadline = deadline_for("urgent", at("2025-05-14T09:00+02:00"), SETTINGS)
    assert deadline.isoformat() == "2025-05-14T14:00:00+00:00"


def test_working_hours_and_planned_days_come_from_the_settings():
    settings = DispatchSettings(workday_end=time(17), planned_days=1)
    assert deadline_for("planned", at("2025-05-14T10:00+02:00"), settings) == at(
        "2025-05-15T17:00+02:00")


def test_an_unknown_urgency_or_a_time_without_offset_is_refused():
    with pytest.raises(ValueError, match="unknown urgency"):
        deadline_for("whenever", at("2025-05-14T10:00+02:00"), SETTINGS)
    with pytest.raises(ValueError, match="offset"):
        deadline_for("urgent", datetime(2025, 5, 14, 10), SETTINGS)


# --- the queue ---------------------------------------------------------------------

def test_queue_puts_emergencies_first_then_override_rank_then_effective_deadline():
    requests = [
        request("r-plain"),
        request("r-acute", urgency="acute"),
        request("r-override-2", urgency="planned", priority_override=2,
                priority_override_reason="family worried"),
        request("r-red", urgency="planned", retts_colour="red"),
        request("r-override-1", urgency="planned", priority_override=1),
        request("r-news2-8", received_at="2025-05-14T08:30+02:00", observation_id="o-news2-8"),
    ]
    assert order(*requests) == [
        "r-news2-8", "r-red", "r-override-1", "r-override-2", "r-acute", "r-plain"]


def test_queue_entry_shows_deadline_news2_flags_override_and_why():
    entry = queue(request("r-1", patient_id="p-palliative", observation_id="o-news2-8",
                          retts_colour="red", priority_override=2,
                          priority_override_reason="family worried"))[0]
    assert entry.to_dict() == {
        "position": 1,
        "request_id": "r-1",
        "patient_id": "p-palliative",
        "urgency": "urgent",
        "status": "requested",
        "received_at": "2025-05-14T06:00:00+00:00",
        "deadline": "2025-05-14T14:00:00+00:00",
        "effective_deadline": "2025-05-14T13:00:00+00:00",
        "news2": 8,
        "news2_partial": False,
        "emergency": True,
        "emergency_reason": "NEWS2 8, RETTS red",
        "advice": "emergency: consider ambulance (112)",
        "flags": ["news2_medium", "palliative"],
        "override": 2,
        "override_reason": "family worried",
        "escalated_at": None,
        "out_of_hours": False,
        "why": "Emergency (NEWS2 8, RETTS red); override rank 2 (family worried); "
               "due 2025-05-14 15:00 (deadline 2025-05-14 16:00 brought forward 60 min: "
               "news2_medium, palliative); received 2025-05-14 08:00.",
    }


@pytest.mark.parametrize("observation_id, colour, emergency, reason", [
    ("o-news2-8", None, True, "NEWS2 8"),
    ("o-news2-7", "green", True, "NEWS2 7"),
    (None, "red", True, "RETTS red"),
    ("o-partial-6", "orange", False, None),
    ("o-normal", None, False, None),
])
def test_emergency_is_news2_of_7_or_more_or_retts_red(observation_id, colour, emergency, reason):
    entry = queue(request("r-1", observation_id=observation_id, retts_colour=colour))[0]
    advice = "emergency: consider ambulance (112)" if emergency else None
    assert (entry.emergency, entry.emergency_reason, entry.advice) == (emergency, reason, advice)


def test_override_without_a_reason_ranks_and_says_no_reason_was_given():
    entries = queue(request("r-acute", urgency="acute"),
                    request("r-override", urgency="planned", priority_override=3))
    assert [(e.request_id, e.why) for e in entries] == [
        ("r-override", "Override rank 3 (no reason given); due 2025-05-23 16:00; "
                       "received 2025-05-14 08:00."),
        ("r-acute", "Due 2025-05-14 10:00; received 2025-05-14 08:00."),
    ]


@pytest.mark.parametrize("patient_id, observation_id, flags", [
    ("p-plain", "o-news2-5", ("news2_medium",)),
    ("p-plain", "o-single-3", ("news2_medium",)),
    ("p-plain", "o-news2-7-spread", ("news2_medium",)),  # a high score is at least medium
    ("p-palliative", "o-normal", ("palliative",)),
    ("p-discharged", None, ("recent_discharge",)),
    ("p-every-risk", "o-news2-5", ("news2_medium", "palliative", "recent_discharge")),
])
def test_each_risk_flag_brings_the_effective_deadline_forward_by_30_minutes(
        patient_id, observation_id, flags):
    entry = queue(request("r-1", patient_id=patient_id, observation_id=observation_id))[0]
    assert (entry.flags, entry.deadline - entry.effective_deadline) == (
        flags, timedelta(minutes=30) * len(flags))


def test_a_risk_flag_moves_a_later_request_ahead_of_one_with_the_same_deadline():
    assert order(request("r-plain"),
                 request("r-palliative", patient_id="p-palliative",
                         received_at="2025-05-14T15:00+02:00")) == ["r-palliative", "r-plain"]


@pytest.mark.parametrize("discharged_at, flags", [
    ("2025-04-14", ("recent_discharge",)),  # 30 days ago
    ("2025-04-13", ()),                     # 31 days ago
])
def test_a_discharge_is_recent_for_30_days(discharged_at, flags):
    patients = {"p-1": patient("p-1", discharged_at=discharged_at)}
    assert queue(request("r-1", patient_id="p-1"), patients=patients)[0].flags == flags


def test_received_at_then_id_break_a_tie_of_effective_deadlines():
    assert order(request("r-a", received_at="2025-05-14T08:10+02:00"),
                 request("r-c", received_at="2025-05-14T08:05+02:00"),
                 request("r-b", received_at="2025-05-14T08:05+02:00")) == ["r-b", "r-c", "r-a"]


def test_municipality_filter_keeps_only_requests_for_that_municipalitys_patients():
    requests = [request("r-umea"), request("r-skelleftea", patient_id="p-skelleftea")]
    assert order(*requests, municipality="Umeå") == ["r-umea"]
    assert order(*requests) == ["r-skelleftea", "r-umea"]


def test_closed_entered_in_error_and_not_yet_received_requests_are_not_queued():
    statuses = ["requested", "triaged", "assigned", "accepted", "en_route", "on_site",
                "completed", "cancelled"]
    requests = [request(status, status=status) for status in statuses] + [
        request("in-error", entered_in_error=True, entered_in_error_reason="wrong patient"),
        request("offline", received_at=None),
    ]
    assert order(*requests) == [
        "accepted", "assigned", "en_route", "on_site", "requested", "triaged"]


def test_partial_news2_scores_what_was_measured_and_says_it_is_partial():
    entries = queue(request("r-8", observation_id="o-partial-8"),
                    request("r-6", observation_id="o-partial-6"),
                    request("r-none"))
    assert [(e.request_id, e.news2, e.news2_partial, e.emergency, e.flags) for e in entries] == [
        ("r-8", 8, True, True, ("news2_medium",)),
        ("r-6", 6, True, False, ("news2_medium",)),
        ("r-none", None, False, False, ()),
    ]


def test_a_correction_supersedes_the_requests_observation_unless_entered_in_error():
    correction = observation("o-correction", supersedes_id="o-news2-8",
                             measured_at="2025-05-14T08:10+02:00", **NORMAL_VITALS)
    mistaken = {**observation("o-mistaken", supersedes_id="o-news2-8", **NORMAL_VITALS),
                "entered_in_error": True}
    corrected = {**OBSERVATIONS, "o-correction": correction}
    mistakenly_corrected = {**OBSERVATIONS, "o-mistaken": mistaken}
    r = request("r-1", observation_id="o-news2-8")
    assert queue(r, observations=corrected)[0].news2 == 0
    assert queue(r, observations=mistakenly_corrected)[0].news2 == 8


def test_a_deadline_stored_by_the_server_is_used_as_is():
    entry = queue(request("r-1", deadline="2025-05-14T12:00+02:00"))[0]
    assert entry.deadline == at("2025-05-14T10:00Z")


# --- escalation ----------------------------------------------------------------------

def escalate(*requests, now):
    return due_for_escalation(queue(*requests, now=now), now, SETTINGS)


@pytest.mark.parametrize("now, due", [
    ("2025-05-14T15:29+02:00", []),          # 31 minutes left
    ("2025-05-14T15:30+02:00", []),          # exactly 30 minutes left
    ("2025-05-14T15:31+02:00", ["r-1"]),     # 29 minutes left
    ("2025-05-14T17:00+02:00", ["r-1"]),     # past the deadline
])
def test_escalation_when_less_than_30_minutes_remain_to_the_effective_deadline(now, due):
    assert escalate(request("r-1"), now=at(now)) == due


def test_escalation_counts_from_the_effective_deadline():
    assert escalate(request("r-1", patient_id="p-palliative"),
                    now=at("2025-05-14T15:01+02:00")) == ["r-1"]


def test_only_requests_without_an_accepted_doctor_are_escalated():
    requests = [request(status, status=status, accepted_by="d-1" if status in (
        "accepted", "en_route", "on_site") else None)
        for status in ["requested", "triaged", "assigned", "accepted", "en_route", "on_site"]]
    assert escalate(*requests, now=at("2025-05-14T15:45+02:00")) == [
        "assigned", "requested", "triaged"]


def test_a_request_is_escalated_only_once():
    r = request("r-1", escalated_at="2025-05-14T15:31+02:00")
    assert escalate(r, now=at("2025-05-14T15:45+02:00")) == []


# --- suggestions ---------------------------------------------------------------------

def doctor(id, name, *municipalities, role="doctor"):
    return {"id": id, "name": name, "role": role, "municipalities": list(municipalities)}


DOCTORS = [
    doctor("d-other-b", "Berit Öberg", "Luleå"),
    doctor("d-umea-busy", "Anna Berg", "Umeå"),
    doctor("d-named", "Nils Holm", "Skellefteå"),
    doctor("d-umea-free", "Olof Ek", "Umeå", "Vindeln"),
    doctor("d-other-a", "Adam Lind"),
    doctor("n-1", "Sara Sköterska", "Umeå", role="nurse"),
]


def test_suggestions_put_the_named_doctor_first_then_municipality_then_fewest_accepted():
    this = request("r-this", status="accepted", accepted_by="d-umea-free")
    requests = [
        this,
        request("r-1", status="accepted", accepted_by="d-umea-busy"),
        request("r-2", status="on_site", accepted_by="d-umea-busy"),
        request("r-3", status="en_route", accepted_by="d-named"),
        request("r-4", status="completed", accepted_by="d-umea-free"),
        request("r-5", status="assigned", assigned_doctor_id="d-other-a"),
        request("r-6", status="accepted", accepted_by="d-other-b", entered_in_error=True),
    ]
    patient_ = patient("p-1", named_doctor_id="d-named")
    assert suggest_doctors(this, patient_, DOCTORS, accepted_load(requests)) == [
        Suggestion("d-named", "Nils Holm", "named doctor (continuity)", 1),
        Suggestion("d-umea-free", "Olof Ek", "same municipality", 0),
        Suggestion("d-umea-busy", "Anna Berg", "same municipality", 2),
        Suggestion("d-other-a", "Adam Lind", "other", 0),
        Suggestion("d-other-b", "Berit Öberg", "other", 0),
    ]


def test_without_a_named_doctor_the_municipality_comes_first():
    suggestions = suggest_doctors(request("r-1"), patient("p-1"), DOCTORS, {})
    assert [(s.doctor_id, s.reason) for s in suggestions] == [
        ("d-umea-busy", "same municipality"),
        ("d-umea-free", "same municipality"),
        ("d-other-a", "other"),
        ("d-other-b", "other"),
        ("d-named", "other"),
    ]


def test_the_board_counts_doctors_on_duty_by_their_last_sync_and_shows_their_load():
    requests = [
        request("r-1", status="accepted", accepted_by="d-umea-busy"),
        request("r-2", status="on_site", accepted_by="d-umea-busy"),
        request("r-3", status="assigned", assigned_doctor_id="d-umea-free"),
        request("r-4", status="completed", accepted_by="d-umea-free"),
        request("r-5", status="assigned", assigned_doctor_id="d-named", entered_in_error=True),
    ]
    synced = {"d-umea-busy": NOW - timedelta(minutes=5), "d-umea-free": NOW - timedelta(minutes=119),
              "d-named": NOW - timedelta(hours=3)}
    assert doctors_on_duty(DOCTORS, requests, synced, NOW) == [
        DoctorLoad("d-umea-free", "Olof Ek", ("Umeå", "Vindeln"), 1, 0, synced["d-umea-free"], True),
        DoctorLoad("d-umea-busy", "Anna Berg", ("Umeå",), 0, 2, synced["d-umea-busy"], True),
        DoctorLoad("d-other-a", "Adam Lind", (), 0, 0, None, False),
        DoctorLoad("d-other-b", "Berit Öberg", ("Luleå",), 0, 0, None, False),
        DoctorLoad("d-named", "Nils Holm", ("Skellefteå",), 0, 0, synced["d-named"], False),
    ]


def test_the_on_duty_window_is_a_setting_that_reaches_the_laptops():
    settings = DispatchSettings(on_duty_window=timedelta(minutes=45))
    assert DispatchSettings.from_wire(settings.to_wire()) == settings
    assert doctors_on_duty(DOCTORS[:1], [], {"d-other-b": NOW - timedelta(minutes=46)}, NOW, settings)[0].on_duty is False
