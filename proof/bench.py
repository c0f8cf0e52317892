"""``make bench``: how fast a laptop pushes, how fast a fresh laptop syncs, and how many bytes it costs.

For N documented home visits (a ~400-character assessment and the vitals
taken, ~740 bytes of JSON; proof/workload.py), in one run:

- ceiling: the same rows, ``json.dumps`` + ``executemany`` into SQLite in one
  transaction (WAL, synchronous=FULL like the server): this machine's bound;
- push: from a laptop replica's outbox into the server over real HTTP
  (cheroot in a subprocess, as ``make run`` serves), through validation,
  merge, audit and the change feed: a visit and its observation are two changes;
- pull: a fresh laptop's initial sync, applied into its replica;
- incremental: after 1 % of the visits changed on another laptop, the sync
  that brings them to this one;
- bytes on the wire per record, push and pull together, headers included,
  counted at the socket by a loopback proxy;
- offline edits: ``--edits`` (default 1,000) edits of one visit's note on a
  laptop that stays offline, each its own write, as a doctor editing a long
  note all afternoon; each write replays the record's outbox, so this is the
  figure that shows whether a write does its work once.

Side by side: ``--peer DIR`` (``make bench`` passes ``../shared/bench-peer``) runs
CouchDB replication on the same N right after hemsync (proof/peer.py) and adds
``peer_push_per_s``, ``peer_pull_per_s``, ``peer_bytes_per_record`` and the
ratios ``push_vs_peer``, ``pull_vs_peer`` and ``bytes_vs_peer`` (targets: 2x, 4x,
at most 0.5x). Where the peer, Node or npm is missing, ``peer_missing`` says why
and the figures are hemsync's alone.

At scale: ``--scale RECORDS`` (``make bench SCALE=1000000``) then loads RECORDS
records of other municipalities into a fresh store (proof/scale.py: a SQLite file, or
with ``--postgres`` a second scratch database) and runs the same N again against it,
adding ``push_per_s_at_scale``, ``pull_per_s_at_scale`` (and their shares of the empty
server's, ``push_at_scale_vs_empty``, ``pull_at_scale_vs_empty``: target 80 % or more),
``incremental_s_at_scale`` (target under 1 s), and the peak resident memory sampled
throughout that run, ``server_rss_mb`` (the server's processes summed: target under
500) and ``laptop_rss_mb`` (the bench process, which holds both laptops: under 300).
On PostgreSQL, ``postgres_rss_mb`` is apart: the backends serving the server, summed
(each one's resident set counts the shared buffers it touched, so the sum counts them
more than once).

Prints a table and one JSON object (``--json`` for the object alone).
``--postgres URL`` serves from a scratch database on that PostgreSQL server (made
and dropped); the ceiling stays SQLite's, the laptop's database.
``--profile`` adds where the time goes (cProfile of the laptop side in this
process, and of the server side replayed in-process).

Example: python -m proof.bench --n 20000
"""

import argparse
import contextlib
import cProfile
import dataclasses
import json
import os
import pathlib
import shutil
import sqlite3
import sys
import tempfile
import time

from client_sync.sync import sync

from . import peer as couchdb_peer
from . import scale as scale_store
from .laptops import converged, login
from .memory import PeakRss
from .proxy import LoopbackProxy
from .server_process import ServerProcess, scratch_database
from .workload import Workload, as_one_row, record_json

__all__ = ["main", "ceiling", "run", "at_scale", "with_peer"]

TARGET_RATIO = 0.15
TARGET_BYTES = 650
#: Issue 14: hemsync's rate over CouchDB replication's, and its bytes over the peer's, in one run.
TARGET_PUSH_VS_PEER = 2.0
TARGET_PULL_VS_PEER = 4.0
TARGET_BYTES_VS_PEER = 0.5
MUNICIPALITY = "Bänkby"


