"""The FHIR API: integration clients read their municipalities' patients, audited, and nothing of others."""

import json
import time

import pytest

from server import auth

from .clinic import HALMSTAD_PATIENT, VARBERG_PATIENT
from .test_mapping import validate

PERSONNUMMER = "http://electronichealth.se/identifier/personnummer"


def _reads(clinic, client):
    return [e for e in clinic.audit_log(limit=1000) if e["kind"] == "pull" and e["device_id"] == client.device["id"]]


def test_the_capability_statement_is_public_and_valid_fhir(app):
    response = app.test_client().get("/fhir/r4/metadata")
    assert response.status_code == 200 and response.mimetype == "application/fhir+json"
    statement = response.get_json()
    validate(statement)
    assert statement["fhirVersion"] == "4.0.1"
    patient = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Patient")
    assert patient["searchParam"][0]["name"] == "identifier"


def test_without_a_clients_token_every_call_is_an_operation_outcome(app, clinic):
    http = app.test_client()
    response = http.get(f"/fhir/r4/Patient/{HALMSTAD_PATIENT}")
    assert response.status_code == 401 and response.get_json()["issue"][0]["code"] == "login"
    nurse = next(u for u in clinic.users() if u["role"] == "nurse")
    _, token = auth.enroll(clinic, nurse["id"])
    response = http.get(f"/fhir/r4/Patient/{HALMSTAD_PATIENT}", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403 and response.get_json()["resourceType"] == "OperationOutcome"


def test_an_integration_clients_token_does_not_sync(app, halmstad):
    response = app.test_client().get("/v1/pull", headers={"Authorization": f"Bearer {halmstad.token}",
                                                           "X-Hemsync-Client": "9.9.9"})
    assert response.status_code == 403 and "FHIR" in response.get_json()["error"]["message"]


def test_a_client_reads_a_patient_by_id_and_the_read_is_audited(halmstad, clinic):
    response = halmstad.get(f"/Patient/{HALMSTAD_PATIENT}")
    assert response.status_code == 200
    patient = response.get_json()
    validate(patient)
    assert patient["identifier"] == [{"system": PERSONNUMMER, "value": "191212121212"}]
    [entry] = _reads(clinic, halmstad)
    assert entry["patient_id"] == HALMSTAD_PATIENT and entry["user_id"] == halmstad.user["id"]
    assert entry["details"]["records"] == [f"patient/{HALMSTAD_PATIENT}"]


def test_a_client_searches_a_patient_by_personnummer_under_either_system(halmstad):
    for system in (PERSONNUMMER, "urn:oid:1.2.752.129.2.1.3.1"):
        bundle = halmstad.get("/Patient", query_string={"identifier": f"{system}|191212121212"}).get_json()
        validate(bundle)
        assert bundle["type"] == "searchset" and [e["resource"]["id"] for e in bundle["entry"]] == [HALMSTAD_PATIENT]
    response = halmstad.get("/Patient", query_string={"identifier": f"{PERSONNUMMER}|191212121213"})
    assert response.status_code == 400 and "check digit" in response.get_json()["issue"][0]["details"]["text"]
    assert halmstad.get("/Patient", query_string={"name": "Tolvan"}).status_code == 400


def test_everything_of_a_patient_is_one_valid_bundle_with_the_staff_it_names(halmstad, clinic):
    response = halmstad.get(f"/Patient/{HALMSTAD_PATIENT}/$everything")
    assert response.status_code == 200, response.get_json()
    bundle = response.get_json()
    validate(bundle)
    kinds = {e["resource"]["resourceType"] for e in bundle["entry"]}
    assert kinds >= {"Patient", "Observation", "ServiceRequest", "Task", "Encounter", "Composition",
                     "AllergyIntolerance", "Flag", "MedicationStatement", "CarePlan", "Practitioner"}
    subjects = {json.dumps(e["resource"].get("subject") or e["resource"].get("patient") or e["resource"].get("for"))
                for e in bundle["entry"] if e["resource"]["resourceType"] not in ("Patient", "Practitioner")}
    assert subjects == {json.dumps({"reference": f"Patient/{HALMSTAD_PATIENT}"})}
    [entry] = _reads(clinic, halmstad)
    assert entry["patient_id"] == HALMSTAD_PATIENT and len(entry["details"]["records"]) >= 10


def test_every_resource_read_by_its_id_is_the_one_everything_holds(halmstad):
    bundle = halmstad.get(f"/Patient/{HALMSTAD_PATIENT}/$everything").get_json()
    for entry in bundle["entry"]:
        resource = entry["resource"]
        response = halmstad.get(f"/{resource['resourceType']}/{resource['id']}")
        assert response.status_code == 200, (resource["resourceType"], resource["id"])
        assert response.get_json() == resource


def test_a_halmstad_client_gets_nothing_of_varberg_by_read_search_or_everything(halmstad, enrol, clinic):
    varberg = enrol("Varbergs journal", "Varberg")
    bundle = varberg.get(f"/Patient/{VARBERG_PATIENT}/$everything").get_json()
    assert len(bundle["entry"]) > 10
    before = len(_reads(clinic, halmstad))
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "Practitioner":
            continue  # the staff directory, no patient's data
        response = halmstad.get(f"/{resource['resourceType']}/{resource['id']}")
        assert response.status_code == 404, resource
        assert response.get_json()["resourceType"] == "OperationOutcome"
    assert halmstad.get(f"/Patient/{VARBERG_PATIENT}/$everything").status_code == 404
    personnummer = varberg.get(f"/Patient/{VARBERG_PATIENT}").get_json()["identifier"][0]["value"]
    found = halmstad.get("/Patient", query_string={"identifier": f"{PERSONNUMMER}|{personnummer}"}).get_json()
    assert found["total"] == 0 and found["entry"] == []
    assert len(_reads(clinic, halmstad)) == before


def test_an_unknown_resource_type_or_path_is_an_operation_outcome(halmstad):
    for path in ("/Medication/x", "/Patient/not%20an%20id", "/nothing/here/at/all"):
        response = halmstad.get(path)
        assert response.status_code == 404 and response.get_json()["resourceType"] == "OperationOutcome", path


def _export(client, **query):
    response = client.get("/$export", query_string=query, headers={"Prefer": "respond-async"})
    assert response.status_code == 202, response.get_json()
    status_url = response.headers["Content-Location"]
    assert status_url.startswith("http://localhost/fhir/r4/$export-status/")
    path = status_url.split("/fhir/r4", 1)[1]
    for _ in range(200):
        status = client.get(path)
        if status.status_code != 202:
            break
        time.sleep(0.05)
    assert status.status_code == 200, status.get_json()
    return path, status.get_json()


def _lines(client, manifest):
    resources = []
    for output in manifest["output"]:
        response = client.get(output["url"].split("/fhir/r4", 1)[1])
        assert response.status_code == 200 and response.mimetype == "application/fhir+ndjson"
        lines = response.get_data(as_text=True).splitlines()
        assert len(lines) == output["count"]
        resources += [json.loads(line) for line in lines]
        assert {r["resourceType"] for r in resources[-len(lines):]} == {output["type"]}
    return resources


def test_a_bulk_export_of_a_municipality_is_valid_ndjson_per_type_and_audited_per_patient(halmstad, clinic):
    path, manifest = _export(halmstad)
    assert manifest["requiresAccessToken"] is True and manifest["error"] == []
    resources = _lines(halmstad, manifest)
    for resource in resources:
        validate(resource)
    patients = {r["id"] for r in resources if r["resourceType"] == "Patient"}
    assert patients == set(clinic.patients_in(["Halmstad"]))
    audited = {e["patient_id"] for e in _reads(clinic, halmstad)}
    assert audited == patients
    assert halmstad.delete(path).status_code == 202
    assert halmstad.get(path).status_code == 404


def test_a_halmstad_client_gets_nothing_of_varberg_by_export(halmstad, enrol, clinic):
    varberg = enrol("Varbergs journal", "Varberg")
    path, manifest = _export(halmstad)
    text = json.dumps(_lines(halmstad, manifest))
    varberg_patients = clinic.patients_in(["Varberg"])
    assert all(p not in text for p in varberg_patients)
    # Another client's export and its files do not exist for this one.
    assert varberg.get(path).status_code == 404
    assert varberg.get(manifest["output"][0]["url"].split("/fhir/r4", 1)[1]).status_code == 404


def test_an_export_of_some_types_only_and_its_refusals(halmstad):
    _, manifest = _export(halmstad, _type="Patient,Flag")
    assert {o["type"] for o in manifest["output"]} == {"Patient", "Flag"}
    assert halmstad.get("/$export", query_string={"_type": "Nonsense"}).status_code == 400
    assert halmstad.get("/$export", query_string={"_since": "2020-01-01T00:00:00Z"}).status_code == 400
    assert halmstad.get("/$export", query_string={"_outputFormat": "text/csv"}).status_code == 400
    assert halmstad.get("/$export-status/not-a-job").status_code == 404


def test_a_revoked_client_gets_nothing_more(halmstad, clinic):
    auth.revoke(clinic, halmstad.device["id"])
    response = halmstad.get(f"/Patient/{HALMSTAD_PATIENT}")
    assert response.status_code == 403 and response.get_json()["resourceType"] == "OperationOutcome"
    assert halmstad.get("/$export").status_code == 403
