"""What a laptop user can do about a rejected change, and which readings reach the access log."""

import json
import uuid

import pytest

from client_sync.errors import RejectedNotFound
from client_sync.replica import Replica
from client_sync.sync import sync

from .conftest import PERSONNUMMER
from .test_cli import login_as, put


def new_patient(replica, **extra):
    patient_id = str(uuid.uuid4())
    replica.write("patient", patient_id, {"personnummer": PERSONNUMMER, "name": "Tolvan Tolvansson",
                                          "municipality": "Umeå", **extra})
    return patient_id


def reject_unsent(replica, code="out_of_scope", message="Varberg is outside your municipalities"):
    """Settle every unsent change as the server rejecting it."""
    changes = replica.unsent(100)
    replica.record_results([{"change_id": c["change_id"], "result": "rejected",
                     "error": {"code": code, "message": message, "details": {}}} for c in changes])
    return [c["change_id"] for c in changes]


def openings(replica):
    """(patient_id, record_type) of the access-log entries waiting, oldest first, then forget them."""
    entries = replica.access_entries(1000)
    replica.drop_access_entries([e["id"] for e in entries])
    return [(e["patient_id"], e["record_type"]) for e in entries]


def test_a_rejected_edit_is_fixed_by_a_new_change_on_top_of_what_the_laptop_shows(doctor):
    replica, client = doctor
    patient_id = new_patient(replica)
    sync(replica, client=client)
    replica.write("patient", patient_id, {"phone": "090-1", "address": "Wrong street 1"})
    [rejected_id] = reject_unsent(replica, "invalid_value", "no such street")
    record = replica.fix(rejected_id, {"address": "Storgatan 1"})
    [resent] = record.pending
    assert resent["fields"] == {"phone": "090-1", "address": "Storgatan 1"}
    assert resent["base"] == {p: w["version"] for p, w in replica.server_state("patient", patient_id)["fields"].items()}
    assert replica.rejected() == [] and replica.rejected_count() == 0
    [archived] = replica.rejected(archived=True)
    assert (archived["change_id"], archived["outcome"], archived["replaced_by"]) == (
        rejected_id, "fixed", resent["change_id"])
    assert archived["error"]["code"] == "invalid_value"
    sync(replica, client=client)
    assert replica.get("patient", patient_id).fields["address"] == "Storgatan 1"


def test_a_fixed_rejected_creation_is_a_fresh_creation_of_the_same_record(doctor):
    replica, client = doctor
    patient_id = new_patient(replica, municipality="Varberg")
    [rejected_id] = reject_unsent(replica)
    record = replica.fix(rejected_id, {"municipality": "Umeå"})
    [resent] = record.pending
    assert (resent["record_id"], resent["base"]) == (patient_id, {})
    assert resent["fields"]["municipality"] == "Umeå" and resent["change_id"] != rejected_id
    sync(replica, client=client)
    assert replica.get("patient", patient_id).version == 1


def test_a_discarded_rejected_change_is_archived_never_dropped_and_no_longer_counted(doctor):
    replica, _ = doctor
    new_patient(replica, municipality="Varberg")
    [rejected_id] = reject_unsent(replica)
    assert replica.rejected_count() == 1
    replica.discard(rejected_id)
    assert replica.rejected_count() == 0 and replica.rejected() == []
    [archived] = replica.rejected(archived=True)
    assert (archived["change_id"], archived["outcome"], archived["replaced_by"]) == (rejected_id, "discarded", None)
    assert archived["change"]["fields"]["municipality"] == "Varberg"
    with pytest.raises(RejectedNotFound):
        replica.discard(rejected_id)
    with pytest.raises(RejectedNotFound):
        replica.fix(rejected_id, {})


