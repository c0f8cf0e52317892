"""The laptop's pages (`hemsync ui`): only this launch's browser drives them, and they write as the CLI does.

The security half: the Host check (DNS rebinding), the launch secret and its
cookie, CSRF and the Origin check. The other half: what a page shows is in the
access log, and what a page writes is a replica write, in the outbox in order.
"""

import ast
import re
import subprocess
import sys
import uuid

import pytest

from client_sync.sync import sync
from client_sync.ui import create_app, guard
from schema.news2 import score

from .conftest import PERSONNUMMER, laptop

PORT = 8799
ORIGIN = f"http://127.0.0.1:{PORT}"


def assign_to_anna(server, tmp_path, nurse, patient_id, urgency, reason):
    """The nurse asks for a visit, a dispatcher's laptop assigns it to Dr Anna; both synced: the request's id."""
    n, cn = nurse
    request_id = str(uuid.uuid4())
    n.write("visit_request", request_id, {"patient_id": patient_id, "urgency": urgency, "reason": reason})
    sync(n, client=cn)
    dispatcher, cd = laptop(server, tmp_path, "u-disp-dan", f"dan-{request_id}")
    sync(dispatcher, client=cd)
    dispatcher.write("visit_request", request_id, {"assigned_doctor_id": "u-dr-anna", "status": "assigned"})
    sync(dispatcher, client=cd)
    dispatcher.close()
    return request_id


@pytest.fixture
def assigned(server, tmp_path, doctor, nurse):
    """A patient, a request by the nurse assigned to Dr Anna by the dispatcher; Anna's laptop synced: the ids."""
    replica, client = doctor
    n, _ = nurse
    patient_id = str(uuid.uuid4())
    n.write("patient", patient_id, {"personnummer": PERSONNUMMER, "name": "Tolvan Tolvansson", "municipality": "Umeå"})
    request_id = assign_to_anna(server, tmp_path, nurse, patient_id, "urgent", "Feber")
    sync(replica, client=client)
    return patient_id, request_id


@pytest.fixture
def app(doctor):
    """The pages over Dr Anna's replica, for a server on 127.0.0.1:PORT, with the secret ``s3cret``."""
    replica, _ = doctor
    return create_app(replica.path, port=PORT, secret="s3cret")


def browser(app):
    """A test client that opened the launch link, as the doctor's browser does."""
    client = app.test_client()
    answer = client.get(f"{guard.LAUNCH_PATH}?key=s3cret", base_url=ORIGIN)
    assert answer.status_code == 200 and 'content="0; url=/today"' in answer.get_data(as_text=True)
    return client


def csrf_of(client, path):
    page = client.get(path, base_url=ORIGIN).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def take_step(client, request_id, step, token=None, origin=None):
    """POST the request's step as the page's button does (with the CSRF token when given)."""
    data = {"step": step, **({"csrf_token": token} if token else {})}
    return client.post(f"/requests/{request_id}/step", data=data, base_url=ORIGIN,
                       headers={"Origin": origin} if origin else {})


def test_the_pages_are_locked_without_the_launch_links_session(app):
    client = app.test_client()
    answer = client.get("/today", base_url=ORIGIN)
    assert answer.status_code == 401
    assert "hemsync ui" in answer.get_data(as_text=True)


def test_a_wrong_launch_secret_opens_nothing(app):
    client = app.test_client()
    assert client.get(f"{guard.LAUNCH_PATH}?key=guess", base_url=ORIGIN).status_code == 401
    assert client.get(guard.LAUNCH_PATH, base_url=ORIGIN).status_code == 401
    assert client.get("/today", base_url=ORIGIN).status_code == 401


