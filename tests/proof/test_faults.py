"""The fault trials, a few dozen of them: every fault lands mid-transfer and no trial loses or doubles a change."""

import pytest

from proof.faults import KINDS, run_trials, summary

pytestmark = pytest.mark.e2e

#: Fixed seeds, so make test runs the same trials every time (make faults draws new ones).
FIRST_SEED = 6000
TRIALS = 24


def test_every_fault_trial_ends_with_every_laptop_equal_to_the_server(tmp_path):
    done = run_trials(FIRST_SEED, TRIALS, tmp_path, progress=lambda *a: None)
    figures = summary(done)
    failed = [(t.seed, t.kind, t.detail, t.problems) for t in done if t.problems]
    assert failed == []
    assert figures["trials"] == TRIALS
    # Real faults, not formalities: every kind was tried, and nearly every fault hit a transfer.
    assert set(figures["by_kind"]) == set(KINDS)
    assert figures["landed_mid_transfer"] >= TRIALS * 0.8


def test_fault_trials_on_postgresql_with_four_server_processes_lose_and_double_nothing(tmp_path, postgres_url):
    done = run_trials(FIRST_SEED, 8, tmp_path, progress=lambda *a: None, database=postgres_url, workers=4)
    failed = [(t.seed, t.kind, t.detail, t.problems) for t in done if t.problems]
    assert failed == []
    assert "server_kill" in {t.kind for t in done}


def test_postgresql_restarted_mid_push_loses_and_doubles_nothing_and_the_next_sync_completes(tmp_path, pg_cluster):
    from proof.faults import RESTART_KIND
    from proof.server_process import scratch_database

    with scratch_database(pg_cluster.url) as database:
        done = run_trials(FIRST_SEED, 3, tmp_path, progress=lambda *a: None, database=database, workers=4,
                          cluster=pg_cluster, kinds=(RESTART_KIND,))
    failed = [(t.seed, t.kind, t.detail, t.problems) for t in done if t.problems]
    assert failed == []
    assert pg_cluster.restarts == 3
    # The restart struck while a push was in flight, not before or after the sync.
    assert sum(t.landed for t in done) >= 2
