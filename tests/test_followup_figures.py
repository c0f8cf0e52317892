"""The follow-up figures of DOMAIN.md on a test region whose answers were worked out by hand.

The region and its story are in ``tests/followup_region.py``; every number
below follows from that story, not from running the code.
"""

import pytest

from schema.followup.calendar import Month
from schema.followup.figures import FIGURES, figures
from schema.followup.snapshot import Snapshot

from .followup_region import build


@pytest.fixture(scope="module")
def snapshot():
    return Snapshot.of(build().states.values())


def value(report, key):
    return report[key]["value"]


def test_a_month_starts_at_midnight_in_sweden_in_summer_and_in_winter():
    assert Month.parse("2026-10").start.isoformat() == "2026-09-30T22:00:00+00:00"
    assert Month.parse("2026-11").start.isoformat() == "2026-10-31T23:00:00+00:00"
    assert Month.parse("2026-10").end == Month.parse("2026-11").start


def test_every_figure_of_domain_md_is_reported_with_period_and_municipality(snapshot):
    report = figures(snapshot, "2026-11", "Halmstad")
    assert list(report) == ["period", "municipality", *FIGURES]
    assert (report["period"], report["municipality"]) == ("2026-11", "Halmstad")
    assert all("counts" in report[key] for key in FIGURES)


def test_acute_visits_count_requests_on_site_in_the_swedish_month(snapshot):
    # R1, R3 (on site 00:10 on 1 Nov: still 31 Oct in UTC) and R5 (after P6 moved in);
    # not R2 (October), R4 (P6 still in Laholm), R7 (cancelled), R8 (on site 1 Dec 00:20).
    assert value(figures(snapshot, "2026-11", "Halmstad"), "acute_visits") == 3
    assert value(figures(snapshot, "2026-11", "Laholm"), "acute_visits") == 1
    assert value(figures(snapshot, "2026-11"), "acute_visits") == 4
    assert value(figures(snapshot, "2026-10", "Halmstad"), "acute_visits") == 2  # R2 and R10
    assert value(figures(snapshot, "2026-12", "Halmstad"), "acute_visits") == 1  # R8


def test_minutes_to_on_site_are_median_and_90th_percentile_per_urgency(snapshot):
    figure = figures(snapshot, "2026-11", "Halmstad")["minutes_to_on_site"]
    assert figure["value"] == {"acute": {"median": 45.0, "p90": 60.0}, "urgent": {"median": 240.0, "p90": 240.0},
                               "planned": None}
    assert figure["counts"] == {"acute": 3, "urgent": 1, "planned": 0}


def test_minutes_to_on_site_count_real_minutes_across_the_night_daylight_saving_ends(snapshot):
    # R9: received 02:30 summer time, on site 02:30 winter time on 25 October: an hour.
    figure = figures(snapshot, "2026-10", "Halmstad")["minutes_to_on_site"]
    assert figure["value"]["urgent"] == {"median": 60.0, "p90": 60.0}
    # R10 (received 00:00, on site 00:30 on 1 Oct, summer time) and R2 (80 minutes).
    assert figure["value"]["acute"] == {"median": 55.0, "p90": 80.0}


def test_outcomes_are_shares_of_signed_home_visits_with_those_without_counted_apart(snapshot):
    # V1, V2, V3, V4, V6 and V7 (no outcome); not V5 (entered in error), V8 (unsigned),
    # V9 (Laholm), the round items or the phone call.
    figure = figures(snapshot, "2026-11", "Halmstad")["outcomes"]
    assert figure["value"] == {"stays_home": 0.4, "direct_admission": 0.2, "emergency_department": 0.2,
                               "died": 0.2}
    assert figure["counts"] == {"signed_home_visits": 6, "with_outcome": 5, "without_outcome": 1,
                                "stays_home": 2, "direct_admission": 1, "emergency_department": 1, "died": 1}


def test_an_entered_in_error_visit_counts_nowhere(snapshot):
    region = figures(snapshot, "2026-11")["outcomes"]["counts"]
    assert region["signed_home_visits"] == 7  # Halmstad's six and V9; never V5


