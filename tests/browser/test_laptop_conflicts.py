"""The laptop's pages in a real browser: a conflict of two doctors' laptops resolved side by side, and
changes the server rejected, one corrected and resent, the other discarded (kept in the archive)."""

import datetime as dt
import json
import uuid

from playwright.sync_api import expect

from client_sync.ui.listener import Listener
from schema.identity import make_test_personnummer

from .conftest import Laptop, screenshot

PATIENT = "Signe Testsson"


def test_a_conflict_is_resolved_side_by_side_and_rejected_changes_are_corrected_or_discarded(browser, region,
                                                                                             tmp_path):
    patient_id, medication_id = str(uuid.uuid4()), str(uuid.uuid4())
    region.write("nurse-halmstad", "patient", patient_id, {
        "personnummer": make_test_personnummer(dt.date(1941, 9, 12), 938), "name": PATIENT,
        "municipality": "Halmstad"})
    region.write("doctor-anna", "medication", medication_id, {
        "patient_id": patient_id, "drug": "Furosemid", "strength": "40 mg", "dose": "1 x 1"})
    anna, sara = Laptop(region, "doctor-anna", tmp_path), Laptop(region, "doctor-sara", tmp_path)
    anna("sync"), sara("sync")
    anna("put", "medication", "--data", json.dumps({"id": medication_id, "dose": "1 x 2"}))
    sara("put", "medication", "--data", json.dumps({"id": medication_id, "dose": "1/2 x 1"}))
    for name in ("Typo Testsson", "Fel Testsson"):  # the region's, not Anna's: the server rejects it
        anna("put", "patient", "--data", json.dumps({
            "personnummer": make_test_personnummer(dt.date(1939, 3, 3), 913), "name": name,
            "municipality": "Varberg"}))
    sara("sync"), anna("sync")
    listener = Listener(anna.replica)
    listener.start()
    try:
        page = browser.new_context(locale="sv-SE", viewport={"width": 1280, "height": 900}).new_page()
        page.goto(listener.url)
        page.get_by_role("link", name="Konflikter").click()
        conflict = page.get_by_role("region", name=PATIENT)
        expect(conflict).to_contain_text("1 x 2")
        expect(conflict).to_contain_text("1/2 x 1")
        expect(conflict).to_contain_text("Skrivet av Sara Holm")
        screenshot(page, "laptop-conflicts")
        conflict.locator(".side", has_text="1/2 x 1").get_by_role("button", name="Behåll detta").click()
        expect(page.get_by_text("Inga öppna konflikter på den här datorn.")).to_be_visible()

        page.get_by_role("link", name="Synkning").click()
        typo = page.get_by_role("row", name="Typo Testsson")
        expect(typo).to_contain_text("Varberg")
        screenshot(page, "laptop-rejected")
        typo.get_by_text("Rätta och skicka igen").click()
        typo.get_by_label("municipality").fill("Halmstad")
        typo.get_by_role("button", name="Skicka rättad").click()
        expect(page.get_by_text("Rättad på den här datorn")).to_be_visible()
        page.get_by_role("row", name="Fel Testsson").get_by_role("button", name="Släpp").click()
        expect(page.get_by_text("Ändringen är släppt och sparad i arkivet.")).to_be_visible()
        page.get_by_role("button", name="Synka nu").click()
        expect(page.get_by_text("Synkat: 2 ändring(ar) skickade, 0 avvisade")).to_be_visible()
        screenshot(page, "laptop-sync-after-fix")
    finally:
        listener.stop()
    store = region.store
    medication = store.get_record("medication", medication_id)
    assert medication.view()["dose"] == "1/2 x 1"
    assert [c for c in medication.state["conflicts"] if c["status"] == "open"] == []
    names = {p.view()["name"] for p in store.get_records("patient", store.patients_in(["Halmstad"]))}
    assert "Typo Testsson" in names and "Fel Testsson" not in names
    assert [a["outcome"] for a in anna("rejected", "--archived")] == ["fixed", "discarded"]
