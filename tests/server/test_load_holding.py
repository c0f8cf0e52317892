"""Holding a region's load (issue 17): readers never wait on the writer, a busy writer is a 503, a flood a 429."""

import sqlite3
import threading
import time

import pytest

from server import pull as pull_module
from server.auth import DeviceRate
from server.errors import StoreError, TooManyRequests
from server.store.sqlite import WriterQueue
from server.wsgi import make_server
from tests.live_server import start_live_server

from .conftest import Region, new_patient


def _region(tmp_path, **settings):
    server = start_live_server(tmp_path, **settings)
    region = Region(server, {})
    region.laptop("nurse", "nurse", ["Halmstad"])
    region.laptop("doctor", "doctor", ["Halmstad"])
    return server, region


def _hold_the_writer(db_path):
    """Another connection (as another process would) holding SQLite's write lock; close it to let go."""
    conn = sqlite3.connect(db_path, isolation_level=None, timeout=0)
    conn.execute("BEGIN IMMEDIATE")
    return conn


def _writer_held(store, release):
    """A thread of this process holding the store's writer (a push merging) until ``release``; it holds it now."""
    inside = threading.Event()

    def hold():
        with store.transaction():
            inside.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    inside.wait(5)
    return holder


def test_a_pull_reads_its_page_while_another_writer_holds_the_database(tmp_path):
    server, region = _region(tmp_path)
    try:
        region.nurse.push(new_patient(region.nurse))
        holder = _hold_the_writer(server.db_path)
        store = server.store
        started = time.monotonic()
        with store.reading():
            keys = pull_module.scope.keys_for(store, server.store.get_user(region.nurse.user_id))
            rows = store.records_since(0, keys, 10)
        assert len(rows) == 1 and time.monotonic() - started < 2.0
        holder.rollback()
        holder.close()
    finally:
        server.stop()


def test_nothing_is_written_inside_a_read(tmp_path):
    server, _ = _region(tmp_path)
    try:
        with server.store.reading(), pytest.raises(StoreError, match="inside reading"):
            with server.store.transaction():
                pass
    finally:
        server.stop()


def test_a_write_that_waits_past_the_write_wait_is_answered_503_with_retry_after(tmp_path):
    server, region = _region(tmp_path, HEMSYNC_WRITE_WAIT_SECONDS=0.3)
    try:
        holder = _hold_the_writer(server.db_path)
        try:
            response = region.nurse.post("/v1/push", {"pending": 1, "changes": [new_patient(region.nurse)]})
        finally:
            holder.rollback()
            holder.close()
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "server_busy"
        assert int(response.headers["Retry-After"]) >= 1
        region.nurse.push(new_patient(region.nurse))  # and once the writer is free, it goes through
    finally:
        server.stop()


def test_threads_of_one_process_queue_for_the_writer_for_at_most_the_write_wait(tmp_path):
    server, _ = _region(tmp_path, HEMSYNC_WRITE_WAIT_SECONDS=0.2)
    store, failures, release = server.store, [], threading.Event()
    holder = _writer_held(store, release)
    started = time.monotonic()
    try:
        with store.transaction():
            pass
    except Exception as exc:  # noqa: BLE001 - the class is the assertion below
        failures.append(exc)
    waited = time.monotonic() - started
    release.set()
    holder.join()
    server.stop()
    assert [type(e).__name__ for e in failures] == ["ServerBusy"]
    assert 0.15 < waited < 2.0  # the write wait, not the 30 s SQLite waited before (slack: a shared machine)


def test_threads_waiting_for_the_writer_get_it_in_the_order_they_came(tmp_path):
    server, _ = _region(tmp_path)
    store, order, release = server.store, [], threading.Event()

    def write(name):
        with store.transaction():
            order.append(name)

    holder = _writer_held(store, release)
    waiters = []
    for name in range(8):
        waiters.append(threading.Thread(target=write, args=(name,)))
        waiters[-1].start()
        # each waiter is queued before the next starts: its position is its arrival
        deadline = time.monotonic() + 5
        while len(store._writer._waiting) < name + 1 and time.monotonic() < deadline:
            time.sleep(0.005)
    release.set()
    for thread in [holder, *waiters]:
        thread.join(10)
    server.stop()
    assert order == list(range(8))


def test_a_handshake_is_answered_while_pushes_hold_the_writer_and_its_note_lands_with_the_next_commit(tmp_path):
    server, region = _region(tmp_path, HEMSYNC_WRITE_WAIT_SECONDS=5)
    store, release = server.store, threading.Event()
    holder = _writer_held(store, release)
    started = time.monotonic()
    answer = region.doctor.post("/v1/handshake", {"pending": 7, "rejected": 1})
    answered_in = time.monotonic() - started
    release.set()
    holder.join(10)
    device = next(d for d in store.devices() if d["id"] == region.doctor.device_id)
    server.stop()
    assert answer.status_code == 200 and answered_in < 2.5  # not the 5 s write wait behind the push
    assert (device["pending"], device["reported_rejected"]) == (7, 1)  # written as the push committed


def test_a_writer_handed_over_as_its_wait_runs_out_is_still_handed_on():
    queue = WriterQueue()
    assert queue.acquire(timeout=0)
    assert not queue.acquire(timeout=0.05)  # it timed out and left the queue
    queue.release()
    assert queue.acquire(timeout=0)  # so the writer was free again, not handed to a thread that left
    got = []
    waiter = threading.Thread(target=lambda: got.append(queue.acquire(timeout=5)))
    waiter.start()
    while not queue._waiting:
        time.sleep(0.005)
    queue.release()
    waiter.join(5)
    assert got == [True] and not queue.acquire(timeout=0)  # handed over: still held, by the waiter


