"""The `hemsync` command line on a real replica file (the fake server where a command goes online)."""

import json
import pathlib
import re
import uuid

import pytest

from client_sync import cli as cli_module
from client_sync.cli import cli
from client_sync.http import SyncClient
from client_sync.replica import Replica

from .conftest import PERSONNUMMER

README = pathlib.Path(__file__).parents[2] / "README.md"


def login_as(hemsync, server, user_id):
    _, token = server.enroll(user_id)
    return hemsync("login", "--server", "http://127.0.0.1:5000", input=f"{token}\n")


def put(hemsync, record_type, **fields):
    return json.loads(hemsync("put", record_type, "--data", json.dumps(fields), "--json").stdout)


def test_every_command_has_an_example_and_a_place_in_the_readme():
    readme = README.read_text(encoding="utf-8")
    section = readme[readme.index("## Laptop client"):]
    for name, command in cli.commands.items():
        assert "Example: hemsync" in command.help, name
        assert re.search(rf"hemsync {name}\b", section), f"README's Laptop client section lacks {name}"


def test_login_stores_the_server_and_who_the_server_says_you_are(hemsync, server):
    result = login_as(hemsync, server, "u-dr-anna")
    assert "logged in as Dr Anna (doctor)" in result.output
    status = json.loads(hemsync("status", "--json").stdout)
    assert status["server"] == "http://127.0.0.1:5000" and status["user"]["role"] == "doctor"


def test_login_reads_the_token_from_stdin_and_has_no_token_option(hemsync, server):
    _, token = server.enroll("u-dr-anna")
    refused = hemsync("login", "--server", "http://127.0.0.1:5000", "--token", token, ok=False)
    assert refused.exit_code == 2 and "No such option '--token'" in refused.output
    result = hemsync("login", "--server", "http://127.0.0.1:5000", input=f"{token}\n")
    assert "logged in as Dr Anna" in result.output and token not in result.output
    assert hemsync("login", "--server", "http://127.0.0.1:5000", input="", ok=False).exit_code == 2


def test_login_without_a_scheme_is_a_one_line_error_that_shows_the_address_to_write(hemsync, server):
    _, token = server.enroll("u-dr-anna")
    result = hemsync("login", "--server", "127.0.0.1:5000", input=token, ok=False)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip().splitlines() == [
        "Error: '127.0.0.1:5000' is not a server address: write it with its scheme, e.g. http://127.0.0.1:5000"]


def test_login_refuses_plain_http_to_a_server_that_is_not_this_computer(hemsync, server):
    _, token = server.enroll("u-dr-anna")
    result = hemsync("login", "--server", "http://hemsync.region.se", input=token, ok=False)
    assert "refusing plain http:// to hemsync.region.se" in result.output
    assert "use https://hemsync.region.se" in result.output
    assert server.calls == []  # the token never left the laptop


def test_a_revoked_token_at_login_says_nothing_was_wiped(hemsync, server):
    login_as(hemsync, server, "u-dr-anna")
    put(hemsync, "patient", personnummer=PERSONNUMMER, name="Kept", municipality="Umeå")
    device_id, token = server.enroll("u-dr-anna")
    server.revoked.add(device_id)
    result = hemsync("login", "--server", "http://127.0.0.1:5000", input=token, ok=False)
    assert "revoked" in result.output and "nothing on this laptop was wiped" in result.output
    assert json.loads(hemsync("status", "--json").stdout)["waiting"] == 1


def test_put_then_get_json_gives_fields_conflicts_version_and_pending(hemsync, server):
    login_as(hemsync, server, "u-dr-anna")
    created = put(hemsync, "patient", personnummer=PERSONNUMMER, name="Tolvan", municipality="Umeå")
    got = json.loads(hemsync("get", "patient", created["id"], "--json").stdout)
    assert got == created
    assert set(got) == {"id", "personnummer", "name", "municipality", "_conflicts", "_version", "_pending"}
    assert (got["_conflicts"], got["_version"], len(got["_pending"])) == ([], None, 1)
    hemsync("sync")
    got = json.loads(hemsync("get", "patient", created["id"], "--json").stdout)
    assert (got["_version"], got["_pending"]) == (1, [])


