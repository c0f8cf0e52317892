"""The server's pages without a browser: sign-in, sessions, CSRF, roles, one write path, audited reads."""

import re
import uuid

import pytest
from click.testing import CliRunner

from server import create_app, passwords, seed
from server.cli import main
from schema.clock import now_text, utcnow
from server.pages.session import WEB_DEVICE
from server.store import SqliteStore
from server.writes import WriteApplier

PASSWORD = "ett långt lösenord för test"


@pytest.fixture
def demo(tmp_path):
    """The demo region in a fresh store, every person with PASSWORD, and an app on it."""
    store = SqliteStore(tmp_path / "hemsync.db")
    app = create_app({"STORE": store, "HEMSYNC_DB": str(tmp_path / "hemsync.db"), "TESTING": True})
    seed.seed_demo(store, app.config["HEMSYNC"])
    ids = seed.demo_users()
    admin = store.get_user(ids["admin-per"])
    for user_id in ids.values():
        passwords.set_password(store, user_id, PASSWORD, admin)
    yield app, store, ids
    store.close()


def csrf_of(client, path):
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)


def sign_in(client, store, user_id, password=PASSWORD):
    token = csrf_of(client, "/sign-in")
    return client.post("/sign-in", data={"csrf_token": token, "hsa_id": store.get_user(user_id)["hsa_id"],
                                         "password": password})


def test_a_dispatcher_lands_on_the_queue_and_a_nurse_on_her_requests(demo):
    app, store, ids = demo
    assert sign_in(app.test_client(), store, ids["dispatcher-lena"]).headers["Location"] == "/dispatch/queue"
    assert sign_in(app.test_client(), store, ids["nurse-halmstad"]).headers["Location"] == "/nurse/requests"


def test_the_session_cookie_is_httponly_and_samesite_lax(demo):
    app, store, ids = demo
    cookie = sign_in(app.test_client(), store, ids["nurse-halmstad"]).headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie


def test_the_session_cookie_is_secure_when_the_server_speaks_tls(tmp_path):
    store = SqliteStore(tmp_path / "hemsync.db")
    app = create_app({"STORE": store, "HEMSYNC_TLS_CERTFILE": "cert.pem", "HEMSYNC_TLS_KEYFILE": "key.pem"})
    assert app.config["SESSION_COOKIE_SECURE"] is True
    store.close()


def test_a_wrong_password_is_refused_audited_and_rate_limited(demo):
    app, store, ids = demo
    client = app.test_client()
    statuses = [sign_in(client, store, ids["nurse-halmstad"], "fel lösenord").status_code for _ in range(6)]
    assert statuses == [401] * 5 + [429]
    assert sign_in(client, store, ids["nurse-halmstad"]).status_code == 429
    failures = [e for e in store.audit_log(limit=1000) if e["kind"] == "auth_failed"]
    assert [e["details"]["reason"] for e in failures] == ["password"] * 5


def test_a_password_reset_ends_the_sessions_opened_with_the_old_one(demo):
    app, store, ids = demo
    client = app.test_client()
    sign_in(client, store, ids["nurse-halmstad"])
    assert client.get("/nurse/requests").status_code == 200
    passwords.set_password(store, ids["nurse-halmstad"], "ett helt annat lösenord", store.get_user(ids["admin-per"]))
    assert client.get("/nurse/requests").status_code == 302


def test_a_session_expires_after_the_session_minutes(demo, monkeypatch):
    app, store, ids = demo
    client = app.test_client()
    sign_in(client, store, ids["nurse-halmstad"])
    later = __import__("time").time() + app.config["HEMSYNC"]["HEMSYNC_SESSION_MINUTES"] * 60 + 1
    monkeypatch.setattr("server.pages.session.time.time", lambda: later)
    assert client.get("/nurse/requests").headers["Location"].startswith("/sign-in")


