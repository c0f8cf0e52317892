"""The integrity check over HTTP: GET /v1/digest and POST /v1/fetch (docs/protocol.md "Integrity check")."""

import uuid

from schema.wire import record_digest, scope_digest
from tests.server.conftest import PERSONNUMMER, new_patient, new_request
import pytest

pytestmark = pytest.mark.both_stores


def _digest(laptop):
    answer = laptop.session.get(laptop.server.url + "/v1/digest", timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_the_digest_covers_exactly_what_pull_ships_to_the_device_hashed_as_the_laptop_does(region):
    patient = new_patient(region.nurse)
    region.nurse.push(patient, new_request(region.nurse, patient["record_id"]),
                      region.nurse.change("warning", patient_id=patient["record_id"], kind="allergy",
                                          text="Penicillin", severity="high", source="patient", active=True))
    laholm = new_patient(region.laholm_nurse, "Laholm", PERSONNUMMER[1])
    region.laholm_nurse.push(laholm)
    for name in ("nurse", "dispatcher", "laholm_doctor", "admin"):
        laptop = getattr(region, name)
        laptop.sync(limit=2)
        expected = {f"{t}/{i}": record_digest(wire) for (t, i), wire in laptop.records.items()}
        assert _digest(laptop) == {"digest": scope_digest(expected), "records": expected}, name
    assert len(_digest(region.dispatcher)["records"]) == 3  # the request, its patient and the warning
    assert list(_digest(region.laholm_doctor)["records"]) == [f"patient/{laholm['record_id']}"]


def test_the_digest_is_not_audited_and_a_fetch_is_like_a_pull(region):
    patient = new_patient(region.nurse)
    region.nurse.push(patient)
    store = region.server.store
    last = store.audit_log(limit=10_000)[-1]["id"]
    _digest(region.nurse)
    assert store.audit_log(after=last) == []
    region.nurse.post("/v1/fetch", {"records": [f"patient/{patient['record_id']}"]})
    [entry] = store.audit_log(after=last)
    assert (entry["kind"], entry["patient_id"], entry["user_id"], entry["details"]) == (
        "pull", patient["record_id"], region.nurse.user_id,
        {"records": [f"patient/{patient['record_id']}"], "endpoint": "POST /v1/fetch"})


def test_a_fetch_ships_records_in_scope_as_pull_does_and_lists_the_rest_as_missing(region):
    halmstad, laholm = new_patient(region.nurse), new_patient(region.laholm_nurse, "Laholm", PERSONNUMMER[1])
    region.nurse.push(halmstad)
    region.laholm_nurse.push(laholm)
    region.nurse.sync()
    wanted = [f"patient/{halmstad['record_id']}", f"patient/{laholm['record_id']}", f"visit/{uuid.uuid4()}",
              "spaceship/1", "no-slash"]

    answer = region.nurse.post("/v1/fetch", {"records": wanted})

    assert answer.status_code == 200
    assert answer.json() == {"records": [region.nurse.records[("patient", halmstad["record_id"])]],
                             "missing": wanted[1:]}


def test_a_fetch_of_more_than_a_page_or_of_the_wrong_shape_is_refused_whole(region):
    limit = region.server.app.config["HEMSYNC"]["HEMSYNC_PAGE_SIZE"]
    too_many = region.nurse.post("/v1/fetch", {"records": [f"patient/{n}" for n in range(limit + 1)]})
    wrong = region.nurse.post("/v1/fetch", {"keys": ["patient/1"]})
    assert [(r.status_code, r.json()["error"]["code"]) for r in (too_many, wrong)] == [
        (400, "invalid_batch"), (400, "invalid_batch")]
