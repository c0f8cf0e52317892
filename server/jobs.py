"""The server's background jobs: plain functions, wired to APScheduler (3.x) in one place.

:func:`escalate_due` is the escalation job of DOMAIN.md "Dispatch": it marks the
open requests whose effective deadline is less than ``escalate_before`` away and
that have no accepted doctor. For each, in one transaction:

- an entry in the escalation feed (kind ``deadline``), whose unique key
  (request, kind) lets only one of several racing server processes add it;
- ``escalated_at`` set through the merge as :data:`schema.merge.SYSTEM`, with a
  change id derived from the request, so it reaches the dispatchers' laptops
  through the feed like any change;
- an ``escalation`` entry in the audit log.

On SQLite the transaction takes the write lock before it reads the queue, so a
second process sees the first one's work and has nothing to do; the unique key
is the guard that holds on a database where two transactions may read at once.

Acute requests received outside working hours carry ``out_of_hours`` from their
creation; the job puts each such request that no doctor has accepted into the
feed at once (kind ``out_of_hours``), for the on-call service.

:func:`scheduler` builds the one ``BackgroundScheduler`` that ``hemsync-server
serve`` starts; tests and ``hemsync-server escalate`` call the job directly.
"""

import ctypes
import datetime as dt
import logging
import platform
import uuid

from apscheduler.schedulers.background import BackgroundScheduler

from schema.clock import utcnow
from schema.dispatch import UNACCEPTED, due_for_escalation, queue_entries

from . import audit, queue
from .settings import dispatch_settings
from .writes import SERVER_DEVICE, SERVER_USER, WriteApplier

__all__ = ["ESCALATION_JOB", "MEMORY_JOB", "SERVER_DEVICE", "escalate_due", "return_freed_memory", "run_escalation",
           "scheduler"]

log = logging.getLogger(__name__)

#: The APScheduler job id of the escalation job.
ESCALATION_JOB = "hemsync-escalation"
#: The APScheduler job id of the job that gives freed memory back to the system, and its interval.
MEMORY_JOB = "hemsync-return-memory"
MEMORY_INTERVAL_SECONDS = 60
#: glibc's allocator, where the server runs on it (Linux but Alpine): None elsewhere.
_GLIBC = ctypes.CDLL(None) if platform.libc_ver()[0] == "glibc" else None
_NAMESPACE = uuid.UUID("5d0f3c1e-8a57-4b8e-9f65-2f1d7c3a9e04")


def escalate_due(store, now, settings):
    """Escalate what is due at ``now`` (aware); return the escalation feed entries added.

    Safe to run in several processes at once: a request is escalated once.
    """
    now = now.astimezone(dt.timezone.utc)
    rules = dispatch_settings(settings)
    added = []
    with store.transaction():
        dispatch = queue.open_view(store)
        entries = queue_entries(dispatch.requests, dispatch.patients, dispatch.observations, now, rules)
        due = set(due_for_escalation(entries, now, rules))
        writes = None
        for entry in entries:
            kinds = []
            if _on_call(entry, dispatch):
                kinds.append("out_of_hours")
            if entry.request_id in due:
                kinds.append("deadline")
            for kind in kinds:
                feed = _feed_entry(entry, dispatch, kind, now)
                feed_id = store.add_escalation(feed)
                if feed_id is None:
                    continue  # in the feed already: another run (or process) was first
                if kind == "deadline":
                    writes = writes or WriteApplier(store, settings, SERVER_DEVICE, SERVER_USER, now)
                    _mark_escalated(writes, entry.request_id, now)
                store.audit([audit.escalated(feed)])
                added.append({"id": feed_id, **feed})
        if writes is not None:
            writes.finish()
    return added


def run_escalation(store, settings):
    """The scheduled run: :func:`escalate_due` at the wall clock's time, logged."""
    for entry in escalate_due(store, utcnow(), settings):
        log.warning("escalated visit request %s (%s): %s", entry["request_id"], entry["kind"],
                    entry["details"]["why"])


def return_freed_memory():
    """Give the memory that finished requests freed back to the system (glibc only); return whether it could.

    glibc keeps what a thread frees in that thread's arena for the next
    allocation. Each of the server's threads builds whole pull pages, and a
    soak of 200 laptops (issue 17) grew the server from 97 to 163 MB in three
    minutes though Python held about 15 MB and SQLite 18 MB: a ``malloc_trim``
    gave 54 MB of it back at once. Run once a minute by :func:`scheduler`.
    """
    if _GLIBC is None:
        return False
    _GLIBC.malloc_trim(0)
    return True


def scheduler(store, settings):
    """A BackgroundScheduler (not started) running the escalation job every HEMSYNC_ESCALATION_INTERVAL s.

    An interval of 0 adds no escalation job: a process that should run none. Every
    process returns freed memory to the system once a minute (:func:`return_freed_memory`).
    """
    made = BackgroundScheduler(timezone=dt.timezone.utc)
    if _GLIBC is not None:
        made.add_job(return_freed_memory, "interval", seconds=MEMORY_INTERVAL_SECONDS, id=MEMORY_JOB,
                     name="give freed memory back to the system", max_instances=1, coalesce=True,
                     replace_existing=True)
    interval = settings["HEMSYNC_ESCALATION_INTERVAL"]
    if interval > 0:
        made.add_job(run_escalation, "interval", seconds=interval, args=(store, settings), id=ESCALATION_JOB,
                     name="escalate visit requests near their deadline", max_instances=1, coalesce=True,
                     replace_existing=True, next_run_time=utcnow())
    return made


def _on_call(entry, dispatch):
    request = dispatch.requests[entry.request_id]
    return entry.urgency == "acute" and bool(request.get("out_of_hours")) and entry.status in UNACCEPTED


def _feed_entry(entry, dispatch, kind, now):
    return {"request_id": entry.request_id, "kind": kind, "patient_id": entry.patient_id,
            "municipality": dispatch.municipality_of(entry.request_id), "at": now.isoformat(),
            "details": queue.feed_entry(entry, dispatch)}


def _mark_escalated(writes, request_id, now):
    """Set ``escalated_at`` through the write path as the server, so it syncs like any change.

    The change id derives from the request: a retried run names the same change,
    applied once. A refusal (a bug) raises ChangeRefused and rolls the whole run
    back, feed entry included.
    """
    writes.write("visit_request", request_id, {"escalated_at": now.isoformat()},
                 change_id=str(uuid.uuid5(_NAMESPACE, f"escalated_at/{request_id}")))
