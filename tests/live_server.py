"""The real sync server on a free loopback port, for tests that talk HTTP to it.

Usage (the API other test suites rely on; keep it small and stable)::

    from tests.live_server import start_live_server

    server = start_live_server(tmp_path, max_batch=50)   # settings by short or HEMSYNC_ name
    try:
        user_id = server.add_user("Anna Berg", "doctor", ["Halmstad"])
        device_id, token = server.enroll(user_id)
        requests.get(server.url + "/healthz")
        server.revoke(device_id)
    finally:
        server.stop()

``server.url`` has no trailing slash; ``server.db_path`` is the SQLite file, or the
PostgreSQL URL given as ``database=`` (a database of the test's own: tests/conftest.py);
``server.store`` and ``server.app`` give direct access for setup and checks.
It is the production app served as ``hemsync-server serve`` serves it
(server.wsgi: cheroot, the body limit in the HTTP server), in a background
thread of the test process; with ``certfile=`` and ``keyfile=`` it speaks HTTPS
and ``server.url`` starts with ``https://``. The ``live_server`` fixture
(tests/server/conftest.py) wraps it.
"""

import pathlib
import sqlite3
import threading

import psycopg
from psycopg import sql

from server import auth, create_app
from server.wsgi import make_server

__all__ = ["LiveServer", "start_live_server"]


class LiveServer:
    """A running server: its URL, database, store and app, and helpers to set up users and devices."""

    def __init__(self, app, wsgi_server, thread, db_path):
        self.app = app
        self.store = app.extensions["hemsync.store"]
        self.db_path = db_path
        self._server = wsgi_server
        self._thread = thread
        scheme = "https" if wsgi_server.ssl_adapter else "http"
        self.url = f"{scheme}://127.0.0.1:{wsgi_server.bind_addr[1]}"

    def add_user(self, name, role, municipalities, hsa_id=None):
        """Create a user (and the municipalities the user works in, as an admin would); return the user's id."""
        for municipality in municipalities:
            auth.add_municipality(self.store, municipality)
        return auth.add_user(self.store, name, role, municipalities, hsa_id=hsa_id)["id"]

    def enroll(self, user_id, label=None):
        """Enroll a device for the user; return ``(device_id, token)``."""
        device, token = auth.enroll(self.store, user_id, label)
        return device["id"], token

    def revoke(self, device_id):
        """Revoke a device: from now on it is told to wipe its replica."""
        auth.revoke(self.store, device_id)

    @property
    def on_postgres(self):
        """True when the store is a PostgreSQL database, not the SQLite file."""
        return isinstance(self.db_path, str)

    #: What the database raises when it refuses a statement (``execute``), either store's.
    DATABASE_ERRORS = (sqlite3.DatabaseError, psycopg.Error)

    def execute(self, statement):
        """Run one SQL statement on the database directly, on a connection of its own (as a careless tool)."""
        if self.on_postgres:
            with psycopg.connect(self.db_path, autocommit=True) as conn:
                conn.execute(statement)
        else:
            conn = sqlite3.connect(self.db_path)
            try:
                with conn:
                    conn.execute(statement)
            finally:
                conn.close()

    def rows(self, statement):
        """The rows of one SQL query (plain SQL both stores speak), as tuples, on a connection of its own."""
        if self.on_postgres:
            with psycopg.connect(self.db_path, autocommit=True) as conn:
                return [tuple(row) for row in conn.execute(statement).fetchall()]
        conn = sqlite3.connect(self.db_path)
        try:
            return [tuple(row) for row in conn.execute(statement).fetchall()]
        finally:
            conn.close()

    def database_text(self):
        """Everything the database holds, as text: the SQLite file's bytes, or every PostgreSQL row."""
        if not self.on_postgres:
            return self.db_path.read_bytes().decode("latin-1")
        with psycopg.connect(self.db_path, autocommit=True) as conn:
            tables = [r[0] for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")]
            return "\n".join(str(row[0]) for table in tables for row in conn.execute(
                sql.SQL("SELECT t::text FROM {} AS t").format(sql.Identifier(table))))

    def stop(self):
        """Stop serving and close the database."""
        self._server.stop()
        self._thread.join(timeout=10)
        self.store.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def start_live_server(tmp_path, certfile=None, keyfile=None, database=None, **settings):
    """Start the server on ``tmp_path / "hemsync.db"`` on a free 127.0.0.1 port; return a :class:`LiveServer`.

    ``settings`` override HEMSYNC_* settings by short name (``max_batch=2``) or full name;
    ``certfile`` and ``keyfile`` (PEM) make it serve HTTPS; ``database``, a ``postgresql://``
    URL, puts the store there instead of the SQLite file.
    """
    if database:
        db_path, where = database, {"HEMSYNC_DATABASE_URL": database}
    else:
        db_path = pathlib.Path(tmp_path) / "hemsync.db"
        # Empty, so a HEMSYNC_DATABASE_URL in the developer's environment cannot take the test's store.
        where = {"HEMSYNC_DB": str(db_path), "HEMSYNC_DATABASE_URL": ""}
    app = create_app({**where, **settings})
    wsgi_server = make_server(app, host="127.0.0.1", port=0, threads=4, certfile=certfile, keyfile=keyfile)
    wsgi_server.prepare()  # binds the port: the URL is known before the thread starts
    thread = threading.Thread(target=wsgi_server.serve, name="hemsync-live-server", daemon=True)
    thread.start()
    return LiveServer(app, wsgi_server, thread, db_path)
