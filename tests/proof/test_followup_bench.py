"""The follow-up bench, tiny: it builds a region, reports over it and says whether the targets hold."""

import pytest

from proof import followup_bench

pytestmark = pytest.mark.e2e


def test_the_followup_bench_builds_a_region_and_times_a_month_and_twelve(tmp_path):
    figures = followup_bench.run(scale=0.01, directory=tmp_path)
    assert (figures["patients"], figures["visits"], figures["stays"]) == (100, 500, 50)
    assert figures["acute_visits"] is not None and figures["acute_visits"] > 0
    assert {"month_s", "twelve_months_s", "region_month_s", "municipality_month_s", "ok"} <= set(figures)
    assert figures["ok"] == (figures["month_s"] < 2 and figures["twelve_months_s"] < 10)
