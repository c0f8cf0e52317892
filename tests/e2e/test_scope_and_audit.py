"""Scope, audit, revocation and clock skew against the real server."""


import pytest

from client_sync.errors import DeviceRevoked
from client_sync.sync import sync
from schema.clock import Hlc

from .conftest import new_patient, replica_wires, server_wires

pytestmark = [pytest.mark.e2e, pytest.mark.both_stores]


def test_openings_logged_offline_reach_the_servers_audit_log(laptops, admin):
    anna = laptops("Anna")
    patient_id = new_patient(anna)
    sync(anna)
    anna.get("patient", patient_id)
    anna.history("patient", patient_id)
    assert anna.access_count() == 2
    sync(anna)
    assert anna.access_count() == 0
    entries = admin("/v1/admin/audit", patient_id=patient_id)["entries"]
    opened = [e for e in entries if e["kind"] == "access"]
    assert len(opened) == 3  # the write showed the new patient back, then get and history
    assert {e["user_id"] for e in opened} == {anna.actor().user_id}
    assert {e["device_id"] for e in opened} == {anna.device_id()}


def test_a_revoked_laptop_gets_nothing_more_and_wipes_its_replica(laptops, live):
    anna = laptops("Anna")
    new_patient(anna)
    sync(anna)
    new_patient(anna, name="Written after the theft")
    live.revoke(anna.setting("device")["id"])
    with pytest.raises(DeviceRevoked) as raised:
        sync(anna)
    assert raised.value.details.get("wipe") is True
    assert (raised.value.wiped.records, raised.value.wiped.unsent_changes) == (1, 1)
    assert anna.record_count() == 0 and anna.outbox() == [] and anna.setting("token") is None


def test_a_patient_of_another_municipality_never_reaches_the_laptop_and_a_move_purges_it(laptops, live):
    anna = laptops("Anna", municipalities=["Umeå"])
    vera = laptops("Vera", "nurse", municipalities=["Vännäs"])
    theirs = new_patient(vera, name="Vännäs patient", municipality="Vännäs")
    ours = new_patient(anna)
    sync(vera), sync(anna)
    assert anna.local("patient", theirs) is None
    # The patient moves to Umeå (moved by a doctor of both: only someone whose scope
    # holds both moves a patient): she enters Anna's scope whole, and leaves Vera's.
    cora = laptops("Cora", municipalities=["Umeå", "Vännäs"])
    sync(cora)
    cora.write("patient", theirs, {"municipality": "Umeå"})
    sync(cora), sync(anna), sync(vera)
    assert anna.get("patient", theirs).fields["municipality"] == "Umeå"
    assert vera.local("patient", theirs) is None
    assert vera.local("patient", ours) is None
    for replica in (anna, vera):
        assert replica_wires(replica) == server_wires(live, replica)


def test_a_laptop_whose_clock_is_hours_ahead_does_not_win_later_merges(laptops, live, admin):
    anna, bo = laptops("Anna"), laptops("Bo")
    patient_id = new_patient(bo)
    sync(bo), sync(anna)
    three_hours = 3 * 3600 * 1000
    anna._wall_ms = lambda: Hlc.parse(anna.setting("hlc")).wall_ms + three_hours  # a clock far ahead
    anna.write("patient", patient_id, {"phone": "from the fast clock"})
    sync(anna)
    bo.write("patient", patient_id, {"phone": "written later, honestly"})
    sync(bo), sync(anna)
    assert anna.get("patient", patient_id).fields["phone"] == "written later, honestly"
    devices = {d["id"]: d for d in admin("/v1/admin/devices")["devices"]}
    flagged = devices[anna.setting("device")["id"]]
    assert any(v for k, v in flagged.items() if "clock" in k or "ahead" in k or "skew" in k), flagged
