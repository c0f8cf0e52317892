"""The server's errors and their one JSON shape, mapped to statuses in one place.

Every error a client sees is ``{"error": {"code", "message", "details"}}`` with a
stable code from docs/protocol.md. Per-change rejections in a push use the codes
of :mod:`schema.errors`; whole-request problems are these:

    ServerError
    ├── ApiError                 (carries an HTTP status)
    │   ├── MalformedJson        400 malformed_json
    │   ├── InvalidBatch         400 invalid_batch
    │   ├── InvalidRequest       400 invalid_request
    │   ├── Unauthorized         401 unauthorized
    │   ├── DeviceRevoked        403 device_revoked
    │   ├── RoleForbidden        403 forbidden
    │   ├── NotFound             404 not_found
    │   ├── MethodNotAllowed     405 method_not_allowed
    │   ├── PayloadTooLarge      413 payload_too_large
    │   ├── ClientTooOld         426 client_too_old
    │   ├── TooManyRequests      429 too_many_requests (with Retry-After)
    │   ├── ServerBusy           503 server_busy (with Retry-After: the database writer stayed busy)
    │   │   └── DatabaseUnavailable  503 database_unavailable (with Retry-After: the database is restarting
    │   │                            or unreachable)
    │   └── InternalError        500 internal_error
    ├── StoreError               (a storage problem; wraps the driver's error as __cause__)
    ├── ServeError               (the server cannot start serving: a TLS certificate that does not load)
    └── ChangeRefused            (the merge refused a server-side change: an admin act, a job, the seed; a bug,
                                  rolled back whole)
"""

import logging

from flask import jsonify
from werkzeug.exceptions import HTTPException

from schema.errors import HemsyncError

__all__ = [
    "ServerError",
    "ApiError",
    "MalformedJson",
    "InvalidBatch",
    "InvalidRequest",
    "Unauthorized",
    "DeviceRevoked",
    "RoleForbidden",
    "NotFound",
    "MethodNotAllowed",
    "PayloadTooLarge",
    "ClientTooOld",
    "TooManyRequests",
    "ServerBusy",
    "DatabaseUnavailable",
    "InternalError",
    "StoreError",
    "ServeError",
    "ChangeRefused",
    "ERROR_STATUS",
    "error_body",
    "init_app",
]

log = logging.getLogger(__name__)


class ServerError(Exception):
    """Base of every error raised by the server package."""


class ApiError(ServerError):
    """An error answered to the whole request, with its status and stable code."""

    status = 400
    code = "error"

    def __init__(self, message, *, details=None):
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def to_dict(self):
        """The error as the one JSON shape."""
        return {"code": self.code, "message": self.message, "details": self.details}


class MalformedJson(ApiError):
    """The body is not JSON (or not gzip when it says so)."""

    status, code = 400, "malformed_json"


class InvalidBatch(ApiError):
    """The body's shape is wrong: not a list of changes, missing keys, duplicate ids."""

    status, code = 400, "invalid_batch"


class InvalidRequest(ApiError):
    """The query string is wrong: an unreadable cursor or limit."""

    status, code = 400, "invalid_request"


class Unauthorized(ApiError):
    """No bearer token, or one the server does not know."""

    status, code = 401, "unauthorized"


class DeviceRevoked(ApiError):
    """The device is revoked: it must wipe its replica."""

    status, code = 403, "device_revoked"


class RoleForbidden(ApiError):
    """The user's role may not call this endpoint."""

    status, code = 403, "forbidden"


class NotFound(ApiError):
    """No such endpoint, user, device or record."""

    status, code = 404, "not_found"


class MethodNotAllowed(ApiError):
    """The endpoint exists but not with this HTTP method."""

    status, code = 405, "method_not_allowed"


class PayloadTooLarge(ApiError):
    """The body, after decompression, is over HEMSYNC_MAX_BODY_BYTES."""

    status, code = 413, "payload_too_large"


