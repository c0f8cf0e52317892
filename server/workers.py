"""Several server processes on one port: ``hemsync-server serve --workers N`` (PostgreSQL only).

The supervisor starts N ``hemsync-server serve`` processes that all listen on the
same address (``SO_REUSEPORT``: the kernel spreads connections over them), restarts
one that dies (a crash, a SIGKILL) and stops them all on SIGTERM or Ctrl-C. Each
process has its own connection pool; the store's guarantees with several writers
(server.store.postgres) are what makes this safe. The escalation job runs in the
first process only (it would be safe in all: a request is escalated once).
"""

import logging
import os
import signal
import subprocess
import sys
import time

__all__ = ["supervise", "RESTART_PAUSE"]

log = logging.getLogger(__name__)

#: Seconds between restarts of a process that keeps dying, so a broken setup does not spin.
RESTART_PAUSE = 1.0


def supervise(db, serve_args, workers, echo=print):
    """Run ``workers`` processes of ``hemsync-server --db DB serve SERVE_ARGS --reuse-port`` until stopped."""
    stopping = []

    def stop(signum, _frame):
        stopping.append(signum)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    processes = [_start(db, serve_args, index) for index in range(workers)]
    echo(f"hemsync-server: {workers} processes: {', '.join(str(p.pid) for p in processes)}")
    try:
        while not stopping:
            for index, process in enumerate(processes):
                code = process.poll()
                if code is not None and not stopping:
                    echo(f"hemsync-server: process {process.pid} ended ({code}); starting another")
                    time.sleep(RESTART_PAUSE)
                    processes[index] = _start(db, serve_args, index)
            time.sleep(0.2)
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _start(db, serve_args, index):
    env = dict(os.environ)
    if index > 0:
        env["HEMSYNC_ESCALATION_INTERVAL"] = "0"  # the first process runs the jobs
    return subprocess.Popen([sys.executable, "-m", "server", "--db", db, "serve", *serve_args, "--reuse-port"],
                            env=env)