def test_a_page_form_without_its_csrf_token_is_refused_in_swedish(demo):
    app, store, ids = demo
    client = app.test_client()
    sign_in(client, store, ids["dispatcher-lena"])
    response = client.post("/sign-out")
    assert response.status_code == 403 and "Formuläret nekades" in response.get_data(as_text=True)


def test_a_nurse_may_not_open_the_dispatchers_queue(demo):
    app, store, ids = demo
    client = app.test_client()
    sign_in(client, store, ids["nurse-halmstad"])
    response = client.get("/dispatch/queue")
    assert response.status_code == 403 and "Inte din sida" in response.get_data(as_text=True)


def send_request(client, patient_id, **fields):
    """Send the nurse's request form for the patient, with its CSRF token."""
    token = csrf_of(client, f"/nurse/patients/{patient_id}/request")
    return client.post(f"/nurse/patients/{patient_id}/request", data={"csrf_token": token, **fields})


def test_a_request_sent_from_the_page_is_the_nurses_change_through_the_one_write_path(demo):
    app, store, ids = demo
    client = app.test_client()
    sign_in(client, store, ids["nurse-halmstad"])
    patient_id = next(p for p in store.patients_in(["Halmstad"]))
    response = send_request(client, patient_id, reason="Feber", urgency="urgent", resp_rate="22", pulse="95")
    assert response.status_code == 302
    accepted = [e for e in store.audit_log(limit=1000) if e["kind"] == "change" and e["device_id"] == WEB_DEVICE["id"]]
    assert {(e["record_type"], e["user_id"]) for e in accepted} == {("observation", ids["nurse-halmstad"]),
                                                                    ("visit_request", ids["nurse-halmstad"])}


def test_a_nurse_cannot_open_a_patient_outside_her_municipalities(demo):
    app, store, ids = demo
    client = app.test_client()
    sign_in(client, store, ids["nurse-halmstad"])
    elsewhere = next(p for p in store.patients_in(["Laholm"]))
    assert client.get(f"/nurse/patients/{elsewhere}").status_code == 404


def test_the_queue_page_audits_every_patient_it_shows(demo):
    app, store, ids = demo
    client = app.test_client()
    sign_in(client, store, ids["dispatcher-lena"])
    before = len(store.audit_log(limit=10_000))
    assert client.get("/dispatch/queue?part=board").status_code == 200
    shown = {e["patient_id"] for e in store.audit_log(after=before, limit=10_000)
             if e["user_id"] == ids["dispatcher-lena"]}
    open_patients = {p for _, p in store.requests_with_status(["requested", "triaged", "assigned"])}
    assert open_patients <= shown


def test_news2_as_typed_comes_from_the_server_with_the_112_advice_at_7(demo):
    app, store, ids = demo
    client = app.test_client()
    sign_in(client, store, ids["nurse-halmstad"])
    patient_id = next(p for p in store.patients_in(["Halmstad"]))
    low = client.get(f"/nurse/patients/{patient_id}/news2?resp_rate=18").get_json()
    high = client.get(f"/nurse/patients/{patient_id}/news2?resp_rate=30&spo2=88&pulse=135").get_json()
    red = client.get(f"/nurse/patients/{patient_id}/news2?resp_rate=18&retts_colour=red").get_json()
    assert (low["total"], low["consider_112"]) == (0, False)
    assert (high["total"], high["consider_112"]) == (9, True)
    assert red["consider_112"] is True


def test_set_password_reads_stdin_when_it_is_not_a_terminal_and_is_audited(demo, tmp_path):
    app, store, ids = demo
    result = CliRunner().invoke(main, ["--db", str(tmp_path / "hemsync.db"), "set-password", "--user",
                                       ids["nurse-halmstad"], "--by", ids["admin-per"]],
                                input="ett nytt långt lösenord\n")
    assert result.exit_code == 0, result.output
    assert passwords.verify(store, store.get_user(ids["nurse-halmstad"])["hsa_id"], "ett nytt långt lösenord")
    assert "ett nytt långt lösenord" not in result.output
    assert any(e["details"].get("action") == "set_password" for e in store.audit_log(limit=10_000))


