"""FHIR Bulk Data export (``$export``): asynchronous, streamed to NDJSON files, audited per patient.

The kick-off notes the feed's head and starts a thread that walks the client's
scope through the store's feed a page at a time (``records_since``), writing
each resource as one line of its type's file as it goes: memory holds one page,
never the export. Records are read in feed order up to the head noted at the
kick-off; then again from there to the head at that moment, and so on until a
pass finds nothing new, so a record written while the export runs is never
missed (its newer state may then follow its older one: the later line is the
newer). Each page's patients go to the audit log, one entry per patient and
page, like a pull. The job's state is a small JSON file beside its NDJSON files
(HEMSYNC_FHIR_EXPORT_DIR/<job id>/), so any thread of the process can answer
its status URL.
"""

import collections
import datetime as dt
import json
import logging
import os
import pathlib
import shutil
import threading
import uuid

from schema.clock import utcnow

from .. import audit
from ..errors import NotFound
from .elements import instant
from .resources import resources_of

__all__ = ["PAGE", "kick_off", "pages", "run", "status", "cancel", "output_file", "STALE_AFTER"]

log = logging.getLogger(__name__)
PAGE = 500
#: A running export whose progress is older than this has died with its process: it is reported failed.
STALE_AFTER = dt.timedelta(minutes=10)
_JOB = "job.json"
_CANCEL = "cancelled"


def _directory(settings, job_id):
    try:
        uuid.UUID(hex=job_id)
    except ValueError:
        raise NotFound(f"no export {job_id}: kick one off with GET /fhir/r4/$export") from None
    return pathlib.Path(settings["HEMSYNC_FHIR_EXPORT_DIR"]) / job_id


def _save(directory, job):
    job["updated_at"] = utcnow().isoformat()
    temporary = directory / (_JOB + ".tmp")
    temporary.write_text(json.dumps(job))
    os.replace(temporary, directory / _JOB)


def _load(settings, device, job_id):
    directory = _directory(settings, job_id)
    try:
        job = json.loads((directory / _JOB).read_text())
    except (FileNotFoundError, NotADirectoryError):
        job = None
    # Another client's export does not exist for this one.
    if job is None or job["device_id"] != device["id"] or (directory / _CANCEL).exists():
        raise NotFound(f"no export {job_id} of this client: it was deleted, or never made")
    return directory, job


def kick_off(store, settings, device, user, keys, types, request_url, start=True):
    """Start an export of scope ``keys`` (only resource ``types``, when given); return its job id.

    With ``start`` False the caller runs it (:func:`run`), as the bench does.
    """
    job_id = uuid.uuid4().hex
    directory = _directory(settings, job_id)
    directory.mkdir(parents=True, mode=0o700)
    job = {"id": job_id, "device_id": device["id"], "user_id": user["id"], "request": request_url,
           "types": sorted(types) if types else None, "status": "running",
           "transactionTime": instant(utcnow()), "upto": store.head(), "records": 0, "output": {}}
    _save(directory, job)
    if start:
        threading.Thread(target=run, args=(store, directory, job, keys, user, device), daemon=True,
                         name=f"fhir-export-{job_id}").start()
    return job_id


def pages(store, keys, upto):
    """Pages of stored records in scope: up to ``upto``, then on to the head until a pass finds nothing."""
    after = 0
    while True:
        page = store.records_since(after, keys, PAGE, upto=upto)
        if page:
            after = page[-1].seq
            yield page
            continue
        head = store.head()
        if head <= upto:
            return
        upto = head


def run(store, directory, job, keys, user, device):
    """Write the export's NDJSON files and its manifest data; never raises (a failure is the job's status)."""
    counts, files = collections.Counter(), {}
    types = set(job["types"] or ())
    try:
        for page in pages(store, keys, job["upto"]):
            if (directory / _CANCEL).exists():
                break
            shown = []
            for stored in page:
                for patient_id, resource in resources_of(stored, keys.full):
                    kind = resource["resourceType"]
                    if types and kind not in types:
                        continue
                    if kind not in files:
                        files[kind] = open(directory / f"{kind}.ndjson", "w", encoding="utf-8")
                    files[kind].write(json.dumps(resource, ensure_ascii=False, separators=(",", ":")) + "\n")
                    counts[kind] += 1
                    shown.append((patient_id, f"{stored.type}/{stored.id}"))
            store.audit(audit.shown(user, device, shown, "GET /fhir/r4/$export"))
            job["records"] += len(page)
            _save(directory, job)
        job |= {"status": "complete", "output": dict(counts)}
    except Exception as exc:  # the client polls for it: a failed export must say so, not run forever
        log.exception("FHIR export %s failed", job["id"])
        job |= {"status": "failed", "error": f"the export failed ({type(exc).__name__}); it is logged: "
                                             "kick off a new one"}
    finally:
        for handle in files.values():
            handle.close()
    if (directory / _CANCEL).exists():
        shutil.rmtree(directory, ignore_errors=True)
        return job
    _save(directory, job)
    return job


def status(settings, device, job_id, base_url):
    """``(state, body)`` of an export for its client: ``running`` (body: records read), ``complete``
    (body: the Bulk Data manifest) or ``failed`` (body: why). Raises NotFound for anyone else's."""
    _, job = _load(settings, device, job_id)
    if job["status"] == "running":
        if utcnow() - dt.datetime.fromisoformat(job["updated_at"]) > STALE_AFTER:
            return "failed", "the export stopped without finishing (the server restarted): kick off a new one"
        return "running", job["records"]
    if job["status"] == "failed":
        return "failed", job["error"]
    return "complete", {
        "transactionTime": job["transactionTime"], "request": job["request"], "requiresAccessToken": True,
        "output": [{"type": kind, "url": f"{base_url}/$export-file/{job_id}/{kind}.ndjson", "count": count}
                   for kind, count in sorted(job["output"].items())],
        "error": []}


def cancel(settings, device, job_id):
    """Cancel an export and delete its files (a running one stops at its next page)."""
    directory, job = _load(settings, device, job_id)
    (directory / _CANCEL).touch()
    if job["status"] != "running":
        shutil.rmtree(directory, ignore_errors=True)


def output_file(settings, device, job_id, name):
    """The path of one NDJSON file of a complete export of this client; raise NotFound otherwise."""
    directory, job = _load(settings, device, job_id)
    kind, dot, extension = name.partition(".")
    if job["status"] != "complete" or extension != "ndjson" or kind not in job["output"]:
        raise NotFound(f"export {job_id} has no file {name}: read the manifest at its status URL")
    return directory / name
