"""make bench's laptop page timings, tiny: a real sync fills the doctor's replica and every page of hemsync ui answers."""

from proof import laptop_page_timings


def test_the_laptop_page_timings_sync_a_replica_and_fetch_every_doctors_page(tmp_path):
    figures = laptop_page_timings.run(120, 12, tmp_path, rounds=1, progress=lambda *a: None)
    pages = figures["pages"]
    assert {"/today", "/caseload", "/rounds", "/conflicts", "/sync"} <= set(pages) and len(pages) == 13
    assert all(f["bytes"] > 0 and f["first_ms"] > 0 for f in pages.values())
    # The grown region reached the laptop by its sync: more patients than the demo region's own.
    assert figures["patients_on_laptop"] > 60 and figures["replica_records"]["visit_request"] >= 6
