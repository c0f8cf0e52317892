"""CSRF protection in one place: a token per session, required on every form and page POST.

A blueprint calls :func:`protect` once; every POST to it must carry the
session's token as the ``csrf_token`` form field or the ``X-CSRF-Token``
header (the pages' fetch calls), else it is answered 403 with the
``csrf_error.html`` page. The session cookie is SameSite=Lax as well, but the
token is what holds where a browser ignores that.
"""

import hmac
import secrets

from flask import render_template, request, session
from markupsafe import Markup, escape

__all__ = ["token", "field", "protect", "FIELD", "HEADER"]

FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
_KEY = "csrf"


def token():
    """This session's CSRF token, made on first use."""
    if _KEY not in session:
        session[_KEY] = secrets.token_urlsafe(32)
    return session[_KEY]


def field():
    """The hidden form field carrying the token (every form's first line)."""
    return Markup(f'<input type="hidden" name="{FIELD}" value="{escape(token())}">')


def _check():
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return None
    sent = request.form.get(FIELD) or request.headers.get(HEADER) or ""
    expected = session.get(_KEY) or ""
    if expected and hmac.compare_digest(sent.encode(), expected.encode()):
        return None
    return render_template("csrf_error.html"), 403


def protect(blueprint):
    """Refuse every unsafe request to ``blueprint`` that lacks the session's CSRF token."""
    blueprint.before_request(_check)