def test_a_record_that_exists_only_as_a_rejected_creation_is_still_found_with_its_rejection(hemsync, server,
                                                                                              tmp_path):
    login_as(hemsync, server, "u-dr-anna")
    patient = put(hemsync, "patient", personnummer=PERSONNUMMER, name="Tolvan", municipality="Varberg")
    with Replica(tmp_path / "laptop.db") as replica:
        [rejected_id] = reject_unsent(replica)
    shown = hemsync("get", "patient", patient["id"]).output
    assert "not yet on the server" in shown and "name: Tolvan" in shown
    assert f"change {rejected_id} was rejected by the server (out_of_scope)" in shown
    assert f"hemsync fix {rejected_id}" in shown
    got = json.loads(hemsync("get", "patient", patient["id"], "--json").stdout)
    assert [r["change_id"] for r in got["_rejected"]] == [rejected_id]
    assert "1 rejected change(s)" in hemsync("rejected").output
    fixed = json.loads(hemsync("fix", rejected_id, "--data", '{"municipality": "Umeå"}', "--json").stdout)
    assert fixed["municipality"] == "Umeå" and "_rejected" not in fixed
    assert json.loads(hemsync("status", "--json").stdout)["rejected"] == 0
    assert "fixed by" in hemsync("rejected", "--archived").output
    hemsync("sync")
    assert json.loads(hemsync("get", "patient", patient["id"], "--json").stdout)["_version"] == 1


def test_discard_keeps_the_change_in_the_archive_and_status_stops_counting_it(hemsync, server, tmp_path):
    login_as(hemsync, server, "u-dr-anna")
    put(hemsync, "patient", personnummer=PERSONNUMMER, name="Tolvan", municipality="Varberg")
    with Replica(tmp_path / "laptop.db") as replica:
        [rejected_id] = reject_unsent(replica)
    assert json.loads(hemsync("status", "--json").stdout)["rejected"] == 1
    assert "kept in the archive" in hemsync("discard", rejected_id).output
    assert json.loads(hemsync("status", "--json").stdout)["rejected"] == 0
    [archived] = json.loads(hemsync("rejected", "--archived", "--json").stdout)
    assert archived["outcome"] == "discarded"
    assert "no rejected change" in hemsync("discard", rejected_id, ok=False).output


def test_conflicts_resolutions_and_rejected_changes_are_logged_as_openings(doctor, other_doctor):
    (a, ca), (b, cb) = doctor, other_doctor
    patient_id = new_patient(a)
    medication_id = str(uuid.uuid4())
    a.write("medication", medication_id, {"patient_id": patient_id, "drug": "Paracetamol", "dose": "1 g",
                                          "status": "active"})
    sync(a, client=ca), sync(b, client=cb)
    a.write("medication", medication_id, {"dose": "2 g"})
    b.write("medication", medication_id, {"dose": "500 mg"})
    sync(a, client=ca), sync(b, client=cb), sync(a, client=ca)
    openings(a)
    [conflict] = a.conflicts()
    assert openings(a) == [(patient_id, "medication")]
    a.find_conflict(conflict["id"])
    assert openings(a) == []  # looking one up to resolve it shows nothing; the resolution shows the record
    a.write("medication", medication_id, {"dose": "1 g"}, resolves=[conflict["id"]])
    assert openings(a) == [(patient_id, "medication")]
    reject_unsent(a)
    a.rejected()
    assert openings(a) == [(patient_id, "medication")]
    a.rejected(archived=True)
    assert openings(a) == []  # nothing archived yet, nothing shown


def test_every_write_command_logs_the_patient_whose_record_it_shows(hemsync, server, tmp_path):
    login_as(hemsync, server, "u-nurse-cia")

    def logged():
        with Replica(tmp_path / "laptop.db") as replica:
            return openings(replica)

    patient = put(hemsync, "patient", personnummer=PERSONNUMMER, name="Tolvan", municipality="Umeå")
    assert logged() == [(patient["id"], "patient")]
    request = json.loads(hemsync("request", patient["id"], "--urgency", "urgent", "--reason", "fever",
                                 "--json").stdout)
    assert logged() == [(patient["id"], "visit_request")]
    hemsync("cancel", request["id"], "--reason", "better now")
    assert logged() == [(patient["id"], "visit_request")]
    hemsync("retract", "visit_request", request["id"], "--reason", "wrong patient")
    assert logged() == [(patient["id"], "visit_request")]
