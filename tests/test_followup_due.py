"""The due lists of DOMAIN.md on the hand-worked test region (tests/followup_region.py)."""

import datetime as dt

import pytest

from schema.followup.due import LISTS, due_lists
from schema.followup.snapshot import Snapshot

from .followup_region import build


@pytest.fixture(scope="module")
def region():
    built = build()
    return built, Snapshot.of(built.states.values())


def listed(region, day, patient_ids=None):
    built, snapshot = region
    names = {v: k for k, v in built.ids.items()}
    return {name: [names[e["patient_id"]] for e in entries]
            for name, entries in due_lists(snapshot, day, patient_ids).items()}


def test_a_medication_review_falls_due_the_day_a_patient_with_five_drugs_turns_75(region):
    assert listed(region, dt.date(2026, 11, 19))["medication_review_due"] == []
    # P9 turns 75 with five drugs and no review; P8's review was done that very day.
    assert listed(region, dt.date(2026, 11, 20))["medication_review_due"] == ["P9"]


def test_a_medication_review_falls_due_again_a_year_after_the_last_one(region):
    built, snapshot = region
    assert listed(region, dt.date(2027, 11, 19))["medication_review_due"] == ["P9"]
    lists = due_lists(snapshot, dt.date(2027, 11, 20))["medication_review_due"]
    assert [(e["patient_id"], e["since"], e["reason"]) for e in lists] == [
        (built.ids["P8"], "2027-11-20", "no_review_in_a_year"),
        (built.ids["P9"], "2025-01-10", "no_review_since_start")]
    assert lists[0]["why"] == "aged 76 with 5 active medications; no review done in the last 12 months"


def test_sabo_residents_without_a_named_doctor_are_listed(region):
    assert listed(region, dt.date(2026, 11, 20))["sabo_without_named_doctor"] == ["P10", "P3"]


def test_an_enrollment_conversation_is_due_until_one_is_done_after_moving_in(region):
    # P3 had hers on 31 Oct after moving in on 20 Oct; P2 moved in on 1 June and had none.
    assert listed(region, dt.date(2026, 11, 20))["enrollment_conversation_due"] == ["P2"]


def test_a_palliative_sabo_resident_who_died_leaves_every_list_the_day_she_died(region):
    before = listed(region, dt.date(2026, 11, 21))
    assert "P10" in before["sabo_without_named_doctor"] and before["breakpoint_conversation_missing"] == ["P10"]
    after = listed(region, dt.date(2026, 11, 22))
    assert all("P10" not in names and "P4" not in names for names in after.values())


def test_a_discharge_without_a_doctor_visit_or_planned_follow_up_is_listed(region):
    # P1 (visited the day after), P2 (visited two days after) are not; Laholm's P7 is.
    assert listed(region, dt.date(2026, 11, 19))["discharge_without_follow_up"] == ["P7"]
    assert listed(region, dt.date(2026, 12, 3))["discharge_without_follow_up"] == ["P3", "P5", "P7"]


def test_the_lists_show_only_the_patients_given_as_the_viewers_scope(region):
    built, _ = region
    lists = listed(region, dt.date(2026, 12, 3), {built.ids["P5"]})
    assert lists == {name: (["P5"] if name == "discharge_without_follow_up" else []) for name in LISTS}
