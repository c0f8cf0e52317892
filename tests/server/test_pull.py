"""Pull over real HTTP: pages, the opaque cursor, scope in and out, the dispatcher's view."""

import json

import pytest

from tests.live_server import start_live_server

from .conftest import PERSONNUMMER, Region, new_patient, new_request, versions

# Every test here runs against the SQLite store and the PostgreSQL store.
pytestmark = pytest.mark.both_stores


def _patients(laptop, n, municipality="Halmstad"):
    changes = [new_patient(laptop, municipality, personnummer=p) for p in PERSONNUMMER[:n]]
    laptop.push(*changes)
    return [c["record_id"] for c in changes]


def test_a_first_pull_ships_record_states_of_the_scope_not_raw_changes(region):
    nurse = region.nurse
    [patient] = _patients(nurse, 1)
    nurse.sync()
    record = nurse.records[("patient", patient)]
    assert set(record) >= {"type", "id", "rev", "fields", "writes"}
    assert record["fields"]["name"] == "Tolvan Tolvansson"
    assert "changes" not in record


def test_pages_follow_the_cursor_until_more_is_false_and_nothing_repeats(region):
    nurse = region.nurse
    ids = _patients(nurse, 4)
    pages = nurse.sync(limit=3)
    shipped = [r["id"] for page in pages for r in page["records"]]
    assert sorted(shipped) == sorted(ids)
    assert [page["more"] for page in pages] == [True, False]
    again = nurse.pull_page(nurse.cursor)
    assert (again["records"], again["more"]) == ([], False)


def test_a_pull_after_a_change_ships_only_the_changed_record(region):
    nurse, doctor = region.nurse, region.doctor
    first, second = _patients(nurse, 2)
    doctor.sync()
    nurse.sync()
    nurse.push(nurse.edit("patient", second, phone="070"))
    [page] = doctor.sync()
    assert [r["id"] for r in page["records"]] == [second]


def test_a_page_lost_on_the_way_is_served_again_from_the_older_cursor(region):
    nurse = region.nurse
    _patients(nurse, 3)
    first = nurse.pull_page(limit=2)
    lost = nurse.pull_page(first["cursor"], limit=2)
    again = nurse.pull_page(first["cursor"], limit=2)
    assert again["records"] == lost["records"]


def test_the_cursor_is_opaque_and_an_unknown_one_is_refused(region):
    nurse = region.nurse
    _patients(nurse, 1)
    page = nurse.pull_page()
    assert not page["cursor"].isdigit()
    response = nurse.session.get(region.server.url + "/v1/pull", params={"cursor": "12"})
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_request")


def test_a_record_outside_the_scope_never_reaches_a_device(region):
    _patients(region.nurse, 1, "Halmstad")
    region.laholm_nurse.push(new_patient(region.laholm_nurse, "Laholm", personnummer=PERSONNUMMER[1]))
    region.nurse.sync()
    region.laholm_nurse.sync()
    assert {r["fields"]["municipality"] for r in region.nurse.records.values()} == {"Halmstad"}
    assert {r["fields"]["municipality"] for r in region.laholm_nurse.records.values()} == {"Laholm"}


def test_a_patient_entering_scope_arrives_whole_whatever_the_cursor(region):
    laholm_nurse, doctor, dispatcher = region.laholm_nurse, region.doctor, region.dispatcher
    patient = new_patient(laholm_nurse, "Laholm")
    warning = laholm_nurse.change("warning", patient_id=patient["record_id"], kind="allergy", text="latex",
                                  severity="high")
    request = new_request(laholm_nurse, patient["record_id"])
    laholm_nurse.push(patient, warning, request)
    doctor.sync()
    assert doctor.records == {}
    dispatcher.sync()
    dispatcher.push(dispatcher.edit("visit_request", request["record_id"], status="assigned",
                                    assigned_doctor_id=doctor.user_id))
    doctor.sync(limit=1)
    assert doctor.ids() == {patient["record_id"], warning["record_id"], request["record_id"]}


def test_a_record_leaving_scope_is_purged_after_the_devices_earlier_edits_are_accepted(region):
    nurse, laholm_nurse = region.nurse, region.laholm_nurse
    [patient] = _patients(nurse, 1)
    nurse.sync()
    laholm_nurse.sync()
    offline_edit = nurse.edit("patient", patient, access_notes="nyckel hos grannen")
    seen = nurse.records[("patient", patient)]
    # Meanwhile the patient moves to Laholm, which the Halmstad nurse does not serve
    # (moved by a doctor of both: only someone whose scope holds both moves a patient).
    mover = region.laptop("both", "doctor", ["Halmstad", "Laholm"])
    mover.sync()
    assert mover.push(mover.edit("patient", patient, municipality="Laholm"))["results"][0]["result"] == "applied"
    assert nurse.push(offline_edit)["results"][0]["result"] == "applied"
    [page] = nurse.sync()
    assert page["purge"] == [{"type": "patient", "id": patient}]
    assert nurse.records == {}
    after_purge = nurse.change("patient", patient, base=versions(seen), phone="070")
    assert nurse.push(after_purge)["results"][0]["error"]["code"] == "out_of_scope"
    laholm_nurse.sync()
    assert laholm_nurse.records[("patient", patient)]["fields"]["access_notes"] == "nyckel hos grannen"


