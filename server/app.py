"""The sync server's Flask app: the API, FHIR, the people's pages and the store, wired together."""

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from . import errors, pages, settings, timing
from .api import public, v1
from .body_encoding import compress_response
from .fhir.endpoints import blueprint as fhir_blueprint
from .openapi import openapi
from .store import database_target, open_store

__all__ = ["create_app"]


def create_app(test_config=None):
    """Build the server app.

    ``test_config`` may set settings by name (``HEMSYNC_DB`` or ``db``), Flask
    config keys, and ``STORE``: an open :class:`Store` to use instead of opening
    ``HEMSYNC_DATABASE_URL`` or ``HEMSYNC_DB`` (tests and the CLI share one that way).
    """
    overrides, flask_config = {}, {}
    for key, value in (test_config or {}).items():
        (overrides if settings.setting_name(key) else flask_config)[key] = value
    values = settings.load(overrides=overrides)
    app = Flask(__package__)
    app.config["HEMSYNC"] = values
    # Plain bodies are cut off here; gzip bodies are counted again after inflating (server.body_encoding).
    app.config["MAX_CONTENT_LENGTH"] = values["HEMSYNC_MAX_BODY_BYTES"]
    app.config.update(flask_config)
    app.extensions["hemsync.store"] = flask_config.get("STORE") or open_store(
        database_target(values), write_wait=values["HEMSYNC_WRITE_WAIT_SECONDS"])
    errors.init_app(app)
    app.register_blueprint(public)
    app.register_blueprint(openapi)
    app.register_blueprint(v1)
    app.register_blueprint(fhir_blueprint)
    pages.init_app(app)
    app.after_request(compress_response)
    app.wsgi_app = _ServerTiming(app.wsgi_app)
    hops = values["HEMSYNC_PROXY_HOPS"]
    if hops:
        # Behind a TLS proxy (docs/deploy.md) the client's address is what the proxy saw.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=0, x_port=0, x_prefix=0)
    return app


class _ServerTiming:
    """WSGI middleware: every answer says how long the app took, ``Server-Timing: app;dur=MS``, and its waits.

    What a laptop waits for is the app's time plus the queue for a worker thread,
    the network and the laptop's own work; under load (``make load``) the header
    tells the first apart from the rest, and the app's time in the writer's queue
    (``writer;dur=MS``, :mod:`server.timing`) from the rest of it. Taken when the
    answer's head is sent, so a streamed body (a FHIR export) counts until its first byte.
    """

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        timing.begin()

        def timed(status, headers, exc_info=None):
            headers.append(("Server-Timing", timing.header()))
            return start_response(status, headers, exc_info)

        return self.wsgi_app(environ, timed)
