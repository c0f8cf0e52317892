"""Several laptops against the real server: convergence, nothing lost, idempotent retries."""

import itertools
import uuid

import pytest

from client_sync.http import SyncClient
from client_sync.sync import sync

from .conftest import new_patient, replica_wires, server_wires

# Converges on the SQLite store and on the PostgreSQL store.
pytestmark = [pytest.mark.e2e, pytest.mark.both_stores]


def offline_work(anna, bo, cia, patient_id, visit_id):
    """Concurrent edits of every kind of rule, made apart on three laptops."""
    anna.write("patient", patient_id, {"address": "Storgatan 1"})          # last writer wins ...
    bo.write("patient", patient_id, {"address": "Lillgatan 2"})            # ... against this
    cia.write("patient", patient_id, {"access_notes": "key box 1234"})     # a different field: both apply
    anna.write("visit", visit_id, {"plan": "Anna's plan"})                 # keep both: a conflict
    bo_visit = str(uuid.uuid4())
    bo.write("visit", bo_visit, {"patient_id": patient_id, "kind": "phone", "assessment": "Bo's call"})
    return bo_visit


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_laptops_converge_to_the_server_whatever_the_order_of_syncs(laptops, live, order):
    anna, bo, cia = laptops("Anna", "doctor"), laptops("Bo", "doctor"), laptops("Cia", "nurse")
    anna_second = laptops.device_of(anna.actor().user_id, "Anna second")
    patient_id = new_patient(anna)
    visit_id = str(uuid.uuid4())
    anna.write("visit", visit_id, {"patient_id": patient_id, "kind": "home_visit", "plan": "start"})
    for replica in (anna, bo, cia, anna_second):
        sync(replica)
    offline_work(anna, bo, cia, patient_id, visit_id)
    anna_second.write("visit", visit_id, {"plan": "plan from the second laptop"})
    everyone = [anna, bo, cia, anna_second]
    for index in order:
        sync(everyone[index])
    sync(anna_second)
    for replica in everyone:  # a second round brings everyone to the head
        sync(replica)
    for replica in everyone:
        assert replica_wires(replica) == server_wires(live, replica)
        assert replica.outbox() == []
    visit = anna.get("visit", visit_id)
    [conflict] = visit.open_conflicts
    assert {v["value"] for v in conflict["values"]} == {"Anna's plan", "plan from the second laptop"}
    patient = anna.history("patient", patient_id)
    assert {"Storgatan 1", "Lillgatan 2"} <= {row["value"] for row in patient if row["field"] == "address"}
    assert anna.get("patient", patient_id).fields["access_notes"] == "key box 1234"


def test_pushing_the_same_batch_twice_changes_nothing_the_second_time(laptops, live):
    anna = laptops("Anna")
    patient_id = new_patient(anna)
    anna.write("patient", patient_id, {"phone": "090-1"})
    batch = anna.unsent(100)
    client = SyncClient(live.url, anna.setting("token"))
    first = client.push(batch, pending=0)
    second = client.push(batch, pending=0)
    assert [r["result"] for r in first["results"]] == ["applied", "applied"]
    assert [(r["change_id"], r["result"]) for r in second["results"]] == \
        [(r["change_id"], r["result"]) for r in first["results"]]
    sync(anna)
    assert anna.get("patient", patient_id).version == 2
    assert replica_wires(anna) == server_wires(live, anna)


def test_the_first_acceptance_the_server_receives_keeps_the_request_and_the_other_is_told(laptops, live):
    anna, bo, cia = laptops("Anna"), laptops("Bo"), laptops("Cia", "nurse")
    patient_id = new_patient(cia)
    request_id = str(uuid.uuid4())
    cia.write("visit_request", request_id, {"patient_id": patient_id, "reason": "fever", "urgency": "urgent"})
    sync(cia), sync(anna), sync(bo)
    anna.write("visit_request", request_id, {"status": "accepted"})
    anna_visit = str(uuid.uuid4())
    anna.write("visit", anna_visit, {"patient_id": patient_id, "request_id": request_id, "kind": "home_visit",
                                     "assessment": "seen first, offline"})
    bo.write("visit_request", request_id, {"status": "accepted"})
    bo_visit = str(uuid.uuid4())
    bo.write("visit", bo_visit, {"patient_id": patient_id, "request_id": request_id, "kind": "home_visit",
                                 "assessment": "seen on the way"})
    sync(bo)
    report = sync(anna)
    assert [r["error"]["code"] for r in report.rejected] == ["already_accepted"]
    [kept] = anna.rejected()
    assert kept["change"]["fields"] == {"status": "accepted"} and kept["error"]["code"] == "already_accepted"
    sync(bo), sync(cia)
    for replica in (anna, bo, cia):
        assert replica.get("visit_request", request_id).fields["accepted_by"] == bo.actor().user_id
        # Neither doctor's visit record is lost: both are on the server and on every laptop.
        assert replica.get("visit", bo_visit).fields["assessment"] == "seen on the way"
        assert replica.get("visit", anna_visit).fields["assessment"] == "seen first, offline"
    assert {f"visit/{bo_visit}", f"visit/{anna_visit}"} <= set(server_wires(live, cia))
