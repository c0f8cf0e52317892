"""make bench's page timings, tiny: every main page is served to the person it is for, before and after growth."""

from proof import page_timings


def test_the_page_timings_fetch_every_main_page_of_the_demo_and_of_the_grown_region(tmp_path):
    figures = page_timings.run(120, 12, tmp_path, rounds=1, progress=lambda *a: None)
    assert set(figures["demo"]) == set(figures["region"]) and len(figures["region"]) == 13
    assert all(f["bytes"] > 0 and f["first_ms"] > 0 for f in figures["region"].values())
    # The grown region reached the pages: the nurse's list holds the requests the growth sent.
    assert figures["region"]["/nurse/requests"]["bytes"] > figures["demo"]["/nurse/requests"]["bytes"]
