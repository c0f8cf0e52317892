"""The sync lock: never two syncs of one replica at once, across processes too.

The lock is SQLite's own write lock on a small side file next to the replica
(``<replica>.sync-lock``), taken with ``BEGIN IMMEDIATE`` and held for the whole
sync. Why this and not an exclusive-create lock file: the operating system
releases SQLite's file locks when the holding process dies (a killed sync, a
laptop that lost power), on Windows as on POSIX, so there is never a stale lock
to guess about, and no process-id check that Windows cannot do safely. The
lock lives in a side file so that the replica itself stays writable: a doctor
keeps documenting while a long sync runs.
"""

import contextlib
import os
import sqlite3
import time

from .errors import SyncBusy
from .files import connect_private

__all__ = ["sync_lock", "lock_path"]


def lock_path(replica_path):
    """The side file that holds the sync lock of a replica."""
    return f"{os.fspath(replica_path)}.sync-lock"


@contextlib.contextmanager
def sync_lock(replica_path, wait=0.0):
    """Hold the replica's sync lock for the ``with`` block; raise SyncBusy after ``wait`` seconds."""
    path = lock_path(replica_path)
    # isolation_level=None: transactions here are explicit; timeout=0: we poll ourselves.
    conn = connect_private(path, timeout=0, isolation_level=None)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise SyncBusy("another sync of this replica is running; try again when it has finished") \
                        from exc
                time.sleep(0.1)
        # The holder row says who holds the lock to SQLite's own tools; it is never committed.
        conn.execute("CREATE TABLE IF NOT EXISTS holder (pid INTEGER, since REAL)")
        conn.execute("INSERT INTO holder VALUES (?, ?)", (os.getpid(), time.time()))
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
    finally:
        conn.close()
