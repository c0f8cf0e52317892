"""The doctor's day on the laptop's pages (`hemsync ui`) in a real browser, with the server stopped.

The doctor accepts, goes on site, records vitals (NEWS2 shown as typed and
stored), is warned that a drug matches the patient's allergy and prescribes
another, changes its dose, signs the note, proposes a direct admission, finds it all in the patient's
history, and works the SÄBO round resident by resident on the laptop's pages while the server is down;
then the server comes back, "Sync now" sends everything, the server holds it,
the laptop's replica agrees with the server digest for digest, and a second
laptop of the region holds the same records.
"""

import datetime as dt
import pathlib
import threading
import urllib.parse
import uuid

import pytest
from playwright.sync_api import expect

from client_sync.ui.listener import Listener
from schema.identity import make_test_personnummer
from server.wsgi import make_server

from .conftest import Laptop, screenshot

PATIENT = "Tekla Testsson"
REASON = "Andfådd och feber sedan i går"


def folder_of(laptop):
    """The folder of a Laptop's replica file, for another laptop beside it."""
    return pathlib.Path(laptop.replica).parent


class Network:
    """The region's server going away and coming back on the same address (the laptop keeps its URL)."""

    def __init__(self, server):
        self.server = server
        self.port = urllib.parse.urlsplit(server.url).port

    def down(self):
        self.server._server.stop()
        self.server._thread.join(timeout=10)

    def up(self):
        wsgi_server = make_server(self.server.app, host="127.0.0.1", port=self.port, threads=4)
        wsgi_server.prepare()
        thread = threading.Thread(target=wsgi_server.serve, name="hemsync-live-server", daemon=True)
        thread.start()
        self.server._server, self.server._thread = wsgi_server, thread


@pytest.fixture
def day(region, tmp_path):
    """A Halmstad patient with an allergy, a request assigned to Anna Berg, a third resident on her SÄBO round,
    and her laptop synced."""
    patient_id, request_id = str(uuid.uuid4()), str(uuid.uuid4())
    region.write("nurse-halmstad", "patient", patient_id, {
        "personnummer": make_test_personnummer(dt.date(1938, 4, 2), 924), "name": PATIENT,
        "municipality": "Halmstad", "address": "Strandvägen 3, Halmstad"})
    region.write("nurse-halmstad", "warning", str(uuid.uuid4()), {
        "patient_id": patient_id, "kind": "allergy", "text": "Penicillin: andnöd", "severity": "life_threatening"})
    region.write("nurse-halmstad", "visit_request", request_id, {
        "patient_id": patient_id, "urgency": "urgent", "reason": REASON})
    region.write("dispatcher-lena", "visit_request", request_id, {
        "assigned_doctor_id": region.ids["doctor-anna"], "status": "assigned"})
    [sabo_round] = [r for r in region.store.records_of_type("round")
                    if r.view()["doctor_id"] == region.ids["doctor-anna"] and r.view()["municipality"] == "Halmstad"]
    resident = str(uuid.uuid4())  # a third resident joins the demo round
    region.write("nurse-halmstad", "patient", resident, {
        "personnummer": make_test_personnummer(dt.date(1930, 6, 1), 947), "name": "Ruth Testsson",
        "municipality": "Halmstad", "care_setting": "sabo", "facility": sabo_round.view()["facility"]})
    region.write("doctor-anna", "round", sabo_round.id, {"items": {resident: {"question": "Ny boende: inskrivningsrond",
                                                                               "status": "open"}}})
    anna = Laptop(region, "doctor-anna", tmp_path)
    anna("sync")
    listener = Listener(anna.replica)
    listener.start()
    yield anna, listener, patient_id, request_id
    listener.stop()


