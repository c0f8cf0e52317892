"""What every view of the laptop's pages shares: the blueprint, the replica of the request, rendering and refusals.

Each request opens the replica and closes it when done (a page and a CLI
command, or the background sync, are separate SQLite connections, as two
`hemsync` commands are). A view reads inside :func:`snapshot`, one SQLite read
transaction, so a sync landing meanwhile is shown whole on the next page and
never in half; what the page showed is written to the access log afterwards
(:func:`page`), one entry per patient and record, as ``hemsync get`` does.
"""

import contextlib
import threading
import time

from flask import Blueprint, abort, current_app, flash, g, render_template, request, url_for

from schema.errors import HemsyncError
from server import web

from ..errors import ClientError
from ..replica import Replica

__all__ = ["blueprint", "replica", "snapshot", "page", "refused", "REFUSALS", "name_of", "timezone_of",
           "me", "local", "live", "of_patient", "require", "back_to", "part", "POLL_LOG_SECONDS", "PollLog"]

blueprint = Blueprint("ui", __name__, template_folder="templates")
web.csrf.protect(blueprint)

#: What a page's action may be refused with: the merge's and the laptop's named errors, each with a message
#: that tells the doctor what to do. Anything else is a bug and ends in the error page.
REFUSALS = (HemsyncError, ClientError)
#: A live part polled every 2 s logs a record it shows once per this many seconds, not once per poll (the
#: server's pages do the same: docs/web.md, "Live"); a page's first render always logs.
POLL_LOG_SECONDS = 600
NAV = (("ui.today", "Today"), ("ui.caseload", "Caseload"), ("ui.rounds", "Rounds"), ("ui.conflicts", "Conflicts"), ("ui.sync_page", "Sync"))


def replica():
    """The replica, opened for this request and closed after it."""
    if "replica" not in g:
        g.replica = Replica(current_app.config["HEMSYNC_REPLICA"])
    return g.replica


@blueprint.teardown_app_request
def _close(_exc):
    opened = g.pop("replica", None)
    if opened is not None:
        opened.close()


@contextlib.contextmanager
def snapshot():
    """Read the replica as of one moment (a read transaction): a sync committing meanwhile is not half seen."""
    conn = replica().conn
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")


def me():
    """The logged-in user of this laptop (id, name, role)."""
    return replica().setting("user") or {}


def local(record_type, record_id):
    """The record as this laptop shows it (not logged: the page logs what it shows), or 404."""
    found = replica().local(record_type, record_id)
    if found is None:
        abort(404)
    return found


def of_patient(record_type, patient_id):
    """The patient's records of a type (``Replica.local_of_patient``), read once per request.

    The parts of a page (the patient's current state, the history, the warnings)
    share one reading, inside the page's snapshot.
    """
    held = g.setdefault("of_patient", {})
    if (record_type, patient_id) not in held:
        held[record_type, patient_id] = replica().local_of_patient(record_type, patient_id)
    return held[record_type, patient_id]


def live(found):
    """The records of ``found`` not entered in error: what the pages show."""
    return [r for r in found if not r.fields.get("entered_in_error")]


def require(condition):
    """404 unless ``condition``: a record that is not this doctor's looks like one that is not here."""
    if not condition:
        abort(404)


class PollLog:
    """When this launch last logged each record a live part showed, so a poll logs it once per POLL_LOG_SECONDS."""

    def __init__(self):
        self._lock = threading.Lock()
        self._logged = {}

    def due(self, shown, now=None):
        """The records of ``shown`` not logged within POLL_LOG_SECONDS; they count as logged from now."""
        now = time.monotonic() if now is None else now
        with self._lock:
            fresh = [r for r in shown if now - self._logged.get((r.type, r.id), -POLL_LOG_SECONDS) >= POLL_LOG_SECONDS]
            self._logged.update({(r.type, r.id): now for r in fresh})
        return fresh


def page(template, shown=(), **values):
    """Log the records the page shows in the access log, then render it with the menu and the banner."""
    replica().log_access(list(shown))
    current_app.extensions["hemsync.ui.polls"].due(shown)  # a poll of this page need not log them again
    nav = [{"url": url_for(endpoint), "label": web.i18n.gettext(label), "current": request.endpoint == endpoint}
           for endpoint, label in NAV]
    return render_template(template, nav=nav, laptop_user=me(), **values)


def part(template, shown=(), **values):
    """Render a live part (a poll): log what it shows that was not logged lately, then render it alone."""
    replica().log_access(current_app.extensions["hemsync.ui.polls"].due(list(shown)))
    return render_template(template, **values)


def refused(text, exc):
    """Tell the doctor why an action was refused: ``text`` (a catalogue message with ``%(why)s``) and the reason."""
    flash(web.i18n.gettext(text, why=getattr(exc, "message", None) or str(exc)), "error")


def name_of(user_id):
    """A person's name from the laptop's staff directory (None when it is not there)."""
    name = replica().staff_name(user_id)
    return None if name == user_id else name


def timezone_of(replica_path):
    """The region's time zone as the last handshake sent it, for the local times of the pages."""
    with Replica(replica_path) as opened:
        return opened.dispatch_settings().timezone


def back_to(default):
    """Where a form said to go back to (a path of these pages only, never another site), else ``default``."""
    target = request.form.get("back") or ""
    return target if target.startswith("/") and not target.startswith(("//", "/\\")) else default
