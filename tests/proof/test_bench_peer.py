"""make bench side by side with CouchDB replication: the peer on the same N, or hemsync alone saying why."""

import json
import pathlib
import shutil

import pytest

from proof import bench, peer

pytestmark = pytest.mark.e2e

SHARED_PEER = pathlib.Path(__file__).resolve().parents[3] / "shared" / "bench-peer"
FIGURES = {"n": 10, "push_per_s": 900, "pull_per_s": 4000, "bytes_per_record": 300}


def test_without_the_peer_folder_the_bench_says_so_and_prints_hemsyncs_figures_alone(tmp_path, capsys):
    assert bench.main(["--n", "20", "--edits", "0", "--peer", str(tmp_path / "no-peer-here")]) == 0
    out = capsys.readouterr().out
    figures = json.loads(out.strip().splitlines()[-1])
    assert figures["push_per_s"] > 0 and figures["pull_per_s"] > 0 and figures["bytes_per_record"] > 0
    assert "no CouchDB peer at" in figures["peer_missing"] and "no-peer-here" in figures["peer_missing"]
    assert not {"peer_push_per_s", "push_vs_peer", "pull_vs_peer"} & set(figures)
    assert "no CouchDB peer at" in out  # the table says it too, not only the JSON


def test_without_node_on_the_path_the_peer_is_named_missing_with_the_tool(tmp_path, monkeypatch):
    (tmp_path / "run.sh").write_text("#!/usr/bin/env bash\nexit 1\n")
    only_bash = tmp_path / "bin"
    only_bash.mkdir()
    (only_bash / "bash").symlink_to(shutil.which("bash"))
    monkeypatch.setenv("PATH", str(only_bash))
    reasons = []
    figures = bench.with_peer(FIGURES, tmp_path, progress=reasons.append)
    assert figures["peer_missing"] == f"the CouchDB peer at {tmp_path} needs node, which is not on PATH"
    assert figures["push_per_s"] == 900 and "peer_push_per_s" not in figures
    assert reasons and "hemsync's figures alone" in reasons[0]


def test_a_peer_that_fails_is_reported_with_its_last_words_not_a_crash(tmp_path):
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node or npm is not on PATH: the failing-peer path needs them to get past find()")
    (tmp_path / "run.sh").write_text("#!/usr/bin/env bash\necho 'npm ci failed: see npm.log' >&2\nexit 1\n")
    figures = bench.with_peer(FIGURES, tmp_path, progress=lambda *a: None)
    assert figures["peer_missing"] == "the CouchDB peer failed (exit 1): npm ci failed: see npm.log"


def test_the_ratios_are_hemsyncs_rate_over_the_peers_in_the_same_run():
    side = peer.side_by_side(FIGURES, {"peer_push_per_s": 450, "peer_pull_per_s": 2000,
                                       "peer_bytes_per_record": 1200})
    assert (side["push_vs_peer"], side["pull_vs_peer"], side["bytes_vs_peer"]) == (2.0, 2.0, 0.25)


def test_side_by_side_with_the_couchdb_peer_on_a_tiny_n(tmp_path, capsys):
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node or npm is not on PATH: the CouchDB peer cannot run here (make bench prints hemsync alone)")
    if not (SHARED_PEER / "run.sh").is_file():
        pytest.skip(f"no CouchDB peer at {SHARED_PEER}: the shared folder is not beside this clone")
    assert bench.main(["--n", "50", "--edits", "0", "--json", "--peer", str(SHARED_PEER)]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "peer_missing" not in figures, figures.get("peer_missing")
    assert figures["peer_push_per_s"] > 0 and figures["peer_pull_per_s"] > 0
    assert figures["peer_bytes_per_record"] > 400  # every document is ~650 bytes of JSON, sent at least once
    assert figures["push_vs_peer"] == round(figures["push_per_s"] / figures["peer_push_per_s"], 2)
    assert figures["pull_vs_peer"] == round(figures["pull_per_s"] / figures["peer_pull_per_s"], 2)
