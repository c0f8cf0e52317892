"""Push over real HTTP: per-change results, retries, the clock rule, bad input, atomic batches."""

import contextlib
import json
import datetime as dt
import uuid

import pytest
import requests

from schema.clock import Hlc

from .conftest import PERSONNUMMER, new_patient, new_request, versions

# Every test here runs against the SQLite store and the PostgreSQL store.
pytestmark = pytest.mark.both_stores


def _head(server):
    return server.store.head()


def test_each_change_of_a_batch_gets_its_own_result_in_order(region):
    nurse = region.nurse
    patient = new_patient(nurse)
    bad = nurse.change("patient", personnummer="191212121213", name="Fel", municipality="Halmstad")
    warning = nurse.change("warning", patient_id=patient["record_id"], kind="allergy", text="penicillin",
                           severity="high")
    answer = nurse.push(patient, bad, warning)
    assert [r["change_id"] for r in answer["results"]] == [patient["change_id"], bad["change_id"], warning["change_id"]]
    assert answer["results"][0] == {"change_id": patient["change_id"], "result": "applied", "hlc": patient["hlc"],
                                    "restamped": False, "conflicts": []}
    assert answer["results"][1]["result"] == "rejected"
    assert answer["results"][1]["error"]["code"] == "invalid_value"
    assert "personnummer" in answer["results"][1]["error"]["details"]
    assert answer["results"][2]["result"] == "applied"
    assert Hlc.parse(answer["server_hlc"]) >= Hlc.parse(warning["hlc"])


def test_a_retried_batch_gets_the_same_answers_and_doubles_nothing(region):
    nurse = region.nurse
    patient = new_patient(nurse)
    bad = nurse.change("warning", patient_id=patient["record_id"], kind="nope", text="x", severity="high")
    first = nurse.push(patient, bad)
    head, audit = _head(region.server), len(region.server.store.audit_log(limit=1000))
    quarantined = len(region.server.store.quarantined())
    second = nurse.push(patient, bad)
    assert second["results"] == first["results"]
    assert _head(region.server) == head
    assert len(region.server.store.audit_log(limit=1000)) == audit
    assert len(region.server.store.quarantined()) == quarantined == 1


def test_a_change_building_on_a_rejected_one_is_rejected_as_depends_on_rejected(region):
    nurse = region.nurse
    patient = nurse.change("patient", personnummer="191212121213", name="Fel", municipality="Halmstad")
    warning = nurse.change("warning", patient_id=patient["record_id"], kind="allergy", text="x", severity="high")
    edit = nurse.change("patient", patient["record_id"], base={"name": patient["change_id"]}, name="Rätt")
    results = nurse.push(patient, warning)["results"] + nurse.push(edit)["results"]
    assert [r["result"] for r in results] == ["rejected"] * 3
    assert [r["error"]["code"] for r in results] == ["invalid_value", "depends_on_rejected", "depends_on_rejected"]
    assert results[1]["error"]["details"] == {"depends_on": [patient["record_id"]]}


def test_a_corrected_new_record_with_a_fresh_change_is_not_held_back_by_the_rejected_one(region):
    nurse = region.nurse
    wrong = nurse.change("patient", personnummer="191212121213", name="Fel", municipality="Halmstad")
    fixed = nurse.change("patient", wrong["record_id"], personnummer=PERSONNUMMER[0], name="Rätt",
                         municipality="Halmstad")
    results = nurse.push(wrong)["results"] + nurse.push(fixed)["results"]
    assert [r["result"] for r in results] == ["rejected", "applied"]


def test_operation_numbers_that_never_arrived_show_as_gaps_in_device_health(region):
    nurse = region.nurse
    first, lost_a, lost_b, later = (new_patient(nurse) for _ in range(4))
    nurse.push(first, later)
    nurse.push(first, later)  # a retry reveals nothing new
    health = {d["id"]: d for d in
              region.admin.session.get(region.server.url + "/v1/admin/devices").json()["devices"]}
    assert (health[nurse.device_id]["last_op"], health[nurse.device_id]["op_gaps"]) == (later["op"], 2)