def test_readmission_on_day_30_counts_and_on_day_31_does_not(snapshot):
    # Index stays S1 (readmitted by S2 on day 30, visited by V1), S3 (S4 on day 31;
    # visited by V8) and S5 (next stay planned; no visit after). Not S7 (discharged
    # 00:30 on 1 Dec) nor Laholm's S8.
    figure = figures(snapshot, "2026-11", "Halmstad")["readmissions_30d"]
    assert figure["counts"] == {"index_stays": 3, "readmitted": 1, "visited_within_7d_index_stays": 2,
                                "visited_within_7d_readmitted": 1, "not_visited_within_7d_index_stays": 1,
                                "not_visited_within_7d_readmitted": 0}
    assert figure["value"] == {"all": pytest.approx(1 / 3), "visited_within_7d": 0.5, "not_visited_within_7d": 0.0}
    laholm = figures(snapshot, "2026-11", "Laholm")["readmissions_30d"]
    assert (laholm["counts"]["index_stays"], laholm["counts"]["readmitted"]) == (2, 1)  # S8 by S9; S9 itself


def test_a_sabo_resident_who_died_leaves_the_named_doctor_share(snapshot):
    # End of October: P2, P3, P4, P5, three with a named doctor. End of November:
    # P4 died on 20 Nov, so P2, P3, P5.
    october = figures(snapshot, "2026-10", "Halmstad")["named_doctor_share_sabo"]
    november = figures(snapshot, "2026-11", "Halmstad")["named_doctor_share_sabo"]
    assert (october["value"], october["counts"]) == (0.75, {"sabo_residents": 4, "with_named_doctor": 3})
    assert (november["value"], november["counts"]) == (pytest.approx(2 / 3),
                                                       {"sabo_residents": 3, "with_named_doctor": 2})
    assert november["target"] == 0.80


def test_continuity_counts_doctor_visits_of_twelve_months_for_patients_with_two(snapshot):
    # P1 a, b, a (V5 in error); P2 a, a; P5 b, a; P6 b, a. P3 has one visit (a phone call
    # and one older than twelve months do not count), P4 one.
    report = figures(snapshot, "2026-11", "Halmstad")
    assert report["continuity_upc"]["value"] == pytest.approx((2 / 3 + 1 + 0.5 + 0.5) / 4)
    assert report["continuity_upc"]["counts"] == {"patients": 4, "visits": 9}
    # By the named doctor: P1 two, P2 two, P5 one, P6 none (no named doctor).
    assert report["named_doctor_visit_share"]["value"] == pytest.approx(5 / 9)


def test_a_patient_who_moved_mid_month_counts_where_she_lived_when_it_happened(snapshot):
    halmstad, laholm = figures(snapshot, "2026-11", "Halmstad"), figures(snapshot, "2026-11", "Laholm")
    assert value(laholm, "medication_reviews_done") == 1  # MR3, done 14 Nov, the day before P6 moved
    assert laholm["outcomes"]["counts"]["signed_home_visits"] == 1  # V9, 10 Nov
    assert halmstad["outcomes"]["counts"]["emergency_department"] == 1  # V6, 20 Nov


def test_reviews_and_conversations_done_count_by_their_date(snapshot):
    report = figures(snapshot, "2026-11", "Halmstad")
    # MR1 and MR8; MR2 is planned, MR4 was done in October.
    assert [value(report, key) for key in ("medication_reviews_done", "breakpoint_conversations_done",
                                           "enrollment_conversations_done", "sips_done")] == [2, 1, 1, 1]


def test_direct_admissions_count_those_that_arrived_in_the_month(snapshot):
    assert value(figures(snapshot, "2026-11", "Halmstad"), "direct_admissions") == 1  # A1; A2 never arrived
    assert value(figures(snapshot, "2026-12", "Halmstad"), "direct_admissions") == 1  # A3, 00:10 on 1 Dec


def test_an_empty_month_says_no_data_instead_of_zeros(snapshot):
    for month, municipality in (("2025-01", "Halmstad"), ("2026-12", "Laholm"), ("2027-06", None)):
        report = figures(snapshot, month, municipality)
        for key in FIGURES:
            assert report[key]["value"] is None
            assert report[key]["reason"].startswith("no data")


def test_a_month_with_data_reports_a_zero_it_measured_and_a_rate_it_cannot_compute_with_a_reason(snapshot):
    report = figures(snapshot, "2026-11", "Laholm")
    assert value(report, "direct_admissions") == 0
    assert report["named_doctor_share_sabo"]["value"] is None
    assert report["named_doctor_share_sabo"]["reason"] == "no SÄBO resident at the end of the month"
