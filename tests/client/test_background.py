"""Background sync: the jobs are plain functions; a local change brings the next sync forward."""

import datetime as dt
import uuid

from client_sync.background import SYNC_JOB, BackgroundSync, outbox_mark, sync_once

from .conftest import PERSONNUMMER


def test_a_sync_job_with_no_network_says_offline_and_keeps_going(doctor):
    replica, _ = doctor
    replica.set_setting("server_url", "http://127.0.0.1:9")  # the discard port: nothing answers
    lines = []
    assert sync_once(replica.path, lines.append, retries=0) in ("offline", "failed")
    assert lines


def test_a_sync_job_without_a_login_stops_the_background(tmp_path):
    assert sync_once(tmp_path / "fresh.db", lambda line: None) == "stop"


def test_a_local_change_brings_the_next_sync_forward(doctor):
    replica, _ = doctor
    background = BackgroundSync(replica.path, interval=3600, after_change=5, blocking=False, echo=lambda l: None)
    background.scheduler.start(paused=True)
    try:
        job = background.scheduler.get_job(SYNC_JOB)
        job.modify(next_run_time=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1))
        background.watch()
        assert background.scheduler.get_job(SYNC_JOB).next_run_time > _in(seconds=3000)
        replica.write("patient", str(uuid.uuid4()),
                      {"personnummer": PERSONNUMMER, "name": "Tolvan", "municipality": "Umeå"})
        assert outbox_mark(replica.path) == 1
        background.watch()
        assert background.scheduler.get_job(SYNC_JOB).next_run_time <= _in(seconds=6)
    finally:
        background.stop()


def _in(seconds):
    return dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=seconds)
