"""Dispatch and the integrity check end to end: real server, real replica files, real HTTP."""

import datetime as dt
import uuid

import pytest

from client_sync.sync import sync, verify
from schema.dispatch import queue_entries
from server.jobs import escalate_due

from .conftest import new_patient, replica_wires, server_wires

pytestmark = [pytest.mark.e2e, pytest.mark.both_stores]


def test_an_escalation_reaches_the_dispatchers_laptop_through_sync(live, laptops):
    nurse, lena = laptops("Maria", "nurse"), laptops("Lena", "dispatcher")
    patient_id = new_patient(nurse)
    request_id = str(uuid.uuid4())
    nurse.write("visit_request", request_id, {"patient_id": patient_id, "reason": "andnöd", "urgency": "acute"})
    sync(nurse), sync(lena)
    deadline = dt.datetime.fromisoformat(lena.get("visit_request", request_id).fields["deadline"])
    settings = live.app.config["HEMSYNC"]
    assert [e for e in escalate_due(live.store, deadline - dt.timedelta(minutes=31), settings)
            if e["kind"] == "deadline"] == []

    at = deadline - dt.timedelta(minutes=29)
    assert [e["request_id"] for e in escalate_due(live.store, at, settings) if e["kind"] == "deadline"] == \
        [request_id]
    sync(lena), sync(nurse)

    for replica in (lena, nurse):
        assert replica.get("visit_request", request_id).fields["escalated_at"] == at.isoformat()
    requests, patients, observations = lena.dispatch_view()  # `hemsync queue`, offline
    [entry] = queue_entries(requests, patients, observations, at)
    assert entry.escalated_at == at
    assert replica_wires(lena) == server_wires(live, lena)


def test_verify_repairs_a_drifted_replica_without_touching_unsent_changes(live, laptops, admin):
    anna = laptops("Anna")
    patient_id = new_patient(anna)
    observation_id = str(uuid.uuid4())
    anna.write("observation", observation_id, {"patient_id": patient_id, "pulse": 88,
                                               "measured_at": dt.datetime.now(dt.timezone.utc).isoformat()})
    sync(anna)
    # Drift: a record altered on disk, one lost, one the server never sent.
    anna.conn.execute("UPDATE records SET wire = replace(wire, 'Tolvan', 'Tolvar') WHERE id = ?", (patient_id,))
    anna.conn.execute("INSERT INTO records (type, id, patient_id, rev, open_conflicts, wire) "
                      "SELECT 'patient', 'stray', 'stray', rev, 0, wire FROM records WHERE id = ?", (patient_id,))
    anna.conn.execute("DELETE FROM records WHERE id = ?", (observation_id,))

    def edit_while_verifying(stage, done, total):
        # An edit made after verify's push: still unsent while the replica is repaired.
        if stage == "pull" and not anna.unsent_count():
            anna.write("patient", patient_id, {"phone": "070-000 00 00"})

    report = verify(anna, progress=edit_while_verifying)

    assert report.agreed and report.repaired
    assert (report.differing, report.missing, report.extra) == (
        [f"patient/{patient_id}"], [f"observation/{observation_id}"], ["patient/stray"])
    assert anna.unsent_count() == 1
    shown = anna.get("patient", patient_id).fields
    assert (shown["name"], shown["phone"]) == ("Tolvan Tolvansson", "070-000 00 00")
    assert replica_wires(anna) == server_wires(live, anna)
    fetched = [e for e in admin("/v1/admin/audit", patient_id=patient_id)["entries"]
               if e["details"].get("endpoint") == "POST /v1/fetch"]
    assert [sorted(e["details"]["records"]) for e in fetched] == [
        sorted([f"patient/{patient_id}", f"observation/{observation_id}"])]
    sync(anna)
    assert anna.unsent_count() == 0
    assert server_wires(live, anna)[f"patient/{patient_id}"]["fields"]["phone"] == "070-000 00 00"


def test_verify_of_a_replica_in_agreement_with_the_real_server_repairs_nothing(live, laptops):
    lena, nurse = laptops("Lena", "dispatcher"), laptops("Maria", "nurse")
    patient_id = new_patient(nurse)
    nurse.write("visit_request", str(uuid.uuid4()), {"patient_id": patient_id, "reason": "feber",
                                                     "urgency": "urgent"})
    sync(nurse)
    for replica in (nurse, lena):
        report = verify(replica)
        assert report.agreed and not report.repaired and report.records == len(replica_wires(replica))
    assert {key.split("/")[0] for key in replica_wires(lena)} == {"patient", "visit_request"}
