"""Who may drive the laptop's pages: the doctor's own browser, opened with this launch's secret link.

The pages listen on loopback only, but loopback is shared by every user of the
laptop and reachable from any web page the doctor's browser opens, so three
checks stand in front of every view:

- the Host header must name this server (``127.0.0.1:PORT`` or ``localhost:PORT``):
  a page of another origin that rebinds its own DNS name to 127.0.0.1 (DNS
  rebinding) still sends its own name, and is refused;
- the session cookie must come from this launch: ``hemsync ui`` makes a secret
  per launch and prints ``/launch?key=SECRET`` (and opens it through an
  owner-only file, :meth:`.listener.Listener.launch_file`); that link sets an
  HttpOnly, SameSite=Strict session cookie signed with a key that also lives only
  as long as this launch. Another local user never sees the secret, so their
  process has no way in; a cookie of an earlier launch no longer counts;
- a request the browser says another origin made (Fetch Metadata,
  ``Sec-Fetch-Site`` other than ``same-origin`` or ``none``) is refused, whatever
  it is: another port of 127.0.0.1 is the same *site* to a browser (ports do
  not make sites), so SameSite=Strict does not keep the cookie off a page
  served there, and its fetches, frames, images and scripts would otherwise
  reach the views (it could not read the answers, but each one would write the
  access log as if the doctor had opened the patient). Only the launch link may
  come from elsewhere (the launch file is ``file://``): it needs the secret;
- an unsafe request (POST) must carry the session's CSRF token
  (:mod:`server.web.csrf`) and, when the browser names one, our own Origin.
"""

import hmac
import secrets

from flask import abort, current_app, render_template, request, session

__all__ = ["LAUNCH_PATH", "new_secret", "install", "launch_url"]

LAUNCH_PATH = "/launch"
LOOPBACK_PEERS = ("127.0.0.1", "::1")
#: What ``Sec-Fetch-Site`` says of a request of the doctor's own: made by these pages, or typed, bookmarked, reloaded.
OWN_FETCHES = ("same-origin", "none")
_LAUNCH = "launch"
_OPEN = frozenset({"launch", "web.static"})
_EXTENSION = "hemsync.ui.launch"


def new_secret():
    """A fresh per-launch secret for the launch link."""
    return secrets.token_urlsafe(32)


def launch_url(port, secret):
    """The link ``hemsync ui`` prints and opens: it starts the browser's session."""
    return f"http://127.0.0.1:{port}{LAUNCH_PATH}?key={secret}"


def _hosts(port):
    return {f"127.0.0.1:{port}", f"localhost:{port}"}


def install(app, *, port, secret):
    """Configure ``app``'s session cookie for this launch and put the checks in front of every view."""
    app.secret_key = secrets.token_bytes(32)  # a cookie of an earlier launch no longer counts
    app.config.update(
        # Cookies are not kept apart by port: the name carries it, so two launches on two ports do not clash.
        SESSION_COOKIE_NAME=f"hemsync_laptop_{port}",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=False,  # plain HTTP on loopback; nothing leaves the laptop
    )
    app.extensions[_EXTENSION] = {"secret": secret, "id": secrets.token_urlsafe(16), "hosts": _hosts(port)}
    app.before_request(_check)
    app.add_url_rule(LAUNCH_PATH, "launch", _launch)
    app.after_request(_headers)


def _check():
    launch = current_app.extensions[_EXTENSION]
    # Before anything else, static files included: a rebound name gets nothing from us.
    if request.host not in launch["hosts"] or request.remote_addr not in LOOPBACK_PEERS:
        abort(403)
    fetched_by = request.headers.get("Sec-Fetch-Site")  # absent in old browsers: the checks below still hold
    if fetched_by is not None and fetched_by not in OWN_FETCHES and request.endpoint != _LAUNCH:
        abort(403)
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        origin = request.headers.get("Origin")
        if origin is not None and origin.removeprefix("http://") not in launch["hosts"]:
            abort(403)
    if request.endpoint in _OPEN or session.get(_LAUNCH) == launch["id"]:
        return None
    return render_template("laptop_locked.html"), 401


def _launch():
    """Start the browser's session with the launch secret, then go on to today's page from this page itself.

    Not a redirect: the launch link is opened from another origin (the launch
    file, ``file://``), and a redirect keeps that navigation cross-site, so the
    browser would neither send the SameSite=Strict cookie just set nor say
    ``same-origin`` to the check above. A page of ours that moves on by itself
    starts a navigation of our own origin.
    """
    launch = current_app.extensions[_EXTENSION]
    key = request.args.get("key", "")
    if not hmac.compare_digest(key.encode(), launch["secret"].encode()):
        return render_template("laptop_locked.html"), 401
    session.clear()
    session[_LAUNCH] = launch["id"]
    return render_template("laptop_launched.html")


def _headers(response):
    response.headers["Cache-Control"] = "no-store"
    # The launch link's key never leaves these pages; "no-referrer" would make form posts say Origin: null.
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = "default-src 'self'; frame-ancestors 'none'"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
