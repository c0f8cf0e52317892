"""The people's pages, shared: templates, the message catalogue, filters and CSRF protection.

This package imports only ``schema/``, Flask and Babel, never the rest of
``server/`` or ``client_sync/``: the server's pages (:mod:`server.pages`) add
their views on top of it, and the laptop's offline pages will import it the
same way and add theirs. Templates live in ``templates/`` (a base with blocks,
partials named ``_thing.html``, autoescaping on), UI text in the catalogue
``messages/<locale>.po`` (so another language is a translation, not an edit of
templates), times through one local-time filter.

``init_app(app, timezone=..., name_of=...)`` wires it into an app;
``blueprint`` serves its templates and static files.
"""

from flask import Blueprint

from . import csrf, filters, i18n, search, vitals

__all__ = ["blueprint", "init_app", "csrf", "i18n", "filters", "search", "vitals"]

blueprint = Blueprint("web", __name__, template_folder="templates", static_folder="static",
                      static_url_path="/static/web")


def init_app(app, timezone, name_of, locale=i18n.DEFAULT_LOCALE):
    """Make the pages' templates, catalogue and filters available to ``app``.

    ``timezone`` is the IANA zone times are shown in; ``name_of(user_id)`` gives
    a person's name (the server asks its store, the laptop its staff directory).
    """
    app.jinja_env.autoescape = True
    i18n.install(app, locale)
    filters.install(app, timezone, name_of)
    app.jinja_env.globals["csrf_field"] = csrf.field
    app.jinja_env.globals["csrf_token"] = csrf.token
    app.register_blueprint(blueprint)
