"""The server lives through its PostgreSQL restarting: dead connections are dropped, requests answered 503, never held.

Each test restarts a throwaway cluster of its own (``pg_cluster``, tests/conftest.py),
never the machine's shared PostgreSQL; where the PostgreSQL server binaries are
missing they skip, and with HEMSYNC_REQUIRE_POSTGRES=1 (CI) that is a failure.
"""

import threading
import time

import pytest

from server.errors import DatabaseUnavailable
from server.store import open_store
from server.store import postgres as postgres_store
from tests.live_server import start_live_server

from .conftest import PERSONNUMMER, Region, new_patient

MODES = ("fast", "immediate")


def _user(user_id):
    return {"id": user_id, "name": "Tolvan Testsson", "role": "nurse", "municipalities": ["Halmstad"],
            "hsa_id": None, "created_at": "2030-01-01T00:00:00+00:00"}


@pytest.fixture
def store(pg_cluster):
    """A store on the throwaway cluster (its ``postgres`` database: the cluster is the test's own)."""
    made = open_store(pg_cluster.url)
    yield made
    made.close()


@pytest.mark.parametrize("mode", MODES)
def test_after_its_database_restarted_the_store_serves_the_next_request_on_a_new_connection(pg_cluster, store,
                                                                                              mode):
    store.add_user(_user("u1"))
    pg_cluster.restart(mode)
    # Every pooled connection died with the restart: the pool's check discards them, none is handed out.
    assert store.get_user("u1")["name"] == "Tolvan Testsson"
    store.add_user(_user("u2"))
    assert [u["id"] for u in store.users()] == ["u1", "u2"]


def test_a_pool_of_idle_connections_that_died_with_a_restart_does_not_hold_the_next_request(pg_cluster, store):
    busy = threading.Barrier(8)

    def hold_a_connection():
        with store.transaction():
            store.head()
            busy.wait(timeout=30)

    holders = [threading.Thread(target=hold_a_connection) for _ in range(8)]
    for holder in holders:
        holder.start()
    for holder in holders:
        holder.join()
    pg_cluster.restart("fast")  # eight idle connections in the pool, every one dead now
    began = time.monotonic()
    assert store.head() == 0
    assert time.monotonic() - began < 3


@pytest.mark.parametrize("mode", MODES)
def test_a_write_cut_by_a_database_restart_is_database_unavailable_and_leaves_nothing(pg_cluster, store, mode):
    with pytest.raises(DatabaseUnavailable) as raised:
        with store.transaction():
            store.add_user(_user("u1"))
            pg_cluster.restart(mode)
            store.add_user(_user("u2"))
    assert raised.value.retry_after >= 1
    assert store.users() == []


def test_while_the_database_is_down_a_request_is_answered_503_within_the_wait_and_served_when_it_is_back(
        tmp_path, pg_cluster, monkeypatch):
    monkeypatch.setattr(postgres_store, "CONNECTION_WAIT", 1)
    server = start_live_server(tmp_path, database=pg_cluster.url)
    try:
        nurse = Region(server, {}).laptop("nurse", "nurse", ["Halmstad"])
        nurse.push(new_patient(nurse))
        pg_cluster.stop("fast")
        began = time.monotonic()
        response = nurse.post("/v1/push", {"pending": 1, "changes": [new_patient(nurse, personnummer=PERSONNUMMER[1])]},
                              timeout=30)
        assert time.monotonic() - began < 10  # answered, not held
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "database_unavailable"
        assert int(response.headers["Retry-After"]) >= 1
        pg_cluster.start()
        deadline = time.monotonic() + 30  # the pool reconnects with backoff
        while (response := nurse.post("/v1/push", {"pending": 0, "changes": [
                new_patient(nurse, personnummer=PERSONNUMMER[1])]}, timeout=30)).status_code == 503:
            assert time.monotonic() < deadline, "the server did not serve again after its database came back"
            time.sleep(int(response.headers["Retry-After"]))
        assert response.status_code == 200, response.text
        assert [r["result"] for r in response.json()["results"]] == ["applied"]
    finally:
        server.stop()


def test_after_a_long_outage_the_store_serves_again_within_seconds_of_the_database_coming_back(pg_cluster, store):
    store.head()
    pg_cluster.stop("fast")
    back = []

    def ask_until_served():
        while True:
            try:
                return store.head()
            except DatabaseUnavailable:
                time.sleep(postgres_store.RETRY_AFTER)

    # 18 s down: with the pool's default (one reconnection backing off, 1 s doubling, for 300 s) its
    # attempts come about 15 and 31 s in, the second 10 s or more after the database is back.
    asker = threading.Thread(target=lambda: back.append(ask_until_served()))
    asker.start()
    time.sleep(18)
    pg_cluster.start()
    started = time.monotonic()
    asker.join(timeout=60)
    assert back == [0]
    assert time.monotonic() - started < 6
