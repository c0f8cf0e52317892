"""DOMAIN.md "Safety rules added after review", proven over real HTTP (issue 9, items 1-4, 7 and 8).

Each test is named after the rule it proves and fails on the code before
issue 9 (commit 5543ef4). The pure merge's side of the same rules is in
tests/test_safety_rules.py, the laptop's in tests/client/test_safety_rules.py.
"""

import datetime as dt
import json
import uuid

import pytest
import requests
from click.testing import CliRunner

from tests.live_server import start_live_server
from tests.merging import deep_list

from .conftest import PERSONNUMMER, Laptop, new_patient, new_request

# Every test here runs against the SQLite store and the PostgreSQL store.
pytestmark = pytest.mark.both_stores

NORMAL_VITALS = {"resp_rate": 16, "temperature": 37.0, "systolic_bp": 120, "pulse": 70, "consciousness": "A"}


def _now():
    return dt.datetime.now(dt.timezone.utc).isoformat()


def _one(laptop, change):
    """Push one change; return its result."""
    [result] = laptop.push(change)["results"]
    return result


def _code(result):
    return result["error"]["code"] if result["result"] == "rejected" else result["result"]


def _warning(laptop, patient_id, text="penicillin"):
    return laptop.change("warning", patient_id=patient_id, kind="allergy", text=text, severity="high")


def _observation(laptop, patient_id, **vitals):
    return laptop.change("observation", patient_id=patient_id, measured_at=_now(), **vitals)


def _field(laptop, record_type, record_id, name):
    return laptop.records[(record_type, record_id)]["fields"].get(name)


# -- 1. What places a record is fixed; municipalities are the server's list ----------------------------


def test_an_edit_moving_a_record_to_another_patient_is_refused_and_never_reaches_that_patients_nurses(region):
    nurse, laholm = region.nurse, region.laholm_nurse
    ours, theirs = new_patient(nurse), new_patient(laholm, "Laholm", PERSONNUMMER[1])
    warning = _warning(nurse, ours["record_id"])
    nurse.push(ours, warning)
    laholm.push(theirs)
    nurse.sync()
    moved = _one(nurse, nurse.edit("warning", warning["record_id"], patient_id=theirs["record_id"]))
    assert _code(moved) == "immutable_field"
    assert list(moved["error"]["details"]) == ["patient_id"]
    laholm.sync()
    nurse.sync()
    assert warning["record_id"] not in laholm.ids("warning")
    assert _field(nurse, "warning", warning["record_id"], "patient_id") == ours["record_id"]
    assert region.server.store.get_record("warning", warning["record_id"]).patient_id == ours["record_id"]


def test_a_rounds_municipality_and_a_visits_request_are_fixed_when_they_are_made(region):
    doctor, nurse = region.doctor, region.nurse
    patient = new_patient(nurse)
    first, second = new_request(nurse, patient["record_id"]), new_request(nurse, patient["record_id"])
    nurse.push(patient, first, second)
    visit = doctor.change("visit", patient_id=patient["record_id"], kind="home_visit", request_id=first["record_id"])
    sabo = doctor.change("round", facility="Solgården", municipality="Halmstad", date="2026-11-25")
    assert [_code(r) for r in doctor.push(visit, sabo)["results"]] == ["applied", "applied"]
    doctor.sync()
    results = doctor.push(doctor.edit("round", sabo["record_id"], municipality="Laholm"),
                          doctor.edit("visit", visit["record_id"], request_id=second["record_id"]))["results"]
    assert [(_code(r), list(r["error"]["details"])) for r in results] == [
        ("immutable_field", ["municipality"]), ("immutable_field", ["request_id"])]
    region.laholm_doctor.sync()
    assert sabo["record_id"] not in region.laholm_doctor.ids("round")
    doctor.sync()
    assert _field(doctor, "visit", visit["record_id"], "request_id") == first["record_id"]


