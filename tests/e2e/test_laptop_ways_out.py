"""The laptop's ways out of a stuck sync, against the real server: batch limits, rejected changes."""

import base64
import json
import uuid

import pytest

from client_sync.sync import sync
from server import auth
from tests.live_server import start_live_server

from .conftest import Laptops, new_patient, replica_wires, server_wires

pytestmark = [pytest.mark.e2e, pytest.mark.both_stores]


@pytest.fixture
def small_batches(tmp_path):
    """The real server with HEMSYNC_MAX_BATCH=50."""
    server = start_live_server(tmp_path / "server", max_batch=50)
    yield server
    server.stop()


def test_the_laptop_pushes_in_batches_no_larger_than_the_servers_limit(small_batches, tmp_path):
    made = Laptops(small_batches, tmp_path)
    anna = made("Anna")
    try:
        patient_id = new_patient(anna)
        for n in range(120):
            anna.write("observation", str(uuid.uuid4()), {
                "patient_id": patient_id, "pulse": 60 + n % 40, "measured_at": "2026-11-25T10:00:00+01:00"})
        report = sync(anna)
        assert (report.applied, report.conflicts, report.rejected, report.unsent) == (121, 0, [], 0)
        assert anna.record_count() == 121
    finally:
        anna.close()


def test_a_patient_rejected_for_a_municipality_outside_her_scope_stays_findable_until_fixed_and_resent(
        laptops, admin):
    # Vännäs is on the region's list (so the laptop lets it through offline), not among Cia's.
    auth.add_municipality(laptops.live.store, "Vännäs")
    cia = laptops("Cia", "nurse", municipalities=["Umeå"])
    patient_id = new_patient(cia, name="Zebulon Quackenbush", municipality="Vännäs")
    report = sync(cia)
    [rejected] = report.rejected
    assert cia.rejected_count() == 1
    found = cia.get("patient", patient_id)
    assert found.fields["name"] == "Zebulon Quackenbush" and found.version is None
    assert [r["change_id"] for r in found.rejected] == [rejected["change_id"]]
    cia.fix(rejected["change_id"], {"municipality": "Umeå"})
    report = sync(cia)
    assert (report.applied, report.rejected, cia.rejected_count()) == (1, [], 0)
    fixed = cia.get("patient", patient_id)
    assert (fixed.version, fixed.fields["municipality"], fixed.rejected) == (1, "Umeå", [])
    [archived] = cia.rejected(archived=True)
    assert archived["outcome"] == "fixed"
    quarantined = admin("/v1/admin/quarantine")
    assert rejected["change_id"] in json.dumps(quarantined)  # the server keeps the rejected one too


def test_a_cursor_the_server_no_longer_takes_is_a_full_resync_that_drops_what_left_scope(laptops, live):
    anna = laptops("Anna")
    patient_id = new_patient(anna)
    sync(anna)
    # A cursor of an older server (unsigned), and a record that left the device's scope meanwhile.
    anna.set_setting("cursor", base64.urlsafe_b64encode(b"1.5.1.0.0").decode().rstrip("="))
    stale = json.loads(anna.conn.execute("SELECT wire FROM records").fetchone()[0])
    stale["id"] = str(uuid.uuid4())
    anna.store_records([stale])
    report = sync(anna)
    assert report.resynced
    assert {key.split("/")[1] for key in anna.digests()} == {patient_id}
    assert replica_wires(anna) == server_wires(live, anna)