def test_the_device_op_number_and_pending_count_are_recorded_with_the_batch(region):
    nurse = region.nurse
    nurse.push(new_patient(nurse), pending=7)
    device = region.server.store.get_device(nurse.device_id)
    assert (device["last_op"], device["pending"]) == (1, 7)
    assert device["last_sync_at"]


def test_a_clock_far_ahead_is_restamped_flagged_and_does_not_win_later_merges(region):
    nurse, doctor = region.nurse, region.doctor
    patient = new_patient(nurse)
    nurse.push(patient)
    nurse.sync()
    doctor.sync()
    ahead = Hlc(Hlc.parse(str(nurse.clock.now())).wall_ms + 3 * 3600 * 1000)
    skewed = nurse.edit("patient", patient["record_id"], hlc=str(ahead), phone="070-111")
    result = nurse.push(skewed)["results"][0]
    assert result["restamped"] is True
    assert result["original_hlc"] == str(ahead)
    assert Hlc.parse(result["hlc"]) < ahead
    # The doctor edits the same field later without having seen it: a later real time must win.
    later = doctor.edit("patient", patient["record_id"], phone="070-222")
    doctor.push(later)
    doctor.sync()
    assert doctor.records[("patient", patient["record_id"])]["fields"]["phone"] == "070-222"
    health = {d["id"]: d for d in region.admin.session.get(region.server.url + "/v1/admin/devices").json()["devices"]}
    assert health[nurse.device_id]["clock_flagged_at"]
    assert health[nurse.device_id]["clock_offset_ms"] > 3 * 3600 * 1000 - 60_000
    change = region.server.store.get_change(skewed["change_id"])
    assert (change["original_hlc"], change["hlc"]) == (str(ahead), result["hlc"])
    logged = [e for e in region.server.store.audit_log(limit=1000) if e["change_id"] == skewed["change_id"]]
    assert logged[0]["details"]["original_hlc"] == str(ahead)


def test_a_change_to_a_sealed_visit_is_rejected_as_sealed_record(region):
    nurse, doctor = region.nurse, region.doctor
    patient = new_patient(nurse)
    nurse.push(patient)
    doctor.sync()
    now = dt.datetime.now(dt.timezone.utc).isoformat()
    visit = doctor.change("visit", patient_id=patient["record_id"], kind="home_visit", assessment="stabil")
    doctor.push(visit)
    doctor.sync()
    sign = doctor.edit("visit", visit["record_id"], signed_at=now)
    assert doctor.push(sign)["results"][0]["result"] == "applied"
    doctor.sync()
    late = doctor.edit("visit", visit["record_id"], plan="ny plan")
    result = doctor.push(late)["results"][0]
    assert result["result"] == "rejected"
    assert result["error"]["code"] == "sealed_record"
    assert region.server.store.quarantined()[0]["change_id"] == late["change_id"]


def test_unknown_record_types_and_fields_and_wrong_types_are_rejected_per_change(region):
    nurse = region.nurse
    unknown_type = nurse.change("prescription", drug="x")
    unknown_field = new_patient(nurse, shoe_size=44)
    wrong_type = new_patient(nurse, personnummer=PERSONNUMMER[1], palliative="yes")
    future = nurse.change("observation", patient_id=str(uuid.uuid4()), pulse=80,
                          measured_at=(dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=3)).isoformat())
    codes = [r["error"]["code"] for r in nurse.push(unknown_type, unknown_field, wrong_type, future)["results"]]
    assert codes == ["unknown_record_type", "unknown_field", "invalid_value", "invalid_value"]


def test_fields_set_by_the_server_are_refused_as_forbidden_field(region):
    nurse = region.nurse
    patient = new_patient(nurse)
    request = new_request(nurse, patient["record_id"], requested_by=nurse.user_id)
    results = nurse.push(patient, request)["results"]
    assert results[1]["error"]["code"] == "forbidden_field"


