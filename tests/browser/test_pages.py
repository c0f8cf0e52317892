"""A nurse's, a dispatcher's day in the browser, and the pages' safety rules (CSRF, roles, escaping)."""

import re

from playwright.sync_api import expect

from .conftest import SCRIPT_NAME, screenshot

LIVE = 5_000  # ms: what "live" promises (DOMAIN.md "The people's screens")


def test_nurse_sends_an_acute_request_with_vitals_and_the_dispatcher_assigns_the_named_doctor(browser, region):
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
    admin.get_by_label("Användar-id").fill(region.ids["nurse-halmstad"])
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
