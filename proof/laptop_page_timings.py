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
slowest of ``--rounds`` more, and the median CPU time of a showing (what the
page costs without the waiting a shared machine adds), as :mod:`proof.page_timings`
does for the server's pages. The patient pages are those of the patient with the
most records; ``?history=50`` is the history after one "Visa fler".

Example: python -m proof.laptop_page_timings --patients 5000 --requests 20
"""

import re
import threading
import time

from client_sync.http import SyncClient
from client_sync.replica import Replica
from client_sync.sync import sync
from client_sync.ui import create_app as create_pages
from client_sync.ui.history import HISTORY_PAGE
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
        seconds = time.perf_counter() - start
        progress(f"synced {report.pulled:,} records to the laptop in {seconds:.0f} s")
        return replica, seconds
    finally:
        server.stop()


def _pages(replica):
    """The pages to time (one of each kind: the patient with the most records, a request assigned to the doctor,
    a round of hers) and that patient's id."""
    user_id = replica.actor().user_id
    [patient] = replica.conn.execute("SELECT patient_id FROM records WHERE patient_id IS NOT NULL "
                                     "GROUP BY patient_id ORDER BY count(*) DESC, patient_id LIMIT 1").fetchone()
    mine = replica.local_naming("visit_request", user_id, statuses=["assigned"])
    rounds = [r for r in replica.local_naming("round", user_id)]
    paths = ["/today", "/today?part=board", "/caseload", "/caseload?q=Testsson", f"/patients/{patient}",
             f"/patients/{patient}/vitals", f"/patients/{patient}/news2?pulse=104&spo2=93",
             f"/patients/{patient}/medications/new", f"/patients/{patient}?history={2 * HISTORY_PAGE}", "/rounds",
             "/conflicts", "/sync"]
    if mine:
        paths.append(f"/requests/{mine[0].id}/note")
    if rounds:
        paths.append(f"/rounds/{rounds[0].id}")
    return paths, patient


def time_pages(replica_path, paths, rounds=5):
    """Each page's first, median and slowest time (ms) and size, fetched ``rounds`` times after the first."""
    app = create_pages(replica_path, port=PORT, secret="bench")
    client = app.test_client()
    client.get("/launch?key=bench", base_url=ORIGIN)
    return {re.sub(r"[0-9a-f-]{36}", "{id}", path): timed(client, path, rounds, base_url=ORIGIN) for path in paths}


def run(patients, open_requests, workdir, rounds=5, progress=print):
    """Build the caseload on the server, sync Anna Berg's laptop, time its pages; return the figures."""
    store = SqliteStore(f"{workdir}/server.db")
    app = create_app({"STORE": store, "HEMSYNC_DB": f"{workdir}/server.db"})
    seed.seed_demo(store, app.config["HEMSYNC"])
    progress(f"building a caseload of {patients:,} patients, {open_requests:,} of them with a request assigned to "
             "Anna Berg")
    start = time.perf_counter()
    built = caseload.build(store, patients, open_requests, progress=progress)
    build_s = time.perf_counter() - start
    progress(f"built {sum(built.values()):,} records in {build_s:.0f} s")
    replica, sync_s = _laptop(store, app, workdir, progress)
    held = {kind: count for kind, count in replica.conn.execute("SELECT type, count(*) FROM records GROUP BY type")}
    paths, patient = _pages(replica)
    [patient_records] = replica.conn.execute("SELECT count(*) FROM records WHERE patient_id = ?",
                                             (patient,)).fetchone()
    replica.close()
    store.close()
    figures = time_pages(f"{workdir}/anna.db", paths, rounds)
    return {"pages": figures, "replica_records": held, "patients_on_laptop": held.get("patient", 0),
            "patient_page_records": patient_records, "build_s": round(build_s, 1), "sync_s": round(sync_s, 1),
            "slowest_ms": max(max(f["max_ms"], f["first_ms"]) for f in figures.values()), "target_ms": TARGET_MS}


def table(figures):
    """The figures as a table for people."""
    lines = [f"{'page (ms)':42} {'first':>7} {'median':>7} {'max':>7} {'cpu':>6} {'KB':>5}"]
    for path, page in figures["pages"].items():
        lines.append(f"{path[:42]:42} {page['first_ms']:>7.1f} {page['median_ms']:>7.1f} {page['max_ms']:>7.1f} "
                     f"{page['cpu_median_ms']:>6.1f} {page['bytes'] / 1024:>5.0f}")
    total = sum(figures["replica_records"].values())
    lines.append(f"replica: {figures['patients_on_laptop']:,} patients, {total:,} records (built in "
                 f"{figures['build_s']:.0f} s, synced in {figures['sync_s']:.0f} s); the patient pages' patient has "
                 f"{figures['patient_page_records']} records; slowest {figures['slowest_ms']:.0f} ms "
                 f"(target {TARGET_MS})")
    return "\n".join(lines)


def main(argv=None):
    """Run the laptop page timings and print a table and one JSON object."""
    command("python -m proof.laptop_page_timings", __doc__.split("\n\n")[0], run, table, 5_000, 20,
            "hemsync-laptop-pages-", argv)


if __name__ == "__main__":
    main()
