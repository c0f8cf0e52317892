"""Follow-up figures for any region: municipalities add up to the region, and reading order does not matter."""

import datetime as dt

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schema.followup.figures import FIGURES, figures, has_data
from schema.followup.snapshot import Snapshot

from .followup_region import HALMSTAD, LAHOLM, Region

MUNICIPALITIES = (HALMSTAD, LAHOLM)
#: Counts that are plain sums over patients, so the region's is the sum of its municipalities'.
ADDITIVE = {"acute_visits": ("acute_requests_on_site",), "outcomes": ("signed_home_visits", "with_outcome"),
            "readmissions_30d": ("index_stays", "readmitted"), "direct_admissions": ("admissions_arrived",),
            "medication_reviews_done": ("reviews_done_in_month",)}

DAYS = st.integers(0, 75)  # 1 October to mid December 2026
MINUTES = st.integers(0, 24 * 60 - 1)


def _when(day, minute):
    moment = dt.datetime(2026, 10, 1) + dt.timedelta(days=day, minutes=minute)
    return f"{moment:%Y-%m-%d %H:%M}"


EVENT = st.one_of(
    st.tuples(st.just("request"), st.sampled_from(("acute", "urgent")), DAYS, MINUTES, st.integers(5, 600)),
    st.tuples(st.just("visit"), st.sampled_from(("stays_home", "died", None)), DAYS, MINUTES, st.booleans()),
    st.tuples(st.just("stay"), st.booleans(), DAYS, MINUTES, st.integers(1, 20)),
    st.tuples(st.just("admission"), st.booleans(), DAYS, MINUTES, st.integers(10, 300)),
    st.tuples(st.just("review"), st.sampled_from(("done", "planned")), DAYS, MINUTES, st.just(0)),
    st.tuples(st.just("move"), st.sampled_from(MUNICIPALITIES), DAYS, MINUTES, st.just(0)),
)
STORIES = st.lists(st.tuples(st.integers(0, 3), EVENT), max_size=25)


def _region(story):
    region = Region()
    for i in range(4):
        region.patient(f"P{i}", dt.date(1930 + i, 1, 1 + i), MUNICIPALITIES[i % 2], care_setting="sabo")
    for n, (who, (kind, choice, day, minute, extra)) in enumerate(story):
        when, patient = _when(day, minute), f"P{who}"
        if kind == "request":
            later = dt.datetime.fromisoformat(when) + dt.timedelta(minutes=extra)
            region.request(f"R{n}", patient, choice, when, f"{later:%Y-%m-%d %H:%M}")
        elif kind == "visit":
            region.visit(f"V{n}", patient, "doc-a", when, outcome=choice, signed=extra)
        elif kind == "stay":
            out = dt.datetime.fromisoformat(when) + dt.timedelta(days=extra)
            region.stay(f"S{n}", patient, when, f"{out:%Y-%m-%d %H:%M}", planned=choice)
        elif kind == "admission":
            arrived = dt.datetime.fromisoformat(when) + dt.timedelta(minutes=extra)
            region.admission(f"A{n}", patient, when, f"{arrived:%Y-%m-%d %H:%M}" if choice else None)
        elif kind == "review":
            region.done(f"M{n}", "medication_review", patient, when[:10], status=choice)
        else:
            region.write(patient, "patient", {"municipality": choice}, when, by="nurse-1")
    return region


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(STORIES, st.sampled_from(("2026-10", "2026-11", "2026-12")), st.randoms(use_true_random=False))
def test_the_municipalities_add_up_to_the_region_whatever_order_the_records_are_read_in(story, month, rng):
    states = list(_region(story).states.values())
    snapshot = Snapshot.of(states)
    region = figures(snapshot, month)
    parts = [figures(snapshot, month, m) for m in MUNICIPALITIES]
    assert has_data(snapshot, month) == any(has_data(snapshot, month, m) for m in MUNICIPALITIES)
    for key, counts in ADDITIVE.items():
        for count in counts:
            assert region[key]["counts"].get(count, 0) == sum(p[key]["counts"].get(count, 0) for p in parts)
    rng.shuffle(states)
    assert figures(Snapshot.of(states), month) == region
    if not has_data(snapshot, month):
        assert all(region[key]["value"] is None for key in FIGURES)
