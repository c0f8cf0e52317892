"""Where sync time goes: cProfile of the server's push and pull, replayed in-process, summed by area.

The bench's server runs in a subprocess under cheroot, whose worker threads
cProfile cannot see; here the same app (``create_app``) answers the same
gzip'd batches and pull pages through Flask's test client, so the profile
holds the server's own work without the sockets. ``python -m proof.profile``
prints the areas and the top functions.

``--postgres URL`` replays it on a scratch database of that PostgreSQL server;
``--timed K`` leaves the profiler out and prints the push's wall and CPU rates,
best of K runs (how each step on the push path was measured); ``--scale RECORDS``
first loads a region's RECORDS records into the store (proof/scale.py, as the
bench at scale does), so the profile is of a server that already holds them.

Example: python -m proof.profile --n 2000
"""

import argparse
import contextlib
import cProfile
import gzip
import io
import json
import pstats
import sys
import tempfile
import time
import uuid

import brotli

from schema.clock import HybridClock
from server import auth, create_app

from .scale import preload
from .server_process import scratch_database
from .workload import Workload

__all__ = ["server_profiles", "areas", "main"]

#: (area, what a function's file path contains), first match wins.
AREAS = (
    ("marshmallow validation", "marshmallow/"),
    ("merge rules (schema/)", "/schema/"),
    ("server store (SQL)", "server/store/"),
    ("server push/pull/audit", "/server/"),
    ("sqlite3", "sqlite3"),
    # On PostgreSQL: the driver, and its waits for the database's answers (cProfile's clock is the wall's).
    ("psycopg (PostgreSQL)", "psycopg"),
    ("json", "json/"),
    ("gzip/zlib", "gzip"),
    ("gzip/zlib", "zlib"),
    ("brotli", "brotli"),
    ("flask/werkzeug", "werkzeug/"),
    ("flask/werkzeug", "flask/"),
    ("client replica/sync", "client_sync/"),
    ("requests/urllib3/http", "requests/"),
    ("requests/urllib3/http", "urllib3/"),
    ("requests/urllib3/http", "http/client"),
)


def _area(filename, name):
    text = f"{filename}:{name}"
    for area, needle in AREAS:
        if needle in text:
            return area
    return "other"


def areas(profile):
    """``[(area, seconds of own time, share)]``, largest first."""
    stats = pstats.Stats(profile)
    totals = {}
    for (filename, _, name), (_, _, tottime, _, _) in stats.stats.items():
        area = _area(filename, name)
        totals[area] = totals.get(area, 0.0) + tottime
    whole = sum(totals.values()) or 1.0
    return sorted(((a, t, t / whole) for a, t in totals.items()), key=lambda x: -x[1])


def top(profile, limit=15, sort="tottime"):
    """The top functions of a profile, as text."""
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats(sort).print_stats(limit)
    return "\n".join(line for line in out.getvalue().splitlines() if line.strip())