def test_a_record_written_between_a_pulls_read_and_its_write_comes_on_the_next_page(tmp_path, monkeypatch):
    server, region = _region(tmp_path)
    try:
        nurse, doctor = region.nurse, region.doctor
        nurse.push(new_patient(nurse))
        nurse.sync()
        real = pull_module._read_page
        late = new_patient(doctor, personnummer="193804029829")

        def read_then_someone_writes(*args, **kwargs):
            page = real(*args, **kwargs)
            doctor.push(late)  # committed after the snapshot, before the pull's own write
            return page

        monkeypatch.setattr(pull_module, "_read_page", read_then_someone_writes)
        first = nurse.pull_page(nurse.cursor)
        monkeypatch.setattr(pull_module, "_read_page", real)
        assert late["record_id"] not in [r["id"] for r in first["records"]]
        second = nurse.pull_page(first["cursor"])
        assert [r["id"] for r in second["records"]] == [late["record_id"]]
    finally:
        server.stop()


def test_a_device_past_its_request_rate_is_answered_429_and_others_are_not(tmp_path):
    server, region = _region(tmp_path, HEMSYNC_DEVICE_RATE=5)
    try:
        flooder, other = region.nurse, region.doctor
        answers = [flooder.post("/v1/handshake", {}).status_code for _ in range(8)]
        assert answers[:5] == [200] * 5 and set(answers[5:]) == {429}
        refused = flooder.post("/v1/handshake", {})
        assert refused.json()["error"]["code"] == "too_many_requests"
        assert int(refused.headers["Retry-After"]) >= 1
        assert other.post("/v1/handshake", {}).status_code == 200
    finally:
        server.stop()


def test_a_device_rate_refills_evenly_over_the_minute():
    now = [0.0]
    rate = DeviceRate(60, clock=lambda: now[0])
    for _ in range(60):
        rate.take("laptop")
    with pytest.raises(TooManyRequests) as refused:
        rate.take("laptop")
    assert refused.value.retry_after == 1
    now[0] += 1.0
    rate.take("laptop")  # one request a second comes back


def test_the_http_server_is_sized_for_a_region_by_its_settings(tmp_path):
    server = start_live_server(tmp_path, HEMSYNC_THREADS=48, HEMSYNC_LISTEN_BACKLOG=2048,
                               HEMSYNC_KEEPALIVE_CONNECTIONS=1500, HEMSYNC_CONNECTION_TIMEOUT=90)
    try:
        built = make_server(server.app)
        assert (built.requests.min, built.request_queue_size, built.keep_alive_conn_limit, built.timeout) == \
            (48, 2048, 1500, 90)
    finally:
        server.stop()


def test_on_postgresql_a_write_that_waits_past_the_write_wait_is_answered_503_with_retry_after(tmp_path,
                                                                                                 postgres_url):
    import psycopg

    from server.store.postgres import WRITE_LOCK

    server = start_live_server(tmp_path, database=postgres_url, HEMSYNC_WRITE_WAIT_SECONDS=0.3)
    region = Region(server, {})
    nurse = region.laptop("nurse", "nurse", ["Halmstad"])
    try:
        with psycopg.connect(postgres_url) as holder:  # another server process, mid-push
            holder.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            response = nurse.post("/v1/push", {"pending": 1, "changes": [new_patient(nurse)]})
            holder.rollback()
        assert response.status_code == 503 and response.json()["error"]["code"] == "server_busy"
        assert int(response.headers["Retry-After"]) >= 1
        nurse.push(new_patient(nurse))
    finally:
        server.stop()


def test_a_device_pushes_one_batch_at_a_time_so_it_takes_one_turn_of_the_writer(tmp_path):
    server, region = _region(tmp_path, HEMSYNC_WRITE_WAIT_SECONDS=10)
    store, release, answers = server.store, threading.Event(), {}
    flooder, other = region.nurse, region.doctor
    try:
        holder = _writer_held(store, release)

        def push(name, laptop):
            answers[name] = laptop.post("/v1/push", {"pending": 0, "changes": [new_patient(laptop)]})

        first = threading.Thread(target=push, args=("first", flooder))
        first.start()
        deadline = time.monotonic() + 5
        while not store._writer._waiting and time.monotonic() < deadline:
            time.sleep(0.005)
        push("second", flooder)  # while the first waits for the writer: refused, not a second turn
        others = threading.Thread(target=push, args=("other", other))
        others.start()
        while len(store._writer._waiting) < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        release.set()
        for thread in (holder, first, others):
            thread.join(10)
        push("after", flooder)
    finally:
        release.set()
        server.stop()
    second = answers["second"]
    assert second.status_code == 429 and second.json()["error"]["code"] == "too_many_requests"
    assert int(second.headers["Retry-After"]) >= 1
    assert [answers[n].status_code for n in ("first", "other", "after")] == [200, 200, 200]
    # each merged (the same test patient thrice is a duplicate to flag: applied, then conflicts)
    assert all(r["result"] in ("applied", "conflict") for n in ("first", "other", "after")
               for r in answers[n].json()["results"])


def test_a_push_that_queued_for_the_writer_says_how_long_in_its_server_timing(tmp_path):
    from proof.fleet import server_timings

    server, region = _region(tmp_path)
    store, release = server.store, threading.Event()
    try:
        holder = _writer_held(store, release)
        threading.Timer(0.3, release.set).start()
        answer = region.nurse.post("/v1/push", {"pending": 0, "changes": [new_patient(region.nurse)]})
        holder.join(10)
    finally:
        release.set()
        server.stop()
    timings = server_timings(answer)
    assert answer.status_code == 200 and 0.25 <= timings["writer"] <= timings["app"]
