"""Serving the app over HTTP or HTTPS: cheroot, with the body limit in the HTTP server itself.

cheroot (CherryPy's HTTP server) is pure Python, runs on Linux and Windows alike,
and has a TLS adapter on the standard library's ``ssl``; waitress, which served
before, has no TLS and buffers a whole body (up to 1 GiB) before the app sees the
request. Here the server refuses a request whose ``Content-Length`` is over
``HEMSYNC_MAX_BODY_BYTES`` with a 413 before reading a byte of its body (and stops
a chunked body at the same limit), in the protocol's JSON error shape.
"""

import json
import os
import ssl

from cheroot import server as http_server
from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter

from .errors import ServeError, error_body

__all__ = ["make_server", "tls_adapter"]

#: cheroot's own plain-text answers (before the app runs) get the protocol's codes.
_CODES = {"400": "invalid_request", "413": "payload_too_large", "500": "internal_error"}


class _JsonErrorRequest(http_server.HTTPRequest):
    """A request whose answers made by the HTTP server itself carry the JSON error shape."""

    def simple_response(self, status, msg=""):
        """Write an error answered before the app ran (a 413 body, a bad request line) as JSON."""
        status = str(status)
        code = _CODES.get(status[:3], "http_" + status[:3])
        if status.startswith("413") and "entity" in str(msg):
            msg = (f"the request body is over {self.server.max_request_body_size} bytes "
                   "(HEMSYNC_MAX_BODY_BYTES): send fewer changes per batch")
        body = json.dumps(error_body(code, str(msg))).encode()
        head = [f"{self.server.protocol} {status}\r\n", f"Content-Length: {len(body)}\r\n",
                "Content-Type: application/json\r\n"]
        if status[:3] in {"413", "414"}:
            # The rest of the body is never read: the connection cannot carry another request.
            self.close_connection = True
            head.append("Connection: close\r\n")
        try:
            self.conn.wfile.write("".join(head).encode("ISO-8859-1") + b"\r\n" + body)
        except OSError as exc:
            if exc.args and exc.args[0] not in http_server.errors.socket_errors_to_ignore:
                raise


class _Connection(http_server.HTTPConnection):
    RequestHandlerClass = _JsonErrorRequest


def tls_adapter(certfile, keyfile):
    """The TLS adapter for a PEM certificate (chain) and key; raise ServeError naming what is wrong."""
    for what, path in (("certificate", certfile), ("key", keyfile)):
        if not path:
            raise ServeError(f"TLS needs both a certificate and a key: give --certfile and --keyfile "
                             f"(HEMSYNC_TLS_CERTFILE, HEMSYNC_TLS_KEYFILE); the {what} is missing")
        if not os.access(path, os.R_OK):
            raise ServeError(f"cannot read the TLS {what} {path}: check the path and its permissions")
    try:
        adapter = BuiltinSSLAdapter(certfile, keyfile)
    except (ssl.SSLError, ValueError, OSError) as exc:
        raise ServeError(f"the TLS certificate {certfile} and key {keyfile} do not load ({exc}): "
                         "give a PEM certificate and its matching unencrypted PEM key") from exc
    adapter.context.minimum_version = ssl.TLSVersion.TLSv1_2
    return adapter


def make_server(app, host="127.0.0.1", port=0, threads=None, certfile=None, keyfile=None, reuse_port=False):
    """A cheroot server for ``app`` (not yet listening: call ``prepare()`` then ``serve()``, or ``safe_start()``).

    TLS is on when ``certfile`` or ``keyfile`` is given (both are needed). The body
    limit is the app's ``HEMSYNC_MAX_BODY_BYTES``; threads (default HEMSYNC_THREADS),
    listen backlog, keep-alive connections and their timeout are the app's settings.
    ``reuse_port``: several processes listen on one port (``serve --workers``).
    """
    settings = app.config["HEMSYNC"]
    server = wsgi.Server((host, port), app, numthreads=threads or settings["HEMSYNC_THREADS"],
                         server_name="hemsync", reuse_port=reuse_port)
    server.ConnectionClass = _Connection
    server.max_request_body_size = settings["HEMSYNC_MAX_BODY_BYTES"]
    # cheroot's defaults are sized for one developer's browser, not a region (issue 17): past a
    # backlog of 5 a connecting laptop waits for the kernel's SYN retry or is refused, and past
    # 10 idle keep-alive connections cheroot closes each one after its answer.
    server.request_queue_size = settings["HEMSYNC_LISTEN_BACKLOG"]
    server.keep_alive_conn_limit = settings["HEMSYNC_KEEPALIVE_CONNECTIONS"]
    server.timeout = settings["HEMSYNC_CONNECTION_TIMEOUT"]
    if certfile or keyfile:
        server.ssl_adapter = tls_adapter(certfile, keyfile)
    return server
