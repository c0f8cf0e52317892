"""One sync against the fake server: order of steps, convergence, retries, rejection, wipe, verify, lock."""

import json
import uuid

import pytest
import requests

from client_sync.errors import ClientTooOld, ConnectionLost, DeviceRevoked, ServerFailed, SyncBusy
from client_sync.lock import sync_lock
from client_sync.sync import sync, verify
from schema.wire import encode_state

from .conftest import PERSONNUMMER
from .fake_server import FakeResponse, error


def new_patient(replica, name="Tolvan Tolvansson"):
    patient_id = str(uuid.uuid4())
    replica.write("patient", patient_id, {"personnummer": PERSONNUMMER, "name": name, "municipality": "Umeå"})
    return patient_id


def server_wires(server):
    return {f"{t}/{i}": encode_state(s) for (t, i), s in server.states.items()}


def replica_wires(replica):
    return {f"{t}/{i}": json.loads(w) for t, i, w in replica.conn.execute("SELECT type, id, wire FROM records")}


def test_a_sync_sends_the_access_log_first_then_the_outbox_then_pulls_to_the_head(doctor, server):
    replica, client = doctor
    patient_id = new_patient(replica)
    replica.get("patient", patient_id)
    report = sync(replica, client=client)
    assert [path for _, path in server.calls] == ["/v1/handshake", "/v1/access-log", "/v1/push", "/v1/pull"]
    assert (report.access_log, report.applied, report.pulled, report.unsent) == (2, 1, 1, 0)  # the write, the get
    assert server.access_log[0]["patient_id"] == patient_id
    assert replica.outbox() == [] and replica.access_count() == 0
    assert replica_wires(replica) == server_wires(server)


def test_the_handshake_reports_what_waits(doctor, server):
    replica, client = doctor
    new_patient(replica)
    new_patient(replica)
    sync(replica, client=client)
    assert server.bodies[0] == ("/v1/handshake", {"pending": 2, "rejected": 0})


def test_laptops_converge_whatever_the_order_of_syncs(doctor, other_doctor, nurse, server):
    (a, ca), (b, cb), (n, cn) = doctor, other_doctor, nurse
    patient_id = new_patient(a)
    sync(a, client=ca), sync(b, client=cb), sync(n, client=cn)
    a.write("patient", patient_id, {"address": "Storgatan 1"})
    b.write("patient", patient_id, {"address": "Lillgatan 2", "phone": "090-1"})
    n.write("patient", patient_id, {"access_notes": "key box 1234"})
    visit_id = str(uuid.uuid4())
    b.write("visit", visit_id, {"patient_id": patient_id, "kind": "home_visit", "assessment": "stable"})
    for replica, client in ((n, cn), (b, cb), (a, ca), (n, cn), (b, cb)):
        sync(replica, client=client)
    expected = server_wires(server)
    for replica in (a, b, n):
        assert replica_wires(replica) == expected
        assert replica.outbox() == []
    shown = a.get("patient", patient_id).fields
    assert shown["access_notes"] == "key box 1234" and shown["phone"] == "090-1"
    history = [h["value"] for h in server.states[("patient", patient_id)]["history"] if h["field"] == "address"]
    assert len(history) == 1 and history[0] in ("Storgatan 1", "Lillgatan 2")


def test_a_rejected_change_leaves_the_outbox_and_is_kept_with_the_reason(doctor, other_doctor, server):
    (a, ca), (b, cb) = doctor, other_doctor
    patient_id = new_patient(a)
    visit_id = str(uuid.uuid4())
    a.write("visit", visit_id, {"patient_id": patient_id, "kind": "home_visit", "assessment": "ok"})
    sync(a, client=ca)
    sync(b, client=cb)
    # Bo may not edit Anna's visit: the server refuses it (the laptop would too, so it is forged here).
    change = {"change_id": str(uuid.uuid4()), "record_type": "visit", "record_id": visit_id,
              "device_id": b.device_id(), "op": 99, "hlc": "0001900000000000-000000", "base": {},
              "fields": {"plan": "mine now"}}
    b.conn.execute("INSERT INTO outbox (op, change_id, record_type, record_id, change, acked) VALUES (?,?,?,?,?,0)",
                   (99, change["change_id"], "visit", visit_id, json.dumps(change)))
    report = sync(b, client=cb)
    assert [r["error"]["code"] for r in report.rejected] == ["forbidden"]
    assert b.outbox() == []
    [kept] = b.rejected()
    assert kept["change"] == change and kept["error"]["code"] == "forbidden"
    assert b.rejected_count() == 1


def test_a_cut_connection_is_retried_and_nothing_is_lost(doctor, server):
    replica, client = doctor
    new_patient(replica)
    server.faults = [requests.ConnectionError("no route"), FakeResponse(503, {}, {"Retry-After": "1"}),
                     requests.Timeout("slow"), error(429, "slow_down")]
    sync(replica, client=client)
    assert replica_wires(replica) == server_wires(server) and replica.outbox() == []


def test_a_push_whose_answer_is_lost_is_sent_again_and_applied_once(doctor, server):
    replica, client = doctor
    patient_id = new_patient(replica)
    replica.write("patient", patient_id, {"phone": "090-1"})
    # handshake and access log (the writes showed the patient) answer; the push is applied and its answer lost
    server.faults = [None, None, "lose_answer"]
    server.faults[0] = FakeResponse(200, server.handshake_for(client.token))
    sync(replica, client=client)
    pushes = [body for path, body in server.bodies if path == "/v1/push"]
    assert len(pushes) == 2 and pushes[0]["changes"] == pushes[1]["changes"]
    assert server.states[("patient", patient_id)]["rev"] == 2
    assert replica_wires(replica) == server_wires(server)


