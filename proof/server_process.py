"""The real sync server in a subprocess, served as ``make run`` serves it (cheroot), on a free port.

Users and devices are set up in the database before the server starts (or
while it runs: SQLite in WAL mode lets both write). ``kill()`` is a SIGKILL,
``start()`` again serves the same database on the same port.
"""

import contextlib
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import uuid

import requests

from server import auth
from server.store import open_store

__all__ = ["ServerProcess", "free_port", "ROOT"]

ROOT = pathlib.Path(__file__).resolve().parents[1]
#: A listening socket's state in /proc/net/tcp.
TCP_LISTEN = "0A"


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """``hemsync-server --db DB serve`` in a subprocess; ``url``, ``add_user``, ``enroll``, ``kill``, ``start``."""

    def __init__(self, workdir, *, threads=None, env=None, database=None, workers=1):
        self.workdir = pathlib.Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        # A PostgreSQL URL (``database``) or the SQLite file in the work directory.
        self.db_path = database or self.workdir / "hemsync.db"
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.threads = threads
        # Its PostgreSQL sessions carry a name of their own (libpq's PGAPPNAME): database_backends() finds them.
        self.application_name = f"hemsync-proof-{self.port}"
        self.env = {**os.environ, "PGAPPNAME": self.application_name, **(env or {})}
        self.process = None
        self._monitor = None
        self.starts = 0
        self._store = open_store(self.db_path)  # creates and migrates the database

    def start(self, timeout=30):
        """Start serving (again) and wait until /healthz answers."""
        log = open(self.workdir / "server.log", "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server", "--db", str(self.db_path), "serve", "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", str(self.workers),
             *(["--threads", str(self.threads)] if self.threads else [])],
            # A session of its own: kill() takes a supervisor's workers with it.
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}: see {self.workdir}/server.log")
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"the server did not answer /healthz within {timeout} s")

    def kill(self):
        """SIGKILL the server: no clean shutdown, whatever it was doing."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def kill_worker_serving(self, client_port):
        """SIGKILL the one server process holding the connection from ``client_port`` (Linux /proc).

        Of ``serve --workers N`` only the process merging the push dies; its supervisor
        starts another, and the other workers go on serving. Returns the pid killed, or None.
        """
        holders = self._socket_holders(lambda remote_port, state: remote_port == client_port)
        if not holders:
            return None
        os.kill(holders[0], signal.SIGKILL)
        return holders[0]

    def listening_pids(self):
        """The server's processes listening on its port: those done starting (their store open), serving."""
        return self._socket_holders(lambda remote_port, state: state == TCP_LISTEN)

    def _socket_holders(self, wanted):
        """The server's processes holding a TCP socket on its port for which ``wanted(remote_port, state)``."""
        inodes = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with open(table) as lines:
                for line in list(lines)[1:]:
                    local, remote, state, inode = (line.split()[i] for i in (1, 2, 3, 9))
                    if int(local.rsplit(":", 1)[1], 16) == self.port and wanted(int(remote.rsplit(":", 1)[1], 16),
                                                                                 state):
                        inodes.add(f"socket:[{inode}]")
        holders = []
        for pid in self._pids():
            try:
                held = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
            except OSError:
                continue
            if held & inodes:
                holders.append(pid)
        return holders

    def _pids(self):
        """The server's processes: the supervisor and its workers (one session, started by start())."""
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as stat:
                        session = int(stat.read().rsplit(")", 1)[1].split()[3])  # state, ppid, pgrp, session
                except (OSError, ValueError, IndexError):
                    continue
                if self.process and session == self.process.pid:
                    found.append(int(entry))
        return found

    @property
    def store(self):
        """The server's database as a store (the one users are set up through), for checks."""
        return self._store

    @property
    def on_postgres(self):
        """True when the server keeps its data in PostgreSQL."""
        return isinstance(self.db_path, str)

    def kill_database_sessions(self):
        """End every PostgreSQL session on the server's database but this one (a restart, as the server sees it)."""
        import psycopg

        with psycopg.connect(self.db_path, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = current_database() AND pid <> pg_backend_pid()")

    def database_backends(self):
        """The pids of the PostgreSQL backends serving the server's processes now (none on SQLite).

        Read from pg_stat_activity on a connection of its own, kept open: call it from one thread.
        """
        if not self.on_postgres:
            return []
        import psycopg

        if self._monitor is None:
            self._monitor = psycopg.connect(self.db_path, autocommit=True)
        rows = self._monitor.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                                     (self.application_name,)).fetchall()
        return [pid for (pid,) in rows]

    def stop(self):
        """Stop the server (SIGTERM, then SIGKILL) and close the set-up store."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._monitor is not None:
            self._monitor.close()
            self._monitor = None
        self._store.close()

    def add_user(self, name, role, municipalities):
        """Create a user (and the municipalities the user works in, as an admin would); return the id."""
        for municipality in municipalities:
            auth.add_municipality(self._store, municipality)
        return auth.add_user(self._store, name, role, list(municipalities))["id"]

    def enroll(self, user_id, label=None):
        """Enroll a device; return ``(device_id, token)``."""
        device, token = auth.enroll(self._store, user_id, label)
        return device["id"], token

    def processes(self):
        """The pids of the server's processes now: the one started, and a supervisor's workers (Linux /proc)."""
        return [self.process.pid, *_children(self.process.pid)] if self.process else []

    def cpu_seconds(self):
        """User + system CPU seconds the server's processes (a supervisor's workers too) have used (Linux /proc)."""
        return sum(_cpu_seconds(pid) for pid in self.processes())

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _children(pid):
    try:
        return [int(c) for c in (pathlib.Path("/proc") / str(pid) / "task" / str(pid) / "children").read_text().split()]
    except OSError:
        return []


def _cpu_seconds(pid):
    try:
        fields = (pathlib.Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0  # a worker that ended meanwhile
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def scratch_database(url):
    """A new PostgreSQL database on the server ``url`` names, for one proof run; dropped after. Yields its URL."""
    import psycopg
    from psycopg import sql

    name = f"hemsync_proof_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base, _, query = url.partition("?")
    scheme, _, rest = base.partition("://")
    try:
        yield f"{scheme}://{rest.split('/', 1)[0]}/{name}" + (f"?{query}" if query else "")
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
