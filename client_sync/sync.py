"""One sync of a replica with the server, and the integrity check after it.

A sync is: handshake (with the number of changes waiting) → the local access
log → the outbox in batches → pull pages until the feed has no more. Every
step can be cut off at any moment and simply runs again next time: the server
de-duplicates pushed changes and access-log entries by id, each pulled page is
stored in one transaction together with its cursor, and an outbox change leaves
the replica only once the server answered for it. A revoked device's replica is
wiped; a client too old keeps its outbox and says so. A failed sync is kept
(which step, the error, since when, how many syncs in a row) for ``status``
until one succeeds, so a server failing for days never goes unnoticed. The sync lock
(:mod:`client_sync.lock`) keeps two syncs of one replica apart.
"""

import concurrent.futures
import dataclasses
import os
import sys
import time

from schema.clock import now_text
from schema.errors import HemsyncError
from schema.wire import scope_digest

from .errors import (
    ClientError,
    DeviceRevoked,
    NotLoggedIn,
    ProtocolError,
    RequestRefused,
)
from .http import SyncClient
from .lock import sync_lock

__all__ = ["SyncReport", "VerifyReport", "sync", "verify", "client_for", "pause_point", "PAUSE_ENV"]

DEFAULT_BATCH = 100
ACCESS_BATCH = 500
#: Crash tests name a point here (e.g. ``pull.before_commit``) to freeze a sync there and kill it.
PAUSE_ENV = "HEMSYNC_PAUSE_AT"


@dataclasses.dataclass
class SyncReport:
    """What one sync did."""

    access_log: int = 0
    applied: int = 0
    conflicts: int = 0
    rejected: list = dataclasses.field(default_factory=list)
    pulled: int = 0
    purged: int = 0
    pages: int = 0
    resynced: bool = False
    unsent: int = 0
    started_at: str = ""
    finished_at: str = ""

    def as_dict(self):
        """The report as JSON-ready data."""
        return dataclasses.asdict(self)


@dataclasses.dataclass
class VerifyReport:
    """What the integrity check found and repaired."""

    agreed: bool
    records: int
    local_digest: str
    server_digest: str
    differing: list
    missing: list
    extra: list
    repaired: bool

    def as_dict(self):
        """The report as JSON-ready data."""
        return dataclasses.asdict(self)


def client_for(replica, **options):
    """The SyncClient for a replica's stored login; NotLoggedIn when there is none."""
    url, token = replica.setting("server_url"), replica.setting("token")
    if not url or not token:
        raise NotLoggedIn("this replica has no login: run `hemsync login --server URL`")
    return SyncClient(url, token, **options)


def sync(replica, *, client=None, progress=None, lock_wait=0.0):
    """Run one sync of ``replica``; ``progress(stage, done, total)`` is told how far it got."""
    with sync_lock(replica.path, lock_wait):
        return _locked_sync(replica, client or client_for(replica), progress or _quiet)


def verify(replica, *, client=None, progress=None, lock_wait=0.0):
    """Sync, then compare the replica's digest with the server's and re-fetch what differs."""
    with sync_lock(replica.path, lock_wait):
        client = client or client_for(replica)
        _locked_sync(replica, client, progress or _quiet)
        server = _digest(client)
        local = replica.digests()
        differing = sorted(k for k, d in server["records"].items() if k in local and local[k] != d)
        missing = sorted(k for k in server["records"] if k not in local)
        extra = sorted(k for k in local if k not in server["records"])
        repaired = bool(differing or missing or extra)
        if repaired:
            _repair(replica, client, differing + missing, extra, progress or _quiet)
            server = _digest(client)
            local = replica.digests()
        replica.set_setting("last_verify", {"at": now_text("auto"), "agreed": scope_digest(local) == server["digest"]})
        return VerifyReport(
            agreed=scope_digest(local) == server["digest"],
            records=len(local),
            local_digest=scope_digest(local),
            server_digest=server["digest"],
            differing=differing,
            missing=missing,
            extra=extra,
            repaired=repaired,
        )


def pause_point(name):
    """Freeze the process here for ever when HEMSYNC_PAUSE_AT names this point (crash tests kill it)."""
    if os.environ.get(PAUSE_ENV) == name:
        print(f"hemsync: paused at {name}", file=sys.stderr, flush=True)
        while True:
            time.sleep(60)


def _quiet(stage, done, total):
    """The progress callback of a sync nobody watches."""


def _locked_sync(replica, client, progress):
    report = SyncReport(started_at=now_text("auto"))
    stage = "handshake"
    try:
        answer = client.handshake(pending=replica.unsent_count(), rejected=replica.rejected_count())
        replica.apply_handshake(answer)
        stage = "access_log"
        _push_access_log(replica, client, report, progress)
        stage = "push"
        _push_outbox(replica, client, report, progress, _batch_size(answer))
        stage = "pull"
        _pull(replica, client, report, progress, answer.get("page_size"))
    except DeviceRevoked as exc:
        exc.wiped = replica.wipe()
        raise
    except (ClientError, HemsyncError) as exc:
        _record_failure(replica, stage, exc)
        raise
    finally:
        _record_wait(replica, client)
    report.unsent = replica.unsent_count()
    report.finished_at = now_text("auto")
    with replica.transaction():
        replica.set_setting("last_sync", report.as_dict())
        replica.set_setting("last_sync_error", None)
    return report


def _batch_size(answer):
    """Changes per push: the server's ``max_batch`` when it is smaller than ours, else ours.

    Ours stays the ceiling: a cut connection resends a whole batch, so a batch
    is kept to what a field laptop's line carries in one go (make bench).
    """
    limit = answer.get("max_batch")
    return min(limit, DEFAULT_BATCH) if isinstance(limit, int) and limit > 0 else DEFAULT_BATCH


