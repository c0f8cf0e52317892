"""``make load``: many laptops syncing at once against one server, then every one checked against it.

Each simulated laptop is a thread, in one of the load generator's worker
processes (:mod:`proof.fleet`), with its own replica file and user (two
doctors to each nurse), all working on the same patients: contact details
(last writer wins), care plan text and medication doses (keep both: conflicts,
which the doctors resolve), vitals, warnings and the doctors' own visits. Each
makes a few changes and syncs every ``--interval`` seconds (with jitter) for
``--duration`` seconds, over loopback only. Then every laptop syncs until it
is at the head, and the run checks that every replica equals what the server
would hand its device and that every change made was merged exactly once.

Prints p50/p95/p99 latency of push and pull requests (as the laptops saw
them), errors, conflicts, the load generator's and the server's CPU, and the
checks. Requests answered 5xx and requests dropped (no answer: a refused or
reset connection, a time-out) are counted apart from other errors, and 503
(server busy, with Retry-After) and 429 apart again. Exits non-zero when a
check fails or any request was answered 5xx or dropped (``--allow-busy``:
503 with Retry-After is backpressure, not failure, as in the every-10-s target).

Example: python -m proof.load --laptops 50 --duration 120
         python -m proof.load --laptops 200 --interval 30 --postgres postgresql://postgres@127.0.0.1/postgres
"""

import argparse
import contextlib
import json
import os
import pathlib
import shutil
import statistics
import sys
import tempfile
import threading
import time

from client_sync.errors import ClientError
from client_sync.sync import sync

from .fleet import NICE, Fleet
from .laptops import converged, ledger_problems, login
from .memory import status_kib
from .server_process import ServerProcess, scratch_database
from .workload import Workload, shared_records

__all__ = ["main", "run", "PROCESSES"]

#: Where the laptops' replicas live when the machine has it: in memory. Two hundred laptops are two
#: hundred disks; on the server's one disk their commits' fsyncs slowed the server's own, which it
#: makes holding the one writer. The server's database stays on disk.
LAPTOP_DISK = "/dev/shm"
#: Worker processes the laptops are spread over (proof.fleet): the generator's own GIL is not the server's latency.
PROCESSES = 4

MUNICIPALITY = "Lasttorp"