class ClientTooOld(ApiError):
    """The client is older than HEMSYNC_MIN_CLIENT_VERSION."""

    status, code = 426, "client_too_old"


class TooManyRequests(ApiError):
    """Too many failed authentications from this address, or requests from this device: wait ``retry_after`` s."""

    status, code = 429, "too_many_requests"

    def __init__(self, message, *, retry_after, details=None):
        super().__init__(message, details={"retry_after": retry_after, **(details or {})})
        self.retry_after = retry_after


class ServerBusy(ApiError):
    """The server is saturated (the database writer stayed busy): nothing was applied, try after ``retry_after``."""

    status, code = 503, "server_busy"

    def __init__(self, message, *, retry_after, details=None):
        super().__init__(message, details={"retry_after": retry_after, **(details or {})})
        self.retry_after = retry_after


class DatabaseUnavailable(ServerBusy):
    """The database is restarting or unreachable (a connection lost, none to be had): try after ``retry_after``.

    A push answered so may have been committed just before the connection was lost: retrying
    it is safe, as a push is applied once per change id.
    """

    status, code = 503, "database_unavailable"


class InternalError(ApiError):
    """A bug: nothing of the request was applied."""

    status, code = 500, "internal_error"


class StoreError(ServerError):
    """The store could not do what was asked (the driver's error is the cause)."""


class ServeError(ServerError):
    """The server cannot start serving as asked (a TLS certificate or key that does not load)."""


class ChangeRefused(ServerError):
    """The merge refused a change the server made itself (an admin act, a job, the seed); nothing was kept."""

    def __init__(self, message, *, details=None):
        super().__init__(message)
        self.message = message
        self.details = details or {}


#: Every whole-request code and its status: the table docs/protocol.md documents.
ERROR_STATUS = {cls.code: cls.status for cls in (
    MalformedJson, InvalidBatch, InvalidRequest, Unauthorized, DeviceRevoked, RoleForbidden, NotFound,
    MethodNotAllowed, PayloadTooLarge, ClientTooOld, TooManyRequests, ServerBusy, DatabaseUnavailable,
    InternalError,
)}

_HTTP = {404: NotFound, 405: MethodNotAllowed, 413: PayloadTooLarge}


def error_body(code, message, details=None):
    """The one JSON error shape, ``{"error": {"code", "message", "details"}}``, as a dict."""
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _respond(error, status):
    """The JSON response for an ApiError or a contract error (HemsyncError), built by :func:`error_body`."""
    response = jsonify(error_body(error.code, error.message, error.details))
    response.status_code = status
    if isinstance(error, (TooManyRequests, ServerBusy)):
        response.headers["Retry-After"] = str(error.retry_after)
    return response


def init_app(app):
    """Register the one mapping from exceptions to JSON error responses."""

    @app.errorhandler(ApiError)
    def api_error(error):
        return _respond(error, error.status)

    @app.errorhandler(HemsyncError)
    def contract_error(error):
        # A contract error outside a push (an admin command over HTTP, a bad query):
        # the request as a whole was wrong.
        return _respond(error, 400)

    @app.errorhandler(HTTPException)
    def http_error(error):
        cls = _HTTP.get(error.code)
        if cls is None:
            response = jsonify(error_body("http_" + str(error.code), error.description))
            response.status_code = error.code or 500
            return response
        messages = {
            404: "no such endpoint: see GET /openapi.json for the API",
            405: "this endpoint does not accept this HTTP method; see GET /openapi.json",
            413: "the request body is over the size limit (counted after decompression): send fewer changes",
        }
        return _respond(cls(messages[error.code]), cls.status)

    @app.errorhandler(Exception)
    def unexpected(error):
        log.exception("unhandled error")
        return _respond(InternalError("the server failed on this request and applied nothing of it; "
                                      "it is safe to retry, and the error is logged"), InternalError.status)
