"""`hemsync ui`: the doctor's pages, served on the laptop from its replica, working with no network.

The look, the Swedish catalogue, the filters and CSRF are the server's pages'
(:mod:`server.web`, which imports only ``schema/``, Flask and Babel, and loads
nothing else of ``server/``); the views are the laptop's own, one module per
area: :mod:`.today` (assigned and accepted requests, accept and progress),
:mod:`.caseload` (the patients by municipality and SÄBO unit),
:mod:`.patient` (the patient page, vitals with NEWS2), :mod:`.medication` (a
new drug, warned of a matching allergy; a dose changed), :mod:`.visit` (the
visit note, signed), :mod:`.admission` (a direct admission proposed), :mod:`.sabo_round` (a
SÄBO round worked resident by resident), :mod:`.conflicts` (side by side, resolved with a click)
and :mod:`.sync_state`. Every read is the replica's (each
patient shown is written to the laptop's access log, as the CLI does) and every
write is :meth:`client_sync.replica.Replica.write`, the CLI's one write path.
Who may use the pages: :mod:`.guard`. See docs/laptop-pages.md.
"""

from flask import Flask

from server import web

from ..files import connect_private

# The areas register their views on the blueprint as they are imported.
from . import (admission, caseload, conflicts, guard, medication, patient, sabo_round,  # noqa: F401
               sync_state, today, visit)
from .context import PollLog, blueprint, name_of, timezone_of
from .today import Notices

__all__ = ["create_app"]


def create_app(replica_path, *, port, secret):
    """The pages' app over the replica at ``replica_path``, for a server on 127.0.0.1:``port``.

    ``secret`` is this launch's secret (:func:`guard.new_secret`); the browser
    opens :func:`guard.launch_url` to get in.
    """
    app = Flask(__name__)
    app.config["HEMSYNC_REPLICA"] = replica_path
    # Each request opens and closes its own connection; SQLite checkpoints and syncs the WAL when the
    # last connection to a file closes, which would be every request's close (up to 20 ms a page on a
    # busy disk, make bench). An idle connection held while the pages run leaves that to the WAL's own
    # checkpoints as it fills; it holds no transaction, so it blocks no writer and no wipe's scrub.
    app.extensions["hemsync.ui.keeper"] = connect_private(replica_path)
    app.extensions["hemsync.ui.polls"] = PollLog()
    app.extensions["hemsync.ui.notices"] = Notices()
    guard.install(app, port=port, secret=secret)
    web.init_app(app, timezone=timezone_of(replica_path), name_of=name_of)
    app.register_blueprint(blueprint)
    return app
