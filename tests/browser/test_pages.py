"""A nurse's, a dispatcher's day in the browser, and the pages' safety rules (CSRF, roles, escaping)."""

import json
import re
import uuid

from playwright.sync_api import expect

from .conftest import PASSWORD, SCRIPT_NAME, Laptop, demo_region, screenshot

LIVE = 5_000  # ms: what "live" promises (DOMAIN.md "The people's screens")


def test_a_nurses_acute_request_is_assigned_accepted_on_the_laptop_and_the_signed_plan_reaches_her_page(
        browser, region, tmp_path):
    patient_id = region.patient_named("Tolvan Tolvansson")
    named = region.user("doctor-sara")
    region.write("nurse-halmstad", "patient", patient_id, {"named_doctor_id": named["id"]})

    board = region.sign_in(browser, "dispatcher-lena")
    expect(board.get_by_role("heading", name="Kö")).to_be_visible()

    nurse = region.sign_in(browser, "nurse-halmstad")
    expect(nurse.get_by_role("heading", name="Mina besöksbegäranden")).to_be_visible()
    screenshot(nurse, "nurse-requests")
    nurse.get_by_role("link", name="Patienter").click()
    nurse.get_by_label("Namn eller personnummer").fill("tolvan")
    nurse.get_by_role("button", name="Sök").click()
    screenshot(nurse, "nurse-search")
    nurse.get_by_role("link", name="Tolvan Tolvansson").click()
    expect(nurse.get_by_role("heading", name="Tolvan Tolvansson")).to_be_visible()
    screenshot(nurse, "nurse-patient")
    nurse.get_by_role("link", name="Begär läkarbesök").click()

    nurse.get_by_label("Orsak").fill("Akut andnöd, kallsvettig")
    nurse.get_by_label("Brådska").select_option("acute")
    nurse.get_by_label("Andningsfrekvens (/min)").fill("18")
    expect(nurse.locator("#news2")).to_have_text("0 (ofullständig)")
    expect(nurse.get_by_text("Överväg 112")).to_be_hidden()
    nurse.get_by_label("Andningsfrekvens (/min)").fill("30")
    nurse.get_by_label("Syremättnad SpO2 (%)").fill("88")
    nurse.get_by_label("Puls (/min)").fill("135")
    expect(nurse.locator("#news2")).to_have_text("9 (ofullständig)")
    expect(nurse.get_by_text("Överväg 112")).to_be_visible()
    screenshot(nurse, "nurse-request-form")
    nurse.get_by_role("button", name="Skicka begäran").click()
    expect(nurse.get_by_text("Begäran skickades.")).to_be_visible()
    row = nurse.get_by_role("row").filter(has_text="Akut andnöd, kallsvettig")
    expect(row).to_contain_text("begärd")

    # The open board shows it without a reload, first (an emergency), with the 112 advice and the named doctor.
    entry = board.get_by_role("row").filter(has_text="Akut andnöd, kallsvettig")
    expect(entry).to_be_visible(timeout=LIVE)
    expect(entry).to_contain_text("Tolvan Tolvansson")
    expect(entry).to_contain_text("Överväg 112 (NEWS2 9)")
    expect(entry).to_contain_text("Maria Ek")
    screenshot(board, "dispatcher-queue")
    entry.get_by_role("button", name=f"Tilldela {named['name']}").click()
    expect(board.get_by_text(f"Tilldelad {named['name']}.")).to_be_visible()

    # ... and the nurse's page follows without a reload.
    expect(row).to_contain_text("tilldelad", timeout=LIVE)
    expect(row).to_contain_text(named["name"])

    # The named doctor's laptop (its CLI) syncs, accepts, goes on site, signs the note and syncs again.
    request_id = region.request_with_reason("Akut andnöd, kallsvettig")
    laptop = Laptop(region, "doctor-sara", tmp_path)
    laptop("sync")
    laptop("accept", request_id)
    laptop("progress", request_id, "en_route")
    laptop("sync")
    expect(row).to_contain_text("på väg", timeout=LIVE)
    laptop("progress", request_id, "on_site")
    visit = laptop("put", "visit", "--data", json.dumps({
        "patient_id": patient_id, "request_id": request_id, "doctor_id": named["id"], "kind": "home_visit",
        "assessment": "Hjärtsvikt, försämrad", "plan": "Furosemid 40 mg i dag, ny bedömning i morgon"}))
    laptop("sign", visit["id"])
    laptop("progress", request_id, "completed")
    assert laptop("sync")["rejected"] == []

    # Without a reload, the nurse sees the request completed and the doctor's signed plan.
    expect(row).to_contain_text("utförd", timeout=LIVE)
    expect(row).to_contain_text("Furosemid 40 mg i dag, ny bedömning i morgon")
    expect(row).to_contain_text(f"Signerad av {named['name']}")
    screenshot(nurse, "nurse-signed-plan")