def ceiling(rows, directory, repeats=3):
    """Rows per second for json.dumps + executemany of ``rows`` into SQLite in one transaction (best of runs)."""
    best = 0.0
    for attempt in range(repeats):
        path = pathlib.Path(directory) / f"ceiling-{attempt}.db"
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE visits (id TEXT PRIMARY KEY, body TEXT NOT NULL)")
        start = time.perf_counter()
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO visits (id, body) VALUES (?, ?)",
                         ((row["id"], json.dumps(row, ensure_ascii=False)) for row in rows))
        conn.execute("COMMIT")
        best = max(best, len(rows) / (time.perf_counter() - start))
        conn.close()
        path.unlink()
    return best


class Phases:
    """Timestamps and byte counts of a sync's stages, from its progress callback."""

    def __init__(self, proxy):
        self.proxy = proxy
        self.push_done = None

    def __call__(self, stage, done, total):
        if stage == "push" and total is not None and done >= total and self.push_done is None:
            self.push_done = (time.perf_counter(), self.proxy.counts(), time.process_time())


def _bytes(before, after):
    return (after[0] - before[0]) + (after[1] - before[1])


class _NoProfile:
    def enable(self):
        pass

    def disable(self):
        pass


def offline_edits(laptop, work, patient_id, edits):
    """Seconds for ``edits`` local writes, one at a time, of one new visit's note on an offline laptop."""
    visit_id, visit, _, _ = work.visit_with_vitals(patient_id)
    laptop.replica.write("visit", visit_id, visit)
    notes = [work.text(120) for _ in range(edits)]
    start = time.perf_counter()
    for note in notes:
        laptop.replica.write("visit", visit_id, {"plan": note})
    return time.perf_counter() - start


def run(n, workdir, seed=1, progress=print, profiles=None, edits=1000, database=None, scale=0):
    """Measure everything for ``n`` visits (and ``edits`` offline edits of one record) under ``workdir``.

    Returns the figures (a dict). ``database``: a PostgreSQL URL to serve from (default: a SQLite file).
    ``scale``: then the same ``n`` again against a server already holding ``scale`` records
    (:func:`at_scale`, on the same kind of store).

    ``profiles``, a dict, receives cProfile profiles of the laptop side of the
    push and of the initial sync (``laptop push``, ``laptop pull``) when given.
    """
    profiler = (lambda name: profiles.setdefault(name, cProfile.Profile())) if profiles is not None \
        else (lambda name: _NoProfile())
    progress(f"bench: {n} visits with vitals, workdir {workdir}")
    server = ServerProcess(pathlib.Path(workdir) / "server", database=database)
    figures = {"n": n, "store": "postgresql" if server.on_postgres else "sqlite"}
    work = Workload(seed)
    data = _documented_visits(work, n)
    rows = [as_one_row(vid, visit, vitals) for vid, visit, _, vitals in data.visits]
    figures["record_json_bytes"] = round(sum(len(record_json(r).encode()) for r in rows) / n)
    progress("bench: ceiling ...")
    figures["ceiling_insert_per_s"] = round(ceiling(rows, workdir))
    try:
        measured = _measure(server, data, workdir, progress, profiler, offline_laptop=bool(edits))
        figures.update({EMPTY_NAMES.get(k, k): v for k, v in measured.pop("figures").items()})
        if edits:
            progress(f"bench: {edits} offline edits of one record on laptop C ...")
            c = measured["offline"]
            with c.replica.transaction():
                c.replica.write("patient", data.patients[0], work.patient(MUNICIPALITY))
            figures["offline_edits"] = edits
            figures["offline_edits_s"] = round(offline_edits(c, work, data.patients[0], edits), 2)
            c.close()
    finally:
        server.stop()
    figures["bytes_per_record"] = round((figures["push_bytes"] + figures["pull_bytes"]) / n)
    figures["push_ratio"] = round(figures["push_per_s"] / figures["ceiling_insert_per_s"], 4)
    figures["pull_ratio"] = round(figures["pull_per_s"] / figures["ceiling_insert_per_s"], 4)
    if scale:
        figures.update(at_scale(n, scale, workdir, seed, progress, figures, database))
    return figures


#: The empty server's memory figures are named apart: ``server_rss_mb`` and ``laptop_rss_mb`` are the ones at scale.
EMPTY_NAMES = {"server_rss_mb": "server_rss_mb_empty", "laptop_rss_mb": "laptop_rss_mb_empty",
               "postgres_rss_mb": "postgres_rss_mb_empty"}
