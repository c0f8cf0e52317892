"""A throwaway PostgreSQL cluster of one's own, to restart while the server uses it.

The machine's PostgreSQL is shared (other people's tests run on it) and must never be
restarted: a restart trial runs ``initdb`` into a temporary directory, starts that
cluster with ``pg_ctl`` on a free port of 127.0.0.1 (its socket in the same
directory), restarts it (``pg_ctl -m fast`` or ``-m immediate``) when told to, and
removes it all at the end. ``initdb`` refuses to run as root: as root, every binary
runs as the ``postgres`` user and the directory is that user's.

Example::

    with throwaway_cluster() as cluster:
        store = open_store(cluster.url)
        cluster.restart("immediate", down_for=0.5)
"""

import contextlib
import glob
import os
import pathlib
import pwd
import shutil
import subprocess
import tempfile
import time

from .server_process import free_port

__all__ = ["Cluster", "ClusterUnavailable", "throwaway_cluster", "binaries", "SHUTDOWN_MODES"]

#: ``pg_ctl stop -m``: fast ends every session (open transactions rolled back) and checkpoints;
#: immediate is a crash as the database sees it (recovery from the WAL when it starts).
SHUTDOWN_MODES = ("fast", "immediate")
#: The unprivileged user the binaries run as when this process is root.
SERVICE_USER = "postgres"


class ClusterUnavailable(Exception):
    """No throwaway cluster can be made here (no PostgreSQL binaries, or no user to run them as)."""


def binaries():
    """The directory holding ``initdb`` and ``pg_ctl``: ``pg_config --bindir``, else the newest versioned path."""
    candidates = []
    if shutil.which("pg_config"):
        found = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        if found.returncode == 0:
            candidates.append(found.stdout.strip())
    # Debian's pg_config may belong to another package than the server; its binaries live here.
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version, reverse=True)
    for directory in candidates:
        if all(os.access(os.path.join(directory, name), os.X_OK) for name in ("initdb", "pg_ctl")):
            return directory
    raise ClusterUnavailable("no PostgreSQL server binaries (initdb and pg_ctl) found through pg_config --bindir "
                             "or under /usr/lib/postgresql/*/bin: install the PostgreSQL server package")


def _version(path):
    number = pathlib.Path(path).parent.name
    return int(number) if number.isdigit() else 0


class Cluster:
    """One PostgreSQL cluster in ``directory``, on ``port`` of 127.0.0.1; ``url`` reaches its postgres database."""

    def __init__(self, directory):
        self.bindir = binaries()
        self.directory = pathlib.Path(directory)
        self.data = self.directory / "data"
        self.log = self.directory / "postgresql.log"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.restarts = 0
        self._as = []
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam(SERVICE_USER)
            except KeyError as exc:
                raise ClusterUnavailable(f"initdb refuses to run as root and there is no {SERVICE_USER!r} user "
                                         "to run it as") from exc
            os.chown(self.directory, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", SERVICE_USER, "--"]

    def _run(self, tool, *args, timeout=120):
        command = [*self._as, os.path.join(self.bindir, tool), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{tool} {' '.join(args)} failed ({done.returncode}): "
                               f"{(done.stderr or done.stdout).strip()}\n{log}")
        return done.stdout

    def create(self):
        """``initdb`` the data directory (trust authentication on loopback: a throwaway cluster)."""
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--locale", "C", "--no-sync")
        return self

    def start(self):
        """Start serving and wait until it accepts connections."""
        options = (f"-c port={self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.directory} "
                   "-c max_connections=200 -c shared_buffers=32MB")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start")
        return self

    def stop(self, mode="fast"):
        """Stop it (``mode``: one of :data:`SHUTDOWN_MODES`) and wait until it has."""
        if mode not in SHUTDOWN_MODES:
            raise ValueError(f"mode must be one of {SHUTDOWN_MODES}, not {mode!r}")
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def restart(self, mode="fast", down_for=0.0):
        """Stop it as ``mode`` says, stay down ``down_for`` seconds, start again; return the seconds it was down."""
        began = time.monotonic()
        self.stop(mode)
        time.sleep(down_for)
        self.start()
        self.restarts += 1
        return time.monotonic() - began

    def running(self):
        """True while the postmaster runs."""
        return subprocess.run([*self._as, os.path.join(self.bindir, "pg_ctl"), "-D", str(self.data), "status"],
                              capture_output=True).returncode == 0


@contextlib.contextmanager
def throwaway_cluster():
    """A new cluster, started; stopped and removed after. Raises :class:`ClusterUnavailable` where none can be made."""
    directory = tempfile.mkdtemp(prefix="hemsync-pg-")
    try:
        cluster = Cluster(directory).create().start()
        try:
            yield cluster
        finally:
            if cluster.running():
                cluster.stop("immediate")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
