"""FHIR over real HTTP: a journal system finds a demo patient, reads everything and bulk-exports its municipality."""

import json
import time

import pytest
import requests

from server import auth, settings
from server.seed import seed_demo
from tests.live_server import start_live_server

pytestmark = pytest.mark.e2e


@pytest.fixture
def served(tmp_path, server_database):
    server = start_live_server(tmp_path, database=server_database, fhir_export_dir=str(tmp_path / "exports"))
    seed_demo(server.store, settings.load(overrides={"HEMSYNC_DB": str(tmp_path / "unused.db")}))
    yield server
    server.stop()


@pytest.mark.both_stores
def test_a_journal_system_finds_reads_and_exports_the_patients_of_its_municipality(served):
    _, _, token = auth.add_client(served.store, "Halmstads journal", ["Halmstad"])
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token}"
    base = served.url + "/fhir/r4"
    found = http.get(f"{base}/Patient", params={
        "identifier": "urn:oid:1.2.752.129.2.1.3.1|191212121212"}).json()
    [entry] = found["entry"]
    everything = http.get(f"{base}/Patient/{entry['resource']['id']}/$everything")
    assert everything.status_code == 200 and everything.headers["Content-Type"].startswith("application/fhir+json")
    assert {"Patient", "Observation", "AllergyIntolerance", "ServiceRequest", "Task", "Encounter"} <= {
        e["resource"]["resourceType"] for e in everything.json()["entry"]}
    kick_off = http.get(f"{base}/$export", headers={"Prefer": "respond-async", "Accept": "application/fhir+json"})
    assert kick_off.status_code == 202
    for _ in range(100):
        status = http.get(kick_off.headers["Content-Location"])
        if status.status_code != 202:
            break
        time.sleep(0.1)
    assert status.status_code == 200
    lines = [json.loads(line) for output in status.json()["output"]
             for line in http.get(output["url"]).text.splitlines()]
    assert {r["id"] for r in lines if r["resourceType"] == "Patient"} == set(served.store.patients_in(["Halmstad"]))
    assert requests.get(status.json()["output"][0]["url"]).status_code == 401
