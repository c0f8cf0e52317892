"""The FHIR Bulk Data export at scale: records per second and peak memory for N patients.

Fills a fresh SQLite store with N patients of one municipality, each with a
documented home visit and its vitals (proof/workload.py), written through the
server's write path; then runs one ``$export`` for an
integration client of that municipality, in this process, as the server's export
thread runs it (server.fhir.bulk.run: NDJSON files, audit per patient and page).
Memory is Python's peak allocation during the export (tracemalloc, which also
slows it: the rate is a lower bound), the figure that shows the export streams:
it stays flat as N grows.

Example: python -m proof.fhir_export --n 50000
"""

import argparse
import json
import pathlib
import shutil
import tempfile
import time
import tracemalloc

from schema.clock import utcnow
from schema.merge import SYSTEM
from server import auth, settings
from server.fhir import bulk
from server.scope import keys_for
from server.store import SqliteStore
from server.writes import WriteApplier

from .workload import Workload

__all__ = ["fill", "export", "run", "main"]

MUNICIPALITY = "Bänkby"
BATCH = 500


def fill(store, values, n, seed=0):
    """Write ``n`` patients, each with a visit and its vitals, through the write path.

    They are written as the server acting for their nurse and doctor (as an admin
    command is), so the fill does not recompute a nurse's growing scope after every
    new patient: the bench measures the export, not the fill.
    """
    auth.add_municipality(store, MUNICIPALITY)
    nurse = auth.add_user(store, "Bänk Sköterska", "nurse", [MUNICIPALITY])
    doctor = auth.add_user(store, "Bänk Läkare", "doctor", [MUNICIPALITY])
    work, now = Workload(seed), utcnow()
    for start in range(0, n, BATCH):
        with store.transaction():
            by_nurse = WriteApplier(store, values, {"id": "bench/nurse"}, {"id": nurse["id"], "role": SYSTEM.role},
                                    now)
            by_doctor = WriteApplier(store, values, {"id": "bench/doctor"}, {"id": doctor["id"], "role": SYSTEM.role},
                                     now)
            by_doctor.clock = by_nurse.clock
            for _ in range(start, min(n, start + BATCH)):
                patient_id = work.uuid()
                by_nurse.write("patient", patient_id, work.patient(MUNICIPALITY))
                visit_id, visit, observation_id, vitals = work.visit_with_vitals(patient_id)
                by_nurse.write("observation", observation_id, vitals)
                by_doctor.write("visit", visit_id, {**visit, "doctor_id": doctor["id"]})
            by_nurse.finish()


def export(store, values, client, device):
    """Run one ``$export`` of the client's scope to the end; return ``(job, seconds, peak bytes)``."""
    keys = keys_for(store, client)
    job_id = bulk.kick_off(store, values, device, client, keys, None, "bench", start=False)
    directory = pathlib.Path(values["HEMSYNC_FHIR_EXPORT_DIR"]) / job_id
    job = json.loads((directory / "job.json").read_text())
    tracemalloc.start()
    started = time.perf_counter()
    job = bulk.run(store, directory, job, keys, client, device)
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return job, directory, seconds, peak


def run(n, directory=None, seed=0):
    """Fill and export ``n`` patients in ``directory`` (a temporary one by default); return the figures."""
    work_dir = pathlib.Path(directory or tempfile.mkdtemp(prefix="hemsync-fhir-bench-"))
    try:
        values = settings.load(overrides={"HEMSYNC_DB": str(work_dir / "bench.db"),
                                          "HEMSYNC_FHIR_EXPORT_DIR": str(work_dir / "exports")})
        store = SqliteStore(work_dir / "bench.db")
        try:
            started = time.perf_counter()
            fill(store, values, n, seed)
            filled = time.perf_counter() - started
            client, device, _ = auth.add_client(store, "Bänk dataplattform", [MUNICIPALITY])
            job, out, seconds, peak = export(store, values, client, device)
        finally:
            store.close()
        if job["status"] != "complete":
            raise SystemExit(f"the export failed: {job.get('error')}")
        resources = sum(job["output"].values())
        return {"patients": n, "records": job["records"], "resources": resources, "fill_seconds": round(filled, 1),
                "export_seconds": round(seconds, 2), "records_per_s": round(job["records"] / seconds),
                "resources_per_s": round(resources / seconds), "peak_python_mib": round(peak / 2 ** 20, 1),
                "ndjson_mib": round(sum(p.stat().st_size for p in out.glob("*.ndjson")) / 2 ** 20, 1),
                "output": job["output"]}
    finally:
        if directory is None:
            shutil.rmtree(work_dir, ignore_errors=True)


def main(argv=None):
    """``python -m proof.fhir_export --n N [--json]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="patients (each with a visit and its vitals)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object only")
    args = parser.parse_args(argv)
    figures = run(args.n)
    if args.json:
        print(json.dumps(figures))
        return
    print(f"FHIR $export of {figures['patients']} patients ({figures['records']} records, "
          f"{figures['resources']} resources, {figures['ndjson_mib']} MiB NDJSON): "
          f"{figures['records_per_s']} records/s, {figures['resources_per_s']} resources/s, "
          f"peak Python memory {figures['peak_python_mib']} MiB (filled in {figures['fill_seconds']} s)")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