#: The figures of the run at scale that the JSON object carries, and their names there.
SCALE_NAMES = {
    "push_per_s": "push_per_s_at_scale", "push_s": "push_s_at_scale",
    "push_server_cpu_s": "push_server_cpu_s_at_scale",
    "pull_per_s": "pull_per_s_at_scale", "pull_s": "pull_s_at_scale", "pull_records": "pull_records_at_scale",
    "pull_server_cpu_s": "pull_server_cpu_s_at_scale", "pull_laptop_cpu_s": "pull_laptop_cpu_s_at_scale",
    "incremental_s": "incremental_s_at_scale", "incremental_records": "incremental_records_at_scale",
    "server_rss_mb": "server_rss_mb", "laptop_rss_mb": "laptop_rss_mb", "postgres_rss_mb": "postgres_rss_mb",
    "converged": "converged_at_scale",
}
#: Issue 14: at scale, push and initial sync at this share of their rate on an empty server or more.
TARGET_AT_SCALE = 0.8
TARGET_INCREMENTAL_S = 1.0
TARGET_SERVER_MB = 500
TARGET_LAPTOP_MB = 300


def at_scale(n, scale, workdir, seed, progress, empty, database=None):
    """The same ``n`` visits pushed and synced by a doctor of a region whose server already holds ``scale`` records.

    The records are loaded straight into a fresh store first (:mod:`proof.scale`): a
    SQLite file, or with ``database`` (the empty run's PostgreSQL URL) a scratch database
    of its own on the same PostgreSQL server. Then the run is the empty server's (same
    seed: the same visits), with the server's and the laptop's resident memory sampled
    throughout (the laptop is this process, so its figure also holds the bench's own
    data: an upper bound). ``empty``: the empty server's figures, for the ratios.
    """
    with contextlib.ExitStack() as stack:
        scaled = stack.enter_context(scratch_database(database)) if database else None
        server = ServerProcess(pathlib.Path(workdir) / "server-at-scale", database=scaled)
        stack.callback(server.stop)
        loaded = scale_store.preload(server.db_path, scale, progress=progress)
        data = _documented_visits(Workload(seed), n)
        measured = _measure(server, data, workdir, progress, _noprofile, name="at scale")
    figures = {SCALE_NAMES[k]: v for k, v in measured["figures"].items() if k in SCALE_NAMES}
    figures.update({
        "scale_records": loaded["records"], "scale_load_s": loaded["load_s"],
        "push_at_scale_vs_empty": round(figures["push_per_s_at_scale"] / empty["push_per_s"], 2),
        "pull_at_scale_vs_empty": round(figures["pull_per_s_at_scale"] / empty["pull_per_s"], 2),
    })
    return figures


@dataclasses.dataclass
class _Visits:
    patients: list
    patient_fields: list
    visits: list