def test_a_new_visit_request_is_stamped_with_its_receipt_deadline_and_requester(region):
    nurse = region.nurse
    patient = new_patient(nurse)
    request = new_request(nurse, patient["record_id"], urgency="acute")
    nurse.push(patient, request)
    nurse.sync()
    fields = nurse.records[("visit_request", request["record_id"])]["fields"]
    received = dt.datetime.fromisoformat(fields["received_at"])
    assert abs(received - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(minutes=1)
    assert dt.datetime.fromisoformat(fields["deadline"]) - received == dt.timedelta(hours=2)
    assert fields["requested_by"] == nurse.user_id
    assert fields["status"] == "requested"


def test_a_patient_created_twice_apart_raises_a_duplicate_patient_conflict_on_both(region):
    nurse, doctor = region.nurse, region.doctor
    first, second = new_patient(nurse), new_patient(doctor)
    nurse.push(first)
    result = doctor.push(second)["results"][0]
    assert result["result"] == "conflict"
    nurse.sync()
    conflicts = [nurse.records[("patient", p["record_id"])]["conflicts"] for p in (first, second)]
    for patient, [conflict] in zip((first, second), conflicts):
        assert (conflict["id"], conflict["severity"], conflict["status"]) == (result["conflicts"][0], "high", "open")
        assert [v["version"] for v in conflict["values"]] == [patient["change_id"]]
    [full] = region.server.store.duplicates()
    assert sorted(full["patients"]) == sorted([first["record_id"], second["record_id"]])


def test_a_patient_edited_after_a_duplicate_notice_in_the_same_batch_keeps_the_notice(region):
    # The batch reads its records and the patients its observations name before its first change
    # (WriteApplier.look_up); the notice the duplicate check writes onto the first patient must be
    # what the edit after it builds on, or the edit would store the patient without it.
    nurse = region.nurse
    first = new_patient(nurse)
    nurse.push(first)
    nurse.sync()
    vitals = nurse.change("observation", patient_id=first["record_id"], measured_at=dt.datetime.now(
        dt.timezone.utc).isoformat(timespec="seconds"), resp_rate=16, spo2=97, supplemental_o2=False)
    twin = new_patient(nurse)
    edit = nurse.edit("patient", first["record_id"], phone="035-12 34 56")
    results = nurse.push(vitals, twin, edit)["results"]
    assert [r["result"] for r in results] == ["applied", "conflict", "applied"]
    state = region.server.store.get_record("patient", first["record_id"]).state
    assert [c["kind"] for c in state["conflicts"]] == ["duplicate_patient"]
    assert state["fields"]["phone"]["value"] == "035-12 34 56"


def test_duplicate_personnummer_stays_private_the_creator_learns_only_that_it_went_to_review(region):
    """Creating a patient must not tell whether, where and by whom the person is known."""
    laholm, nurse = region.laholm_nurse, region.nurse
    theirs = laholm.change("patient", personnummer=PERSONNUMMER[0], name="Greta i Laholm", municipality="Laholm")
    laholm.push(theirs)
    probe = new_patient(nurse)  # the same personnummer, in Halmstad
    [result] = nurse.push(probe)["results"]
    nurse.sync()
    answer_and_state = json.dumps([result, list(nurse.records.values())]).casefold()
    for secret in (theirs["record_id"], laholm.user_id, laholm.device_id, "greta i laholm", theirs["change_id"]):
        assert secret.casefold() not in answer_and_state
    [notice] = nurse.records[("patient", probe["record_id"])]["conflicts"]
    assert notice["kind"] == "duplicate_patient" and "review" in notice["message"]
    [full] = region.server.store.duplicates(status="open")
    assert theirs["record_id"] in full["patients"] and laholm.user_id in json.dumps(full)


def test_a_change_whose_merge_fails_is_rejected_alone_and_the_rest_of_the_batch_applies(region, monkeypatch):
    nurse = region.nurse
    store = region.server.store
    real = store.savepoint
    first, second = new_patient(nurse), new_patient(nurse, personnummer=PERSONNUMMER[1])

    @contextlib.contextmanager
    def failing():
        # The second change fails as its savepoint ends, after all its writes were made or held
        # for the batch's end: as a write PostgreSQL was sent without waiting fails at the release
        # (there, the batch is undone and applied again waiting per change, and fails the same).
        with real():
            yield store
            if store.get_record("patient", second["record_id"]) is not None:
                raise RuntimeError("disk on fire")

    monkeypatch.setattr(store, "savepoint", failing)
    results = nurse.push(first, second)["results"]
    monkeypatch.undo()
    assert [r["result"] for r in results] == ["applied", "rejected"]
    assert results[1]["error"]["code"] == "merge_failed"
    # The failed change left nothing of itself: no record, no feed row, no audit entry but its
    # rejection (the rows held for the batch's end were dropped with it); it waits in quarantine.
    assert store.get_record("patient", second["record_id"]) is None
    assert store.get_record("patient", first["record_id"]) is not None
    assert [e["kind"] for e in store.audit_log(limit=1000) if e["change_id"] == second["change_id"]] == ["rejected"]
    assert store.get_change(second["change_id"])["result"] == results[1]
    [held] = [q for q in store.quarantined() if q["change_id"] == second["change_id"]]
    assert held["code"] == "merge_failed"
    assert nurse.push(second)["results"] == [results[1]]  # a retry gets the stored answer


def test_a_batch_that_fails_outside_any_one_change_applies_nothing(region, monkeypatch):
    nurse = region.nurse
    store = region.server.store

    def failing(hlc):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(store, "save_clock", failing)
    head = _head(region.server)
    response = nurse.post("/v1/push", {"changes": [new_patient(nurse), new_patient(nurse, personnummer=PERSONNUMMER[1])]})
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    monkeypatch.undo()
    assert _head(region.server) == head
    assert [e for e in store.audit_log() if e["kind"] != "auth_failed"] == []


def test_the_batch_shape_is_checked_before_anything_is_applied(region):
    nurse = region.nurse
    good = new_patient(nurse)
    for body in ({"changes": "nope"}, {"changes": [{"change_id": "x"}]}, {"changes": [good, good]},
                 {"changes": [{**good, "surprise": 1}]}, [good]):
        response = nurse.post("/v1/push", body)
        assert response.status_code == 400, body
        assert response.json()["error"]["code"] == "invalid_batch"
    assert _head(region.server) == 0


def test_a_batch_over_the_maximum_is_refused_whole(tmp_path):
    from tests.live_server import start_live_server
    from .conftest import Laptop

    with start_live_server(tmp_path, max_batch=2) as server:
        user = server.add_user("Maria Ek", "nurse", ["Halmstad"])
        device, token = server.enroll(user)
        nurse = Laptop(server, token, device, user)
        changes = [new_patient(nurse, personnummer=p) for p in PERSONNUMMER[:3]]
        response = nurse.post("/v1/push", {"changes": changes})
        assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_batch")
        assert server.store.head() == 0


def test_the_device_id_of_a_change_is_taken_from_the_token(region):
    nurse = region.nurse
    patient = {**new_patient(nurse), "device_id": "someone-else"}
    nurse.push(patient)
    nurse.sync()
    assert nurse.records[("patient", patient["record_id"])]["writes"][0][2] == nurse.device_id


def test_an_edit_on_top_of_the_current_version_applies(region):
    nurse = region.nurse
    patient = new_patient(nurse)
    nurse.push(patient)
    nurse.sync()
    assert nurse.push(nurse.edit("patient", patient["record_id"], phone="070"))["results"][0]["result"] == "applied"
    nurse.sync()
    wire = nurse.records[("patient", patient["record_id"])]
    assert wire["fields"]["phone"] == "070"
    assert versions(wire)["phone"] != patient["change_id"]


def test_push_without_a_body_is_malformed_json(region):
    response = requests.post(region.server.url + "/v1/push", data=b"{not json",
                             headers={**region.nurse.session.headers, "Content-Type": "application/json"})
    assert (response.status_code, response.json()["error"]["code"]) == (400, "malformed_json")


def _late_edit_of_a_signed_visit(region):
    """A doctor's offline edit of a visit their other laptop has signed since: (patient, visit, the edit)."""
    from .conftest import Laptop

    nurse, doctor = region.nurse, region.doctor
    device_id, token = region.server.enroll(doctor.user_id, "second laptop")
    other = Laptop(region.server, token, device_id, doctor.user_id)
    patient = new_patient(nurse)
    nurse.push(patient)
    visit = doctor.change("visit", patient_id=patient["record_id"], kind="home_visit", plan="vila")
    doctor.push(visit)
    doctor.sync()
    other.sync()
    offline = doctor.edit("visit", visit["record_id"], plan="vila, återbesök om en vecka")
    other.push(other.edit("visit", visit["record_id"], signed_at=dt.datetime.now(dt.timezone.utc).isoformat()))
    return patient, visit, offline


def test_a_late_offline_edit_of_a_signed_visit_becomes_an_amendment_and_a_conflict(region):
    doctor = region.doctor
    _, visit, offline = _late_edit_of_a_signed_visit(region)
    result = doctor.push(offline)["results"][0]
    assert result["result"] == "conflict"
    doctor.sync()
    amendments = [r for (t, _), r in doctor.records.items() if t == "amendment"]
    assert len(amendments) == 1
    assert "återbesök" in amendments[0]["fields"]["text"]
    assert doctor.records[("visit", visit["record_id"])]["fields"]["plan"] == "vila"


def test_a_change_whose_id_an_earlier_change_of_the_batch_stored_gets_that_answer_not_a_second_write(region):
    # The batch's change ids are looked up in one query before any is applied: an id the
    # batch itself stores on the way (here the amendment a late edit derives) is asked again.
    from schema.merge import derived_id

    doctor = region.doctor
    patient, _, offline = _late_edit_of_a_signed_visit(region)
    reused = {**doctor.change("warning", patient_id=patient["record_id"], kind="allergy", text="x",
                              severity="high"),
              "change_id": derived_id(offline["change_id"], "amendment-change")}
    head = _head(region.server)
    results = doctor.push(offline, reused)["results"]
    assert results[0]["result"] == "conflict"
    assert results[1] == {"change_id": reused["change_id"], "result": "applied"}  # the amendment's stored answer
    assert _head(region.server) == head + 2  # the visit and its amendment; the reused id wrote nothing
    assert region.server.store.get_record("warning", reused["record_id"]) is None


def test_a_base_that_is_no_object_is_invalid_value_also_from_a_device_with_rejected_changes(region):
    region.nurse.push(region.nurse.change("patient", name="", municipality="Halmstad"))  # rejected: no personnummer
    answer = region.nurse.push(region.nurse.change("patient", base=[["c"]], name="Tolvan"))
    assert answer["results"][0]["error"]["code"] == "invalid_value"


def test_a_nul_character_in_an_id_or_a_value_is_never_a_server_error_on_either_store(region):
    nurse = region.nurse
    odd_id = {**new_patient(nurse), "change_id": "c\x00"}
    assert nurse.push(odd_id)["results"][0]["result"] == "applied"
    assert nurse.push(odd_id)["results"][0]["result"] == "applied"  # a retry finds it, and doubles nothing
    patient = nurse.change("patient", personnummer=PERSONNUMMER[1], name="Tolvan\x00Tolvansson",
                           municipality="Halmstad")
    dangling = nurse.change("warning", patient_id="p\x00", kind="allergy", text="penicillin", severity="high")
    answer = nurse.push(patient, dangling)
    assert [r["result"] for r in answer["results"]] == ["applied", "rejected"]
    stored = region.server.store.get_record("patient", patient["record_id"])
    assert stored.state["fields"]["name"]["value"] == "Tolvan\x00Tolvansson"
    assert region.server.store.head() == 2