def test_a_patient_moves_only_by_someone_whose_scope_holds_both_municipalities_and_leaves_the_old_laptops_whole(
        region):
    nurse, laholm = region.nurse, region.laholm_nurse
    both = region.laptop("both_doctor", "doctor", ["Halmstad", "Laholm"])
    patient = new_patient(nurse)
    pid = patient["record_id"]
    records = [_warning(nurse, pid), _observation(nurse, pid, spo2=95, **NORMAL_VITALS), new_request(nurse, pid)]
    nurse.push(patient, *records)
    nurse.sync()
    everything = {("patient", pid)} | {(r["record_type"], r["record_id"]) for r in records}
    assert set(nurse.records) == everything

    refused = _one(nurse, nurse.edit("patient", pid, municipality="Laholm"))
    assert _code(refused) == "out_of_scope"
    laholm.sync()
    assert laholm.ids() == set()
    assert region.server.store.get_record("patient", pid).municipality == "Halmstad"

    both.sync()
    assert _code(_one(both, both.edit("patient", pid, municipality="Laholm"))) == "applied"
    pages = nurse.sync()
    assert {(m["type"], m["id"]) for page in pages for m in page["purge"]} == everything
    assert nurse.records == {}
    laholm.sync()
    assert set(laholm.records) == everything
    assert _field(laholm, "patient", pid, "municipality") == "Laholm"


def test_an_unknown_municipality_is_refused_with_the_nearest_known_names(region):
    nurse = region.nurse
    [created] = nurse.push(new_patient(nurse, "Halmstadd"))["results"]
    patient = new_patient(nurse, personnummer=PERSONNUMMER[1])
    nurse.push(patient)
    nurse.sync()
    edited = _one(nurse, nurse.edit("patient", patient["record_id"], municipality="Halmstadd"))
    for result in (created, edited):
        assert _code(result) == "unknown_municipality"
        assert result["error"]["details"]["nearest"][0] == "Halmstad"
        assert "Halmstad" in result["error"]["message"]
    nurse.sync()  # a typo cannot make the patient vanish from the laptops that hold it
    assert nurse.ids() == {patient["record_id"]}
    assert _field(nurse, "patient", patient["record_id"], "municipality") == "Halmstad"


def test_a_municipality_is_matched_ignoring_case_and_stored_as_the_region_spells_it(region):
    nurse = region.nurse
    patient = new_patient(nurse, "halmstad")
    assert _code(_one(nurse, patient)) == "applied"
    nurse.sync()
    assert _field(nurse, "patient", patient["record_id"], "municipality") == "Halmstad"
    assert region.server.store.get_record("patient", patient["record_id"]).municipality == "Halmstad"


