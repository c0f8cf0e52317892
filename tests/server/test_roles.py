"""DOMAIN.md's role table, enforced on pushed changes over HTTP (the rules live in schema.roles)."""

import pytest

from .conftest import new_patient, new_request

pytestmark = pytest.mark.both_stores


@pytest.fixture
def world(region):
    """A Halmstad patient with an open request, synced to every laptop."""
    patient = new_patient(region.nurse)
    request = new_request(region.nurse, patient["record_id"])
    region.nurse.push(patient, request)
    for laptop in region.laptops.values():
        laptop.sync()
    return region, patient["record_id"], request["record_id"]


def _code(laptop, change):
    result = laptop.push(change)["results"][0]
    return result["error"]["code"] if result["result"] == "rejected" else result["result"]


def test_a_nurse_may_not_create_a_visit(world):
    region, patient, _ = world
    assert _code(region.nurse, region.nurse.change("visit", patient_id=patient, kind="home_visit")) == "forbidden"


def test_a_doctor_creates_visits_and_medication(world):
    region, patient, _ = world
    doctor = region.doctor
    assert _code(doctor, doctor.change("visit", patient_id=patient, kind="home_visit")) == "applied"
    assert _code(doctor, doctor.change("medication", patient_id=patient, drug="Alvedon", dose="1 g",
                                       status="active")) == "applied"


def test_only_a_nurse_creates_visit_requests(world):
    region, patient, _ = world
    assert _code(region.doctor, new_request(region.doctor, patient)) == "forbidden"


def test_a_dispatcher_triages_and_assigns_but_creates_nothing(world):
    region, patient, request = world
    dispatcher = region.dispatcher
    assert _code(dispatcher, dispatcher.edit("visit_request", request, status="triaged")) == "applied"
    dispatcher.sync()
    assert _code(dispatcher, dispatcher.edit("visit_request", request, status="assigned",
                                             assigned_doctor_id=region.doctor.user_id)) == "applied"
    assert _code(dispatcher, new_patient(dispatcher)) == "forbidden"


def test_a_doctor_may_not_assign_a_request(world):
    region, _, request = world
    change = region.doctor.edit("visit_request", request, assigned_doctor_id=region.doctor.user_id)
    assert _code(region.doctor, change) == "forbidden_field"


def test_an_admin_writes_no_clinical_records(world):
    region, patient, _ = world
    admin = region.admin
    assert _code(admin, admin.change("warning", patient_id=patient, kind="allergy", text="x",
                                     severity="high")) == "forbidden"


def test_a_write_outside_the_writers_scope_is_out_of_scope(world):
    region, patient, _ = world
    laholm_nurse = region.laholm_nurse
    assert _code(laholm_nurse, laholm_nurse.change("warning", patient_id=patient, kind="allergy", text="x",
                                                   severity="high")) == "out_of_scope"
    assert _code(laholm_nurse, new_patient(laholm_nurse, "Halmstad")) == "out_of_scope"
