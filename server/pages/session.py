"""Who is signed in to the pages: a signed session cookie that expires, and the role check of each page.

The cookie (Flask's, signed with a key derived from the server's secret) holds
the user's id, when the session began and a fingerprint of the password hash it
was opened with: after HEMSYNC_SESSION_MINUTES, or once an admin resets the
password, it no longer counts. It is HttpOnly, SameSite=Lax, and Secure when the
server speaks TLS (or sits behind a TLS proxy). :func:`begin` is the seam an
identity provider (OIDC) would call instead of the password form.
"""

import functools
import hashlib
import hmac
import json
import time

from flask import current_app, flash, g, redirect, render_template, request, session, url_for
from werkzeug.exceptions import HTTPException

from .. import passwords, web
from ..errors import ServerError
from ..writes import WriteApplier
from schema.clock import utcnow
from schema.errors import HemsyncError

__all__ = ["WEB_DEVICE", "POLL_AUDIT_SECONDS", "init_app", "begin", "end", "signed_in", "writes", "home_of",
           "audit_read", "store", "REFUSALS", "refused", "show_errors"]

#: What a page's action may be refused with: the merge's and the server's named errors, each with a message
#: that tells the person what to do. Anything else is a bug and ends in the error page.
REFUSALS = (HemsyncError, ServerError)

#: The device written on the pages' changes: the server itself, on behalf of the signed-in user.
WEB_DEVICE = {"id": "hemsync-web"}
#: A live part polled again every 2 s logs a patient it shows once per this many seconds, not per poll.
POLL_AUDIT_SECONDS = 600


def init_app(app):
    """Configure the session cookie from the settings."""
    values = app.config["HEMSYNC"]
    store = app.extensions["hemsync.store"]
    app.secret_key = hmac.new(store.server_secret(), b"hemsync web session", hashlib.sha256).digest()
    app.config.update(
        SESSION_COOKIE_NAME="hemsync_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=bool(values["HEMSYNC_TLS_CERTFILE"] or values["HEMSYNC_PROXY_HOPS"]),
        PERMANENT_SESSION_LIFETIME=values["HEMSYNC_SESSION_MINUTES"] * 60,
    )


def store():
    """The server's store, for the pages' views."""
    return current_app.extensions["hemsync.store"]


def begin(user):
    """Start a session for ``user`` (after the password, or an identity provider, vouched for them)."""
    session.clear()
    session.permanent = True
    session.update(user=user["id"], at=int(time.time()), pw=passwords.fingerprint(store(), user["id"]))


def end():
    """End the session."""
    session.clear()


def current_user():
    """The signed-in user, or None when there is no session or it expired or its password was reset."""
    user_id, began = session.get("user"), session.get("at", 0)
    if not user_id or time.time() - began > current_app.config["HEMSYNC"]["HEMSYNC_SESSION_MINUTES"] * 60:
        return None
    user = store().get_user(user_id)
    if user is None or session.get("pw") != passwords.fingerprint(store(), user_id):
        return None
    return user


def home_of(user):
    """Where a person lands after signing in: a dispatcher on the queue, a nurse on her requests."""
    return {"dispatcher": "dispatch.queue_page", "nurse": "nurse.my_requests",
            "admin": "admin.users"}.get(user["role"], "signin.no_pages")


NAV = {
    "nurse": (("nurse.my_requests", "My requests"), ("nurse.patients", "Patients")),
    "dispatcher": (("dispatch.queue_page", "Queue"),),
    "admin": (("admin.users", "Users"), ("admin.devices", "Devices"), ("admin.quarantine", "Quarantine"),
              ("admin.duplicates", "Duplicates"), ("admin.audit_log", "Audit log")),
}
NAV["admin"] += (("followup.figures", "Follow-up"),)
NAV["nurse"] += (("followup.due", "Due lists"),)


def _nav(user):
    return [{"url": url_for(endpoint), "label": web.i18n.gettext(label), "current": request.endpoint == endpoint}
            for endpoint, label in NAV.get(user["role"], ())]


def signed_in(*roles):
    """A view for signed-in users with one of ``roles``; others are sent to sign in, or refused 403."""
    def decorate(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            user = current_user()
            if user is None:
                end()
                return redirect(url_for("signin.sign_in", next=request.full_path))
            if user["role"] not in roles:
                return render_template("error.html", title=web.i18n.gettext("Not your page"),
                                       message=web.i18n.gettext("This page is for another role than yours."),
                                       signed_in=user, nav=_nav(user)), 403
            g.user = user
            g.nav = _nav(user)
            return view(*args, **kwargs)
        return wrapper
    return decorate


def page(template, **values):
    """Render a page for the signed-in user (with the menu)."""
    return render_template(template, signed_in=g.user, nav=g.nav, **values)


def writes():
    """The one write path, as the web device on behalf of the signed-in user (roles and scope are theirs)."""
    return WriteApplier(store(), current_app.config["HEMSYNC"], WEB_DEVICE, g.user, utcnow())


def audit_read(entries):
    """Write the read's audit entries; a live part's repeats within POLL_AUDIT_SECONDS are logged once.

    The first render of a page is always logged. Its polls (``?part=``) carry a key
    naming the user, the page, the patient, the time window and what was shown of
    the patient, which the store keeps once: an open board is not 40,000 audit rows
    a shift, yet who saw whom stays known to the window, and a record that appears
    on an open page (a signed plan) is logged when it first shows.
    """
    if request.args.get("part"):
        window = int(time.time()) // POLL_AUDIT_SECONDS
        entries = [{**e, "key": f"web-poll/{e['user_id']}/{request.path}/{e['patient_id']}/{window}/{_digest(e)}"}
                   for e in entries]
    store().audit(entries)


def refused(text, exc):
    """Tell the person why their action was refused: ``text`` (a catalogue message with ``%(why)s``) and the reason."""
    flash(web.i18n.gettext(text, why=getattr(exc, "message", None) or str(exc)), "error")


def _digest(entry):
    """A short fingerprint of what an audit entry says was shown."""
    return hashlib.sha256(json.dumps(entry.get("details"), sort_keys=True, default=str).encode()).hexdigest()[:16]


def show_errors(blueprint):
    """The pages' edge: every error in ``blueprint``'s views as a Swedish page, never the API's JSON.

    Not found (a patient outside the person's scope looks the same as none), the
    server's named errors with their message (a database that is restarting: try
    again shortly), and anything else as "the server failed" with the error logged.
    """
    gettext = web.i18n.gettext

    def show(message, status, title=None, headers=None):
        user = current_user()
        return render_template("error.html", title=title or gettext("Not done"), message=message, signed_in=user,
                               nav=_nav(user) if user else None), status, headers or {}

    @blueprint.errorhandler(404)
    def not_found(_):
        return show(gettext("There is nothing here, or it is not yours to see."), 404, title=gettext("Not found"))

    @blueprint.errorhandler(ServerError)
    def server_error(error):
        retry_after = getattr(error, "retry_after", None)
        return show(getattr(error, "message", None) or str(error), getattr(error, "status", 500),
                    headers={"Retry-After": str(retry_after)} if retry_after else None)

    @blueprint.errorhandler(HemsyncError)
    def refused_error(error):
        return show(error.message, 400)

    @blueprint.errorhandler(Exception)
    def failed(error):
        if isinstance(error, HTTPException):
            return show(error.description, error.code or 500)
        current_app.logger.exception("a page failed")
        return show(gettext("The server failed on this page; nothing was saved. Try again, "
                            "and tell the support if it goes on."), 500)