def test_a_dispatcher_sees_open_requests_and_only_patient_warnings_and_observations_of_their_patients(region):
    nurse, dispatcher = region.nurse, region.dispatcher
    patient, other = new_patient(nurse), new_patient(nurse, personnummer=PERSONNUMMER[1])
    warning = nurse.change("warning", patient_id=patient["record_id"], kind="allergy", text="latex", severity="high")
    care_plan = nurse.change("care_plan", patient_id=patient["record_id"], kind="sip", content="plan")
    request = new_request(nurse, patient["record_id"])
    assert {r["result"] for r in nurse.push(patient, other, warning, care_plan, request)["results"]} == {"applied"}
    dispatcher.sync()
    assert dispatcher.ids() == {patient["record_id"], warning["record_id"], request["record_id"]}
    # A cancelled request is no longer open: it and its patient leave the dispatcher's laptop.
    dispatcher.push(dispatcher.edit("visit_request", request["record_id"], status="cancelled",
                                    cancel_reason="löst per telefon"))
    dispatcher.sync()
    assert dispatcher.records == {}


def test_an_admin_reads_no_clinical_records(region):
    _patients(region.nurse, 2)
    region.admin.sync()
    assert region.admin.records == {}


def test_a_doctor_and_a_nurse_get_the_rounds_of_their_municipalities(region):
    nurse, laholm_nurse = region.nurse, region.laholm_nurse
    [patient] = _patients(nurse, 1)
    round_ = region.doctor.change("round", facility="Solbacken", municipality="Halmstad", date="2030-01-01",
                                  items={patient: {"question": "ont?"}})
    assert region.doctor.push(round_)["results"][0]["result"] == "applied"
    nurse.sync()
    laholm_nurse.sync()
    assert ("round", round_["record_id"]) in nurse.records
    assert laholm_nurse.records == {}


def test_a_dispatcher_does_not_receive_a_record_of_another_type_that_shares_an_open_requests_id(region):
    nurse, laholm_nurse, dispatcher = region.nurse, region.laholm_nurse, region.dispatcher
    patient = new_patient(nurse)
    request = new_request(nurse, patient["record_id"])
    laholm_patient = new_patient(laholm_nurse, municipality="Laholm", personnummer=PERSONNUMMER[1])
    # A Laholm care plan whose id was made equal to the Halmstad request's id.
    same_id = laholm_nurse.change("care_plan", record_id=request["record_id"],
                                  patient_id=laholm_patient["record_id"], kind="sip", content="hemlig plan")
    assert {r["result"] for r in nurse.push(patient, request)["results"]} == {"applied"}
    assert {r["result"] for r in laholm_nurse.push(laholm_patient, same_id)["results"]} == {"applied"}
    dispatcher.sync()
    assert ("visit_request", request["record_id"]) in dispatcher.records
    assert ("care_plan", request["record_id"]) not in dispatcher.records


def _pull_status(laptop, cursor):
    response = laptop.session.get(laptop.server.url + "/v1/pull", params={"cursor": cursor})
    return response.status_code, response.json()


def test_a_cursor_given_to_another_device_is_refused_with_a_resync_message(region):
    _patients(region.nurse, 2)
    cursor = region.nurse.pull_page()["cursor"]
    status, body = _pull_status(region.laholm_nurse, cursor)
    assert (status, body["error"]["code"]) == (400, "invalid_request")
    assert "pull again without a cursor" in body["error"]["message"]
    assert body["error"]["details"]["resync"] is True
    assert "records" not in body and "purge" not in body
    assert _pull_status(region.nurse, cursor)[0] == 200


def test_an_altered_cursor_is_refused_and_lists_no_records(region):
    import base64

    _patients(region.nurse, 2)
    laholm = region.laholm_nurse
    laholm.sync()
    nurse_scope = base64.urlsafe_b64decode(region.nurse.pull_page()["cursor"] + "==").decode().split(".")[2]
    # The Laholm nurse's own cursor with its held scope swapped for the Halmstad nurse's scope id.
    text = base64.urlsafe_b64decode(laholm.cursor + "==").decode()
    version, seq, _, catching, after, signature = text.split(".")
    forged = ".".join((version, seq, nurse_scope, catching, after, signature))
    status, body = _pull_status(laholm, base64.urlsafe_b64encode(forged.encode()).decode().rstrip("="))
    assert (status, body["error"]["code"]) == (400, "invalid_request")
    assert "altered" in body["error"]["message"]


def test_an_unsigned_cursor_of_an_older_server_gets_a_clean_full_resync_message(region):
    import base64

    _patients(region.nurse, 1)
    old = base64.urlsafe_b64encode(b"1.7.1.0.0").decode().rstrip("=")
    status, body = _pull_status(region.nurse, old)
    assert (status, body["error"]["code"]) == (400, "invalid_request")
    assert "older server" in body["error"]["message"] and "full resync" in body["error"]["message"]
    assert body["error"]["details"]["resync"] is True
    assert _pull_status(region.nurse, None)[0] == 200


def test_a_pull_page_is_bounded_in_size_and_still_hands_out_every_record(tmp_path):
    server = start_live_server(tmp_path, page_bytes=1_500)
    try:
        region = Region(server, {})
        nurse = region.laptop("nurse", "nurse", ["Halmstad"])
        doctor = region.laptop("doctor", "doctor", ["Halmstad"])
        patients = [new_patient(nurse, personnummer=p, access_notes="portkod 1234 " * 60) for p in PERSONNUMMER]
        nurse.push(*patients)
        pages = doctor.sync()
        assert all(len(json.dumps(page["records"])) < 3_000 for page in pages)
        assert len(pages) >= len(patients)
        assert doctor.ids("patient") == {p["record_id"] for p in patients}
    finally:
        server.stop()
