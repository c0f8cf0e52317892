"""Sign-in and sign-out: the person's HSA-id and password, rate-limited per client address.

Failed attempts are audited (``auth_failed``, reason ``password``) and counted by
the same :class:`server.auth.AuthThrottle` as bad tokens (its own instance):
past HEMSYNC_AUTH_FAILURES an address is answered 429 for a while.
"""

from urllib.parse import urlparse

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for

from .. import audit, auth, passwords, web
from ..errors import TooManyRequests
from . import session

__all__ = ["blueprint"]

blueprint = Blueprint("signin", __name__)
web.csrf.protect(blueprint)
session.show_errors(blueprint)
THROTTLE = "hemsync.signin_throttle"


@blueprint.record_once
def _throttle(state):
    state.app.extensions[THROTTLE] = auth.AuthThrottle.from_settings(state.app.config["HEMSYNC"])


@blueprint.route("/", methods=["GET"])
def index():
    """The start page: a signed-in person's own page, else the sign-in form."""
    user = session.current_user()
    return redirect(url_for(session.home_of(user) if user else "signin.sign_in"))


@blueprint.route("/sign-in", methods=["GET", "POST"])
def sign_in():
    """The sign-in form; on success, the person's landing page (or the page they came for)."""
    if request.method == "GET":
        return render_template("signin.html")
    throttle, address = current_app.extensions[THROTTLE], request.remote_addr or "unknown"
    hsa_id = request.form.get("hsa_id", "")
    try:
        throttle.check(address)
    except TooManyRequests as exc:
        flash(web.i18n.gettext("Too many failed sign-ins from this computer: wait %(seconds)s seconds.",
                                seconds=exc.details["retry_after"]), "error")
        return render_template("signin.html", hsa_id=hsa_id), 429, {"Retry-After": str(exc.details["retry_after"])}
    user = passwords.verify(current_app.extensions["hemsync.store"], hsa_id, request.form.get("password", ""))
    if user is None:
        locked = throttle.failed(address)
        current_app.extensions["hemsync.store"].audit(
            [audit.auth_failed("password", address, "POST /sign-in", locked_out=locked)])
        flash(web.i18n.gettext("Wrong HSA-id or password."), "error")
        return render_template("signin.html", hsa_id=hsa_id), 401
    session.begin(user)
    wanted = request.args.get("next", "")
    # Only a path on this server: never an address elsewhere (an open redirect).
    if wanted.startswith("/") and not wanted.startswith("//") and not urlparse(wanted).netloc:
        return redirect(wanted)
    return redirect(url_for(session.home_of(user)))


@blueprint.post("/sign-out")
def sign_out():
    """End the session."""
    session.end()
    return redirect(url_for("signin.sign_in"))


@blueprint.get("/no-pages")
def no_pages():
    """For a role with no server pages yet (doctors work on the laptop)."""
    user = session.current_user()
    return render_template("error.html", title=web.i18n.gettext("No pages for you here"),
                           message=web.i18n.gettext("Doctors work in hemsync on their laptop."), signed_in=user)
