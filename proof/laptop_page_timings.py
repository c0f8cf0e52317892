"""``make bench`` (the laptop's pages): how long each of the doctor's pages takes on a municipality's replica.

Issue 11's target: every page of ``hemsync ui`` within 200 ms with a replica
holding a municipality's 5,000 patients and 100,000 records. The server holds the
demo region and a caseload in Anna Berg's municipalities (Halmstad, Laholm,
Hylte) built by :mod:`proof.caseload`: two years of care per patient, about 19
records each (signed visits, vitals, medications, warnings, requests, stays,
admissions, rounds); ``--requests`` of them have an open request assigned to
her. Anna Berg's laptop logs in and syncs from the real server over loopback
HTTP, so the replica is what an initial sync makes. Each page is then fetched
through the pages' WSGI interface (Flask's test client, signed in with the launch
link: the whole request, the Host check, the session, the replica reads, the
access-log write and the template): the first showing, then the median and the
slowest of ``--rounds`` more, as :mod:`proof.page_timings` does for the server's
pages. The patient pages are those of the patient with the most records.

Example: python -m proof.laptop_page_timings --patients 5000 --requests 20
"""

import threading
import time

from client_sync.http import SyncClient
from client_sync.replica import Replica
from client_sync.sync import sync
from client_sync.ui import create_app as create_pages
from server import auth, create_app, seed
from server.store import SqliteStore
from server.wsgi import make_server

from . import caseload
from .page_timings import command, timed

__all__ = ["main", "run", "TARGET_MS"]

TARGET_MS = 200
PORT = 8765
ORIGIN = f"http://127.0.0.1:{PORT}"


def _laptop(store, app, workdir, progress):
    """Anna Berg's replica, logged in and synced from the server served on a loopback port in this process."""
    server = make_server(app, host="127.0.0.1", port=0, threads=4)
    server.prepare()
    threading.Thread(target=server.serve, daemon=True).start()
    url = f"http://127.0.0.1:{server.bind_addr[1]}"
    try:
        _, token = auth.enroll(store, seed.demo_users()["doctor-anna"], "bench laptop")
        replica = Replica(f"{workdir}/anna.db")
        client = SyncClient(url, token)
        replica.login(client.base_url, token, client.handshake(0, 0))
        start = time.perf_counter()
        report = sync(replica, client=client)
        progress(f"synced {report.pulled:,} records to the laptop in {time.perf_counter() - start:.0f} s")
        return replica
    finally:
        server.stop()


def _pages(replica):
    """The pages to time: one of each kind, on the first patient, request and round the replica holds."""
    user_id = replica.actor().user_id
    [patient] = replica.conn.execute("SELECT patient_id FROM records WHERE patient_id IS NOT NULL "
                                     "GROUP BY patient_id ORDER BY count(*) DESC, patient_id LIMIT 1").fetchone()
    mine = [r for r in replica.local_naming("visit_request", user_id)]
    rounds = [r for r in replica.local_naming("round", user_id)]
    paths = ["/today", "/today?part=board", "/caseload", "/caseload?q=Testsson", f"/patients/{patient}",
             f"/patients/{patient}/vitals", f"/patients/{patient}/news2?pulse=104&spo2=93",
             f"/patients/{patient}/medications/new", "/rounds", "/conflicts", "/sync"]
    if mine:
        paths.append(f"/requests/{mine[0].id}/note")
    if rounds:
        paths.append(f"/rounds/{rounds[0].id}")
    return paths


def time_pages(replica_path, paths, rounds=5):
    """Each page's first, median and slowest time (ms) and size, fetched ``rounds`` times after the first."""
    app = create_pages(replica_path, port=PORT, secret="bench")
    client = app.test_client()
    client.get("/launch?key=bench", base_url=ORIGIN)
    return {path: timed(client, path, rounds, base_url=ORIGIN) for path in paths}


def run(patients, open_requests, workdir, rounds=5, progress=print):
    """Build the caseload on the server, sync Anna Berg's laptop, time its pages; return the figures."""
    store = SqliteStore(f"{workdir}/server.db")
    app = create_app({"STORE": store, "HEMSYNC_DB": f"{workdir}/server.db"})
    seed.seed_demo(store, app.config["HEMSYNC"])
    progress(f"building a caseload of {patients:,} patients, {open_requests:,} of them with a request assigned to "
             "Anna Berg")
    start = time.perf_counter()
    built = caseload.build(store, patients, open_requests, progress=progress)
    progress(f"built {sum(built.values()):,} records in {time.perf_counter() - start:.0f} s")
    replica = _laptop(store, app, workdir, progress)
    held = {kind: count for kind, count in replica.conn.execute("SELECT type, count(*) FROM records GROUP BY type")}
    paths = _pages(replica)
    replica.close()
    store.close()
    figures = time_pages(f"{workdir}/anna.db", paths, rounds)
    return {"pages": figures, "replica_records": held, "patients_on_laptop": held.get("patient", 0),
            "slowest_ms": max(max(f["max_ms"], f["first_ms"]) for f in figures.values()), "target_ms": TARGET_MS}


def table(figures):
    """The figures as a table for people."""
    lines = [f"{'page':52} {'first':>7} {'median':>7} {'max':>7} {'KB':>5}"]
    for path, page in figures["pages"].items():
        lines.append(f"{path[:52]:52} {page['first_ms']:>7.1f} {page['median_ms']:>7.1f} {page['max_ms']:>7.1f} "
                     f"{page['bytes'] / 1024:>5.0f}")
    total = sum(figures["replica_records"].values())
    lines.append(f"replica: {figures['patients_on_laptop']:,} patients, {total:,} records; slowest "
                 f"{figures['slowest_ms']:.0f} ms (target {TARGET_MS})")
    return "\n".join(lines)


def main(argv=None):
    """Run the laptop page timings and print a table and one JSON object."""
    command("python -m proof.laptop_page_timings", __doc__.split("\n\n")[0], run, table, 5_000, 20,
            "hemsync-laptop-pages-", argv)


if __name__ == "__main__":
    main()
