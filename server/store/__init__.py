"""Where the server keeps everything: one interface, two databases side by side.

- :mod:`server.store.base`: the :class:`Store` interface push, pull, auth and audit
  talk to, and what every store shares (:class:`StoredRecord`, :class:`ScopeKeys`,
  :func:`index_columns`, :func:`encode_wire`);
- :mod:`server.store.sqlite`: :class:`SqliteStore`, the embedded default on one file,
  for one server process;
- :mod:`server.store.postgres`: :class:`PostgresStore`, for a region running several
  server processes on one PostgreSQL database.

:func:`open_store` picks one from a database URL or path (``HEMSYNC_DATABASE_URL``,
else ``HEMSYNC_DB``; every ``hemsync-server`` command's ``--db``).
"""

from .base import ScopeKeys, Store, StoredRecord, UnwaitedFailed, encode_wire, index_columns
from .postgres import PostgresStore
from .sqlite import MIGRATIONS, SqliteStore

__all__ = ["Store", "SqliteStore", "PostgresStore", "StoredRecord", "ScopeKeys", "UnwaitedFailed", "index_columns",
           "encode_wire", "MIGRATIONS", "open_store", "is_postgres_url", "database_target"]

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(target):
    """True when ``target`` names a PostgreSQL database (``postgresql://…``) rather than a SQLite file."""
    return str(target).startswith(_POSTGRES_SCHEMES)


def open_store(target, write_wait=30.0):
    """Open (creating or upgrading) the store ``target`` names: a ``postgresql://`` URL or a SQLite path.

    ``write_wait``: seconds a write transaction waits for the database's one writer before
    :class:`~server.errors.ServerBusy` (HEMSYNC_WRITE_WAIT_SECONDS when serving).
    """
    if is_postgres_url(target):
        return PostgresStore(str(target), write_wait=write_wait)
    return SqliteStore(target, write_wait=write_wait)


def database_target(values):
    """The database the settings name: ``HEMSYNC_DATABASE_URL`` when set, else ``HEMSYNC_DB``."""
    return values.get("HEMSYNC_DATABASE_URL") or values["HEMSYNC_DB"]