def test_the_launch_link_sets_an_httponly_samesite_strict_cookie_of_this_port(app):
    answer = app.test_client().get(f"{guard.LAUNCH_PATH}?key=s3cret", base_url=ORIGIN)
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith(f"hemsync_laptop_{PORT}=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert answer.headers["Referrer-Policy"] == "same-origin"


def test_the_session_of_an_earlier_launch_no_longer_counts(app, doctor):
    client = browser(app)
    assert client.get("/today", base_url=ORIGIN).status_code == 200
    again = create_app(doctor[0].path, port=PORT, secret="s3cret")
    stale = again.test_client()
    stale.set_cookie(f"hemsync_laptop_{PORT}", client.get_cookie(f"hemsync_laptop_{PORT}", domain="127.0.0.1").value,
                     domain="127.0.0.1")
    assert stale.get("/today", base_url=ORIGIN).status_code == 401


@pytest.mark.parametrize("host", ["evil.example:8799", "127.0.0.1:8800", "localhost", "127.0.0.1",
                                  "attacker.localhost:8799"])
def test_a_host_header_other_than_this_loopback_port_is_refused_against_dns_rebinding(app, host):
    client = browser(app)
    assert client.get("/today", base_url=ORIGIN, headers={"Host": host}).status_code == 403
    assert client.get(f"{guard.LAUNCH_PATH}?key=s3cret", headers={"Host": host}).status_code == 403


def test_localhost_with_the_port_is_this_server_too(app):
    client = app.test_client()
    assert client.get(f"{guard.LAUNCH_PATH}?key=s3cret", base_url=f"http://localhost:{PORT}").status_code == 200


@pytest.mark.parametrize("fetched_by", ["same-site", "cross-site"])
def test_a_request_the_browser_says_another_origin_made_is_refused_before_any_view(app, doctor, assigned, fetched_by):
    replica, _ = doctor
    patient_id, request_id = assigned
    client = browser(app)
    logged = replica.access_count()
    other = {"Sec-Fetch-Site": fetched_by}
    assert client.get(f"/patients/{patient_id}", base_url=ORIGIN, headers=other).status_code == 403
    assert client.get("/static/web/poll.js", base_url=ORIGIN, headers=other).status_code == 403
    token = csrf_of(client, "/today")
    assert client.post(f"/requests/{request_id}/step", data={"step": "accepted", "csrf_token": token},
                       base_url=ORIGIN, headers={**other, "Origin": ORIGIN}).status_code == 403
    assert replica.outbox() == [] and replica.access_count() == logged + 2  # only csrf_of's own page was logged
    assert client.get(f"{guard.LAUNCH_PATH}?key=s3cret", base_url=ORIGIN, headers=other).status_code == 200
    for own in ("same-origin", "none"):
        assert client.get(f"/patients/{patient_id}", base_url=ORIGIN, headers={"Sec-Fetch-Site": own}).status_code \
            == 200


def test_a_peer_that_is_not_loopback_is_refused(app):
    client = app.test_client()
    answer = client.get(f"{guard.LAUNCH_PATH}?key=s3cret", base_url=ORIGIN,
                        environ_base={"REMOTE_ADDR": "192.168.1.20"})
    assert answer.status_code == 403


def test_a_post_without_the_csrf_token_is_refused_and_writes_nothing(app, doctor, assigned):
    replica, _ = doctor
    _, request_id = assigned
    client = browser(app)
    assert take_step(client, request_id, "accepted").status_code == 403
    assert replica.outbox() == []


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://127.0.0.1:8800"])
def test_a_post_from_another_origin_is_refused_even_with_the_token(app, doctor, assigned, origin):
    replica, _ = doctor
    _, request_id = assigned
    client = browser(app)
    token = csrf_of(client, "/today")
    assert take_step(client, request_id, "accepted", token, origin=origin).status_code == 403
    assert replica.outbox() == []


def test_accepting_on_the_page_is_a_replica_write_and_the_list_is_logged(app, doctor, assigned):
    replica, _ = doctor
    patient_id, request_id = assigned
    client = browser(app)
    page = client.get("/today", base_url=ORIGIN).get_data(as_text=True)
    assert "Tolvan Tolvansson" in page and "Feber" in page and "Acceptera" in page
    assert {(e["patient_id"], e["record_type"]) for e in replica.access_entries(100)} >= {
        (patient_id, "visit_request"), (patient_id, "patient")}
    token = csrf_of(client, "/today")
    assert take_step(client, request_id, "accepted", token, origin=ORIGIN).status_code == 302
    [row] = replica.outbox()
    assert (row["change"]["record_type"], row["change"]["fields"]) == ("visit_request", {"status": "accepted"})
    assert replica.local("visit_request", request_id).fields["status"] == "accepted"


def test_a_step_that_is_not_the_next_one_is_not_taken(app, doctor, assigned):
    replica, _ = doctor
    _, request_id = assigned
    client = browser(app)
    token = csrf_of(client, "/today")
    assert take_step(client, request_id, "completed", token).status_code == 404 and replica.outbox() == []


def test_vitals_on_the_page_store_the_news2_of_schema_and_the_typing_score_is_schemas(app, doctor, assigned):
    replica, _ = doctor
    patient_id, _ = assigned
    vitals = {"resp_rate": "22", "spo2": "93", "supplemental_o2": "no", "temperature": "38,4", "systolic_bp": "118",
              "pulse": "104", "consciousness": "A"}
    expected = score({"resp_rate": 22, "spo2": 93, "supplemental_o2": False, "temperature": 38.4,
                      "systolic_bp": 118, "pulse": 104, "consciousness": "A", "spo2_scale": 1})
    client = browser(app)
    typed = client.get(f"/patients/{patient_id}/news2", query_string=vitals, base_url=ORIGIN).get_json()
    assert typed["total"] == expected.total
    token = csrf_of(client, f"/patients/{patient_id}/vitals")
    answer = client.post(f"/patients/{patient_id}/vitals", data={**vitals, "csrf_token": token}, base_url=ORIGIN)
    assert answer.status_code == 302
    [row] = replica.outbox()
    observation = replica.local("observation", row["change"]["record_id"]).fields
    assert (observation["news2"], observation["pulse"], observation["temperature"]) == (expected.total, 104, 38.4)
    page = client.get(f"/patients/{patient_id}", base_url=ORIGIN).get_data(as_text=True)
    assert f"NEWS2: {expected.total}" in page


def test_the_note_is_saved_then_signed_through_the_replica_and_then_sealed(app, doctor, assigned):
    replica, _ = doctor
    _, request_id = assigned
    client = browser(app)
    token = csrf_of(client, "/today")
    for step in ("accepted", "en_route", "on_site"):
        take_step(client, request_id, step, token)
    note = {"place": "Hemma", "assessment": "Pneumoni", "plan": "Antibiotika", "outcome": "stays_home",
            "csrf_token": token}
    client.post(f"/requests/{request_id}/note", data={**note, "action": "save"}, base_url=ORIGIN)
    client.post(f"/requests/{request_id}/note", data={**note, "plan": "Antibiotika i 7 dagar", "action": "sign"},
                base_url=ORIGIN)
    visits = replica.local_all("visit")
    assert len(visits) == 1
    visit = visits[0].fields
    assert (visit["plan"], visit["signed_by"], visit["request_id"]) == ("Antibiotika i 7 dagar", "u-dr-anna",
                                                                        request_id)
    assert [r["change"]["record_type"] for r in replica.outbox()] == ["visit_request"] * 3 + ["visit"] * 2
    page = client.get(f"/requests/{request_id}/note", base_url=ORIGIN).get_data(as_text=True)
    assert "Signerad av" in page and "Lägg till tillägg" in page


def test_the_laptop_loads_of_the_server_package_only_its_shared_pages_package():
    code = ("import sys, client_sync.cli, client_sync.ui.listener; "
            "print(sorted(m for m in sys.modules if m == 'server' or m.startswith('server.')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert all(name == "server" or name.startswith("server.web") for name in ast.literal_eval(loaded))
    assert "server.web" in loaded


def test_a_drug_matching_an_active_allergy_is_saved_only_once_the_doctor_ticked_the_warning(app, doctor, assigned,
                                                                                             nurse, server):
    replica, client_ = doctor
    patient_id, _ = assigned
    n, cn = nurse
    n.write("warning", str(uuid.uuid4()), {"patient_id": patient_id, "kind": "allergy", "text": "Penicillin: andnöd",
                                           "severity": "life_threatening"})
    sync(n, client=cn)
    sync(replica, client=client_)
    client = browser(app)
    path = f"/patients/{patient_id}/medications/new"
    token = csrf_of(client, path)
    drug = {"drug": "Penicillin V", "strength": "1 g", "dose": "1 x 3", "csrf_token": token}
    warned = client.post(path, data=drug, base_url=ORIGIN)
    assert warned.status_code == 200 and "Penicillin V matchar en aktiv allergi" in warned.get_data(as_text=True)
    assert replica.outbox() == []
    assert client.post(path, data={**drug, "allergy_seen": "yes"}, base_url=ORIGIN).status_code == 302
    assert client.post(path, data={**drug, "drug": "Doxycyklin", "csrf_token": token},
                       base_url=ORIGIN).status_code == 302
    assert [r["change"]["fields"]["drug"] for r in replica.outbox()] == ["Penicillin V", "Doxycyklin"]
    medication_id = replica.outbox()[1]["change"]["record_id"]
    answer = client.post(f"/patients/{patient_id}/medications/{medication_id}/dose",
                         data={"dose": "100 mg x 2", "csrf_token": token}, base_url=ORIGIN)
    assert answer.status_code == 302
    assert replica.local("medication", medication_id).fields["dose"] == "100 mg x 2"


def test_a_conflict_of_two_laptops_is_shown_side_by_side_and_resolved_with_a_click(app, doctor, other_doctor, server):
    (anna, ca), (bo, cb) = doctor, other_doctor
    patient_id, medication_id = str(uuid.uuid4()), str(uuid.uuid4())
    anna.write("patient", patient_id, {"personnummer": PERSONNUMMER, "name": "Tolvan Tolvansson", "municipality": "Umeå"})
    anna.write("medication", medication_id, {"patient_id": patient_id, "drug": "Furosemid", "dose": "40 mg x 1"})
    sync(anna, client=ca), sync(bo, client=cb)
    anna.write("medication", medication_id, {"dose": "40 mg x 2"})
    bo.write("medication", medication_id, {"dose": "20 mg x 1"})
    sync(anna, client=ca), sync(bo, client=cb), sync(anna, client=ca)
    [conflict] = anna.conflicts()
    client = browser(app)
    shown = client.get("/conflicts", base_url=ORIGIN).get_data(as_text=True)
    assert "Tolvan Tolvansson" in shown and "40 mg x 2" in shown and "20 mg x 1" in shown
    assert "Skrivet av Dr Anna" in shown and "Skrivet av Dr Bo" in shown
    choice = [v["value"] for v in conflict["values"]].index("20 mg x 1")
    token = csrf_of(client, "/conflicts")
    answer = client.post(f"/conflicts/{conflict['id']}/keep", data={"choice": choice, "csrf_token": token},
                         base_url=ORIGIN)
    assert answer.status_code == 302
    assert anna.conflicts() == [] and anna.local("medication", medication_id).fields["dose"] == "20 mg x 1"
    [row] = anna.outbox()
    assert row["change"]["resolves"] == [conflict["id"]]


def test_a_page_reads_one_moment_of_the_replica_so_a_sync_landing_meanwhile_is_never_half_seen(app, doctor,
                                                                                                assigned):
    from client_sync.replica import Replica
    from client_sync.ui import context

    replica, _ = doctor
    patient_id, _ = assigned
    with app.test_request_context(base_url=ORIGIN):
        with context.snapshot():
            before = context.replica().local("patient", patient_id).fields["name"]
            with Replica(replica.path) as other:  # another connection commits, as a sync does
                other.write("patient", patient_id, {"name": "Tolvan Nyman"})
            during = context.replica().local("patient", patient_id).fields["name"]
        after = context.replica().local("patient", patient_id).fields["name"]
    assert (before, during, after) == ("Tolvan Tolvansson", "Tolvan Tolvansson", "Tolvan Nyman")


def test_a_real_sync_landing_while_the_patient_page_reads_shows_whole_before_and_whole_on_the_next_page(
        app, doctor, nurse, assigned, monkeypatch):
    from client_sync.replica import Replica
    from client_sync.ui import patient as patient_page

    replica, client = doctor
    n, cn = nurse
    patient_id, _ = assigned
    n.write("patient", patient_id, {"name": "Tolvan Nyman"})  # the nurse's two changes reach the server together
    n.write("warning", str(uuid.uuid4()), {"patient_id": patient_id, "kind": "allergy", "text": "Penicillin: andnöd",
                                           "severity": "life_threatening"})
    sync(n, client=cn)
    reading = patient_page.patient_view
    landed = []

    def a_sync_lands_between_the_name_and_the_warnings(shown_patient_id):
        with Replica(replica.path) as background:  # the background sync: another connection, committing whole
            landed.append(sync(background, client=client).pulled)
        return reading(shown_patient_id)

    monkeypatch.setattr(patient_page, "patient_view", a_sync_lands_between_the_name_and_the_warnings)
    doctors = browser(app)
    during = doctors.get(f"/patients/{patient_id}", base_url=ORIGIN).get_data(as_text=True)
    monkeypatch.setattr(patient_page, "patient_view", reading)
    after = doctors.get(f"/patients/{patient_id}", base_url=ORIGIN).get_data(as_text=True)
    assert landed == [2]
    assert "Tolvan Tolvansson" in during and "Penicillin" not in during  # the moment before the sync, whole
    assert "Tolvan Nyman" in after and "Penicillin: andnöd" in after  # the next page: the moment after it, whole


def test_page_writes_and_cli_writes_at_the_same_moment_all_land_in_the_outbox_in_order(app, doctor, assigned):
    import threading

    from client_sync.replica import Replica

    replica, _ = doctor
    patient_id, _ = assigned
    client = browser(app)
    token = csrf_of(client, f"/patients/{patient_id}/vitals")
    start = threading.Barrier(2)

    def pages():
        start.wait()
        for pulse in range(60, 80):
            client.post(f"/patients/{patient_id}/vitals", data={"pulse": str(pulse), "csrf_token": token},
                        base_url=ORIGIN)

    def commands():
        start.wait()
        with Replica(replica.path) as cli_side:
            for pulse in range(100, 120):
                cli_side.write("observation", str(uuid.uuid4()), {"patient_id": patient_id,
                                                                   "measured_at": "2026-12-06T10:00:00Z",
                                                                   "pulse": pulse})

    threads = [threading.Thread(target=pages), threading.Thread(target=commands)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rows = replica.outbox()
    pulses = [r["change"]["fields"]["pulse"] for r in rows]
    assert sorted(pulses) == [*range(60, 80), *range(100, 120)]
    assert [r["op"] for r in rows] == sorted(r["op"] for r in rows) and len({r["op"] for r in rows}) == 40
    assert [p for p in pulses if p < 100] == list(range(60, 80))  # each writer's changes keep their order
    assert [p for p in pulses if p >= 100] == list(range(100, 120))


def test_the_listener_serves_over_real_http_on_loopback_with_the_same_checks(doctor, assigned):
    import requests

    from client_sync.ui.listener import Listener

    replica, _ = doctor
    listener = Listener(replica.path)
    listener.start()
    try:
        base = f"http://127.0.0.1:{listener.port}"
        assert listener.server.bind_addr[0] == "127.0.0.1"
        assert requests.get(base + "/today", timeout=5).status_code == 401
        assert requests.get(listener.url, headers={"Host": f"rebound.example:{listener.port}"},
                            timeout=5).status_code == 403
        browser_side = requests.Session()
        assert browser_side.get(listener.url, timeout=5).status_code == 200
        landed = browser_side.get(base + "/today", timeout=5)
        assert landed.status_code == 200 and "Tolvan Tolvansson" in landed.text
    finally:
        listener.stop()


def test_hemsync_ui_refuses_to_start_on_a_replica_with_no_login(runner, tmp_path):
    from client_sync.cli import cli

    result = runner.invoke(cli, ["--replica", str(tmp_path / "empty.db"), "ui", "--no-browser", "--port", "0"])
    assert result.exit_code == 1 and "hemsync login" in result.output


def test_a_request_a_sync_brings_after_the_first_list_is_a_notice_and_polls_log_a_record_once(app, doctor, assigned,
                                                                                              nurse, server, tmp_path):
    replica, client_ = doctor
    client = browser(app)
    first = client.get("/today", base_url=ORIGIN).get_data(as_text=True)
    assert 'role="alert"' not in first
    logged = replica.access_count()
    client.get("/today?part=board", base_url=ORIGIN)
    assert replica.access_count() == logged  # what the page just logged, its poll does not log again
    request_id = assign_to_anna(server, tmp_path, nurse, assigned[0], "acute", "Bröstsmärta")
    sync(replica, client=client_)
    board = client.get("/today?part=board", base_url=ORIGIN).get_data(as_text=True)
    assert re.search(r'<p class="banner" role="alert">Ny förfrågan till dig: Tolvan Tolvansson · Bröstsmärta', board)
    assert f'data-newest="assigned/{request_id}"' in board
    assert request_id in {e["record_id"] for e in replica.access_entries(1000)}  # logged since the sync sent the rest


def test_a_direct_admission_proposed_from_the_note_is_a_replica_write_linked_to_the_visit(app, doctor, assigned):
    replica, _ = doctor
    patient_id, request_id = assigned
    client = browser(app)
    token = csrf_of(client, "/today")
    take_step(client, request_id, "accepted", token)
    client.post(f"/requests/{request_id}/note", data={"assessment": "Sepsis?", "action": "save", "csrf_token": token},
                base_url=ORIGIN)
    [visit] = replica.local_all("visit")
    note = client.get(f"/requests/{request_id}/note", base_url=ORIGIN).get_data(as_text=True)
    assert f"/patients/{patient_id}/admission?visit={visit.id}" in note
    answer = client.post(f"/patients/{patient_id}/admission", data={
        "visit": visit.id, "hospital": "Hallands sjukhus Halmstad", "ward": "Medicin 3", "reason": "Sepsis?",
        "csrf_token": token}, base_url=ORIGIN)
    assert answer.status_code == 302
    [admission] = replica.local_all("admission")
    assert (admission.fields["status"], admission.fields["visit_id"], admission.fields["ward"]) == (
        "proposed", visit.id, "Medicin 3")


def test_a_sabo_round_is_worked_resident_by_resident_each_item_a_replica_write(app, doctor):
    replica, _ = doctor
    residents = {}
    for name in ("Alma Testsson", "Bengt Testsson", "Cecilia Testsson"):
        patient_id = str(uuid.uuid4())
        replica.write("patient", patient_id, {"personnummer": PERSONNUMMER, "name": name, "municipality": "Umeå",
                                              "care_setting": "sabo", "facility": "Solgården"})
        residents[patient_id] = name
    round_id = str(uuid.uuid4())
    replica.write("round", round_id, {"facility": "Solgården", "municipality": "Umeå", "date": "2026-12-07",
                                      "doctor_id": "u-dr-anna", "status": "planned",
                                      "items": {pid: {"question": "Rondbesök", "status": "open"} for pid in residents}})
    client = browser(app)
    listed = client.get("/rounds", base_url=ORIGIN).get_data(as_text=True)
    assert "Solgården" in listed and "3 / 3" in listed
    token = csrf_of(client, "/sync")
    path = client.get(f"/rounds/{round_id}", base_url=ORIGIN).get_data(as_text=True)
    current = re.search(rf"/rounds/{round_id}/residents/([0-9a-f-]+)\">Nästa boende", path).group(1)
    seen = []
    while current:
        page = client.get(f"/rounds/{round_id}/residents/{current}", base_url=ORIGIN).get_data(as_text=True)
        assert residents[current] in page and "Rondbesök" in page
        seen.append(current)
        answer = client.post(f"/rounds/{round_id}/residents/{current}",
                             data={"note": f"Sedd: {residents[current]}", "status": "done", "csrf_token": token},
                             base_url=ORIGIN)
        following = answer.headers["Location"].rsplit("/residents/", 1)
        current = following[1] if len(following) == 2 else None
    assert sorted(seen) == sorted(residents)
    items = replica.local("round", round_id).fields["items"]
    assert {pid: (i["status"], i["note"]) for pid, i in items.items()} == {
        pid: ("done", f"Sedd: {name}") for pid, name in residents.items()}
    assert replica.local("round", round_id).fields["status"] == "in_progress"


def test_the_caseload_groups_patients_by_municipality_and_sabo_unit_and_searches_by_personnummer(app, doctor):
    replica, _ = doctor
    for name, setting, unit in (("Alma Testsson", "sabo", "Avd 1"), ("Bengt Testsson", "own_home", None)):
        replica.write("patient", str(uuid.uuid4()), {"personnummer": PERSONNUMMER, "name": name, "municipality": "Umeå",
                                                     "care_setting": setting, "facility": unit and "Solgården",
                                                     "unit": unit})
    client = browser(app)
    page = client.get("/caseload", base_url=ORIGIN).get_data(as_text=True)
    assert re.search(r"<caption>Solgården, Avd 1 \(1\)</caption>.*Alma Testsson", page, re.S)
    assert re.search(r"<caption>Eget boende \(1\)</caption>.*Bengt Testsson", page, re.S)
    assert "Alma Testsson" in client.get("/caseload?q=121212", base_url=ORIGIN).get_data(as_text=True)
    assert "Alma" not in client.get("/caseload?q=bengt", base_url=ORIGIN).get_data(as_text=True)


def test_hemsync_ui_opens_the_browser_on_an_owner_only_file_never_on_the_secret_link(hemsync, server, monkeypatch,
                                                                                       tmp_path):
    import os
    import stat
    import webbrowser

    from client_sync.ui.listener import Listener

    opened = []
    monkeypatch.setattr(webbrowser, "open", opened.append)
    monkeypatch.setattr(Listener, "serve", lambda self: None)
    _, token = server.enroll("u-dr-anna")
    hemsync("login", "--server", "http://127.0.0.1:5000", input=f"{token}\n")
    result = hemsync("ui", "--port", "0", "--sync-every", "0")
    link = re.search(r"http://127\.0\.0\.1:\d+/launch\?key=\S+", result.output).group(0)
    [uri] = opened
    assert uri.startswith("file://") and "key=" not in uri
    path = uri.removeprefix("file://")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert link in open(path, encoding="utf-8").read().replace("&amp;", "&")


def test_the_patient_page_shows_the_whole_history_newest_first_with_names_local_times_and_visa_fler(app, doctor,
                                                                                                   nurse, server):
    from client_sync.ui.history import HISTORY_PAGE

    replica, client_ = doctor
    n, cn = nurse
    patient_id = str(uuid.uuid4())
    replica.write("patient", patient_id, {"personnummer": PERSONNUMMER, "name": "Tolvan Tolvansson",
                                          "municipality": "Umeå", "care_setting": "sabo", "facility": "Solgården"})
    visit_id, medication_id, round_id = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    replica.write("visit", visit_id, {"patient_id": patient_id, "kind": "home_visit", "doctor_id": "u-dr-anna",
                                      "started_at": "2026-07-01T08:00:00+00:00", "assessment": "Pneumoni",
                                      "plan": "Doxycyklin 7 dagar", "outcome": "stays_home"})
    replica.write("visit", visit_id, {"signed_at": "2026-07-01T08:40:00+00:00"})
    replica.write("amendment", str(uuid.uuid4()), {"visit_id": visit_id, "patient_id": patient_id,
                                                   "text": "Kontroll om en vecka"})
    replica.write("observation", str(uuid.uuid4()), {"patient_id": patient_id,
                                                     "measured_at": "2026-07-01T07:50:00+00:00", "resp_rate": 24,
                                                     "spo2": 92, "pulse": 110, "temperature": 38.9,
                                                     "systolic_bp": 105, "consciousness": "A"})
    replica.write("medication", medication_id, {"patient_id": patient_id, "drug": "Furosemid", "strength": "40 mg",
                                                "dose": "1 x 1"})
    replica.write("medication", medication_id, {"dose": "1 x 2"})
    replica.write("medication", medication_id, {"status": "discontinued", "reason": "Torr i munnen"})
    replica.write("admission", str(uuid.uuid4()), {"patient_id": patient_id, "visit_id": visit_id,
                                                   "hospital": "Hallands sjukhus", "ward": "Medicin 3",
                                                   "reason": "Syrgaskrävande"})
    replica.write("hospital_stay", str(uuid.uuid4()), {"patient_id": patient_id, "hospital": "Hallands sjukhus",
                                                       "admitted_at": "2026-05-02T10:00:00+00:00",
                                                       "discharged_at": "2026-05-09T10:00:00+00:00"})
    replica.write("round", round_id, {"facility": "Solgården", "municipality": "Umeå", "date": "2026-06-15",
                                      "doctor_id": "u-dr-anna", "items": {patient_id: {
                                          "question": "Sömnsvårigheter?", "status": "done", "note": "Sover bättre"}}})
    n.write("visit_request", str(uuid.uuid4()), {"patient_id": patient_id, "urgency": "urgent",
                                                 "reason": "Feber sedan i går"})
    sync(n, client=cn)
    sync(replica, client=client_)
    client = browser(app)
    page = client.get(f"/patients/{patient_id}", base_url=ORIGIN).get_data(as_text=True)
    assert "Fast läkarkontakt</dt><dd>ingen ännu</dd>" in page  # said, not an empty line
    history = page[page.index('id="history-title"'):]
    texts = ("Besöksförfrågan · brådskande", "Direktinskrivning · föreslagen", "Läkemedel utsatt: Furosemid",
             "Dos ändrad: Furosemid", "Läkemedel insatt: Furosemid 40 mg</h3>\n      <p>1 x 1",
             "Besök · hembesök · stannar hemma", "Vitalparametrar · NEWS2", "Rond: Solgården",
             "Sjukhusvistelse: Hallands sjukhus")
    # Newest first: what was written just now in the order it was (the medication, each change of it, the
    # admission, the nurse's request), then the visit of 1 July and the vitals before it, the round of
    # 15 June, the stay in May. The medication started as it was written: 1 x 1.
    assert [history.index(t) for t in texts] == sorted(history.index(t) for t in texts)
    assert "Torr i munnen" in history and "Ny dos: 1 x 2" in history and "Sover bättre" in history
    # Names, never ids; local times (Stockholm summer time is UTC+2).
    assert "Signerad av Dr Anna 2026-07-01 10:40" in history and "Tillägg</strong> (Dr Anna" in history
    assert "Kontroll om en vecka" in history and "2026-07-01 09:50</time> · Dr Anna" in history
    assert "Inlagd 2026-05-02 12:00, utskriven 2026-05-09 12:00" in history and "u-dr-anna" not in history
    news2 = score({"resp_rate": 24, "spo2": 92, "pulse": 110, "temperature": 38.9, "systolic_bp": 105,
                   "consciousness": "A", "spo2_scale": 1}).total
    assert f"Vitalparametrar · NEWS2 {news2}" in history
    assert "Visa fler" not in history
    logged = {(e["record_type"], e["record_id"]) for e in replica.access_entries(1000)}
    assert {("medication", medication_id), ("round", round_id), ("visit", visit_id)} <= logged

    # A long history: HISTORY_PAGE events, then "Visa fler" for the next; only what is shown is logged.
    for day in range(1, 31):
        replica.write("observation", f"obs-{day:02d}", {"patient_id": patient_id, "pulse": 60 + day,
                                                        "measured_at": f"2025-01-{day:02d}T12:00:00+00:00"})
    replica.drop_access_entries([e["id"] for e in replica.access_entries(1000)])
    page = client.get(f"/patients/{patient_id}", base_url=ORIGIN).get_data(as_text=True)
    before = len(texts)
    total = before + 30
    assert f"nyast först: {HISTORY_PAGE} av {total}." in page and "Visa fler" in page
    shown_observations = {e["record_id"] for e in replica.access_entries(1000) if e["record_id"].startswith("obs-")}
    assert shown_observations == {f"obs-{day:02d}" for day in range(31 - (HISTORY_PAGE - before), 31)}
    more = re.search(r'href="([^"]*history=\d+[^"]*)">Visa fler', page).group(1).replace("&amp;", "&")
    page = client.get(more, base_url=ORIGIN).get_data(as_text=True)
    assert f"nyast först: {total} av {total}." in page and "Visa fler" not in page and "obs-01" not in page
    assert "2025-01-01 13:00" in page
