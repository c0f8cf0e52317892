"""make bench's laptop page timings, tiny: a real sync fills the doctor's replica and every page of hemsync ui answers."""

from proof import laptop_page_timings


def test_the_laptop_page_timings_sync_a_replica_and_fetch_every_doctors_page(tmp_path):
    figures = laptop_page_timings.run(120, 12, tmp_path, rounds=1, progress=lambda *a: None)
    pages = figures["pages"]
    assert {"/today", "/caseload", "/rounds", "/conflicts", "/sync"} <= set(pages) and len(pages) == 14
    assert all(f["bytes"] > 0 and f["first_ms"] > 0 for f in pages.values())
    # The caseload reached the laptop by its sync: its 120 patients beside the demo region's own, with their
    # records of every kind (14 pages: a request of the doctor's and a round were there to time).
    held = figures["replica_records"]
    assert figures["patients_on_laptop"] >= 120 and sum(held.values()) > 120 * 10
    assert {"visit", "amendment", "observation", "medication", "warning", "visit_request", "round"} <= set(held)
    assert "/requests/{id}/note" in pages and "/patients/{id}?history=50" in pages
