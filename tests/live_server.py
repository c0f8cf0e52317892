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

``server.url`` has no trailing slash; ``server.db_path`` is the SQLite file;
``server.store`` and ``server.app`` give direct access for setup and checks.
It is the production app under waitress, run in a background thread of the
test process. The ``live_server`` fixture (tests/server/conftest.py) wraps it.
"""

import pathlib
import threading

import waitress.server

from server import create_app
from server import auth

__all__ = ["LiveServer", "start_live_server"]


class LiveServer:
    """A running server: its URL, database, store and app, and helpers to set up users and devices."""

    def __init__(self, app, wsgi_server, thread, db_path):
        self.app = app
        self.store = app.extensions["hemsync.store"]
        self.db_path = db_path
        self._server = wsgi_server
        self._thread = thread
        self.url = f"http://127.0.0.1:{wsgi_server.effective_port}"

    def add_user(self, name, role, municipalities, hsa_id=None):
        """Create a user; return the user's id."""
        return auth.add_user(self.store, name, role, municipalities, hsa_id=hsa_id)["id"]

    def enroll(self, user_id, label=None):
        """Enroll a device for the user; return ``(device_id, token)``."""
        device, token = auth.enroll(self.store, user_id, label)
        return device["id"], token

    def revoke(self, device_id):
        """Revoke a device: from now on it is told to wipe its replica."""
        auth.revoke(self.store, device_id)

    def stop(self):
        """Stop serving and close the database."""
        def close_all():
            # Runs in the serving thread (closing sockets under its select() would break it);
            # with every channel closed its loop ends.
            for channel in list(self._server._map.values()):
                channel.close()

        if self._thread.is_alive():
            try:
                self._server.trigger.pull_trigger(close_all)
            except OSError:
                pass  # the loop already ended and closed its trigger: nothing left to stop
            self._thread.join(timeout=10)
        self._server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
        self.store.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def start_live_server(tmp_path, **settings):
    """Start the server on ``tmp_path / "hemsync.db"`` on a free 127.0.0.1 port; return a :class:`LiveServer`.

    ``settings`` override HEMSYNC_* settings by short name (``max_batch=2``) or full name.
    """
    db_path = pathlib.Path(tmp_path) / "hemsync.db"
    app = create_app({"HEMSYNC_DB": str(db_path), **settings})
    wsgi_server = waitress.server.create_server(app, host="127.0.0.1", port=0, threads=4, ident="hemsync-test")
    thread = threading.Thread(target=wsgi_server.run, name="hemsync-live-server", daemon=True)
    thread.start()
    return LiveServer(app, wsgi_server, thread, db_path)