def test_set_password_refuses_a_short_password(demo, tmp_path):
    app, store, ids = demo
    result = CliRunner().invoke(main, ["--db", str(tmp_path / "hemsync.db"), "set-password", "--user",
                                       ids["nurse-halmstad"], "--by", ids["admin-per"]], input="kort\n")
    assert result.exit_code != 0 and "at least 12 characters" in result.output


def test_the_swedish_catalogue_translates_every_message_it_holds():
    from server.web import i18n

    assert all(message.string for message in i18n.catalogue() if message.id)


def test_an_admin_revokes_a_device_from_the_devices_page_and_it_is_audited(demo):
    from server import auth

    app, store, ids = demo
    device, _ = auth.enroll(store, ids["nurse-halmstad"], "Marias dator")
    client = app.test_client()
    assert sign_in(client, store, ids["admin-per"]).headers["Location"] == "/admin/users"
    token = csrf_of(client, "/admin/devices")
    assert client.post(f"/admin/devices/{device['id']}/revoke", data={"csrf_token": token}).status_code == 302
    assert store.get_device(device["id"])["revoked_at"]
    assert any(e["details"].get("action") == "revoke" and e["device_id"] == device["id"]
               for e in store.audit_log(limit=10_000))


def test_every_admin_page_opens_and_the_audit_log_read_is_audited(demo):
    app, store, ids = demo
    client = app.test_client()
    sign_in(client, store, ids["admin-per"])
    for path in ("/admin/users", "/admin/devices", "/admin/quarantine", "/admin/duplicates",
                 f"/admin/audit?user_id={ids['nurse-halmstad']}"):
        assert client.get(path).status_code == 200, path
    reads = {e["details"]["read"] for e in store.audit_log(limit=10_000) if e["kind"] == "admin_read"}
    assert reads == {"quarantine", "duplicates", "audit"}


def test_a_nurse_may_not_open_the_admin_pages(demo):
    app, store, ids = demo
    client = app.test_client()
    sign_in(client, store, ids["nurse-halmstad"])
    assert client.get("/admin/users").status_code == 403


def test_a_polled_board_logs_each_patient_once_per_window_not_per_poll(demo):
    app, store, ids = demo
    client = app.test_client()
    sign_in(client, store, ids["dispatcher-lena"])
    client.get("/dispatch/queue?part=board")
    before = len(store.audit_log(limit=100_000))
    for _ in range(5):
        client.get("/dispatch/queue?part=board")
    assert len(store.audit_log(limit=100_000)) == before
    client.get("/dispatch/queue")
    assert len(store.audit_log(limit=100_000)) > before


def write_as(app, store, user_id, record_type, record_id, fields):
    """Write as a demo person through the one write path (as a laptop's push would)."""
    with store.transaction():
        writes = WriteApplier(store, app.config["HEMSYNC"], {"id": "test-laptop"}, store.get_user(user_id), utcnow())
        writes.write(record_type, record_id, fields)
        writes.finish()