def test_a_patient_named_like_a_script_renders_as_text_on_every_page(browser, region):
    dialogs = []
    nurse = region.sign_in(browser, "nurse-halmstad")
    nurse.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    nurse.get_by_role("link", name="Patienter").click()
    nurse.get_by_label("Namn eller personnummer").fill("script")
    nurse.get_by_role("button", name="Sök").click()
    nurse.get_by_role("link", name=SCRIPT_NAME).click()
    expect(nurse.get_by_role("heading", name=SCRIPT_NAME)).to_be_visible()
    nurse.get_by_role("link", name="Begär läkarbesök").click()
    nurse.get_by_label("Orsak").fill("<img src=x onerror=alert(2)>")
    nurse.get_by_label("Brådska").select_option("planned")
    nurse.get_by_role("button", name="Skicka begäran").click()
    expect(nurse.get_by_role("cell", name="<img src=x onerror=alert(2)>")).to_be_visible()

    board = region.sign_in(browser, "dispatcher-lena")
    board.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    expect(board.get_by_text(SCRIPT_NAME)).to_be_visible()
    assert dialogs == []


def test_a_form_posted_without_its_csrf_token_is_refused(browser, region):
    nurse = region.sign_in(browser, "nurse-halmstad")
    nurse.goto(region.url + f"/nurse/patients/{region.patient_named('Tolvan Tolvansson')}/request")
    nurse.get_by_label("Orsak").fill("Utan säkerhetskod")
    nurse.evaluate("document.querySelector('#request-form input[name=csrf_token]').remove()")
    with nurse.expect_response(re.compile(r"/request$")) as sent:
        nurse.get_by_role("button", name="Skicka begäran").click()
    assert sent.value.status == 403
    expect(nurse.get_by_role("heading", name="Formuläret nekades")).to_be_visible()
    assert "Utan säkerhetskod" not in region.server.database_text()


def test_a_nurses_session_cannot_open_the_dispatchers_pages(browser, region):
    nurse = region.sign_in(browser, "nurse-halmstad")
    response = nurse.goto(region.url + "/dispatch/queue")
    assert response.status == 403
    expect(nurse.get_by_role("heading", name="Inte din sida")).to_be_visible()


def test_signing_in_lands_each_person_on_their_page(browser, region):
    page = browser.new_page()
    page.goto(region.url + "/")
    expect(page.get_by_role("heading", name="Logga in")).to_be_visible()
    screenshot(page, "sign-in")
    page.close()
    assert region.sign_in(browser, "dispatcher-lena").url.endswith("/dispatch/queue")
    assert region.sign_in(browser, "nurse-halmstad").url.endswith("/nurse/requests")


