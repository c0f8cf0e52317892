"""The audit log: hand-outs per patient per page, accepted changes, merge decisions, laptop openings."""

import sqlite3
import uuid

import pytest

from .conftest import PERSONNUMMER, new_patient


def _log(region, **params):
    response = region.admin.session.get(region.server.url + "/v1/admin/audit", params=params)
    assert response.status_code == 200
    return response.json()["entries"]


def test_every_patient_handed_out_by_a_page_is_logged_once_per_page(region):
    nurse, doctor = region.nurse, region.doctor
    patient = new_patient(nurse)
    warning = nurse.change("warning", patient_id=patient["record_id"], kind="allergy", text="latex", severity="high")
    other = new_patient(nurse, personnummer=PERSONNUMMER[1])
    nurse.push(patient, warning, other)
    pages = doctor.sync(limit=2)
    pulls = [e for e in _log(region) if e["kind"] == "pull" and e["device_id"] == doctor.device_id]
    handed = sum(len({r["fields"].get("patient_id", r["id"]) for r in page["records"]}) for page in pages)
    assert len(pulls) == handed == 2  # patient and warning on the first page, the other on the second
    assert {e["user_id"] for e in pulls} == {doctor.user_id}
    first_page = [e for e in pulls if e["patient_id"] == patient["record_id"]][0]
    assert sorted(first_page["details"]["records"]) == sorted(
        [f"patient/{patient['record_id']}", f"warning/{warning['record_id']}"])


def test_every_accepted_change_and_every_merge_decision_is_logged(region):
    nurse, doctor = region.nurse, region.doctor
    patient = new_patient(nurse)
    nurse.push(patient)
    nurse.sync()
    doctor.sync()
    mine, theirs = nurse.edit("patient", patient["record_id"], phone="1"), doctor.edit("patient", patient["record_id"],
                                                                                      phone="2")
    nurse.push(mine)
    doctor.push(theirs)
    entries = _log(region, patient_id=patient["record_id"])
    changes = [e["change_id"] for e in entries if e["kind"] == "change"]
    assert changes == [patient["change_id"], mine["change_id"], theirs["change_id"]]
    decisions = [e for e in entries if e["kind"] == "decision"]
    assert decisions and decisions[0]["change_id"] == theirs["change_id"]
    assert decisions[0]["details"]["field"] == "phone"


def test_record_openings_logged_on_a_laptop_are_kept_once_however_often_pushed(region):
    nurse = region.nurse
    patient = new_patient(nurse)
    nurse.push(patient)
    entry = {"id": str(uuid.uuid4()), "patient_id": patient["record_id"], "record_type": "patient",
             "record_id": patient["record_id"], "opened_at": "2030-01-01T10:00:00+01:00"}
    first = nurse.post("/v1/access-log", {"entries": [entry]})
    again = nurse.post("/v1/access-log", {"entries": [entry]})
    assert (first.json(), again.json()) == ({"accepted": 1}, {"accepted": 0})
    accesses = [e for e in _log(region, patient_id=patient["record_id"]) if e["kind"] == "access"]
    assert len(accesses) == 1
    assert accesses[0]["details"]["opened_at"] == "2030-01-01T10:00:00+01:00"
    assert accesses[0]["device_id"] == nurse.device_id


def test_a_malformed_access_log_is_refused_whole(region):
    response = region.nurse.post("/v1/access-log", {"entries": [{"id": "x"}]})
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_batch")


def test_the_audit_log_is_append_only(region):
    region.nurse.push(new_patient(region.nurse))
    conn = sqlite3.connect(region.server.db_path)
    for statement in ("UPDATE audit SET kind = 'x'", "DELETE FROM audit", "DELETE FROM records"):
        with pytest.raises(sqlite3.DatabaseError):
            conn.execute(statement)
    conn.close()


def test_rejected_changes_are_in_the_quarantine_for_an_admin(region):
    nurse = region.nurse
    bad = nurse.change("visit", patient_id=str(uuid.uuid4()), kind="home_visit")
    nurse.push(bad)
    entries = region.admin.session.get(region.server.url + "/v1/admin/quarantine").json()["entries"]
    assert [(e["change_id"], e["code"], e["device_id"]) for e in entries] == [
        (bad["change_id"], "forbidden", nurse.device_id)]
    assert entries[0]["change"]["fields"] == {"patient_id": bad["fields"]["patient_id"], "kind": "home_visit"}
