"""Hospital stays over real HTTP push: an arrived admission makes its stay; a discharge starts the follow-up."""

import pytest

from schema.records.hospital_stay import follow_up_request_id, stay_id_for_admission

from .conftest import new_patient

# Every test here runs against the SQLite store and the PostgreSQL store.
pytestmark = pytest.mark.both_stores

WARD = {"hospital": "Hallands sjukhus Halmstad", "ward": "Medicin 3"}


def _value(server, record_type, record_id, field):
    stored = server.store.get_record(record_type, record_id)
    write = stored.state["fields"].get(field) if stored else None
    return write["value"] if write else None


def _requests_of(server, patient_id):
    return [s for s in server.store.records_of_patients("visit_request", [patient_id])]


def _patient(region, **fields):
    patient = new_patient(region.nurse, care_setting="own_home", **fields)
    assert region.nurse.push(patient)["results"][0]["result"] == "applied"
    return patient["record_id"]


def _discharged_stay(laptop, patient_id, follow_up="Kontroll av Hb och vikt inom en vecka", **more):
    return laptop.change("hospital_stay", patient_id=patient_id, admitted_at="2026-11-20T08:00:00+01:00",
                         discharged_at="2026-11-24T23:30:00+00:00", planned=False, source="discharge_notice",
                         follow_up=follow_up, **WARD, **more)


def test_an_admission_that_arrives_creates_its_hospital_stay_once(region):
    doctor = region.doctor
    patient_id = _patient(region)
    admission = doctor.change("admission", patient_id=patient_id, reason="Pneumoni, syrgasbehov", **WARD)
    doctor.push(admission)
    doctor.sync()
    arrived = doctor.edit("admission", admission["record_id"], status="arrived")
    assert doctor.push(arrived)["results"][0]["result"] == "applied"
    doctor.push(arrived)
    doctor.sync()
    stays = doctor.ids("hospital_stay")
    assert stays == {stay_id_for_admission(admission["record_id"])}
    stay = region.server.store.get_record("hospital_stay", stays.pop()).state
    values = {k: w["value"] for k, w in stay["fields"].items()}
    assert {k: values[k] for k in ("patient_id", "hospital", "ward", "planned", "source", "admission_id")} == {
        "patient_id": patient_id, **WARD, "planned": False, "source": "direct_admission",
        "admission_id": admission["record_id"]}
    assert values["admitted_at"] and not values.get("discharged_at")


def test_a_proposed_admission_creates_no_stay(region):
    doctor = region.doctor
    patient_id = _patient(region)
    doctor.push(doctor.change("admission", patient_id=patient_id, reason="Fall, höftsmärta", **WARD))
    doctor.sync()
    assert doctor.ids("hospital_stay") == set()


def test_a_discharge_with_follow_up_opens_one_planned_request_for_the_named_doctor(region):
    nurse, doctor = region.nurse, region.doctor
    patient_id = _patient(region, named_doctor_id=doctor.user_id)
    stay = _discharged_stay(nurse, patient_id)
    assert nurse.push(stay)["results"][0]["result"] == "applied"
    nurse.push(stay)  # a retried batch
    nurse.sync()
    nurse.push(nurse.edit("hospital_stay", stay["record_id"], discharged_at="2026-11-25T10:00:00+01:00"))
    nurse.push(nurse.edit("hospital_stay", stay["record_id"], follow_up="Kontroll av Hb inom en vecka"))
    requests = _requests_of(region.server, patient_id)
    assert [r.id for r in requests] == [follow_up_request_id(stay["record_id"])]
    request = {k: w["value"] for k, w in requests[0].state["fields"].items()}
    assert (request["urgency"], request["status"], request["assigned_doctor_id"]) == (
        "planned", "assigned", doctor.user_id)
    assert "Kontroll av Hb och vikt inom en vecka" in request["reason"]
    assert "Hallands sjukhus Halmstad" in request["reason"]
    doctor.sync()
    assert follow_up_request_id(stay["record_id"]) in doctor.ids("visit_request")


def test_a_discharge_updates_the_patients_discharge_date_in_swedish_local_time(region):
    nurse = region.nurse
    patient_id = _patient(region)
    nurse.push(_discharged_stay(nurse, patient_id, follow_up=None))
    # 23:30 UTC on 24 November is 00:30 on the 25th in Sweden.
    assert _value(region.server, "patient", patient_id, "discharged_at") == "2026-11-25"
    assert _requests_of(region.server, patient_id) == []