def percentile(values, fraction):
    """The ``fraction`` percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def run(laptops=50, duration=120.0, interval=10.0, seed=1, workdir=None, progress=print, database=None,
        workers=1, allow_busy=False, sample_every=None, new_patients_every=None, processes=PROCESSES,
        nice=NICE):
    """Run the load test; return the figures (a dict, ``ok`` says whether every check passed).

    ``database``: a PostgreSQL URL to serve from (``workers`` processes) instead of a SQLite file.
    ``sample_every``: seconds between samples of the server's memory and open files
    (``figures["samples"]``: minute, RSS in KiB, open file descriptors), for the soak.
    ``new_patients_every``: seconds after which another laptop (a coordinator's) brings a new set of
    shared patients and everyone works on those, as days bring new patients; without it the same
    ten patients take every edit of the run.
    ``processes``: worker processes the laptops run in (:mod:`proof.fleet`), ``nice`` lower in priority.
    """
    workdir = pathlib.Path(workdir or tempfile.mkdtemp(prefix="hemsync-load-"))
    laptop_dir = tempfile.mkdtemp(prefix="hemsync-laptops-", dir=LAPTOP_DISK if os.path.isdir(LAPTOP_DISK) else workdir)
    work = Workload(seed)
    server = ServerProcess(workdir / "server", database=database, workers=workers)
    errors = []
    figures = {"laptops": laptops, "duration_s": duration, "interval_s": interval, "seed": seed,
               "store": "postgresql" if database else "sqlite", "server_processes": workers,
               "generator_processes": min(processes, laptops), "generator_nice": nice}
    try:
        roles = ["nurse" if i % 3 == 2 else "doctor" for i in range(laptops)]
        tokens = []
        for i, role in enumerate(roles):
            user = server.add_user(f"Last {role} {i}", role, [MUNICIPALITY])
            tokens.append(server.enroll(user, f"load laptop {i}")[1])
        if new_patients_every:
            coordinator_token = server.enroll(server.add_user("Last samordnare", "doctor", [MUNICIPALITY]),
                                              "load coordinator")[1]
        server.start()
        progress(f"load: {laptops} laptops ({roles.count('doctor')} doctors, {roles.count('nurse')} nurses), "
                 f"{duration:.0f} s, sync every {interval:.0f} s, server {server.url}")
        fleet = [login(laptop_dir, server.url, token, f"laptop-{i:02d}") for i, token in enumerate(tokens)]
        shared = shared_records(fleet[0].replica, work, MUNICIPALITY)
        fleet[0].note_outbox()
        sync(fleet[0].replica)
        for laptop in fleet:
            sync(laptop.replica)
        for laptop in fleet:
            laptop.close()  # the workers open them again
        laptops_at_work = Fleet(fleet, roles, shared, seed, interval, duration, processes, nice)
        laptops_at_work.start()

        deadline = time.monotonic() + duration
        cpu_start, server_cpu_start, wall_start = time.process_time(), server.cpu_seconds(), time.monotonic()
        checked = list(fleet)
        if new_patients_every:
            coordinator = login(laptop_dir, server.url, coordinator_token, "coordinator")
            checked.append(coordinator)

            def new_patients():
                coordinator.reopen()
                rotation = 0
                while time.monotonic() + new_patients_every < deadline:
                    time.sleep(new_patients_every)
                    rotation += 1
                    fresh = shared_records(coordinator.replica, Workload(seed * 7919 + rotation), MUNICIPALITY)
                    coordinator.note_outbox()
                    try:
                        sync(coordinator.replica)
                    except ClientError as exc:
                        errors.append(f"coordinator: {type(exc).__name__}: {exc}")
                    laptops_at_work.share(fresh)

            rotator = threading.Thread(target=new_patients, name="coordinator", daemon=True)
            rotator.start()

        samples, sampling = [], threading.Event()
        if sample_every:
            sampler = threading.Thread(target=_sample, args=(server.process.pid, sample_every, samples, sampling,
                                                             wall_start), name="sampler", daemon=True)
            sampler.start()
        log, worker_errors, counts = laptops_at_work.finish(timeout=duration + 300)
        errors += worker_errors
        sampling.set()
        figures["samples"] = samples
        wall = time.monotonic() - wall_start
        if new_patients_every:
            rotator.join(timeout=new_patients_every + 300)
        for laptop in checked:
            laptop.reopen()
        figures["load_cpu_s"] = round(time.process_time() - cpu_start + counts["cpu_s"], 1)
        figures["load_cpu_share"] = round(figures["load_cpu_s"] / wall, 2)
        figures["server_cpu_s"] = round(server.cpu_seconds() - server_cpu_start, 1)
        figures["server_cpu_share"] = round(figures["server_cpu_s"] / wall, 2)
        figures["wall_s"] = round(wall, 1)

        progress("load: the run is over; every laptop syncs to the head, then the checks ...")
        for _ in range(2):  # the first round sends everything, the second brings everyone to the head
            for laptop in checked:
                sync(laptop.replica)
        problems = []
        for laptop in checked:
            problems += converged(laptop)
        problems += ledger_problems(server.db_path, checked)
        figures["changes_made"] = sum(len(laptop.written) for laptop in checked)
        figures["rejected_by_server"] = sum(laptop.replica.rejected_count() for laptop in checked)
        figures["patients"] = len(checked[0].replica.local_all("patient"))
        codes = {}
        for laptop in checked:
            for rejected in laptop.replica.rejected():
                codes[rejected["error"]["code"]] = codes.get(rejected["error"]["code"], 0) + 1
        figures["rejected_codes"] = codes
        figures["refused_on_laptop"] = counts["refused"]
        figures["conflicts_raised"] = counts["conflicts"]
        figures["open_conflicts_at_end"] = len(fleet[0].replica.conflicts())
        figures["syncs"] = counts["syncs"]
        figures["errors"] = len(errors)
        figures["problems"] = problems
        figures["ok"] = not problems and not errors and counts["syncs"] > 0
        for kind in ("POST /v1/push", "GET /v1/pull"):
            name = kind.split("/")[-1]
            entries = [entry for entry in log if entry[0] == kind]
            figures[f"{name}_requests"] = len(entries)
            answered = [metrics for _, _, _, metrics in entries if "app" in metrics]
            for suffix, times in (("", [t for _, _, t, _ in entries]),
                                  ("_in_server", [m["app"] for m in answered]),
                                  ("_writer_wait", [m.get("writer", 0.0) for m in answered])):
                for label, fraction in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99)):
                    value = percentile(times, fraction)
                    figures[f"{name}{suffix}_{label}_ms"] = None if value is None else round(value * 1000, 1)
        figures.update(answer_counts(log))
        figures["requests"] = len(log)
        failed = figures["dropped"] + figures["answered_5xx"] - (figures["answered_503"] if allow_busy else 0)
        figures["ok"] = figures["ok"] and failed == 0
        for message in errors[:10]:
            progress(f"load: error: {message}")
        for problem in problems[:20]:
            progress(f"load: PROBLEM: {problem}")
        for laptop in checked:
            laptop.close()
    finally:
        server.stop()
        shutil.rmtree(laptop_dir, ignore_errors=True)
    return figures


def _sample(pid, every, samples, stop, started):
    """Every ``every`` seconds until ``stop``: (minute, RSS KiB, open file descriptors) of process ``pid``."""
    while True:
        samples.append((round((time.monotonic() - started) / 60, 1), status_kib(pid),
                        len(os.listdir(f"/proc/{pid}/fd"))))
        if stop.wait(every):
            return


def answer_counts(log):
    """Requests dropped (no answer), answered 5xx (503 among them) and 429, from a TimedSession's log."""
    statuses = [entry[1] for entry in log]
    return {
        "dropped": statuses.count(None),
        "answered_5xx": sum(1 for s in statuses if s is not None and s >= 500),
        "answered_503": statuses.count(503),
        "answered_429": statuses.count(429),
    }


def table(f):
    """The figures as a readable table."""
    rows = [
        ("laptops / duration", f"{f['laptops']} / {f['wall_s']:.0f} s", f"sync every {f['interval_s']:.0f} s"),
        ("store / server processes", f"{f['store']} / {f['server_processes']}", ""),
        ("syncs", f"{f['syncs']}", f"{f['requests']} HTTP requests"),
        ("push latency p50/p95/p99", f"{f['push_p50_ms']}/{f['push_p95_ms']}/{f['push_p99_ms']} ms",
         f"{f['push_requests']} pushes"),
        ("pull latency p50/p95/p99", f"{f['pull_p50_ms']}/{f['pull_p95_ms']}/{f['pull_p99_ms']} ms",
         f"{f['pull_requests']} pull pages"),
        ("  of it in the server's app", f"push {f['push_in_server_p50_ms']}/{f['push_in_server_p95_ms']}/"
         f"{f['push_in_server_p99_ms']} ms", f"pull {f['pull_in_server_p50_ms']}/{f['pull_in_server_p95_ms']}/"
         f"{f['pull_in_server_p99_ms']} ms (Server-Timing)"),
        ("  of that, queued for the writer", f"push {f['push_writer_wait_p50_ms']}/{f['push_writer_wait_p95_ms']}/"
         f"{f['push_writer_wait_p99_ms']} ms", f"pull {f['pull_writer_wait_p50_ms']}/"
         f"{f['pull_writer_wait_p95_ms']}/{f['pull_writer_wait_p99_ms']} ms (Server-Timing)"),
        ("changes made", f"{f['changes_made']}",
         f"{f['conflicts_raised']} answered 'conflict', {f['rejected_by_server']} rejected by a rule"),
        ("sync errors (a laptop gave up)", f"{f['errors']}", ""),
        ("requests dropped / answered 5xx", f"{f['dropped']} / {f['answered_5xx']}",
         f"{f['answered_503']} of them 503 busy; {f['answered_429']} answered 429 (all retried)"),
        ("load generator CPU", f"{f['load_cpu_s']} s",
         f"{f['load_cpu_share']:.0%} of one core, {f['generator_processes']} process(es) at nice "
         f"{f['generator_nice']}"),
        ("server CPU", f"{f['server_cpu_s']} s", f"{f['server_cpu_share']:.0%} of one core"),
        ("converged, nothing lost or doubled", "yes" if not f["problems"] else "NO",
         f"{len(f['problems'])} problem(s)"),
    ]
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{name:<{width}}  {value:>20}  {note}" for name, value, note in rows)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m proof.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--laptops", type=int, default=int(os.environ.get("LAPTOPS") or 50))
    parser.add_argument("--duration", type=float, default=float(os.environ.get("DURATION") or 120))
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between a laptop's syncs")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print only the JSON object")
    parser.add_argument("--postgres", metavar="URL", default=os.environ.get("POSTGRES") or None,
                        help="serve from a scratch database on this PostgreSQL server (made and dropped)")
    parser.add_argument("--workers", type=int, default=4, help="server processes with --postgres")
    parser.add_argument("--processes", type=int, default=PROCESSES,
                        help="load generator processes the laptops are spread over (1: all in one)")
    parser.add_argument("--nice", type=int, default=NICE,
                        help="how much lower the generator's priority is than the server's (0: the same)")
    parser.add_argument("--allow-busy", action="store_true",
                        help="503 with Retry-After is backpressure: do not fail the run for it (dropped still fails)")
    parser.add_argument("--repeat", type=int, default=int(os.environ.get("REPEAT") or 1),
                        help="runs one after another, each on a fresh server, and their latencies' medians")
    args = parser.parse_args(argv)
    if args.duration > 3600 or args.laptops > 500 or not 1 <= args.repeat <= 10:
        parser.error("bounded: at most 3600 s, 500 laptops and 10 runs")
    quiet = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    runs = []
    for number in range(args.repeat):
        if args.repeat > 1:
            quiet(f"load: run {number + 1} of {args.repeat}")
        workdir = tempfile.mkdtemp(prefix="hemsync-load-")
        try:
            with contextlib.ExitStack() as stack:
                database = stack.enter_context(scratch_database(args.postgres)) if args.postgres else None
                runs.append(run(args.laptops, args.duration, args.interval, args.seed, workdir, progress=quiet,
                                database=database, workers=args.workers if database else 1,
                                allow_busy=args.allow_busy, processes=args.processes, nice=args.nice))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        if not args.json:
            print()
            print(table(runs[-1]))
            print()
    figures = runs[0] if len(runs) == 1 else repeated(runs)
    if len(runs) > 1 and not args.json:
        for key in SPREAD:
            print(f"{key} over {len(runs)} runs: {', '.join(str(v) for v in figures[key + '_runs'])}; "
                  f"median {figures[key + '_median']}")
        print()
    print(json.dumps(figures))
    return 0 if figures["ok"] else 1


#: The latencies whose spread over repeated runs ``make load`` prints: on a shared machine one run's
#: tail says little (eight identical 60-s runs of 200 laptops every 10 s gave push p99 200-532 ms).
SPREAD = ("push_p99_ms", "push_p95_ms", "push_writer_wait_p99_ms", "pull_p99_ms")


def repeated(runs):
    """The figures of several runs of one load: each run whole, the latencies' values and medians, ok if all were."""
    figures = {"runs": runs, "ok": all(f["ok"] for f in runs)}
    for key in SPREAD:
        values = [f[key] for f in runs if f.get(key) is not None]
        figures[key + "_runs"] = values
        figures[key + "_median"] = statistics.median(values) if values else None
    return figures


if __name__ == "__main__":
    sys.exit(main())
