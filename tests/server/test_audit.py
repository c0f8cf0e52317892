"""The audit log: hand-outs per patient per page, accepted changes, merge decisions, laptop openings."""

import datetime as dt
import uuid

import pytest

from .conftest import PERSONNUMMER, new_patient

# Every test here runs against the SQLite store and the PostgreSQL store.
pytestmark = pytest.mark.both_stores


def _an_hour_ago():
    return (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)).astimezone(
        dt.timezone(dt.timedelta(hours=1))).isoformat(timespec="seconds")


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
    opened_at = _an_hour_ago()
    entry = {"id": str(uuid.uuid4()), "patient_id": patient["record_id"], "record_type": "patient",
             "record_id": patient["record_id"], "opened_at": opened_at}
    first = nurse.post("/v1/access-log", {"entries": [entry]})
    again = nurse.post("/v1/access-log", {"entries": [entry]})
    assert (first.json(), again.json()) == ({"accepted": 1, "refused": []}, {"accepted": 0, "refused": []})
    accesses = [e for e in _log(region, patient_id=patient["record_id"]) if e["kind"] == "access"]
    assert len(accesses) == 1
    assert accesses[0]["details"]["opened_at"] == opened_at
    assert accesses[0]["device_id"] == nurse.device_id


def test_a_malformed_access_log_is_refused_whole(region):
    response = region.nurse.post("/v1/access-log", {"entries": [{"id": "x"}]})
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_batch")


def test_the_audit_log_is_append_only(region):
    region.nurse.push(new_patient(region.nurse))
    for statement in ("UPDATE audit SET kind = 'x'", "DELETE FROM audit", "DELETE FROM records"):
        with pytest.raises(region.server.DATABASE_ERRORS):
            region.server.execute(statement)


def test_rejected_changes_are_in_the_quarantine_for_an_admin(region):
    nurse = region.nurse
    bad = nurse.change("visit", patient_id=str(uuid.uuid4()), kind="home_visit")
    nurse.push(bad)
    entries = region.admin.session.get(region.server.url + "/v1/admin/quarantine").json()["entries"]
    assert [(e["change_id"], e["code"], e["device_id"]) for e in entries] == [
        (bad["change_id"], "forbidden", nurse.device_id)]
    assert entries[0]["change"]["fields"] == {"patient_id": bad["fields"]["patient_id"], "kind": "home_visit"}


def _admin_reads(region, read):
    return [e for e in region.server.store.audit_log(limit=10_000)
            if e["kind"] == "admin_read" and e["details"]["read"] == read]


def test_an_admins_read_of_the_quarantine_is_audited_with_the_patients_it_showed(region):
    nurse = region.nurse
    patient = new_patient(nurse)
    nurse.push(patient)
    bad = nurse.change("visit", patient_id=patient["record_id"], kind="home_visit", assessment="hosta")
    assert nurse.push(bad)["results"][0]["result"] == "rejected"
    entries = region.admin.session.get(region.server.url + "/v1/admin/quarantine").json()["entries"]
    assert [e["patient_id"] for e in entries] == [patient["record_id"]]
    [read] = _admin_reads(region, "quarantine")
    assert (read["user_id"], read["device_id"], read["patient_id"]) == (
        region.admin.user_id, region.admin.device_id, patient["record_id"])
    assert read["details"]["via"] == "GET /v1/admin/quarantine"
    assert read["details"]["entries"] == [entries[0]["id"]]


def test_an_admins_read_of_the_audit_log_is_audited_even_when_it_shows_nothing(region):
    nurse = region.nurse
    patient = new_patient(nurse)
    nurse.push(patient)
    shown = _log(region, patient_id=patient["record_id"])
    _log(region, patient_id="nobody")
    reads = _admin_reads(region, "audit")
    assert [(r["user_id"], r["patient_id"], r["details"]["query"]) for r in reads] == [
        (region.admin.user_id, patient["record_id"], {"patient_id": patient["record_id"]}),
        (region.admin.user_id, None, {"patient_id": "nobody"})]
    assert reads[0]["details"]["entries"] == sorted(e["id"] for e in shown)


