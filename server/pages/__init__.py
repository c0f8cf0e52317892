"""The server's people's pages: sign-in, the nurse's, the dispatcher's and the admin's views.

Views only gather and show: the templates, catalogue and filters are
:mod:`server.web`'s (shared with the laptop's pages); every rule (NEWS2,
deadlines, queue order, suggestions, roles) is ``schema/``'s; every write goes
through :class:`server.writes.WriteApplier` as the server's web device with the
signed-in person as its user, so the merge, roles, scope and audit of a push
apply; every page that shows patients audits the read. See docs/web.md.
"""

from flask import g

from .. import web
from . import admin, dispatch, followup, nurse, session, signin

__all__ = ["init_app"]


def init_app(app):
    """Register the pages on the server ``app`` (sessions, the shared templates); each blueprint checks CSRF."""
    store = app.extensions["hemsync.store"]

    def name_of(user_id):
        # Once per person and request: a board names the same few people hundreds of times.
        names = g.setdefault("person_names", {})
        if user_id not in names:
            user = store.get_user(user_id)
            names[user_id] = user["name"] if user else None
        return names[user_id]

    web.init_app(app, timezone=app.config["HEMSYNC"]["HEMSYNC_TIMEZONE"], name_of=name_of)
    session.init_app(app)
    for blueprint in (signin.blueprint, nurse.blueprint, dispatch.blueprint, admin.blueprint, followup.blueprint):
        app.register_blueprint(blueprint)
