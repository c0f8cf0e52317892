"""The side-by-side peer of ``make bench``: CouchDB replication (PouchDB to pouchdb-server) on the same N.

The peer is not part of this repository: it lives beside it, in the team's shared
folder (``../shared/bench-peer``, see its README), and needs Node and npm. Its
``run.sh N`` installs its packages once (into ``$TMPDIR/hemsync-peer``) and prints
one JSON line per run with the phases ``push``, ``pull`` and ``incremental``.
Where the folder, Node or npm is missing, ``measure`` says why instead, and the
bench prints hemsync's figures alone: the project stays whole without the peer.

Ratios are hemsync's rate over the peer's, measured in the same run on the same
machine, because this machine is shared and noisy and only a ratio taken within
one run means anything.
"""

import json
import pathlib
import shutil
import subprocess

__all__ = ["PeerUnavailable", "find", "measure", "side_by_side"]

#: The peer's own watchdog stops it after 30 minutes; this is the last resort above that.
TIME_OUT_S = 35 * 60


class PeerUnavailable(Exception):
    """The peer cannot run here (no folder, no Node or npm, or it failed); the message says why."""


def find(directory):
    """The peer's ``run.sh`` in ``directory``; raises PeerUnavailable naming what is missing."""
    script = pathlib.Path(directory) / "run.sh"
    if not script.is_file():
        raise PeerUnavailable(f"no CouchDB peer at {directory} (its run.sh is missing)")
    for tool in ("bash", "node", "npm"):
        if shutil.which(tool) is None:
            raise PeerUnavailable(f"the CouchDB peer at {directory} needs {tool}, which is not on PATH")
    return script


def measure(n, directory, progress=print):
    """Run the peer on ``n`` documents; return its figures (rates per second, bytes per record).

    Raises PeerUnavailable (with the reason) where it cannot run or does not finish.
    """
    script = find(directory)
    progress(f"bench: the CouchDB peer ({script}) on {n} documents ...")
    try:
        done = subprocess.run(["bash", str(script), str(n)], capture_output=True, text=True, timeout=TIME_OUT_S)
    except subprocess.TimeoutExpired:
        raise PeerUnavailable(f"the CouchDB peer did not finish within {TIME_OUT_S // 60} minutes") from None
    runs = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    runs = [run for run in runs if run.get("bench") == "pouchdb-replication"]
    if done.returncode != 0 or not runs:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise PeerUnavailable(f"the CouchDB peer failed (exit {done.returncode}): {last}")
    run = runs[-1]
    if run["N"] != n:
        raise PeerUnavailable(f"the CouchDB peer ran {run['N']} documents, not {n}")
    wire = sum(run[phase]["bytes_up"] + run[phase]["bytes_down"] for phase in ("push", "pull"))
    return {
        "peer_push_per_s": run["push"]["docs_per_s"],
        "peer_pull_per_s": run["pull"]["docs_per_s"],
        "peer_incremental_s": run["incremental"]["s"],
        # Push and pull, as hemsync's bytes_per_record counts them (the incremental sync apart).
        "peer_bytes_per_record": round(wire / n),
        "peer_record_json_bytes": run["record_json_bytes"],
    }


def side_by_side(figures, peer):
    """hemsync's ``figures`` with the peer's and the ratios (hemsync over peer) added."""
    return {
        **figures, **peer,
        "push_vs_peer": round(figures["push_per_s"] / peer["peer_push_per_s"], 2),
        "pull_vs_peer": round(figures["pull_per_s"] / peer["peer_pull_per_s"], 2),
        "bytes_vs_peer": round(figures["bytes_per_record"] / peer["peer_bytes_per_record"], 2),
    }