def test_command_line_reads_of_the_quarantine_and_the_audit_log_are_audited_like_http_ones(region):
    from click.testing import CliRunner

    from server.cli import main

    nurse = region.nurse
    patient = new_patient(nurse)
    nurse.push(patient)
    nurse.push(nurse.change("visit", patient_id=patient["record_id"], kind="home_visit"))
    for command in ("quarantine", "audit"):
        result = CliRunner().invoke(main, ["--db", str(region.server.db_path), command,
                                           "--by", region.admin.user_id, "--json"])
        assert result.exit_code == 0, result.output
    [quarantine] = _admin_reads(region, "quarantine")
    assert (quarantine["user_id"], quarantine["device_id"], quarantine["patient_id"]) == (
        region.admin.user_id, None, patient["record_id"])
    assert quarantine["details"]["via"] == "hemsync-server quarantine"
    assert {r["details"]["via"] for r in _admin_reads(region, "audit")} == {"hemsync-server audit"}


def _access(patient_id, **fields):
    return {"id": str(uuid.uuid4()), "patient_id": patient_id, "record_type": "patient", "record_id": patient_id,
            "opened_at": _an_hour_ago(), **fields}


def test_a_laptop_cannot_log_accesses_of_another_municipalitys_patients(region):
    nurse, laholm_nurse = region.nurse, region.laholm_nurse
    laholm_patient = new_patient(laholm_nurse, municipality="Laholm", personnummer=PERSONNUMMER[1])
    laholm_nurse.push(laholm_patient)
    fake = _access(laholm_patient["record_id"])
    body = nurse.post("/v1/access-log", {"entries": [fake]}).json()
    assert body == {"accepted": 0, "refused": [
        {"id": fake["id"], "reason": "the patient is neither in this device's scope nor held by it"}]}
    assert [e for e in _log(region, patient_id=laholm_patient["record_id"]) if e["kind"] == "access"] == []
    [kept] = [e for e in _log(region) if e["kind"] == "access_refused"]
    assert (kept["device_id"], kept["patient_id"]) == (nurse.device_id, None)
    assert kept["details"]["entry"]["patient_id"] == laholm_patient["record_id"]


def test_access_entries_with_bad_ids_a_future_time_or_an_unknown_type_are_kept_as_refused(region):
    nurse = region.nurse
    patient = new_patient(nurse)
    nurse.push(patient)
    pid = patient["record_id"]
    future = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=3)).isoformat()
    entries = [_access(pid, id="not-a-uuid"), _access("Tolvan"), _access(pid, record_id="x"),
               _access(pid, opened_at="yesterday"), _access(pid, opened_at="2026-01-01T10:00:00"),
               _access(pid, opened_at=future), _access(pid, record_type="secret_file"), _access(pid)]
    body = nurse.post("/v1/access-log", {"entries": entries}).json()
    assert body["accepted"] == 1
    assert [r["reason"] for r in body["refused"]] == [
        "id is not a UUID", "patient_id is not a UUID", "record_id is not a UUID",
        "opened_at is not an ISO 8601 time", "opened_at has no UTC offset",
        "opened_at is more than a day in the future", "record_type 'secret_file' is not a record type"]
    refused = [e for e in _log(region) if e["kind"] == "access_refused"]
    assert len(refused) == 7 and all(e["patient_id"] is None for e in refused)


def test_a_patient_created_offline_and_opened_before_its_first_push_is_logged(region):
    nurse = region.nurse
    patient = new_patient(nurse)
    body = nurse.post("/v1/access-log", {"entries": [_access(patient["record_id"])]}).json()
    assert body == {"accepted": 1, "refused": []}