def test_an_accepted_change_still_shows_when_the_pull_after_it_fails(doctor, server):
    replica, client = doctor
    patient_id = new_patient(replica)
    client.retries = 0
    server.faults = [None, None, "lose_answer", requests.ConnectionError("gone")]  # the 2nd call: access log
    server.faults[0] = FakeResponse(200, server.handshake_for(client.token))
    with pytest.raises(ConnectionLost):
        sync(replica, client=client)
    assert replica.get("patient", patient_id).fields["name"] == "Tolvan Tolvansson"
    client.retries = 4
    sync(replica, client=client)
    assert replica.get("patient", patient_id).pending == [] and replica.outbox() == []


def test_pages_are_pulled_until_there_are_no_more(doctor, other_doctor, server):
    (a, ca), (b, cb) = doctor, other_doctor
    for n in range(5):
        new_patient(a, name=f"Patient {n}")
    sync(a, client=ca)
    report = sync(b, client=cb)
    assert (report.pages, report.pulled) == (3, 5)  # the fake server's page size is 2
    assert b.record_count() == 5


def test_a_purge_marker_at_pull_removes_a_record_that_left_scope(doctor, other_doctor, server):
    (a, ca), (b, cb) = doctor, other_doctor
    patient_id = new_patient(a)
    sync(a, client=ca), sync(b, client=cb)
    server.purge(b.device_id(), "patient", patient_id)
    report = sync(b, client=cb)
    assert report.purged == 1 and b.record_count() == 0


def test_a_revoked_device_wipes_its_replica_and_says_so(doctor, server):
    replica, client = doctor
    new_patient(replica)
    sync(replica, client=client)
    new_patient(replica)
    server.revoked.add(replica.device_id())
    with pytest.raises(DeviceRevoked) as raised:
        sync(replica, client=client)
    assert (raised.value.wiped.records, raised.value.wiped.unsent_changes) == (1, 1)
    assert replica.record_count() == 0 and replica.unsent_count() == 0


def test_a_client_too_old_keeps_its_outbox(doctor, server):
    replica, client = doctor
    new_patient(replica)
    server.min_client_version = "99.0.0"
    with pytest.raises(ClientTooOld):
        sync(replica, client=client)
    assert replica.unsent_count() == 1
    assert "client_too_old" in replica.setting("last_sync_error")["error"]


def test_two_syncs_of_one_replica_never_run_at_once(doctor):
    replica, client = doctor
    with sync_lock(replica.path):
        with pytest.raises(SyncBusy):
            sync(replica, client=client)
    sync(replica, client=client)


def test_verify_finds_and_repairs_a_drifted_replica_without_touching_unsent_changes(doctor, server):
    replica, client = doctor
    kept, dropped = new_patient(replica), new_patient(replica, name="Gone")
    sync(replica, client=client)
    replica.conn.execute("UPDATE records SET wire = replace(wire, 'Tolvan', 'Tolvar') WHERE id = ?", (kept,))
    replica.conn.execute("INSERT INTO records (type, id, wire) SELECT 'patient', 'stray', wire FROM records "
                         "WHERE id = ?", (dropped,))
    replica.conn.execute("DELETE FROM records WHERE id = ?", (dropped,))
    unsent = new_patient(replica, name="Not yet sent")
    server.faults = [error(503, "busy")] * 0
    report = verify(replica, client=client)
    assert report.agreed and report.repaired
    assert (report.differing, report.missing, report.extra) == ([f"patient/{kept}"], [f"patient/{dropped}"],
                                                                ["patient/stray"])
    assert replica.local("patient", unsent) is not None


def test_verify_of_a_replica_in_agreement_repairs_nothing(doctor):
    replica, client = doctor
    new_patient(replica)
    report = verify(replica, client=client)
    assert report.agreed and not report.repaired and report.records == 1


def test_a_server_failing_again_and_again_shows_in_status_until_a_sync_succeeds(doctor, server):
    replica, client = doctor
    new_patient(replica)
    client.retries = 0
    handshake = FakeResponse(200, server.handshake_for(client.token))
    replica.drop_access_entries([e["id"] for e in replica.access_entries(100)])
    for _ in range(3):  # the handshake answers; the push fails with a 500
        server.faults = [handshake, error(500, "internal_error", "the server failed")]
        with pytest.raises(ServerFailed):
            sync(replica, client=client)
    failure = replica.setting("last_sync_error")
    assert (failure["stage"], failure["code"], failure["status"], failure["attempts"]) == (
        "push", "internal_error", 500, 3)
    assert failure["since"] < failure["at"] and "the server failed" in failure["error"]
    assert replica.unsent_count() == 1
    sync(replica, client=client)
    assert replica.setting("last_sync_error") is None and replica.unsent_count() == 0


def test_the_outbox_goes_out_in_batches_no_larger_than_the_servers_max_batch(doctor, server):
    replica, client = doctor
    for n in range(7):
        new_patient(replica, name=f"Patient {n}")
    handshake = {**server.handshake_for(client.token), "max_batch": 3}
    server.faults = [FakeResponse(200, handshake)]
    report = sync(replica, client=client)
    pushes = [len(body["changes"]) for path, body in server.bodies if path == "/v1/push"]
    assert (pushes, report.applied, report.unsent) == ([3, 3, 1], 7, 0)


def test_a_server_that_asked_the_laptop_to_wait_is_remembered_for_status(doctor, server):
    replica, client = doctor
    new_patient(replica)
    server.faults = [FakeResponse(503, {}, {"Retry-After": "2"})]
    sync(replica, client=client)
    asked = replica.setting("last_server_wait")
    assert (asked["status"], asked["seconds"]) == (503, 2.0) and asked["at"]
    assert replica.outbox() == []