def test_an_admin_lands_on_the_users_and_searches_the_audit_log_by_user(browser, region):
    admin = region.sign_in(browser, "admin-per")
    expect(admin.get_by_role("heading", name="Användare")).to_be_visible()
    expect(admin.get_by_role("cell", name="Maria Ek")).to_be_visible()
    screenshot(admin, "admin-users")
    admin.get_by_role("link", name="Enheter").click()
    expect(admin.get_by_role("heading", name="Enheter")).to_be_visible()
    admin.get_by_role("link", name="Granskningslogg").click()
    admin.get_by_label("Person", exact=True).select_option(label="Maria Ek (sjuksköterska)")
    admin.get_by_role("button", name="Sök").click()
    expect(admin.get_by_role("cell", name="Maria Ek").first).to_be_visible()
    screenshot(admin, "admin-audit")


def test_an_escalation_reaches_an_open_board_as_a_banner(browser, region):
    import datetime as dt

    from schema.clock import utcnow
    from server import jobs

    board = region.sign_in(browser, "dispatcher-lena")
    expect(board.get_by_role("heading", name="Kö")).to_be_visible()
    added = jobs.escalate_due(region.store, utcnow() + dt.timedelta(days=30), region.server.app.config["HEMSYNC"])
    assert added
    expect(board.locator(".banner").first).to_contain_text("Eskalerad", timeout=LIVE)
    screenshot(board, "dispatcher-escalation")


def test_signing_in_is_refused_for_a_while_after_too_many_wrong_passwords(browser, tmp_path):
    region = demo_region(tmp_path)  # its own server: the lock-out holds for this computer's address
    try:
        page = browser.new_page(locale="sv-SE")
        page.goto(region.url + "/sign-in")
        nurse = region.user("nurse-halmstad")
        for _ in range(region.server.app.config["HEMSYNC"]["HEMSYNC_AUTH_FAILURES"]):
            page.get_by_label("HSA-id").fill(nurse["hsa_id"])
            page.get_by_label("Lösenord").fill("fel lösenord")
            page.get_by_role("button", name="Logga in").click()
            expect(page.get_by_text("Fel HSA-id eller lösenord.")).to_be_visible()
        page.get_by_label("HSA-id").fill(nurse["hsa_id"])
        page.get_by_label("Lösenord").fill(PASSWORD)
        with page.expect_response(re.compile(r"/sign-in$")) as answer:
            page.get_by_role("button", name="Logga in").click()
        assert answer.value.status == 429
        expect(page.get_by_text("För många misslyckade inloggningar")).to_be_visible()
        expect(page.get_by_role("heading", name="Logga in")).to_be_visible()  # the right password waits too
        screenshot(page, "sign-in-locked")
    finally:
        region.server.stop()


def test_an_admin_merges_two_records_of_one_person_from_the_duplicates_page(browser, region):
    kept = region.patient_named("Tolvan Tolvansson")
    personnummer = region.store.get_record("patient", kept).state["fields"]["personnummer"]["value"]
    duplicate = str(uuid.uuid4())
    region.write("nurse-halmstad", "patient", duplicate, {
        "personnummer": personnummer, "name": "Tolvan Tolvansson (ny)", "municipality": "Halmstad"})
    admin = region.sign_in(browser, "admin-per")
    admin.get_by_role("link", name="Dubbletter").click()
    case = admin.locator("form.duplicate").filter(has_text="Tolvan Tolvansson (ny)")
    expect(case).to_contain_text("Maria Ek")
    screenshot(admin, "admin-duplicates")
    case.get_by_label("Behåll").select_option(kept)
    case.get_by_label("Slå ihop in i den").select_option(duplicate)
    case.get_by_label("Orsak").fill("Samma person, registrerad två gånger")
    case.get_by_role("button", name="Slå ihop").click()
    expect(admin.get_by_text(re.compile(r"Sammanslagen: \d+ uppgift\(er\) flyttade"))).to_be_visible()
    expect(admin.locator("form.duplicate").filter(has_text="Tolvan Tolvansson (ny)")).to_have_count(0)