def test_an_older_discharge_never_moves_the_patients_discharge_date_back(region):
    nurse = region.nurse
    patient_id = _patient(region)
    nurse.push(_discharged_stay(nurse, patient_id, follow_up=None))
    older = nurse.change("hospital_stay", patient_id=patient_id, admitted_at="2026-10-01T08:00:00+02:00",
                         discharged_at="2026-10-05T12:00:00+02:00", source="manual", **WARD)
    nurse.push(older)
    assert _value(region.server, "patient", patient_id, "discharged_at") == "2026-11-25"


def test_without_a_named_doctor_the_follow_up_goes_to_the_municipalitys_queue(region):
    nurse = region.nurse
    patient_id = _patient(region)
    nurse.push(_discharged_stay(nurse, patient_id))
    [request] = _requests_of(region.server, patient_id)
    values = {k: w["value"] for k, w in request.state["fields"].items()}
    assert (values["status"], values.get("assigned_doctor_id")) == ("requested", None)
    region.dispatcher.sync()
    assert request.id in region.dispatcher.ids("visit_request")


def test_a_discharge_a_doctor_records_opens_the_request_as_the_server(region):
    doctor = region.doctor
    patient_id = _patient(region, named_doctor_id=doctor.user_id)
    assert doctor.push(_discharged_stay(doctor, patient_id))["results"][0]["result"] == "applied"
    [request] = _requests_of(region.server, patient_id)
    assert request.state["fields"]["requested_by"]["value"] == "hemsync-server"


def test_a_discharge_of_a_patient_not_in_home_care_starts_nothing(region):
    nurse = region.nurse
    patient = new_patient(nurse)
    nurse.push(patient)
    nurse.push(_discharged_stay(nurse, patient["record_id"]))
    assert _value(region.server, "patient", patient["record_id"], "discharged_at") is None
    assert _requests_of(region.server, patient["record_id"]) == []


def test_a_stay_entered_in_error_starts_no_follow_up(region):
    nurse = region.nurse
    patient_id = _patient(region)
    nurse.push(_discharged_stay(nurse, patient_id, entered_in_error=True, entered_in_error_reason="fel patient"))
    assert _requests_of(region.server, patient_id) == []


def test_two_laptops_recording_the_same_discharge_apart_open_one_request(region):
    nurse, doctor = region.nurse, region.doctor
    patient_id = _patient(region, named_doctor_id=doctor.user_id)
    stay = nurse.change("hospital_stay", patient_id=patient_id, admitted_at="2026-11-20T08:00:00+01:00",
                        source="manual", **WARD)
    nurse.push(stay)
    nurse.sync()
    doctor.sync()
    by_nurse = nurse.edit("hospital_stay", stay["record_id"], discharged_at="2026-11-24T11:00:00+01:00",
                          follow_up="Kontroll av Hb")
    by_doctor = doctor.edit("hospital_stay", stay["record_id"], discharged_at="2026-11-24T12:00:00+01:00",
                            follow_up="Se över diuretika")
    assert nurse.push(by_nurse)["results"][0]["result"] == "applied"
    assert doctor.push(by_doctor)["results"][0]["result"] == "conflict"  # follow_up keeps both
    assert [r.id for r in _requests_of(region.server, patient_id)] == [follow_up_request_id(stay["record_id"])]


def test_a_change_after_a_discharge_in_one_batch_builds_on_what_the_discharge_wrote(region):
    # The batch's records are read before its first change (WriteApplier.look_up): the patient
    # the discharge moves as the server must be read again for the nurse's edit after it,
    # or that edit would be merged into the patient as it was and store it without the discharge.
    nurse = region.nurse
    patient_id = _patient(region)
    nurse.sync()
    answer = nurse.push(_discharged_stay(nurse, patient_id), nurse.edit("patient", patient_id, phone="035-12 34 56"))
    assert [r["result"] for r in answer["results"]] == ["applied", "applied"]
    assert _value(region.server, "patient", patient_id, "discharged_at") == "2026-11-25"
    assert _value(region.server, "patient", patient_id, "phone") == "035-12 34 56"