def _documented_visits(work, n):
    """The bench's patients (one per 100 visits) and ``n`` visits with vitals: the same for the same seed."""
    patients = [work.uuid() for _ in range(max(10, n // 100))]
    fields = [work.patient(MUNICIPALITY) for _ in patients]
    visits = [work.visit_with_vitals(patients[i % len(patients)]) for i in range(n)]
    return _Visits(patients, fields, visits)


def _noprofile(name):
    return _NoProfile()


def _measure(server, data, workdir, progress, profiler, offline_laptop=False, name=""):
    """Push ``data`` from one laptop, sync it to a fresh one, then 1 % changed back: the figures of one server.

    Returns ``{"figures": ..., "offline": a third laptop of the doctor, never synced}`` (with
    ``offline_laptop``). Memory of the server and of this process is sampled throughout.
    """
    label = f"bench{' ' + name if name else ''}"
    n = len(data.visits)
    figures = {}
    # One doctor, two laptops: visits are edited only by their own doctor.
    doctor = server.add_user("Anna Bänk", "doctor", [MUNICIPALITY])
    _, token_a = server.enroll(doctor, "bench laptop A")
    _, token_b = server.enroll(doctor, "bench laptop B")
    server.start()
    proxy = LoopbackProxy(server.port)
    memory = PeakRss({"server": server.processes, "laptop": os.getpid(),
                      **({"postgres": server.database_backends} if server.on_postgres else {})})
    with memory:
        a = login(workdir, proxy.url, token_a, f"laptop-a{name and '-' + name.replace(' ', '-')}")
        b = login(workdir, proxy.url, token_b, f"laptop-b{name and '-' + name.replace(' ', '-')}")
        with a.replica.transaction():
            for patient_id, fields in zip(data.patients, data.patient_fields):
                a.replica.write("patient", patient_id, fields)
        sync(a.replica, client=a.client(proxy.url))

        progress(f"{label}: writing the visits into laptop A's outbox ...")
        start = time.perf_counter()
        for first in range(0, n, 1000):
            with a.replica.transaction():  # a doctor's day of notes, committed in steps
                for vid, visit, oid, vitals in data.visits[first:first + 1000]:
                    a.replica.write("visit", vid, visit)
                    a.replica.write("observation", oid, vitals)
        figures["local_write_per_s"] = round(n / (time.perf_counter() - start))

        progress(f"{label}: push ...")
        phases = Phases(proxy)
        before, cpu, server_cpu = proxy.counts(), time.process_time(), server.cpu_seconds()
        start = time.perf_counter()
        profiler("laptop push (and pull back)").enable()
        sync(a.replica, client=a.client(proxy.url), progress=phases)
        profiler("laptop push (and pull back)").disable()
        end = time.perf_counter()
        pushed_at, pushed_counts, pushed_cpu = phases.push_done
        push_s = pushed_at - start
        figures["push_per_s"] = round(n / push_s)
        figures["push_changes_per_s"] = round(2 * n / push_s)
        figures["push_s"] = round(push_s, 2)
        figures["push_bytes"] = _bytes(before, pushed_counts)
        figures["push_laptop_cpu_s"] = round(pushed_cpu - cpu, 2)
        figures["push_server_cpu_s"] = round(server.cpu_seconds() - server_cpu, 2)  # includes the pull back
        figures["pull_back_s"] = round(end - pushed_at, 2)

        progress(f"{label}: initial sync of a fresh laptop ...")
        before, cpu, server_cpu = proxy.counts(), time.process_time(), server.cpu_seconds()
        start = time.perf_counter()
        profiler("laptop initial sync").enable()
        report = sync(b.replica, client=b.client(proxy.url))
        profiler("laptop initial sync").disable()
        pull_s = time.perf_counter() - start
        figures["pull_per_s"] = round(n / pull_s)
        figures["pull_s"] = round(pull_s, 2)
        figures["pull_records"] = report.pulled
        figures["pull_pages"] = report.pages
        figures["pull_bytes"] = _bytes(before, proxy.counts())
        figures["pull_laptop_cpu_s"] = round(time.process_time() - cpu, 2)
        figures["pull_server_cpu_s"] = round(server.cpu_seconds() - server_cpu, 2)

        progress(f"{label}: 1 % changed on laptop B, then laptop A syncs ...")
        changed = data.visits[:: 100][: max(1, n // 100)]
        notes = Workload(len(changed))
        with b.replica.transaction():
            for vid, visit, _, _ in changed:
                b.replica.write("visit", vid, {"plan": notes.text(120)})
        start = time.perf_counter()
        sync(b.replica, client=b.client(proxy.url))
        figures["incremental_push_s"] = round(time.perf_counter() - start, 3)
        before = proxy.counts()
        start = time.perf_counter()
        report = sync(a.replica, client=a.client(proxy.url))
        figures["incremental_s"] = round(time.perf_counter() - start, 3)
        figures["incremental_records"] = report.pulled
        figures["incremental_bytes"] = _bytes(before, proxy.counts())
    figures["server_rss_mb"] = memory.mib("server")
    figures["laptop_rss_mb"] = memory.mib("laptop")
    if server.on_postgres:
        figures["postgres_rss_mb"] = memory.mib("postgres")
    problems = converged(a) + converged(b)
    figures["converged"] = not problems
    for problem in problems:
        progress(f"{label}: NOT CONVERGED: {problem}")
    offline = None
    if offline_laptop:
        _, token_c = server.enroll(doctor, "bench laptop C (offline)")
        offline = login(workdir, proxy.url, token_c, "laptop-c")
    a.close(), b.close(), proxy.stop()
    return {"figures": figures, "offline": offline}


def with_peer(figures, directory, progress=print):
    """``figures`` side by side with the CouchDB peer run on the same N in ``directory`` (None: not asked).

    Where the peer cannot run, the figures stay hemsync's alone and ``peer_missing`` says why.
    """
    if directory is None:
        reason = "not run (no --peer DIR given; make bench passes ../shared/bench-peer)"
    else:
        try:
            return couchdb_peer.side_by_side(figures, couchdb_peer.measure(figures["n"], directory, progress))
        except couchdb_peer.PeerUnavailable as exc:
            reason = str(exc)
    progress(f"bench: peer: {reason}; hemsync's figures alone")
    return {**figures, "peer_missing": reason}


def _against(value, target, at_least=True):
    met = value >= target if at_least else value <= target
    return f"(target {'>=' if at_least else '<='} {target:g}x) {'ok' if met else 'MISSED'}"


def _share(value, target):
    return f"(target >= {target:.0%}) {'ok' if value >= target else 'MISSED'}"


def table(figures):
    """The figures as a readable table, with the targets."""
    ceiling_rate = figures["ceiling_insert_per_s"]
    rows = [
        ("records (visit + vitals)", f"{figures['n']}", f"~{figures['record_json_bytes']} bytes of JSON each"),
        ("ceiling: SQLite insert", f"{ceiling_rate:,} /s", "json.dumps + executemany, one transaction"),
        ("push (outbox -> server)", f"{figures['push_per_s']:,} /s",
         f"{figures['push_ratio']:.1%} of ceiling (target >= {TARGET_RATIO:.0%}) "
         f"{'ok' if figures['push_ratio'] >= TARGET_RATIO else 'MISSED'}"),
        ("initial sync (pull)", f"{figures['pull_per_s']:,} /s",
         f"{figures['pull_ratio']:.1%} of ceiling (target >= {TARGET_RATIO:.0%}) "
         f"{'ok' if figures['pull_ratio'] >= TARGET_RATIO else 'MISSED'}"),
        ("incremental sync (1 %)", f"{figures['incremental_s']:.2f} s",
         f"{figures['incremental_records']} records, {figures['incremental_bytes']:,} bytes"),
        ("bytes on the wire", f"{figures['bytes_per_record']} /record",
         f"push + pull, headers included (target <= {TARGET_BYTES}) "
         f"{'ok' if figures['bytes_per_record'] <= TARGET_BYTES else 'MISSED'}"),
        ("local write on the laptop", f"{figures['local_write_per_s']:,} /s", "visit + vitals into the outbox"),
        ("converged", "yes" if _converged(figures) else "NO", "every laptop equals its server"),
    ]
    if "peer_push_per_s" in figures:
        rows[-1:-1] = [
            ("CouchDB peer: push", f"{figures['peer_push_per_s']:,} /s",
             f"hemsync {figures['push_vs_peer']:.2f}x {_against(figures['push_vs_peer'], TARGET_PUSH_VS_PEER)}"),
            ("CouchDB peer: initial sync", f"{figures['peer_pull_per_s']:,} /s",
             f"hemsync {figures['pull_vs_peer']:.2f}x {_against(figures['pull_vs_peer'], TARGET_PULL_VS_PEER)}"),
            ("CouchDB peer: bytes", f"{figures['peer_bytes_per_record']} /record",
             f"hemsync {figures['bytes_vs_peer']:.2f}x "
             f"{_against(figures['bytes_vs_peer'], TARGET_BYTES_VS_PEER, at_least=False)}"),
        ]
    else:
        rows.insert(-1, ("CouchDB peer", "-", figures.get("peer_missing", "not run")))
    if "scale_records" in figures:
        rows[-1:-1] = [
            (f"at scale: {figures['scale_records']:,} records", f"{figures['scale_load_s']:.0f} s",
             "loaded into the store before the server starts (proof/scale.py)"),
            ("at scale: push", f"{figures['push_per_s_at_scale']:,} /s",
             f"{figures['push_at_scale_vs_empty']:.0%} of the empty server's "
             f"{_share(figures['push_at_scale_vs_empty'], TARGET_AT_SCALE)}"),
            ("at scale: initial sync", f"{figures['pull_per_s_at_scale']:,} /s",
             f"{figures['pull_at_scale_vs_empty']:.0%} of the empty server's "
             f"{_share(figures['pull_at_scale_vs_empty'], TARGET_AT_SCALE)}"),
            ("at scale: incremental (1 %)", f"{figures['incremental_s_at_scale']:.2f} s",
             f"(target < {TARGET_INCREMENTAL_S:g} s) "
             f"{'ok' if figures['incremental_s_at_scale'] < TARGET_INCREMENTAL_S else 'MISSED'}"),
            ("at scale: server memory", f"{figures['server_rss_mb']:,} MiB",
             f"peak resident, its processes summed (target < {TARGET_SERVER_MB}) "
             f"{'ok' if figures['server_rss_mb'] < TARGET_SERVER_MB else 'MISSED'}"),
            ("at scale: laptop memory", f"{figures['laptop_rss_mb']:,} MiB",
             f"peak resident of the bench process, both laptops in it (target < {TARGET_LAPTOP_MB}) "
             f"{'ok' if figures['laptop_rss_mb'] < TARGET_LAPTOP_MB else 'MISSED'}"),
        ]
        if "postgres_rss_mb" in figures:
            rows.insert(-1, ("at scale: PostgreSQL backends", f"{figures['postgres_rss_mb']:,} MiB",
                             "peak resident, summed (shared buffers counted once per backend that touched them)"))
    if figures.get("offline_edits"):
        rows.insert(-1, ("offline edits of one record", f"{figures['offline_edits_s']:.2f} s",
                         f"{figures['offline_edits']:,} writes, one at a time, never synced"))
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{name:<{width}}  {value:>16}  {note}" for name, value, note in rows)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m proof.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=int(os.environ.get("N") or 20000), help="visits (default 20000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print only the JSON object")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--edits", type=int, default=int(os.environ.get("EDITS") or 1000),
                        help="offline edits of one record to time (default 1000; 0 skips)")
    parser.add_argument("--profile", action="store_true",
                        help="also print where the time goes (laptop side here, server side replayed in-process)")
    parser.add_argument("--peer", metavar="DIR", default=None,
                        help="run the CouchDB-replication peer in DIR on the same N after hemsync, side by side")
    parser.add_argument("--scale", type=int, default=int(os.environ.get("SCALE") or 0), metavar="RECORDS",
                        help="then the same N against a server already holding RECORDS records (0: not run)")
    parser.add_argument("--postgres", metavar="URL", default=os.environ.get("POSTGRES") or None,
                        help="serve from a scratch database on this PostgreSQL server (made and dropped)")
    args = parser.parse_args(argv)
    workdir = tempfile.mkdtemp(prefix="hemsync-bench-")
    quiet = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    profiles = {} if args.profile else None
    try:
        with contextlib.ExitStack() as stack:
            database = stack.enter_context(scratch_database(args.postgres)) if args.postgres else None
            figures = run(args.n, workdir, args.seed, progress=quiet, profiles=profiles, edits=args.edits,
                          database=database, scale=args.scale)
        figures = with_peer(figures, args.peer, progress=quiet)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.profile:
        from . import profile

        for name, found in profiles.items():
            quiet(profile.report(name, found, figures["n"] / figures["push_s" if "push" in name else "pull_s"]))
        found = profile.server_profiles(min(args.n, 2000))
        quiet(profile.report("server push", found["push"], found["push_per_s"]))
        quiet(profile.report("server pull", found["pull"], found["pull_per_s"]))
    if not args.json:
        print()
        print(table(figures))
        print()
    print(json.dumps(figures))
    return 0 if _converged(figures) else 1


def _converged(figures):
    return figures["converged"] and figures.get("converged_at_scale", True)


if __name__ == "__main__":
    sys.exit(main())
