"""The load test's laptops at work, in worker processes of their own.

Two hundred laptops are two hundred machines; here they are threads of a load
generator sharing two cores with the server. In one process, every laptop's
thread (signing its changes, applying everyone's pulled changes to its replica)
waited for that one process's GIL, and the wait counted as the server's latency:
at 200 laptops every 10 s a push's p50 as the laptops saw it was five times the
server's own time. The fleet is split over ``processes`` worker processes (spawned,
so no SQLite connection or lock crosses a fork), each running its share of the
laptops as threads, each request timed as before (:class:`TimedSession`).

The workers run at a lower scheduling priority (``nice``, default
:data:`NICE`): on the laptops' own machines their work would take nothing from
the server, and here the server's threads come first when both want a core. What
the laptops wait for then includes their own turn for a core, which the
``Server-Timing`` figures leave out.

The parent makes the replicas and logs them in; a worker opens them again, runs
until the deadline, and sends back its requests' timings, its laptops' change ids
(for the ledger check), its errors and counts and its own CPU time. New shared
patients (the soak's rotation) reach the workers as messages.
"""

import multiprocessing
import os
import queue
import threading
import time
import traceback

import requests

from client_sync.errors import ClientError
from client_sync.sync import sync
from schema.errors import HemsyncError

from .laptops import Laptop
from .workload import Editor, Workload

__all__ = ["TimedSession", "server_timings", "Fleet", "NICE"]

#: How much lower the workers' scheduling priority is than the server's (os.nice).
NICE = 10
#: Seconds a worker may take to start (spawn, import, open its replicas) before the run fails.
START_TIMEOUT = 120


class TimedSession(requests.Session):
    """A requests session that logs (path, status, seconds, {metric: server seconds}) of every request it makes.

    The server's metrics come from its ``Server-Timing`` header (empty without an
    answer): ``app``, the app's own time, and ``writer``, the part of it spent
    queueing for the writer. What a laptop waited beyond ``app`` was the queue for
    a server thread, the network and the load generator's own CPU.
    """

    def __init__(self, log):
        super().__init__()
        self.log = log

    def request(self, method, url, *args, **kwargs):
        start = time.perf_counter()
        status, metrics = None, {}
        try:
            response = super().request(method, url, *args, **kwargs)
            status, metrics = response.status_code, server_timings(response)
            return response
        finally:
            path = "/" + url.split("/", 3)[-1].split("?")[0]
            self.log.append((f"{method} {path}", status, time.perf_counter() - start, metrics))


def server_timings(response):
    """The metrics of ``response``'s ``Server-Timing: app;dur=MS, writer;dur=MS`` header, in seconds."""
    metrics = {}
    for metric in response.headers.get("Server-Timing", "").split(","):
        name, _, duration = metric.strip().partition(";dur=")
        if name and duration:
            metrics[name] = float(duration) / 1000
    return metrics


class Fleet:
    """The laptops of a load run, spread over worker processes; ``start``, then ``finish`` for the results.

    ``laptops``: the parent's logged-in :class:`Laptop` objects; ``roles`` their roles;
    ``shared``: the shared patients' record ids the editors work on.
    """

    def __init__(self, laptops, roles, shared, seed, interval, duration, processes, nice=NICE):
        context = multiprocessing.get_context("spawn")
        self._laptops = laptops
        self._results = context.Queue()
        self._ready = context.Queue()
        self._go = context.Event()
        self._inboxes, self._workers = [], []
        for share in range(min(processes, len(laptops))):
            members = [(i, str(laptop.path), laptop.url, laptop.token, laptop.name, roles[i])
                       for i, laptop in enumerate(laptops) if i % processes == share]
            inbox = context.Queue()
            worker = context.Process(target=_work, name=f"hemsync-load-{share}", daemon=True,
                                     args=(members, shared, seed, interval, duration, nice, inbox,
                                           self._ready, self._go, self._results))
            self._inboxes.append(inbox)
            self._workers.append(worker)

    def start(self):
        """Start the workers, wait until every one is ready (its editors made), then let them run."""
        for worker in self._workers:
            worker.start()
        for _ in self._workers:
            try:
                self._ready.get(timeout=START_TIMEOUT)
            except queue.Empty:
                raise RuntimeError(f"a load worker did not start within {START_TIMEOUT} s") from None
        self._go.set()

    def share(self, shared):
        """Every editor works on ``shared`` from now on (new patients)."""
        for inbox in self._inboxes:
            inbox.put(("shared", shared))

    def finish(self, timeout):
        """Wait for every worker's results; return (log, errors, counts); the laptops' ``written`` are updated."""
        log, errors, counts = [], [], {"refused": 0, "syncs": 0, "conflicts": 0, "cpu_s": 0.0}
        deadline = time.monotonic() + timeout
        for _ in self._workers:
            try:
                result = self._results.get(timeout=max(1.0, deadline - time.monotonic()))
            except queue.Empty:
                errors.append("a load worker sent no results (it died or hung): its laptops are unaccounted for")
                continue
            log += result["log"]
            errors += result["errors"]
            for name in counts:
                counts[name] += result[name]
            for index, written in result["written"].items():
                self._laptops[index].written |= written
        for inbox in self._inboxes:
            inbox.put(("stop", None))
        for worker in self._workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()
        return log, errors, counts


def _work(members, shared, seed, interval, duration, nice, inbox, ready, go, results):
    """A worker process: its laptops, each a thread, sync every ``interval`` s until the run's end."""
    os.nice(nice)
    log, errors, counts, laptops = [], [], {"refused": 0, "syncs": 0, "conflicts": 0}, {}
    editors = {index: Editor(Workload(seed * 1000 + index), role, shared)
               for index, _, _, _, _, role in members}

    def listen():
        while True:
            kind, value = inbox.get()
            if kind == "stop":
                return
            for editor in editors.values():
                editor.shared = value

    threading.Thread(target=listen, name="inbox", daemon=True).start()
    ready.put(True)
    go.wait()
    deadline, cpu_start = time.monotonic() + duration, time.process_time()

    def drive(index, path, url, token, name):
        try:
            laptop = laptops[index] = Laptop(path, url, token, name)  # opened in the thread that uses it
            editor = editors[index]
            rng = editor.rng
            client = laptop.client(session=TimedSession(log), timeout=(5, 30))
            next_sync = time.monotonic() + rng.uniform(0, interval)  # laptops do not sync in step
            while next_sync < deadline:
                wait = next_sync - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                for _ in range(rng.randrange(1, 5)):
                    try:
                        editor.edit(laptop.replica)
                    except HemsyncError:
                        counts["refused"] += 1  # a rule refused it on the laptop, as it would for a person
                laptop.note_outbox()
                try:
                    report = sync(laptop.replica, client=client)
                    counts["conflicts"] += report.conflicts
                    counts["syncs"] += 1
                except ClientError as exc:
                    errors.append(f"{name}: {type(exc).__name__}: {exc}")
                next_sync += interval * rng.uniform(0.8, 1.2)
            laptop.close()
        except BaseException as exc:  # a crashed laptop thread fails the run, loudly
            errors.append(f"{name}: crashed: {''.join(traceback.format_exception(exc))}")

    threads = [threading.Thread(target=drive, args=member[:5], name=f"laptop-{member[0]}") for member in members]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put({"log": log, "errors": errors, **counts, "cpu_s": time.process_time() - cpu_start,
                 "written": {index: laptop.written for index, laptop in laptops.items()}})