def test_the_nurse_reads_the_doctors_signed_plan_beside_her_request_and_the_read_is_audited(demo):
    app, store, ids = demo
    client = app.test_client()
    sign_in(client, store, ids["nurse-halmstad"])
    patient_id = next(p for p in store.patients_in(["Halmstad"]))
    send_request(client, patient_id, reason="Feber sedan i går", urgency="urgent")
    request_id = next(r.id for r in store.records_of_patients("visit_request", [patient_id])
                      if r.state["fields"]["reason"]["value"] == "Feber sedan i går")
    doctor, visit_id = ids["doctor-sara"], str(uuid.uuid4())
    write_as(app, store, doctor, "visit", visit_id, {
        "patient_id": patient_id, "request_id": request_id, "doctor_id": doctor, "kind": "home_visit",
        "assessment": "Lunginflammation", "plan": "Antibiotika i 7 dagar, ny kontroll på fredag"})
    table = client.get("/nurse/requests?part=table").get_data(as_text=True)
    assert "Antibiotika i 7 dagar" not in table  # a note not yet signed is the doctor's draft

    write_as(app, store, doctor, "visit", visit_id, {"signed_at": now_text()})
    write_as(app, store, doctor, "amendment", str(uuid.uuid4()), {"patient_id": patient_id, "visit_id": visit_id,
                                                                    "text": "Ring 1177 vid försämring"})
    before = len(store.audit_log(limit=100_000))
    table = client.get("/nurse/requests?part=table").get_data(as_text=True)
    assert "Antibiotika i 7 dagar, ny kontroll på fredag" in table
    assert "Signerad av Sara Holm" in table and "Ring 1177 vid försämring" in table
    read = [e for e in store.audit_log(after=before, limit=100_000) if e["patient_id"] == patient_id]
    assert f"visit/{visit_id}" in read[0]["details"]["records"]


def test_the_board_shows_each_doctor_on_duty_or_not_with_their_load(demo):
    from server import auth

    app, store, ids = demo
    client = app.test_client()
    sign_in(client, store, ids["dispatcher-lena"])

    def doctors_panel():
        board = client.get("/dispatch/queue?part=board").get_data(as_text=True)
        panel = board[board.index('id="on-duty-heading"'):]
        rows = [re.findall(r"<td>(.*?)</td>", row, re.S) for row in re.findall(r"<tr class=.*?</tr>", panel, re.S)]
        return [(cells[0], cells[2], int(cells[3]), int(cells[4])) for cells in rows]

    before = {name: assigned for name, _, assigned, _ in doctors_panel()}
    device, _ = auth.enroll(store, ids["doctor-sara"], "Saras dator")
    store.update_device(device["id"], {"last_sync_at": now_text()})
    request_id = next(r for r, _ in store.requests_with_status(["requested"]))
    write_as(app, store, ids["dispatcher-lena"], "visit_request", request_id,
             {"status": "assigned", "assigned_doctor_id": ids["doctor-anna"]})

    after = doctors_panel()
    assert after[0][:2] == ("Sara Holm", "ja")  # on duty first: her laptop synced just now
    assert {name: on_duty for name, on_duty, _, _ in after} == {"Sara Holm": "ja", "Anna Berg": "nej",
                                                               "Erik Lind": "nej"}
    assert {name: assigned - before[name] for name, _, assigned, _ in after} == {
        "Sara Holm": 0, "Anna Berg": 1, "Erik Lind": 0}


def test_an_admin_merges_duplicate_patients_from_the_page_and_the_act_is_audited(demo):
    app, store, ids = demo
    kept = next(p for p in store.patients_in(["Halmstad"]))
    personnummer = store.get_record("patient", kept).state["fields"]["personnummer"]["value"]
    duplicate = str(uuid.uuid4())
    write_as(app, store, ids["nurse-halmstad"], "patient", duplicate,
             {"personnummer": personnummer, "name": "Samma Person", "municipality": "Halmstad"})
    client = app.test_client()
    sign_in(client, store, ids["admin-per"])
    page_text = client.get("/admin/duplicates").get_data(as_text=True)
    assert "Samma Person" in page_text
    token = csrf_of(client, "/admin/duplicates")
    refused = client.post("/admin/duplicates/merge", data={"csrf_token": token, "keep": kept, "duplicate": duplicate,
                                                            "reason": ""}, follow_redirects=True)
    assert "Inte sammanslagen" in refused.get_data(as_text=True)
    itself = client.post("/admin/duplicates/merge", data={"csrf_token": token, "keep": kept, "duplicate": kept,
                                                           "reason": "fel val"}, follow_redirects=True)
    assert "Inte sammanslagen: choose two different records" in itself.get_data(as_text=True)
    assert "entered_in_error" not in store.get_record("patient", kept).state["fields"]
    assert store.duplicates(status="open")

    merged = client.post("/admin/duplicates/merge", data={"csrf_token": token, "keep": kept, "duplicate": duplicate,
                                                           "reason": "samma person, registrerad två gånger"},
                         follow_redirects=True)
    assert "Sammanslagen" in merged.get_data(as_text=True)
    assert store.duplicates(status="open") == []
    assert store.get_record("patient", duplicate).state["fields"]["entered_in_error"]["value"] is True
    acts = [e for e in store.audit_log(limit=100_000) if e["details"].get("action") == "merge_patients"]
    assert {(e["patient_id"], e["user_id"]) for e in acts} == {(kept, ids["admin-per"]), (duplicate, ids["admin-per"])}