def test_put_with_a_known_id_changes_only_the_given_fields_and_null_clears(hemsync, server):
    login_as(hemsync, server, "u-dr-anna")
    created = put(hemsync, "patient", personnummer=PERSONNUMMER, name="Tolvan", municipality="Umeå",
                  phone="090-1")
    changed = put(hemsync, "patient", id=created["id"], phone=None, address="Storgatan 1")
    assert (changed["name"], changed["phone"], changed["address"]) == ("Tolvan", None, "Storgatan 1")
    fresh_id = str(uuid.uuid4())
    assert put(hemsync, "patient", id=fresh_id, personnummer=PERSONNUMMER, name="B", municipality="Umeå")["id"] \
        == fresh_id


def test_a_write_the_rules_refuse_is_a_clear_error_and_writes_nothing(hemsync, server):
    login_as(hemsync, server, "u-dr-anna")
    patient = put(hemsync, "patient", personnummer=PERSONNUMMER, name="Tolvan", municipality="Umeå")
    result = hemsync("request", patient["id"], "--urgency", "acute", "--reason", "fever", ok=False)
    assert result.exit_code == 1 and "a doctor may not create visit_request records" in result.output
    assert json.loads(hemsync("status", "--json").stdout)["waiting"] == 1


def test_domain_commands_walk_a_request_from_nurse_to_doctor(hemsync, server, runner, tmp_path):
    login_as(hemsync, server, "u-nurse-cia")
    patient = put(hemsync, "patient", personnummer=PERSONNUMMER, name="Tolvan", municipality="Umeå")
    request = json.loads(hemsync("request", patient["id"], "--urgency", "urgent", "--reason", "fever",
                                 "--json").stdout)
    assert request["status"] == "requested" and request["requested_by"] == "u-nurse-cia"
    hemsync("sync")

    def as_doctor(*args, input=None):
        result = runner.invoke(cli, ["--replica", str(tmp_path / "doctor.db"), *args], input=input,
                               catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result

    _, token = server.enroll("u-dr-anna")
    as_doctor("login", "--server", "http://127.0.0.1:5000", input=token)
    as_doctor("sync")
    assert json.loads(as_doctor("accept", request["id"], "--json").stdout)["status"] == "accepted"
    assert json.loads(as_doctor("progress", request["id"], "en_route", "--json").stdout)["status"] == "en_route"
    visit = json.loads(as_doctor("put", "visit", "--data", json.dumps(
        {"patient_id": patient["id"], "request_id": request["id"], "kind": "home_visit", "assessment": "ok"}),
        "--json").stdout)
    signed = json.loads(as_doctor("sign", visit["id"], "--json").stdout)
    assert signed["signed_by"] == "u-dr-anna"
    amendment = json.loads(as_doctor("amend", visit["id"], "--text", "pulse 72", "--json").stdout)
    assert (amendment["visit_id"], amendment["author_id"]) == (visit["id"], "u-dr-anna")
    as_doctor("sync")
    assert server.states[("visit", visit["id"])]["fields"]["signed_by"]["value"] == "u-dr-anna"


def test_list_where_and_history(hemsync, server):
    login_as(hemsync, server, "u-dr-anna")
    kept = put(hemsync, "patient", personnummer=PERSONNUMMER, name="A", municipality="Umeå", palliative=True)
    put(hemsync, "patient", personnummer=PERSONNUMMER, name="B", municipality="Umeå")
    listed = json.loads(hemsync("list", "patient", "--where", "palliative=true", "--json").stdout)
    assert [r["id"] for r in listed] == [kept["id"]]
    put(hemsync, "patient", id=kept["id"], name="A2")
    hemsync("sync")
    rows = json.loads(hemsync("history", "patient", kept["id"], "--json").stdout)
    assert [(r["value"], r["why"]) for r in rows if r["field"] == "name"] == [("A", "earlier"), ("A2", "current")]
    assert "by Dr Anna" in hemsync("history", "patient", kept["id"]).output


def test_conflicts_are_listed_and_resolved_by_a_change_naming_them(hemsync, server, tmp_path):
    login_as(hemsync, server, "u-dr-anna")
    patient = put(hemsync, "patient", personnummer=PERSONNUMMER, name="A", municipality="Umeå")
    visit = put(hemsync, "visit", patient_id=patient["id"], kind="home_visit", assessment="start")
    hemsync("sync")
    # The same doctor on a second laptop edits the assessment concurrently: keep both.
    _, token = server.enroll("u-dr-anna")
    with Replica(tmp_path / "second.db") as second:
        second.login("http://127.0.0.1:5000", token, server.handshake_for(token))
        client = SyncClient("http://127.0.0.1:5000", token, session=server)
        from client_sync.sync import sync

        sync(second, client=client)
        second.write("visit", visit["id"], {"assessment": "from the second laptop"})
        sync(second, client=client)
    put(hemsync, "visit", id=visit["id"], assessment="from the first laptop")
    hemsync("sync")
    [conflict] = json.loads(hemsync("conflicts", "--json").stdout)
    assert conflict["field"] == "assessment" and conflict["severity"] == "medium"
    hemsync("resolve", conflict["id"], "--value", json.dumps("both laptops agree"))
    hemsync("sync")
    assert json.loads(hemsync("conflicts", "--json").stdout) == []
    got = json.loads(hemsync("get", "visit", visit["id"], "--json").stdout)
    assert got["assessment"] == "both laptops agree"


def test_dispatcher_commands_assign_override_and_cancel(hemsync, server, tmp_path):
    login_as(hemsync, server, "u-disp-dan")
    result = hemsync("put", "patient", "--data", json.dumps(
        {"personnummer": PERSONNUMMER, "name": "x", "municipality": "Umeå"}), ok=False)
    assert "a dispatcher may not create patient records" in result.output
    assert hemsync("override", str(uuid.uuid4()), "--rank", "0", "--reason", "x", ok=False).exit_code == 2


def test_retract_marks_entered_in_error(hemsync, server):
    login_as(hemsync, server, "u-dr-anna")
    patient = put(hemsync, "patient", personnummer=PERSONNUMMER, name="A", municipality="Umeå")
    observation = put(hemsync, "observation", patient_id=patient["id"], pulse=80,
                      measured_at="2026-11-25T10:00:00+01:00")
    retracted = json.loads(hemsync("retract", "observation", observation["id"], "--reason", "wrong patient",
                                   "--json").stdout)
    assert (retracted["entered_in_error"], retracted["entered_in_error_reason"]) == (True, "wrong patient")


def test_rejected_lists_the_servers_reasons(hemsync, server, tmp_path):
    login_as(hemsync, server, "u-dr-anna")
    with Replica(tmp_path / "laptop.db") as replica:
        replica.record_results([])
        replica.conn.execute(
            "INSERT INTO rejected (change_id, op, record_type, record_id, change, code, error, rejected_at) "
            "VALUES ('c1', 1, 'visit', 'v1', ?, 'sealed_record', ?, '2026-11-25T10:00:00+00:00')",
            (json.dumps({"record_type": "visit", "record_id": "v1", "op": 1, "fields": {"plan": "x"}}),
             json.dumps({"code": "sealed_record", "message": "this visit is signed and sealed"})))
    output = hemsync("rejected").output
    assert "rejected at 2026-11-25 11:00 (sealed_record): this visit is signed and sealed" in output  # Stockholm


def test_a_revoked_laptop_is_told_its_data_was_wiped(hemsync, server):
    login_as(hemsync, server, "u-dr-anna")
    put(hemsync, "patient", personnummer=PERSONNUMMER, name="A", municipality="Umeå")
    server.revoked.update(server.devices)
    result = hemsync("sync", ok=False)
    assert "revoked" in result.output and "wiped" in result.output and "1 unsent changes" in result.output


def test_a_client_too_old_is_told_to_upgrade_and_keeps_its_changes(hemsync, server):
    login_as(hemsync, server, "u-dr-anna")
    put(hemsync, "patient", personnummer=PERSONNUMMER, name="A", municipality="Umeå")
    server.min_client_version = "99.0.0"
    result = hemsync("sync", ok=False)
    assert "upgrade hemsync" in result.output and "kept" in result.output
    assert json.loads(hemsync("status", "--json").stdout)["waiting"] == 1


def test_the_default_replica_comes_from_the_environment(runner, tmp_path, monkeypatch):
    monkeypatch.setenv("HEMSYNC_REPLICA", str(tmp_path / "env.db"))
    result = runner.invoke(cli, ["status", "--json"])
    assert json.loads(result.stdout)["replica"] == str(tmp_path / "env.db")
    assert cli_module.DEFAULT_REPLICA.endswith("replica.db")


def test_python_dash_m_runs_the_same_cli():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "client_sync", "--help"], capture_output=True, text=True,
                            cwd=pathlib.Path(__file__).parents[2])
    assert result.returncode == 0 and "hemsync" in result.stdout


