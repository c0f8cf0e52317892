"""make bench and make load, tiny: they run end to end and their checks pass (figures are not asserted here)."""

import pytest

from proof import bench, load

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("store_kind", ["sqlite", "postgres"])
def test_the_bench_reports_every_figure_and_both_laptops_converge(tmp_path, server_database, store_kind):
    figures = bench.run(200, tmp_path, progress=lambda *a: None, database=server_database)
    assert figures["store"] == {"sqlite": "sqlite", "postgres": "postgresql"}[store_kind]
    assert {"n", "ceiling_insert_per_s", "push_per_s", "pull_per_s", "incremental_s", "bytes_per_record",
            "push_ratio", "pull_ratio"} <= set(figures)
    assert figures["converged"]
    assert figures["pull_records"] >= 2 * 200  # every visit and its vitals reached the fresh laptop
    assert 650 <= figures["record_json_bytes"] <= 760


def test_a_short_load_run_converges_with_nothing_lost_or_doubled(tmp_path):
    figures = load.run(laptops=6, duration=6, interval=2, seed=3, workdir=tmp_path, progress=lambda *a: None)
    assert figures["problems"] == []
    assert figures["errors"] == 0
    assert (figures["answered_5xx"], figures["dropped"]) == (0, 0) and figures["ok"]
    assert figures["syncs"] >= 6 and figures["changes_made"] > 0
    # the app's own time (Server-Timing) is a part of what each laptop waited, so of every percentile too
    for name in ("push", "pull"):
        for label in ("p50", "p95", "p99"):
            assert 0 < figures[f"{name}_in_server_{label}_ms"] <= figures[f"{name}_{label}_ms"]


def test_laptops_moving_on_to_new_patients_converge_on_every_set(tmp_path):
    figures = load.run(laptops=4, duration=8, interval=1.5, seed=5, workdir=tmp_path, progress=lambda *a: None,
                       new_patients_every=3)
    assert figures["problems"] == [] and figures["errors"] == 0 and figures["ok"]
    assert figures["patients"] == 30  # the first ten and two new sets, on every laptop (converged)


def test_repeated_load_runs_give_each_run_the_medians_and_fail_if_any_run_failed():
    runs = [{"ok": True, "push_p99_ms": 412.0, "push_p95_ms": 271.6, "push_writer_wait_p99_ms": 374.8,
             "pull_p99_ms": 513.1},
            {"ok": True, "push_p99_ms": 215.4, "push_p95_ms": 132.9, "push_writer_wait_p99_ms": 161.7,
             "pull_p99_ms": None},
            {"ok": False, "push_p99_ms": 532.0, "push_p95_ms": 350.3, "push_writer_wait_p99_ms": 475.7,
             "pull_p99_ms": 684.6}]
    figures = load.repeated(runs)
    assert figures["runs"] == runs and figures["ok"] is False
    assert figures["push_p99_ms_runs"] == [412.0, 215.4, 532.0] and figures["push_p99_ms_median"] == 412.0
    assert figures["pull_p99_ms_runs"] == [513.1, 684.6] and figures["pull_p99_ms_median"] == 598.85
    assert load.repeated(runs[:2])["ok"] is True


def test_a_load_run_fails_when_any_request_is_dropped_or_answered_5xx():
    log = [("GET /v1/pull", 200, 0.1, 0.05), ("POST /v1/push", None, 5.0, None), ("POST /v1/push", 503, 0.1, 0.1),
           ("POST /v1/handshake", 429, 0.0, 0.0), ("GET /v1/pull", 500, 0.1, 0.1)]
    assert load.answer_counts(log) == {"dropped": 1, "answered_5xx": 2, "answered_503": 1, "answered_429": 1}


def test_a_short_load_run_on_postgresql_with_four_server_processes_converges(tmp_path, postgres_url):
    figures = load.run(laptops=6, duration=6, interval=2, seed=3, workdir=tmp_path, progress=lambda *a: None,
                       database=postgres_url, workers=4)
    assert (figures["store"], figures["server_processes"]) == ("postgresql", 4)
    assert figures["problems"] == []
    assert figures["errors"] == 0
    assert figures["syncs"] >= 6 and figures["changes_made"] > 0


def test_a_soak_fails_when_the_servers_memory_or_open_files_grow_after_the_warm_up():
    from proof.soak import growth_problems

    flat = [(0, 40_000, 30), (1, 60_000, 230), (2, 61_000, 231), (3, 62_000, 229)]
    assert growth_problems(flat) == []
    leaking = [(0, 40_000, 30), (1, 60_000, 230), (2, 80_000, 300)]
    assert len(growth_problems(leaking)) == 2
    # an hour: caches filling in the first third are warm-up; growth to the end after it is not
    warming = [(m, 60_000 + 2_000 * min(m, 20), 230) for m in range(61)]
    assert growth_problems(warming) == []
    growing = [(m, 60_000 + 1_000 * m, 230) for m in range(61)]
    assert growth_problems(growing) == ["memory grew from 82000 KiB (minutes 20-24) to 118000 KiB (minutes 56-60)"]
    # requests in flight swing it by a third from minute to minute: a peak is not growth
    swinging = [(m, 300_000 + (100_000 if m % 4 == 0 else 0), 276) for m in range(61)]
    assert growth_problems(swinging) == []