def test_admins_keep_the_regions_municipalities_and_the_handshake_carries_them(tmp_path):
    from server.cli import main

    runner = CliRunner()

    def run(*args):
        result = runner.invoke(main, ["--db", str(tmp_path / "hemsync.db"), *args])
        assert result.exit_code == 0, result.output
        return result.output

    admin = json.loads(run("add-user", "--name", "Per Nyström", "--role", "admin", "--json"))["id"]
    assert "added municipality Halmstad" in run("add-municipality", "Halmstad", "--by", admin)
    run("add-municipality", "Laholm", "--by", admin)
    assert "on the list already" in run("add-municipality", "HALMSTAD", "--by", admin)
    assert json.loads(run("municipalities", "--json")) == {"municipalities": ["Halmstad", "Laholm"]}
    refused = runner.invoke(main, ["--db", str(tmp_path / "hemsync.db"), "add-user", "--name", "Maria Ek",
                                   "--role", "nurse", "--municipality", "Varbreg", "--by", admin])
    assert refused.exit_code != 0 and "Varbreg" in refused.output
    nurse = json.loads(run("add-user", "--name", "Maria Ek", "--role", "nurse", "--municipality", "halmstad",
                           "--by", admin, "--json"))
    assert nurse["municipalities"] == ["Halmstad"]
    token = json.loads(run("enroll", "--user", nurse["id"], "--json", "--by", admin))["token"]
    with start_live_server(tmp_path) as server:
        answer = requests.post(server.url + "/v1/handshake", json={},
                               headers={"Authorization": f"Bearer {token}", "X-Hemsync-Client": "0.1.0"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["municipalities"] == ["Halmstad", "Laholm"]


# -- 2. No input makes a record unmergeable ---------------------------------------------------------


POISONED_BASES = {
    "a deep list": lambda change: {"name": deep_list(20)},
    "a dict": lambda change: {"name": {"version": change["change_id"]}},
    "an int": lambda change: {"name": 7},
    "a list of 10,000": lambda change: {"name": [change["change_id"]] * 10_000},
    "an unknown field": lambda change: {"no_such_field": change["change_id"]},
}


@pytest.mark.parametrize("poison", POISONED_BASES)
def test_a_poisoned_base_is_refused_for_that_change_alone_and_the_record_stays_mergeable(region, poison):
    nurse, doctor = region.nurse, region.doctor
    patient = new_patient(nurse)
    nurse.push(patient)
    nurse.sync()
    poisoned = nurse.change("patient", patient["record_id"], base=POISONED_BASES[poison](patient), phone="070")
    honest = new_patient(nurse, personnummer=PERSONNUMMER[1])
    results = nurse.push(poisoned, honest)["results"]
    assert [_code(r) for r in results] == ["invalid_value", "applied"]
    doctor.sync()
    later = _one(doctor, doctor.edit("patient", patient["record_id"], phone="035-12 34 56"))
    assert _code(later) == "applied"
    nurse.sync()
    assert _field(nurse, "patient", patient["record_id"], "phone") == "035-12 34 56"


def test_json_nested_deeper_than_32_levels_is_refused_as_malformed_json(region):
    nurse = region.nurse
    deep = nurse.change("patient", base={"name": deep_list(40)}, name="Tolvan")
    response = nurse.post("/v1/push", {"changes": [deep]})
    assert (response.status_code, response.json()["error"]["code"]) == (400, "malformed_json")
    assert response.json()["error"]["details"] == {"max_depth": 32}


def test_a_change_that_would_grow_a_record_past_the_size_limit_is_rejected_record_too_large(tmp_path):
    with start_live_server(tmp_path, max_record_bytes=5000) as server:
        user = server.add_user("Maria Ek", "nurse", ["Halmstad"])
        device_id, token = server.enroll(user)
        nurse = Laptop(server, token, device_id, user)
        patient = new_patient(nurse, access_notes="a" * 1500)
        assert _code(_one(nurse, patient)) == "applied"
        nurse.sync()
        first = nurse.edit("patient", patient["record_id"], access_notes="b" * 1500)
        assert _code(_one(nurse, first)) == "applied"  # about 3.8 kB: the old notes go to history
        nurse.sync()
        second = nurse.edit("patient", patient["record_id"], access_notes="c" * 1500)
        result = _one(nurse, second)
        assert _code(result) == "record_too_large"
        assert result["error"]["details"] == {"record_id": [patient["record_id"]], "max_bytes": 5000}
        stored = server.store.get_record("patient", patient["record_id"])
        assert stored.state["fields"]["access_notes"]["value"] == "b" * 1500
        assert len(stored.wire.encode()) <= 5000


def test_an_exception_inside_one_changes_merge_rejects_it_merge_failed_quarantined_and_audited(region,
                                                                                              monkeypatch):
    from schema import records

    def broken(ctx):
        raise ZeroDivisionError("a bug in a warning's rule")

    nurse = region.nurse
    patient = new_patient(nurse)
    warning = _warning(nurse, patient["record_id"])
    after = new_request(nurse, patient["record_id"])
    monkeypatch.setattr(records.get("warning"), "after_merge", (broken,))
    results = nurse.push(patient, warning, after)["results"]
    monkeypatch.undo()
    assert [_code(r) for r in results] == ["applied", "merge_failed", "applied"]
    store = region.server.store
    assert store.get_record("warning", warning["record_id"]) is None
    [held] = store.quarantined()
    assert (held["change_id"], held["code"]) == (warning["change_id"], "merge_failed")
    [entry] = [e for e in store.audit_log(limit=1000) if e.get("change_id") == warning["change_id"]]
    assert entry["kind"] == "rejected" and entry["patient_id"] == patient["record_id"]
    assert "merge_failed" in json.dumps(entry)


# -- 3. Role limits hold at creation -----------------------------------------------------------------


@pytest.mark.parametrize("dispatcher_field", ["priority_override", "assigned_doctor_id"])
def test_a_nurses_new_request_cannot_carry_dispatcher_fields_nor_pull_the_patient_into_a_doctors_scope(
        region, dispatcher_field):
    nurse, laholm_doctor = region.nurse, region.laholm_doctor
    patient = new_patient(nurse)
    nurse.push(patient)
    value = {"priority_override": 1, "assigned_doctor_id": laholm_doctor.user_id}[dispatcher_field]
    extra = {dispatcher_field: value}
    if dispatcher_field == "priority_override":
        extra["priority_override_reason"] = "brådskande"
    request = new_request(nurse, patient["record_id"], **extra)
    result = _one(nurse, request)
    assert _code(result) == "forbidden_field"
    assert dispatcher_field in result["error"]["details"]
    laholm_doctor.sync()
    assert laholm_doctor.ids() == set()
    assert region.server.store.get_record("visit_request", request["record_id"]) is None


# -- 7. Change ids and operation numbers ------------------------------------------------------------


def test_a_change_id_another_device_used_is_refused_change_id_taken_and_leaves_that_devices_record_alone(region):
    nurse, doctor = region.nurse, region.doctor
    patient = new_patient(nurse)
    [theirs] = nurse.push(patient)["results"]
    doctor.sync()
    colliding = {**doctor.edit("patient", patient["record_id"], name="Någon Annan"),
                 "change_id": patient["change_id"]}
    result = _one(doctor, colliding)
    assert _code(result) == "change_id_taken"
    assert result != theirs
    assert _one(doctor, colliding) == result  # a retry: the same answer, nothing doubled
    assert [q["device_id"] for q in region.server.store.quarantined()] == [doctor.device_id]
    nurse.sync()
    assert _field(nurse, "patient", patient["record_id"], "name") == "Tolvan Tolvansson"
    stored = region.server.store.get_record("patient", patient["record_id"])
    assert stored.state["rev"] == 1
    assert nurse.push(patient)["results"] == [theirs]  # the owner's retry still gets its own answer


@pytest.mark.parametrize("op", [2 ** 63 - 1, 0])
def test_an_operation_number_out_of_sequence_is_refused_and_gap_detection_goes_on(region, op):
    nurse = region.nurse
    wild = {**new_patient(nurse), "op": op}
    assert _code(_one(nurse, wild)) == "invalid_value"
    nurse.op = 0
    first, lost_a, lost_b, later = (new_patient(nurse, personnummer=p) for p in PERSONNUMMER)
    assert [_code(r) for r in nurse.push(first, later)["results"]] == ["applied", "applied"]
    health = {d["id"]: d for d in region.admin.session.get(region.server.url + "/v1/admin/devices").json()["devices"]}
    assert (health[nurse.device_id]["last_op"], health[nurse.device_id]["op_gaps"]) == (4, 2)


# -- 8. Clinical: NEWS2 on the patient's scale, warning text, references ------------------------------


@pytest.mark.parametrize("sent_scale", [None, 1])
def test_news2_scores_a_scale_2_patient_on_scale_2_whatever_scale_the_laptop_sent(region, sent_scale):
    nurse = region.nurse
    patient = new_patient(nurse, spo2_scale=2)
    scale = {} if sent_scale is None else {"spo2_scale": sent_scale}
    on_air = _observation(nurse, patient["record_id"], spo2=89, supplemental_o2=False, **scale, **NORMAL_VITALS)
    on_oxygen = _observation(nurse, patient["record_id"], spo2=98, supplemental_o2=True, **scale, **NORMAL_VITALS)
    nurse.push(patient, on_air, on_oxygen)
    nurse.sync()
    scored = [(_field(nurse, "observation", o["record_id"], "spo2_scale"),
               _field(nurse, "observation", o["record_id"], "news2")) for o in (on_air, on_oxygen)]
    # RCP NEWS2 chart, SpO2 scale 2: 88-92 % on air scores 0; >= 97 % on oxygen scores 3, and oxygen 2 more.
    assert scored == [(2, 0), (2, 5)]


def test_an_observation_after_its_patients_scale_changed_in_the_same_batch_is_scored_on_the_new_scale(region):
    # A batch reads the patients its observations name before its first change (WriteApplier.look_up):
    # the patient's edit earlier in the batch must be what the observation reads.
    nurse = region.nurse
    patient = new_patient(nurse, spo2_scale=1)
    nurse.push(patient)
    nurse.sync()
    on_air = _observation(nurse, patient["record_id"], spo2=89, supplemental_o2=False, **NORMAL_VITALS)
    results = nurse.push(nurse.edit("patient", patient["record_id"], spo2_scale=2), on_air)["results"]
    assert [_code(r) for r in results] == ["applied", "applied"]
    nurse.sync()
    # 88-92 % on air scores 0 on scale 2 (3 on scale 1).
    assert (_field(nurse, "observation", on_air["record_id"], "spo2_scale"),
            _field(nurse, "observation", on_air["record_id"], "news2")) == (2, 0)


def test_a_warnings_text_edited_on_two_laptops_keeps_both_as_a_high_severity_conflict(region):
    nurse, doctor = region.nurse, region.doctor
    patient = new_patient(nurse)
    warning = _warning(nurse, patient["record_id"], "penicillin")
    nurse.push(patient, warning)
    nurse.sync()
    doctor.sync()
    ours = nurse.edit("warning", warning["record_id"], text="penicillin: utslag")
    theirs = doctor.edit("warning", warning["record_id"], text="penicillin: anafylaxi 2019")
    assert _code(_one(nurse, ours)) == "applied"
    result = _one(doctor, theirs)
    assert _code(result) == "conflict"
    doctor.sync()
    [conflict] = doctor.records[("warning", warning["record_id"])]["conflicts"]
    assert (conflict["field"], conflict["severity"], conflict["status"]) == ("text", "high", "open")
    assert sorted(v["value"] for v in conflict["values"]) == ["penicillin: anafylaxi 2019", "penicillin: utslag"]


def _open_request(region):
    nurse = region.nurse
    patient = new_patient(nurse)
    request = new_request(nurse, patient["record_id"])
    nurse.push(patient, request)
    region.dispatcher.sync()
    return request


@pytest.mark.parametrize("who", ["a name", "a nurse", "nobody"])
def test_a_request_is_assigned_only_to_a_doctor_of_the_staff_directory(region, who):
    dispatcher = region.dispatcher
    request = _open_request(region)
    doctor_id = {"a name": "Anna Berg", "a nurse": region.nurse.user_id, "nobody": str(uuid.uuid4())}[who]
    result = _one(dispatcher, dispatcher.edit("visit_request", request["record_id"],
                                              assigned_doctor_id=doctor_id, status="assigned"))
    assert _code(result) == "unknown_reference"
    assert list(result["error"]["details"]) == ["assigned_doctor_id"]
    assigned = _one(dispatcher, dispatcher.edit("visit_request", request["record_id"],
                                                assigned_doctor_id=region.doctor.user_id, status="assigned"))
    assert _code(assigned) == "applied"


@pytest.mark.parametrize("which", ["no observation", "another patient's"])
def test_a_visit_request_names_an_observation_of_its_own_patient(region, which):
    nurse = region.nurse
    patient, other = new_patient(nurse), new_patient(nurse, personnummer=PERSONNUMMER[1])
    elsewhere = _observation(nurse, other["record_id"], spo2=95, **NORMAL_VITALS)
    own = _observation(nurse, patient["record_id"], spo2=95, **NORMAL_VITALS)
    nurse.push(patient, other, elsewhere, own)
    named = {"no observation": str(uuid.uuid4()), "another patient's": elsewhere["record_id"]}[which]
    result = _one(nurse, new_request(nurse, patient["record_id"], observation_id=named))
    assert _code(result) == "unknown_reference"
    assert list(result["error"]["details"]) == ["observation_id"]
    good = _one(nurse, new_request(nurse, patient["record_id"], observation_id=own["record_id"]))
    assert _code(good) == "applied"


def test_an_amendment_names_a_visit_of_its_own_patient(region):
    doctor = region.doctor
    patient, other = new_patient(doctor), new_patient(doctor, personnummer=PERSONNUMMER[1])
    visit = doctor.change("visit", patient_id=other["record_id"], kind="home_visit", plan="vila")
    doctor.push(patient, other, visit)
    result = _one(doctor, doctor.change("amendment", patient_id=patient["record_id"], visit_id=visit["record_id"],
                                        text="tillägg"))
    assert _code(result) == "unknown_reference"
    assert list(result["error"]["details"]) == ["visit_id"]
    own = _one(doctor, doctor.change("amendment", patient_id=other["record_id"], visit_id=visit["record_id"],
                                     text="tillägg"))
    assert _code(own) == "applied"
