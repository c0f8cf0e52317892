"""Background sync (`hemsync run`): every N seconds, and soon after a local change.

The jobs are plain functions (:func:`sync_once`, :func:`outbox_mark`), callable
from tests and the CLI; :class:`BackgroundSync` wires them to APScheduler 3.x in
this one place, with explicit job ids. Local changes are made by other
processes (`hemsync put` in another window), so the watch job looks at the
replica's operation counter, a cheap read, rather than waiting for a signal.
Two syncs never overlap: the job runs one instance at a time, and the sync lock
keeps a `hemsync sync` in another window apart.
"""

import datetime as dt

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

from schema.clock import utcnow

from .errors import ClientError, ClientTooOld, ConnectionLost, DeviceRevoked, NotLoggedIn, SyncBusy, Unauthorized
from .replica import Replica
from .sync import client_for, sync

__all__ = ["SYNC_JOB", "WATCH_JOB", "sync_once", "outbox_mark", "BackgroundSync", "run_background"]

SYNC_JOB = "hemsync-sync"
WATCH_JOB = "hemsync-watch-local-changes"
WATCH_SECONDS = 2
#: Errors after which syncing again cannot help until a person acts.
FATAL = (DeviceRevoked, ClientTooOld, Unauthorized, NotLoggedIn)


def sync_once(replica_path, echo=print, **client_options):
    """Run one sync of the replica at ``replica_path``; return ``synced``, ``offline``, ``busy``, ``failed`` or ``stop``.

    ``client_options`` go to the SyncClient (retries, timeout).
    """
    replica = Replica(replica_path)
    try:
        report = sync(replica, client=client_for(replica, **client_options))
    except SyncBusy:
        return "busy"
    except ConnectionLost as exc:
        echo(f"offline: {exc}")
        return "offline"
    except FATAL as exc:
        echo(f"stopping background sync: {exc}")
        return "stop"
    except ClientError as exc:
        attempts = (replica.setting("last_sync_error") or {}).get("attempts", 1)
        echo(f"sync failed ({attempts} time(s) in a row; `hemsync status` shows it), trying again later: {exc}")
        return "failed"
    finally:
        replica.close()
    if report.applied or report.conflicts or report.rejected or report.pulled or report.purged:
        echo(f"synced: sent {report.applied + report.conflicts + len(report.rejected)}, "
             f"received {report.pulled}, {report.unsent} waiting")
    return "synced"


def outbox_mark(replica_path):
    """The replica's operation counter: it grows with every local change."""
    replica = Replica(replica_path)
    try:
        return replica.setting("op", 0)
    finally:
        replica.close()


class BackgroundSync:
    """The scheduler of `hemsync run`: a periodic sync and a watch for local changes."""

    def __init__(self, replica_path, *, interval=300, after_change=10, echo=print, blocking=True):
        self.replica_path = replica_path
        self.after_change = after_change
        self.echo = echo
        self.outcomes = []
        self._mark = outbox_mark(replica_path)
        kind = BlockingScheduler if blocking else BackgroundScheduler
        self.scheduler = kind(timezone=dt.timezone.utc)
        # coalesce + one instance: a laptop waking from sleep syncs once, not once per missed interval.
        self.scheduler.add_job(self.sync, "interval", seconds=interval, id=SYNC_JOB, max_instances=1,
                               coalesce=True, next_run_time=utcnow())
        self.scheduler.add_job(self.watch, "interval", seconds=WATCH_SECONDS, id=WATCH_JOB, max_instances=1,
                               coalesce=True)

    def sync(self):
        """The sync job: one sync; a fatal answer stops the scheduler."""
        outcome = sync_once(self.replica_path, self.echo)
        self.outcomes.append(outcome)
        if outcome == "stop":
            self.scheduler.shutdown(wait=False)

    def watch(self):
        """The watch job: after a local change, bring the next sync forward to ``after_change`` seconds."""
        mark = outbox_mark(self.replica_path)
        if mark == self._mark:
            return
        self._mark = mark
        soon = utcnow() + dt.timedelta(seconds=self.after_change)
        job = self.scheduler.get_job(SYNC_JOB)
        if job is not None and (job.next_run_time is None or job.next_run_time > soon):
            job.modify(next_run_time=soon)

    def start(self):
        """Start the scheduler (blocks for a blocking scheduler until stopped)."""
        self.scheduler.start()

    def stop(self):
        """Stop the scheduler without waiting for a running sync (its lock dies with it)."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)


def run_background(replica_path, *, interval=300, after_change=10, echo=print):
    """Sync in the foreground process until Ctrl-C or a fatal answer (`hemsync run`)."""
    background = BackgroundSync(replica_path, interval=interval, after_change=after_change, echo=echo)
    try:
        background.start()
    except (KeyboardInterrupt, SystemExit):
        background.stop()

