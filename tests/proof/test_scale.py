"""The bench at scale, tiny: the preloaded store is one the server could have written, and the run reports its figures.

On SQLite and on PostgreSQL (skipped without one, as the PostgreSQL half is: tests/conftest.py).
"""

import contextlib
import json
import sqlite3

import psycopg
import pytest

from proof import bench, profile
from proof.scale import preload
from schema import records
from schema.wire import decode_state
from server.store import open_store
from server.store.base import index_columns

pytestmark = pytest.mark.e2e


def _connect(database):
    """A plain connection to the store ``database`` (a SQLite path or a PostgreSQL URL): the same SQL reads both."""
    if database.startswith("postgresql://"):
        return contextlib.closing(psycopg.connect(database, autocommit=True))
    return contextlib.closing(sqlite3.connect(database))


def test_a_preloaded_store_is_gap_free_and_every_record_is_a_state_the_merge_made(database):
    open_store(database).close()
    loaded = preload(database, 3000, progress=lambda *a: None)
    assert loaded["records"] == 3000
    with _connect(database) as conn:
        _check_preloaded(conn, loaded)
    # The server's next write takes the feed's next number: the loaded feed is the store's own (on PostgreSQL,
    # its identity drew every number).
    store = open_store(database)
    try:
        patient = store.records_of_type("patient")[0]
        with store.transaction():
            store.put_record(patient.state, "after-the-load.1", wire=patient.wire)
        assert store.get_record("patient", patient.id).seq == store.head() == 3001
    finally:
        store.close()


def _check_preloaded(conn, loaded):
    assert conn.execute("SELECT count(*), min(seq), max(seq) FROM feed").fetchone() == (3000, 1, 3000)
    # Every record sits at its last feed row, which names it and its change.
    assert conn.execute("SELECT count(*) FROM records JOIN feed USING (seq) "
                        "WHERE feed.type = records.type AND feed.id = records.id").fetchone()[0] == 3000
    changes = {c for (c,) in conn.execute("SELECT change_id FROM changes WHERE result LIKE '%applied%'")}
    audited = {c for (c,) in conn.execute("SELECT change_id FROM audit WHERE kind = 'change'")}
    personnummers = [p for (p,) in conn.execute("SELECT personnummer FROM records WHERE type = 'patient'")]
    assert len(personnummers) == loaded["patients"] == len(set(personnummers))
    ids = set()
    for record_type, record_id, patient_id, municipality, personnummer, status, assignee, wire in conn.execute(
            "SELECT type, id, patient_id, municipality, personnummer, status, assignee, state FROM records"):
        state = decode_state(json.loads(wire))
        assert (state["type"], state["id"]) == (record_type, record_id)
        columns = index_columns(state)
        assert (patient_id, municipality, personnummer, status, assignee) == (
            columns["patient_id"], columns["municipality"], columns["personnummer"], columns["status"],
            columns["assignee"])
        assert records.get(record_type).patient_of(state) == patient_id
        assert set(state["changes"]) <= changes & audited
        ids.add(record_id)
    assert len(ids) == 3000


@pytest.mark.parametrize("store_kind", ["sqlite", "postgres"])
def test_the_bench_at_scale_reports_its_figures_and_every_laptop_converges(tmp_path, request, store_kind):
    database = request.getfixturevalue("postgres_url") if store_kind == "postgres" else None
    figures = bench.run(60, tmp_path, progress=lambda *a: None, edits=0, scale=2000, database=database)
    assert figures["store"] == {"sqlite": "sqlite", "postgres": "postgresql"}[store_kind]
    assert figures["scale_records"] == 2000
    assert {"push_per_s_at_scale", "pull_per_s_at_scale", "push_at_scale_vs_empty", "pull_at_scale_vs_empty",
            "incremental_s_at_scale", "server_rss_mb", "laptop_rss_mb"} <= set(figures)
    assert figures["converged"] and figures["converged_at_scale"]
    assert figures["server_rss_mb"] > 0 and figures["laptop_rss_mb"] > 0
    # On PostgreSQL its backends are measured apart, and they served the server.
    assert (figures.get("postgres_rss_mb", 0) > 0) == (store_kind == "postgres")
    # The region's records are outside the doctor's scope: her laptops got exactly what they got on an empty server.
    assert figures["pull_records_at_scale"] == figures["pull_records"]
    assert figures["incremental_records_at_scale"] == figures["incremental_records"]


def test_the_server_profile_replays_against_a_preloaded_store():
    found = profile.server_profiles(20, scale=500, progress=lambda *a: None)
    assert found["push_per_s"] > 0 and found["pull_per_s"] > 0
    assert profile.areas(found["push"]) and profile.areas(found["pull"])