def test_the_audit_log_page_is_newest_first_and_finds_a_patient_by_personnummer(demo):
    app, store, ids = demo
    patient_id = next(p for p in store.patients_in(["Halmstad"]))
    personnummer = store.get_record("patient", patient_id).state["fields"]["personnummer"]["value"]
    nurse = app.test_client()
    sign_in(nurse, store, ids["nurse-halmstad"])
    nurse.get(f"/nurse/patients/{patient_id}")
    newest = store.recent_audit(patient_id=patient_id, limit=1)[0]
    client = app.test_client()
    sign_in(client, store, ids["admin-per"])
    shown = client.get(f"/admin/audit?patient={personnummer[:8]}-{personnummer[8:]}&user_id={ids['nurse-halmstad']}")
    rows = re.findall(r"<tr><td>.*?</tr>", shown.get_data(as_text=True), re.S)
    assert rows and all(patient_id in row and "Maria Ek" in row for row in rows)
    assert newest["kind"] in rows[0]
    refused = client.get("/admin/audit?patient=19121212-1213").get_data(as_text=True)
    assert "Ingen sökning" in refused


def test_the_board_shows_the_top_of_the_queue_and_a_search_finds_the_rest_at_their_place(demo, monkeypatch):
    from server.pages import dispatch

    app, store, ids = demo
    monkeypatch.setattr(dispatch, "BOARD_ROWS", 2)
    client = app.test_client()
    sign_in(client, store, ids["dispatcher-lena"])
    board = client.get("/dispatch/queue?part=board").get_data(as_text=True)
    opened = len(store.requests_with_status(["requested", "triaged", "assigned"]))
    assert f"2 av {opened} visas" in board and board.count('<tr>\n  <td>') == 2
    found = client.get("/dispatch/queue?part=board&q=Testperson 7").get_data(as_text=True)
    positions = re.findall(r"<tr>\s*<td>(\d+)</td>", found)
    assert positions == [str(opened)]  # a planned request, last in the queue, found where it stands
    elsewhere = client.get("/dispatch/queue?part=board&q=Testperson 7&municipality=Halmstad").get_data(as_text=True)
    assert "Ingen öppen besöksbegäran matchar sökningen." in elsewhere


def test_a_page_tells_in_swedish_when_the_database_is_restarting_or_the_patient_is_not_hers(demo, monkeypatch):
    from server import queue
    from server.errors import DatabaseUnavailable

    app, store, ids = demo
    client = app.test_client()
    sign_in(client, store, ids["nurse-halmstad"])
    elsewhere = next(p for p in store.patients_in(["Laholm"]))
    missing = client.get(f"/nurse/patients/{elsewhere}")
    assert missing.status_code == 404 and "Hittades inte" in missing.get_data(as_text=True)

    sign_in(client, store, ids["dispatcher-lena"])

    def restarting(_store):
        raise DatabaseUnavailable("the database is restarting: try again in a moment", retry_after=2)

    monkeypatch.setattr(queue, "open_view", restarting)
    answer = client.get("/dispatch/queue")
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "2"
    assert "Inte utfört" in answer.get_data(as_text=True) and "try again in a moment" in answer.get_data(as_text=True)
    assert answer.mimetype == "text/html"