def server_profiles(n, batch=100, page=500, seed=1, database=None, profiled=True, scale=0,
                    progress=print):
    """Profile the server pushing ``n`` visits with vitals, then a fresh device pulling them; return both profiles and rates.

    ``database``: a PostgreSQL URL to serve from instead of a scratch SQLite file.
    ``profiled=False`` runs without the profiler and adds ``push_cpu_per_s``, the push's
    rate of this process's CPU time (on PostgreSQL the wall rate holds the database's work
    and the round trips, the CPU rate not). ``scale``: records of a region loaded into the
    store first (:func:`proof.scale.preload`).
    """
    directory = tempfile.mkdtemp(prefix="hemsync-profile-")
    app = create_app({"HEMSYNC_DATABASE_URL": database} if database else {"HEMSYNC_DB": f"{directory}/server.db"})
    store = app.extensions["hemsync.store"]
    if scale:
        preload(database or f"{directory}/server.db", scale, progress=progress)
    auth.add_municipality(store, "Profilby")
    user = auth.add_user(store, "Anna Profil", "doctor", ["Profilby"])
    device, token = auth.enroll(store, user["id"])
    _, other_token = auth.enroll(store, user["id"])
    client = app.test_client()
    work, clock, ops = Workload(seed), HybridClock(), iter(range(1, 10 ** 9))

    def headers(tok, body=True):
        h = {"Authorization": f"Bearer {tok}", "X-Hemsync-Client": "0.1.0", "Accept-Encoding": "br, gzip"}
        return {**h, "Content-Encoding": "gzip", "Content-Type": "application/json"} if body else h

    def change(record_type, record_id, fields):
        return {"change_id": str(uuid.uuid4()), "record_type": record_type, "record_id": record_id,
                "device_id": device["id"], "op": next(ops), "hlc": str(clock.now()), "base": {}, "fields": fields}

    def push(changes):
        body = gzip.compress(json.dumps({"pending": 0, "changes": changes}).encode())
        answer = client.post("/v1/push", data=body, headers=headers(token))
        assert answer.status_code == 200, answer.data[:300]

    patients = [work.uuid() for _ in range(max(10, n // 100))]
    push([change("patient", p, work.patient("Profilby")) for p in patients])
    changes = []
    for i in range(n):
        vid, visit, oid, vitals = work.visit_with_vitals(patients[i % len(patients)])
        changes += [change("visit", vid, visit), change("observation", oid, vitals)]
    push_profile = cProfile.Profile() if profiled else contextlib.nullcontext()
    start, cpu = time.perf_counter(), time.process_time()
    with push_profile:
        for first in range(0, len(changes), batch):
            push(changes[first:first + batch])
    push_rate, push_cpu_rate = n / (time.perf_counter() - start), n / (time.process_time() - cpu)

    pull_profile = cProfile.Profile() if profiled else contextlib.nullcontext()
    cursor, start = None, time.perf_counter()
    with pull_profile:
        while True:
            query = {"limit": page, **({"cursor": cursor} if cursor else {})}
            answer = client.get("/v1/pull", query_string=query, headers=headers(other_token, body=False))
            unpack = {"br": brotli.decompress, "gzip": gzip.decompress}.get(answer.headers.get("Content-Encoding"))
            data = json.loads(unpack(answer.data) if unpack else answer.data)
            if not data["more"]:
                break
            cursor = data["cursor"]
    pull_rate = n / (time.perf_counter() - start)
    store.close()
    return {"push": push_profile, "pull": pull_profile, "push_per_s": push_rate, "pull_per_s": pull_rate,
            "push_cpu_per_s": push_cpu_rate}


def report(name, profile, rate, limit=12):
    """A profile as text: the rate under the profiler, the areas, the top functions."""
    lines = [f"--- {name}: {rate:,.0f} visits/s under cProfile ---"]
    lines += [f"  {area:<26} {seconds:7.2f} s  {share:6.1%}" for area, seconds, share in areas(profile)]
    lines.append(top(profile, limit))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m proof.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--postgres", metavar="URL", help="replay on a scratch database of this PostgreSQL server")
    parser.add_argument("--timed", type=int, metavar="K", help="no profiler: the push's rates, best of K runs")
    parser.add_argument("--scale", type=int, default=0, metavar="RECORDS",
                        help="first load a region's RECORDS records into the store (proof/scale.py)")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        if args.timed:
            runs = []
            for _ in range(args.timed):
                database = stack.enter_context(scratch_database(args.postgres)) if args.postgres else None
                runs.append(server_profiles(args.n, database=database, profiled=False, scale=args.scale))
            walls = ", ".join(f"{r['push_per_s']:,.0f}" for r in runs)
            print(f"server push, N={args.n}, best of {args.timed}: "
                  f"{max(r['push_per_s'] for r in runs):,.0f} visits/s wall, "
                  f"{max(r['push_cpu_per_s'] for r in runs):,.0f} visits/s of this process's CPU (runs: {walls})")
            return 0
        database = stack.enter_context(scratch_database(args.postgres)) if args.postgres else None
        found = server_profiles(args.n, database=database, scale=args.scale)
    print(report("server push", found["push"], found["push_per_s"]))
    print(report("server pull", found["pull"], found["pull_per_s"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