def _record_wait(replica, client):
    """Keep, for `status`, that the server asked this laptop to wait (it was saturated, or we flooded it)."""
    asked = getattr(client, "asked_to_wait", None)
    if asked and asked != replica.setting("last_server_wait"):
        with replica.transaction():
            replica.set_setting("last_server_wait", asked)


def _record_failure(replica, stage, exc):
    """Keep what failed, when and how many syncs in a row, for `status`, until a sync succeeds."""
    with replica.transaction():
        previous = replica.setting("last_sync_error") or {}
        now = now_text("auto")
        replica.set_setting("last_sync_error", {
            "stage": stage,
            "error": str(exc),
            "code": getattr(exc, "code", None),
            "status": getattr(exc, "status", None),
            "at": now,
            "since": previous.get("since") or now,
            "attempts": (previous.get("attempts") or 0) + 1,
        })


def _push_access_log(replica, client, report, progress):
    total = replica.access_count()
    while entries := replica.access_entries(ACCESS_BATCH):
        client.push_access_log(entries)
        replica.drop_access_entries([e["id"] for e in entries])
        report.access_log += len(entries)
        progress("access_log", report.access_log, total)


def _push_outbox(replica, client, report, progress, batch_size):
    total, done = replica.unsent_count(), 0
    while changes := replica.unsent(batch_size):
        answer = client.push(changes, pending=max(replica.unsent_count() - len(changes), 0))
        results = answer.get("results") if isinstance(answer, dict) else None
        sent = {c["change_id"] for c in changes}
        if not isinstance(results, list) or not sent & {r.get("change_id") for r in results}:
            raise ProtocolError("the server's push answer has no result for the changes sent")
        pause_point("push.before_results")
        counts = replica.record_results([r for r in results if r.get("change_id") in sent], answer.get("server_hlc"))
        report.applied += counts["applied"]
        report.conflicts += counts["conflict"]
        report.rejected += [r for r in results if r.get("result") == "rejected" and r.get("change_id") in sent]
        done += len(changes)
        progress("push", done, max(total, done))


def _pull(replica, client, report, progress, page_size):
    cursor = replica.setting("cursor")
    try:
        _pull_pages(replica, client, report, progress, page_size, cursor)
    except RequestRefused as exc:
        if cursor is None or not exc.details.get("resync"):
            raise
        # The server no longer takes this cursor (an older server's, or one it cannot vouch
        # for): pull everything again, then drop the server states that did not come back,
        # which left the device's scope meanwhile. Unsent changes stay in the outbox.
        held = {tuple(key.split("/", 1)) for key in replica.digests()}
        received = set()
        _pull_pages(replica, client, report, progress, page_size, None, received)
        replica.delete_records(sorted(held - received))
        report.resynced = True
    replica.finish_pull()


def _pull_pages(replica, client, report, progress, page_size, cursor, received=None):
    """Pull pages from ``cursor`` to the head of the feed, each applied with its cursor.

    While a page is applied, the next one (its cursor is in the page) is already being
    fetched on another thread: the server reads and compresses page k+1 while the laptop
    stores page k, instead of each waiting for the other (make bench: initial sync). Pages
    are still applied one by one, in order, each with its own cursor; a page fetched
    ahead and never applied (the sync stopped) is served again from the older cursor.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="hemsync-pull") as ahead:
        fetching = ahead.submit(_fetch_page, client, cursor, page_size)
        while True:
            page = fetching.result()
            purge = page.get("purge") or []
            if page["more"]:
                if page["cursor"] == cursor and not page["records"] and not purge:
                    raise ProtocolError("the server says there is more but its cursor does not move")
                fetching = ahead.submit(_fetch_page, client, page["cursor"], page_size)
            replica.apply_page(page["records"], purge, page["cursor"], texts=page.get("record_texts"),
                               before_commit=lambda: pause_point("pull.before_commit"))
            report.pages += 1
            report.pulled += len(page["records"])
            report.purged += len(purge)
            if received is not None:
                received.update((r.get("type"), r.get("id")) for r in page["records"] if isinstance(r, dict))
            progress("pull", report.pulled, None)
            if not page["more"]:
                return
            cursor = page["cursor"]


def _fetch_page(client, cursor, page_size):
    page = client.pull(cursor, limit=page_size)
    if not isinstance(page, dict) or not {"records", "cursor", "more"} <= set(page):
        raise ProtocolError("the server's pull answer lacks records, cursor or more")
    return page


def _digest(client):
    answer = client.digest()
    if not isinstance(answer, dict) or not isinstance(answer.get("records"), dict) or "digest" not in answer:
        raise ProtocolError("the server's digest answer lacks digest or records")
    return answer


def _repair(replica, client, stale, extra, progress):
    """Re-fetch the records that differ; drop the ones the server no longer gives this device."""
    if stale:
        try:
            wires = client.fetch(stale)["records"]
        except RequestRefused as exc:
            if exc.code != "not_found":
                raise
            wires = _pull_everything(client)  # a server without /v1/fetch: the whole scope again
        replica.store_records(wires)
        progress("repair", len(stale), len(stale))
    if extra:
        replica.delete_records([tuple(key.split("/", 1)) for key in extra])


def _pull_everything(client):
    wires, cursor = [], None
    while True:
        page = client.pull(cursor)
        wires += page["records"]
        if not page["more"]:
            return wires
        cursor = page["cursor"]