def _not_sqlite(path):
    path.write_bytes(b"this is not an SQLite file at all " * 200)


def _broken_pages(path):
    with Replica(path) as replica:
        for n in range(300):
            replica.set_setting(f"filler-{n}", "x" * 200)
    with open(path, "r+b") as file:
        file.seek(4096 * 3)
        file.write(b"\xff" * 4096 * 3)


@pytest.mark.parametrize("damage", [_not_sqlite, _broken_pages])
def test_a_damaged_replica_is_a_clear_message_naming_the_file_and_what_to_do(runner, tmp_path, damage):
    path = tmp_path / "broken.db"
    damage(path)
    result = runner.invoke(cli, ["--replica", str(path), "status"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"the replica {path} is damaged" in result.output and "move it aside" in result.output
    assert "hemsync login" in result.output


def test_the_default_replica_directory_is_made_owner_only(runner, tmp_path, monkeypatch):
    monkeypatch.delenv("HEMSYNC_REPLICA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".hemsync").mkdir(mode=0o755)
    result = runner.invoke(cli, ["status", "--json"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / ".hemsync").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / ".hemsync" / "replica.db").stat().st_mode & 0o777 == 0o600


def test_status_says_which_step_of_the_sync_keeps_failing_since_when_and_how_often(hemsync, server):
    from .fake_server import error

    login_as(hemsync, server, "u-dr-anna")
    server.faults = [error(503, "unavailable", "down for maintenance")] * 5  # the handshake and its 4 retries
    hemsync("sync", ok=False)
    server.faults = [error(503, "unavailable", "down for maintenance")] * 5
    hemsync("sync", ok=False)
    shown = hemsync("status").output
    assert "last error:  handshake failed 2 time(s) in a row since " in shown
    assert "down for maintenance (unavailable, HTTP 503)" in shown
    hemsync("sync")
    assert "last error" not in hemsync("status").output


def test_status_says_when_the_server_asked_the_laptop_to_wait(hemsync, server):
    from .fake_server import FakeResponse

    login_as(hemsync, server, "u-dr-anna")
    server.faults = [FakeResponse(503, {}, {"Retry-After": "3"})]
    hemsync("sync")
    shown = hemsync("status").output
    assert "the server asked this laptop to wait 3 s (it was busy)" in shown


def test_vitals_takes_a_unique_id_prefix_and_prints_the_name_and_schemas_news2(hemsync, server):
    from schema.news2 import score

    login_as(hemsync, server, "u-dr-anna")
    patient = put(hemsync, "patient", personnummer=PERSONNUMMER, name="Tolvan Tolvansson", municipality="Umeå")
    output = hemsync("vitals", patient["id"][:8], "--resp-rate", "22", "--spo2", "93", "--air", "--temperature",
                     "38.4", "--systolic-bp", "118", "--pulse", "104", "--consciousness", "A").output
    expected = score({"resp_rate": 22, "spo2": 93, "supplemental_o2": False, "temperature": 38.4,
                      "systolic_bp": 118, "pulse": 104, "consciousness": "A", "spo2_scale": 1}).total
    assert re.match(rf"vitals of Tolvan Tolvansson at \d{{4}}-\d\d-\d\d \d\d:\d\d by Dr Anna: NEWS2 {expected} ",
                    output), output
    partial = hemsync("vitals", patient["id"], "--pulse", "88").output
    assert "NEWS2 0 (partial: not every reading given)" in partial


def test_vitals_refuses_an_id_prefix_that_is_not_unique_or_matches_nothing(hemsync, server):
    login_as(hemsync, server, "u-dr-anna")
    for _ in range(20):  # twenty random ids: at least two share a first hex digit
        put(hemsync, "patient", personnummer=PERSONNUMMER, name="Tolvan Tolvansson", municipality="Umeå")
    ids = [row["id"] for row in json.loads(hemsync("list", "patient", "--json").stdout)]
    shared = next(i[0] for i in ids if sum(j[0] == i[0] for j in ids) > 1)
    result = hemsync("vitals", shared, "--pulse", "88", ok=False)
    assert result.exit_code == 1 and "type more of the id" in result.output
    result = hemsync("vitals", "zz", "--pulse", "88", ok=False)
    assert result.exit_code == 1 and "no patient with an id starting 'zz'" in result.output


def test_the_doctors_verbs_prescribe_dose_note_round_item_and_admit_without_json(hemsync, server):
    login_as(hemsync, server, "u-dr-anna")
    patient = put(hemsync, "patient", personnummer=PERSONNUMMER, name="Tolvan Tolvansson", municipality="Umeå")
    put(hemsync, "warning", patient_id=patient["id"], kind="allergy", text="Penicillin: andnöd",
        severity="life_threatening")
    refused = hemsync("prescribe", patient["id"][:8], "--drug", "Penicillin V", ok=False)
    assert refused.exit_code == 1 and "matches an active allergy of Tolvan Tolvansson: Penicillin: andnöd" in \
        refused.output
    given = hemsync("prescribe", patient["id"][:8], "--drug", "Doxycyklin", "--strength", "100 mg", "--dose",
                    "1 x 1").output
    assert given.startswith("Doxycyklin 100 mg 1 x 1 for Tolvan Tolvansson (medication ")
    medication_id = re.search(r"\(medication ([0-9a-f-]+),", given).group(1)
    assert "Doxycyklin for Tolvan Tolvansson: dose 1 x 2" in hemsync("dose", medication_id[:8], "--dose",
                                                                     "1 x 2").output
    round_id = put(hemsync, "round", facility="Solgården", municipality="Umeå", date="2026-12-07",
                   items={patient["id"]: {"question": "Rond", "status": "open"}})["id"]
    assert "round at Solgården: Tolvan Tolvansson done" in hemsync(
        "round-item", round_id[:8], patient["id"][:8], "--note", "Opåverkad", "--status", "done").output
    admitted = hemsync("admit", patient["id"][:8], "--hospital", "Hallands sjukhus", "--ward", "Medicin 3",
                       "--reason", "Sepsis?").output
    assert admitted.startswith("direct admission of Tolvan Tolvansson to Medicin 3, Hallands sjukhus proposed")
    [admission] = json.loads(hemsync("list", "admission", "--json").stdout)
    assert (admission["patient_id"], admission["status"], admission["ward"]) == (patient["id"], "proposed", "Medicin 3")


def test_note_writes_and_signs_the_doctors_visit_of_a_request(nurse, hemsync, server, tmp_path):
    from client_sync.sync import sync

    login_as(hemsync, server, "u-dr-anna")
    n, cn = nurse
    patient_id, request_id = str(uuid.uuid4()), str(uuid.uuid4())
    n.write("patient", patient_id, {"personnummer": PERSONNUMMER, "name": "Tolvan Tolvansson", "municipality": "Umeå"})
    n.write("visit_request", request_id, {"patient_id": patient_id, "urgency": "urgent", "reason": "Feber"})
    sync(n, client=cn)
    _, token = server.enroll("u-disp-dan")
    with Replica(tmp_path / "dan.db") as dispatcher:
        dispatcher.login("http://127.0.0.1:5000", token, server.handshake_for(token))
        sync(dispatcher, client=SyncClient("http://127.0.0.1:5000", token))  # routed to the fake by `online`
        dispatcher.write("visit_request", request_id, {"assigned_doctor_id": "u-dr-anna", "status": "assigned"})
        sync(dispatcher, client=SyncClient("http://127.0.0.1:5000", token))
    hemsync("sync")
    hemsync("accept", request_id)
    saved = hemsync("note", request_id[:8], "--assessment", "Pneumoni").output
    assert saved.startswith("visit note for Tolvan Tolvansson saved (visit ")
    signed = hemsync("note", request_id[:8], "--plan", "Doxycyklin", "--sign").output
    assert re.match(r"visit note for Tolvan Tolvansson signed at \d{4}-\d\d-\d\d \d\d:\d\d \(visit ", signed)
    [visit] = json.loads(hemsync("list", "visit", "--json").stdout)
    assert (visit["assessment"], visit["plan"], visit["request_id"], visit["signed_by"]) == (
        "Pneumoni", "Doxycyklin", request_id, "u-dr-anna")
