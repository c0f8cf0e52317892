"""Each public shape is declared once: what the server answers is what its OpenAPI schema says."""

import json

from click.testing import CliRunner

from client_sync.replica import Replica
from schema.dispatch import DispatchSettings
from server import auth, settings
from server.cli import main
from server.bodies import DEVICE_HEALTH_FIELDS
from server.settings import dispatch_settings
from server.store import SqliteStore
from tests.server.conftest import new_patient, new_request


def _properties(spec, name):
    return set(spec["components"]["schemas"][name]["properties"])


def test_every_admin_answers_keys_are_in_its_openapi_schema(region):
    nurse, admin = region.nurse, region.admin
    nurse.post("/v1/handshake", {"pending": 1, "rejected": 0})
    patient = new_patient(nurse)
    nurse.push(patient, nurse.change("warning", patient_id=patient["record_id"], kind="nonsense"))
    spec = region.server.app.test_client().get("/openapi.json").get_json()
    answers = {path: admin.session.get(region.server.url + path).json()
               for path in ("/v1/admin/devices", "/v1/admin/audit", "/v1/admin/quarantine")}
    assert answers["/v1/admin/devices"]["devices"] and answers["/v1/admin/quarantine"]["entries"]
    for device in answers["/v1/admin/devices"]["devices"]:
        assert set(device) == _properties(spec, "DeviceHealth")
    for entry in answers["/v1/admin/audit"]["entries"]:
        assert set(entry) <= _properties(spec, "AuditEntry")
    for entry in answers["/v1/admin/quarantine"]["entries"]:
        assert set(entry) <= _properties(spec, "QuarantineEntry")


def test_the_device_health_the_cli_shows_is_the_apis(tmp_path):
    db = str(tmp_path / "cli.db")
    runner = CliRunner()
    seeded = runner.invoke(main, ["--db", db, "seed-demo"])
    assert seeded.exit_code == 0, seeded.output
    store = SqliteStore(db)
    auth.enroll(store, store.users()[0]["id"], "a laptop")
    store.close()
    result = runner.invoke(main, ["--db", db, "devices", "--json"])
    assert [set(d) for d in json.loads(result.output)] == [set(DEVICE_HEALTH_FIELDS)]


def test_the_handshake_gives_the_laptop_the_regions_dispatch_settings(region, tmp_path):
    answer = region.dispatcher.post("/v1/handshake", {}).json()
    assert DispatchSettings.from_wire(answer["dispatch"]) == dispatch_settings(region.server.app.config["HEMSYNC"])
    late = dispatch_settings(settings.load({"HEMSYNC_WORKDAY_END": "18:30", "HEMSYNC_PLANNED_DAYS": "3"}))
    assert DispatchSettings.from_wire(late.to_wire()) == late
    replica = Replica(str(tmp_path / "replica.db"))
    replica.apply_handshake({**answer, "dispatch": late.to_wire()})
    assert replica.dispatch_settings() == late
    assert replica.merge_options()["dispatch"] == late
    replica.close()


def test_an_office_read_is_audited_the_same_by_the_api_and_the_cli(region):
    nurse, dispatcher = region.nurse, region.dispatcher
    patient = new_patient(nurse)
    nurse.push(patient, new_request(nurse, patient["record_id"]))
    dispatcher.session.get(region.server.url + "/v1/queue")
    store = region.server.store
    result = CliRunner().invoke(main, ["--db", str(region.server.db_path), "queue", "--json"])
    assert result.exit_code == 0, result.output
    reads = [e for e in store.audit_log(limit=1000) if e["kind"] == "pull" and "endpoint" in e["details"]]
    by_via = {e["details"]["endpoint"]: e["details"]["records"] for e in reads}
    assert by_via["GET /v1/queue"] == by_via["hemsync-server queue"]
    assert len(by_via["GET /v1/queue"]) == 2
