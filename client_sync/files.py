"""Owner-only files: the replica holds patient data and the device token, so nobody else may read it.

Every file the laptop makes is created under a umask of 077 (so it is never,
even for a moment, readable by others), and what exists already is tightened
with chmod, for replicas made by older versions. SQLite creates the replica's
``-wal``, ``-shm`` and ``-journal`` files itself, with the mode of the database
file; both steps cover them too. The umask is process-wide, so it is held only
around the calls that create files; a file another thread creates meanwhile is
merely stricter than it needed to be. On Windows chmod can only set read-only:
there the user's profile directory is what keeps others out.
"""

import contextlib
import os
import sqlite3

__all__ = ["PRIVATE_FILE", "PRIVATE_DIRECTORY", "SIDE_FILES", "connect_private", "private_directory", "tighten"]

PRIVATE_FILE = 0o600
PRIVATE_DIRECTORY = 0o700
#: The files SQLite keeps next to a database.
SIDE_FILES = ("-wal", "-shm", "-journal")


@contextlib.contextmanager
def _owner_only_umask():
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def private_directory(path, *, tighten_existing=False):
    """Create the directory owner-only when it is missing; ``tighten_existing``: chmod it when it exists."""
    if os.path.isdir(path):
        if tighten_existing:
            os.chmod(path, PRIVATE_DIRECTORY)
        return
    with _owner_only_umask():
        os.makedirs(path, mode=PRIVATE_DIRECTORY, exist_ok=True)


def connect_private(path, setup=(), **options):
    """``sqlite3.connect`` to an owner-only file: the statements of ``setup`` run under the same umask.

    ``setup`` holds the pragmas that make SQLite create its side files (journal_mode=WAL).
    """
    with _owner_only_umask():
        conn = sqlite3.connect(path, **options)
        try:
            for statement in setup:
                conn.execute(statement)
        except BaseException:
            conn.close()
            raise
    tighten(path)
    return conn


def tighten(path):
    """Make a database file and whichever of its side files exist owner-only."""
    for name in (os.fspath(path), *(os.fspath(path) + suffix for suffix in SIDE_FILES)):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(name, PRIVATE_FILE)