def test_the_doctor_works_offline_on_the_laptops_pages_and_a_sync_brings_it_all_to_the_server(browser, region, day):
    anna, listener, patient_id, request_id = day
    [sabo_round] = [r for r in region.store.records_of_type("round")
                    if r.view()["doctor_id"] == region.ids["doctor-anna"] and r.view()["municipality"] == "Halmstad"]
    residents = sabo_round.view()["items"]
    assert len(residents) == 3
    network = Network(region.server)
    network.down()
    try:
        page = browser.new_context(locale="sv-SE", viewport={"width": 1280, "height": 900}).new_page()
        page.goto(listener.url)
        expect(page.get_by_role("heading", name="Dagens förfrågningar")).to_be_visible()
        row = page.get_by_role("row", name=PATIENT)
        expect(row).to_contain_text(REASON)
        screenshot(page, "laptop-today")
        page.get_by_role("link", name="Patienter").click()
        expect(page.get_by_role("region", name="Halmstad")).to_contain_text(PATIENT)
        screenshot(page, "laptop-caseload")
        page.get_by_role("link", name="I dag").click()
        row = page.get_by_role("row", name=PATIENT)
        row.get_by_role("button", name="Acceptera").click()
        expect(page.get_by_role("row", name=PATIENT)).to_contain_text("ännu inte skickad")
        page.get_by_role("row", name=PATIENT).get_by_role("button", name="På väg").click()
        page.get_by_role("row", name=PATIENT).get_by_role("button", name="På plats").click()
        expect(page.get_by_role("row", name=PATIENT)).to_contain_text("Besöket klart")

        page.get_by_role("link", name=PATIENT).click()
        warnings = page.get_by_role("region", name="Varningar och allergier")
        expect(warnings).to_contain_text("Penicillin: andnöd")
        page.get_by_role("link", name="Registrera vitalparametrar").click()
        page.get_by_label("Andningsfrekvens (/min)").fill("22")
        page.get_by_label("Syremättnad SpO2 (%)").fill("93")
        page.get_by_label("Syrgas").select_option("no")
        page.get_by_label("Temperatur (°C)").fill("38,4")
        page.get_by_label("Systoliskt blodtryck (mmHg)").fill("118")
        page.get_by_label("Puls (/min)").fill("104")
        page.get_by_label("Medvetandegrad (ACVPU)").select_option("A")
        expect(page.locator("#news2")).to_have_text("6")
        screenshot(page, "laptop-vitals")
        page.get_by_role("button", name="Spara vitalparametrarna").click()
        expect(page.get_by_text("Vitalparametrarna är sparade på den här datorn: NEWS2 6.")).to_be_visible()
        expect(page.locator("p.news2")).to_have_text("NEWS2: 6")
        page.get_by_role("link", name="Ny ordination").click()
        page.get_by_label("Läkemedel").fill("Penicillin V")
        page.get_by_label("Styrka").fill("1 g")
        page.get_by_label("Dos", exact=True).fill("1 x 3")
        page.get_by_role("button", name="Spara ordinationen").click()
        expect(page.get_by_role("alert")).to_contain_text("Penicillin V matchar en aktiv allergi: Penicillin: andnöd")
        screenshot(page, "laptop-medication-warning")
        page.get_by_label("Läkemedel").fill("Doxycyklin")
        page.get_by_label("Styrka").fill("100 mg")
        page.get_by_label("Dos", exact=True).fill("2 x 1")
        page.get_by_role("button", name="Spara ordinationen").click()
        expect(page.get_by_text("Ordinationen är sparad på den här datorn")).to_be_visible()
        page.get_by_label("Ny dos av Doxycyklin").fill("1 x 1")
        page.get_by_role("button", name="Ändra dos").click()
        expect(page.get_by_role("row", name="Doxycyklin")).to_contain_text("1 x 1")
        screenshot(page, "laptop-patient")

        page.get_by_role("link", name="I dag").click()
        page.get_by_role("row", name=PATIENT).get_by_role("link", name="Besöksanteckning").click()
        page.get_by_label("Plats").fill("Hemmet")
        page.get_by_label("Bedömning").fill("Trolig pneumoni, opåverkad")
        page.get_by_label("Plan").fill("Doxycyklin 100 mg x 1 i 7 dagar (penicillinallergi). Ny kontroll i morgon.")
        page.get_by_label("Utfall").select_option("stays_home")
        page.get_by_role("button", name="Signera anteckningen").click()
        expect(page.get_by_text("Anteckningen är signerad på den här datorn")).to_be_visible()
        expect(page.get_by_text("Signerad av Anna Berg")).to_be_visible()
        screenshot(page, "laptop-note")
        page.get_by_role("link", name="Föreslå direktinskrivning").click()
        page.get_by_label("Sjukhus").fill("Hallands sjukhus Halmstad")
        page.get_by_label("Avdelning").fill("Medicin 3")
        page.get_by_label("Orsak").fill("Om försämring i natt: direktinskrivning utan akutmottagning")
        page.get_by_label("Kontakttelefon").fill("035-000 00 00")
        screenshot(page, "laptop-admission")
        page.get_by_role("button", name="Föreslå direktinskrivning").click()
        expect(page.get_by_text("Direktinskrivningen är föreslagen på den här datorn")).to_be_visible()

        # The patient's page again: the day so far in the history, newest first, names and local times.
        page.get_by_role("link", name="Patienter").click()
        page.get_by_role("link", name=PATIENT).click()
        history = page.get_by_role("region", name="Historik")
        for text in ("Direktinskrivning · föreslagen", "Trolig pneumoni, opåverkad", "Signerad av Anna Berg",
                     "Dos ändrad: Doxycyklin 100 mg", "Ny dos: 1 x 1", "Läkemedel insatt: Doxycyklin 100 mg",
                     "Vitalparametrar · NEWS2 6", "Besöksförfrågan", REASON):
            expect(history).to_contain_text(text)
        events = history.locator("li.event h3").all_inner_texts()
        assert events.index("Direktinskrivning · föreslagen") < events.index("Dos ändrad: Doxycyklin 100 mg") \
            < events.index("Läkemedel insatt: Doxycyklin 100 mg") < events.index("Vitalparametrar · NEWS2 6")
        screenshot(page, "laptop-patient-history")

        page.get_by_role("link", name="Ronder").click()
        page.get_by_role("link", name=sabo_round.view()["facility"]).click()
        page.get_by_role("link", name="Nästa boende").click()
        for number in range(1, len(residents) + 1):
            expect(page.get_by_role("region", name="Varningar och allergier")).to_be_visible()
            if number == 1:
                screenshot(page, "laptop-round-resident")
            page.get_by_label("Anteckning").fill(f"Rondbesök {number}: opåverkad, ingen ändring.")
            page.get_by_role("button", name="klar").click()
        expect(page.get_by_role("heading", name="Rond på")).to_be_visible()
        screenshot(page, "laptop-round")

        page.get_by_role("link", name="Synkning").click()
        page.get_by_role("button", name="Synka nu").click()
        expect(page.get_by_text("Ingen kontakt med servern")).to_be_visible()
        screenshot(page, "laptop-sync-offline")
        assert region.store.get_record("visit_request", request_id).view()["status"] == "assigned"
    finally:
        network.up()

    page.get_by_role("button", name="Synka nu").click()
    expect(page.get_by_text(f"Synkat: {8 + len(residents)} ändring(ar) skickade, 0 avvisade")).to_be_visible()
    screenshot(page, "laptop-sync")
    store = region.store
    asked = store.get_record("visit_request", request_id).view()
    assert (asked["status"], asked["accepted_by"]) == ("on_site", region.ids["doctor-anna"])
    [observation] = [o.view() for o in store.records_of_patients("observation", [patient_id])]
    assert (observation["news2"], observation["pulse"], observation["measured_by"]) == (
        6, 104, region.ids["doctor-anna"])
    [visit] = [v.view() for v in store.records_of_patients("visit", [patient_id])]
    assert visit["signed_by"] == region.ids["doctor-anna"] and visit["request_id"] == request_id
    assert visit["plan"].startswith("Doxycyklin")
    [admission] = [a.view() for a in store.records_of_patients("admission", [patient_id])]
    assert (admission["status"], admission["visit_id"], admission["ward"]) == ("proposed", visit["id"], "Medicin 3")
    [medication] = [m.view() for m in store.records_of_patients("medication", [patient_id])]
    assert (medication["drug"], medication["dose"]) == ("Doxycyklin", "1 x 1")
    items = store.get_record("round", sabo_round.id).view()["items"]
    assert {i["status"] for i in items.values()} == {"done"} and len(items) == len(residents) >= 3
    assert anna("verify")["agreed"]
    sara = Laptop(region, "doctor-sara", folder_of(anna))  # a second laptop of the region holds it all too
    sara("sync")
    assert sara("verify")["agreed"]
    for record_type, record_id in (("visit", visit["id"]), ("observation", observation["id"]),
                                   ("medication", medication["id"]), ("visit_request", request_id)):
        held = sara("get", record_type, record_id)
        assert {k: v for k, v in held.items() if not k.startswith("_")} == store.get_record(record_type,
                                                                                            record_id).view()

    # A new assignment reaches the open list by itself once the laptop has synced (the page polls the replica).
    page.get_by_role("link", name="I dag").click()
    expect(page.get_by_role("alert")).to_have_count(0)
    urgent = str(uuid.uuid4())
    region.write("nurse-halmstad", "visit_request", urgent, {
        "patient_id": patient_id, "urgency": "acute", "reason": "Plötslig bröstsmärta"})
    region.write("dispatcher-lena", "visit_request", urgent, {
        "assigned_doctor_id": region.ids["doctor-anna"], "status": "assigned"})
    anna("sync")  # as the background sync would, from another connection
    expect(page.get_by_role("alert")).to_contain_text(f"Ny förfrågan till dig: {PATIENT} · Plötslig bröstsmärta")
    expect(page.get_by_role("row", name="Plötslig bröstsmärta")).to_contain_text("Acceptera")
    screenshot(page, "laptop-new-request")
    opened = {e["record_type"] for e in store.audit_log(patient_id=patient_id, limit=10_000) if e["kind"] == "access"}
    assert {"patient", "warning", "observation", "visit_request", "visit"} <= opened
