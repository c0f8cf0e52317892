"""Bad networks and crashes against the real server: cut connections, a killed sync, an old client."""

import os
import pathlib
import signal
import subprocess
import sys

import pytest

from client_sync.errors import ClientTooOld, ConnectionLost
from client_sync.http import SyncClient
from client_sync.sync import PAUSE_ENV, sync
from proof.proxy import LoopbackProxy
from tests.live_server import start_live_server

from .conftest import new_patient, replica_wires, server_wires

pytestmark = [pytest.mark.e2e, pytest.mark.both_stores]
ROOT = pathlib.Path(__file__).parents[2]


def port_of(url):
    return int(url.rsplit(":", 1)[1])


def sync_until_done(replica, url, tries=6):
    """Sync through a bad line until one sync completes; return how many failed first."""
    # A short read time-out: a line that goes silent must cost seconds, not the default minute.
    client = SyncClient(url, replica.setting("token"), retries=1, sleep=lambda s: None, timeout=(2, 5))
    for failed in range(tries):
        try:
            sync(replica, client=client)
            return failed
        except ConnectionLost:
            continue
    raise AssertionError("the sync never completed")


@pytest.mark.parametrize("direction, after", [("up", 200), ("up", 700), ("down", 150), ("down", 900),
                                              ("down", 3000)])
def test_a_connection_cut_mid_push_or_mid_pull_loses_and_duplicates_nothing(laptops, live, direction, after):
    bo = laptops("Bo")
    for n in range(12):
        new_patient(bo, name=f"Patient {n}")
    sync(bo)
    # The first three connections are cut after ``after`` bytes one way; later ones pass.
    with LoopbackProxy(port_of(live.url), plan=lambda n: {direction: after} if n < 3 else {}) as proxy:
        anna = laptops("Anna", url=proxy.url)
        patient_id = new_patient(anna)
        for n in range(5):
            anna.write("patient", patient_id, {"phone": f"090-{n}"})
        sync_until_done(anna, proxy.url)
        assert len(proxy.cuts) >= 1
        sync(bo)
        for replica in (anna, bo):  # Anna's laptop still talks through the (now passing) proxy
            assert replica_wires(replica) == server_wires(live, replica)
            assert replica.outbox() == []
    state = anna.get("patient", patient_id)
    assert state.version == 6  # six changes, each merged exactly once
    assert len(replica_wires(anna)) == 13


def test_a_sync_killed_while_applying_a_pull_leaves_the_replica_whole_and_the_next_sync_completes(laptops, live):
    bo = laptops("Bo")
    for n in range(5):
        new_patient(bo, name=f"Patient {n}")
    sync(bo)
    anna = laptops("Anna")
    mine = new_patient(anna, name="Anna's own")
    process = subprocess.Popen(
        [sys.executable, "-m", "client_sync", "--replica", anna.path, "sync"], cwd=ROOT,
        env={**os.environ, PAUSE_ENV: "pull.before_commit"}, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stderr.readline()
        assert "paused at pull.before_commit" in line
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        process.kill()
    # The push before the pull went through; the page being applied did not.
    assert anna.record_count() == 0 and anna.setting("cursor") is None
    assert anna.get("patient", mine).fields["name"] == "Anna's own"
    sync(anna)
    assert replica_wires(anna) == server_wires(live, anna)
    assert len(replica_wires(anna)) == 6 and anna.outbox() == []


def test_an_old_client_is_told_to_upgrade_and_keeps_its_unsent_changes(tmp_path, laptops):
    strict = start_live_server(tmp_path / "strict", min_client_version="99.0.0")
    try:
        user_id = strict.add_user("Anna", "doctor", ["Umeå"])
        _, token = strict.enroll(user_id)
        anna = laptops("Anna")
        new_patient(anna)
        anna.set_setting("server_url", strict.url)
        anna.set_setting("token", token)
        with pytest.raises(ClientTooOld) as raised:
            sync(anna)
        assert raised.value.status == 426
        assert anna.unsent_count() == 1
    finally:
        strict.stop()
