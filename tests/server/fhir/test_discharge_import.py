"""Discharge notices: a hospital's transaction Bundle becomes a hospital stay and starts the follow-up, once."""

import copy
import datetime as dt

from schema.clock import utcnow
from schema.followup.calendar import local_date
from schema.merge import view
from server.fhir import hospital_stay
from server.fhir.elements import FIELD_EXTENSION

from .clinic import HALMSTAD_PATIENT, VARBERG_PATIENT
from .test_mapping import validate

ADMITTED = (utcnow() - dt.timedelta(days=3)).replace(microsecond=0)


def notice(personnummer="191212121212", system="http://electronichealth.se/identifier/personnummer",
           discharged=ADMITTED + dt.timedelta(days=2), follow_up="Kontroll av blodtryck inom 7 dagar"):
    """A discharge notice as a hospital's system sends it: the patient, the stay, the follow-up asked for."""
    entries = [
        {"fullUrl": "urn:uuid:7d0f3d4e-0000-4000-8000-000000000001",
         "resource": {"resourceType": "Patient", "identifier": [{"system": system, "value": personnummer}]},
         "request": {"method": "POST", "url": "Patient"}},
        {"fullUrl": "urn:uuid:7d0f3d4e-0000-4000-8000-000000000002",
         "resource": {"resourceType": "Encounter", "status": "finished",
                      "identifier": [{"system": "urn:oid:1.2.752.129.2.1.2.1.test-stays", "value": "VT-2026-4711"}],
                      "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
                      "subject": {"reference": "urn:uuid:7d0f3d4e-0000-4000-8000-000000000001"},
                      "period": {"start": ADMITTED.isoformat(), "end": discharged.isoformat()},
                      "priority": {"coding": [{"system": hospital_stay.PRIORITY, "code": "EM"}]},
                      "serviceProvider": {"display": "Hallands sjukhus Halmstad"},
                      "location": [{"location": {"display": "Medicinavdelning 3"}}]},
         "request": {"method": "PUT", "url": "Encounter?identifier=VT-2026-4711"}},
    ]
    if follow_up:
        entries.append({"fullUrl": "urn:uuid:7d0f3d4e-0000-4000-8000-000000000003",
                        "resource": {"resourceType": "ServiceRequest", "status": "active", "intent": "plan",
                                     "subject": {"reference": "urn:uuid:7d0f3d4e-0000-4000-8000-000000000001"},
                                     "encounter": {"reference": "urn:uuid:7d0f3d4e-0000-4000-8000-000000000002"},
                                     "note": [{"text": follow_up}]},
                        "request": {"method": "POST", "url": "ServiceRequest"}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def test_the_notice_a_hospital_sends_is_valid_fhir():
    validate(notice())


def test_a_discharge_notice_creates_the_stay_and_starts_the_follow_up(halmstad, clinic):
    response = halmstad.post("/Bundle", notice())
    assert response.status_code == 201, response.get_json()
    answer = response.get_json()
    validate(answer)
    location = {e["response"].get("location", "").split("/")[0]: e["response"]["location"] for e in answer["entry"]}
    stay_id = location["Encounter"].split("/")[1]
    stay = view(clinic.get_record("hospital_stay", stay_id).state)
    assert (stay["patient_id"], stay["source"], stay["hospital"], stay["ward"], stay["planned"]) == (
        HALMSTAD_PATIENT, "discharge_notice", "Hallands sjukhus Halmstad", "Medicinavdelning 3", False)
    patient = view(clinic.get_record("patient", HALMSTAD_PATIENT).state)
    assert patient["discharged_at"] == local_date((ADMITTED + dt.timedelta(days=2)).isoformat()).isoformat()
    request_id = location["ServiceRequest"].split("/")[1]
    request = view(clinic.get_record("visit_request", request_id).state)
    assert request["urgency"] == "planned" and "Kontroll av blodtryck" in request["reason"]
    changes = [e for e in clinic.audit_log(limit=1000) if e["kind"] == "change" and e["record_id"] == stay_id]
    assert [e["device_id"] for e in changes] == [halmstad.device["id"]]


def test_the_imported_stay_reads_back_as_the_encounter_the_hospital_sent(halmstad):
    stay_id = halmstad.post("/Bundle", notice()).get_json()["entry"][1]["response"]["location"].split("/")[1]
    encounter = halmstad.get(f"/Encounter/{stay_id}").get_json()
    validate(encounter)
    sent = notice()["entry"][1]["resource"]
    assert encounter["class"]["code"] == "IMP" and encounter["status"] == "finished"
    assert encounter["serviceProvider"] == sent["serviceProvider"] and encounter["location"] == sent["location"]
    assert encounter["priority"]["coding"] == sent["priority"]["coding"]
    assert [dt.datetime.fromisoformat(encounter["period"][k]) for k in ("start", "end")] == [
        dt.datetime.fromisoformat(sent["period"][k]) for k in ("start", "end")]
    kept = {e["extension"][0]["valueString"]: e["extension"][1]["valueString"]
            for e in encounter["extension"] if e["url"] == FIELD_EXTENSION}
    assert kept["follow_up"] == '"Kontroll av blodtryck inom 7 dagar"' and kept["source"] == '"discharge_notice"'


def test_a_retried_notice_changes_nothing(halmstad, clinic):
    assert halmstad.post("/Bundle", notice()).status_code == 201
    head, log = clinic.head(), len(clinic.audit_log(limit=10_000))
    response = halmstad.post("/Bundle", notice())
    assert response.status_code == 200 and response.get_json()["entry"][1]["response"]["status"] == "200 OK"
    assert clinic.head() == head and len(clinic.audit_log(limit=10_000)) == log


def test_a_corrected_notice_changes_only_what_differs(halmstad, clinic):
    first = halmstad.post("/Bundle", notice()).get_json()
    stay_id = first["entry"][1]["response"]["location"].split("/")[1]
    later = ADMITTED + dt.timedelta(days=3)
    assert halmstad.post("/Bundle", notice(discharged=later)).status_code == 200
    stay = clinic.get_record("hospital_stay", stay_id)
    assert dt.datetime.fromisoformat(view(stay.state)["discharged_at"]) == later
    [change] = [e for e in clinic.audit_log(limit=1000) if e["kind"] == "change" and e["record_id"] == stay_id][1:]
    assert change["details"]["fields"] == ["discharged_at"]


def test_a_notice_for_an_unknown_personnummer_is_refused_and_nothing_is_guessed(halmstad, clinic):
    head = clinic.head()
    response = halmstad.post("/Bundle", notice(personnummer="194403079983"))
    assert response.status_code == 422
    issue = response.get_json()["issue"][0]
    assert "no patient with personnummer 194403079983" in issue["details"]["text"]
    assert "does not guess" in issue["details"]["text"]
    assert clinic.head() == head


def test_a_halmstad_client_cannot_import_a_stay_of_a_varberg_patient(halmstad, clinic):
    personnummer = view(clinic.get_record("patient", VARBERG_PATIENT).state)["personnummer"]
    head = clinic.head()
    assert halmstad.post("/Bundle", notice(personnummer=personnummer)).status_code == 422
    assert clinic.head() == head


def test_a_notice_that_says_too_little_is_an_operation_outcome_naming_what_is_missing(halmstad):
    cases = {"identifier": lambda b: b["entry"][1]["resource"].pop("identifier"),
             "period.start": lambda b: b["entry"][1]["resource"]["period"].pop("start"),
             "subject": lambda b: b["entry"][1]["resource"].pop("subject"),
             "transaction": lambda b: b.update(type="collection")}
    for missing, damage in cases.items():
        body = copy.deepcopy(notice())
        damage(body)
        response = halmstad.post("/Bundle", body)
        assert response.status_code == 400, missing
        assert missing in response.get_json()["issue"][0]["details"]["text"], missing
    assert halmstad.post("/Bundle", {"resourceType": "Patient"}).status_code == 400
    response = halmstad.http.post("/fhir/r4/Bundle", data=b"{not json",
                                  headers={"Authorization": f"Bearer {halmstad.token}"})
    assert response.status_code == 400 and response.get_json()["resourceType"] == "OperationOutcome"


def test_a_personnummer_under_the_skatteverket_oid_alias_finds_the_patient_too(halmstad, clinic):
    response = halmstad.post("/Bundle", notice(system="urn:oid:1.2.752.129.2.1.3.1"))
    assert response.status_code == 201


def test_a_stay_exported_and_sent_back_as_a_notice_reads_as_the_same_stay(clinic):
    [stored] = clinic.records_of_patients("hospital_stay", [HALMSTAD_PATIENT])
    record = view(stored.state)
    [encounter] = hospital_stay.to_fhir(record, stored.state)
    encounter["identifier"] = [{"system": "urn:example:stays", "value": stored.id}]
    encounter["subject"] = {"identifier": {"system": "http://electronichealth.se/identifier/personnummer",
                                           "value": "191212121212"}}
    sent = hospital_stay.from_fhir({"resourceType": "Bundle", "type": "transaction",
                                    "entry": [{"fullUrl": "urn:uuid:1", "resource": encounter}]})
    assert sent.personnummer == "191212121212" and sent.stay_key == f"urn:example:stays|{stored.id}"
    assert sent.fields == {k: record[k] for k in ("hospital", "ward", "admitted_at", "discharged_at", "planned")} | {
        "source": "discharge_notice"}


def test_a_notice_sent_again_after_a_nurse_edited_the_stay_leaves_her_edit(halmstad, clinic):
    from server.seed import demo_users
    from server.writes import WriteApplier

    stay_id = halmstad.post("/Bundle", notice()).get_json()["entry"][1]["response"]["location"].split("/")[1]
    nurse = clinic.get_user(demo_users()["nurse-halmstad"])
    with clinic.transaction():
        writes = WriteApplier(clinic, halmstad.http.application.config["HEMSYNC"], {"id": "nurse-laptop"}, nurse,
                              utcnow())
        writes.write("hospital_stay", stay_id, {"ward": "Medicin 5 (flyttad)"})
        writes.finish()
    head = clinic.head()
    assert halmstad.post("/Bundle", notice()).status_code == 200
    assert clinic.head() == head
    assert view(clinic.get_record("hospital_stay", stay_id).state)["ward"] == "Medicin 5 (flyttad)"


def test_a_refused_notice_is_refused_again_the_same_way_when_sent_again(halmstad, clinic):
    future = notice(discharged=utcnow() + dt.timedelta(days=3))
    first = halmstad.post("/Bundle", future)
    assert first.status_code == 400, first.get_json()
    again = halmstad.post("/Bundle", future)
    assert again.status_code == 400 and again.get_json()["issue"] == first.get_json()["issue"]
    quarantined = [e for e in clinic.quarantined(limit=100) if e["device_id"] == halmstad.device["id"]]
    assert len(quarantined) == 1
