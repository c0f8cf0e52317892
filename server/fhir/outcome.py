"""Every failure of the FHIR API as an OperationOutcome with its HTTP status: the one mapping.

The errors are the server's and the schema's own (server.errors, schema.errors);
this module only says how the FHIR edge shows them.
"""

from flask import current_app, jsonify
from werkzeug.exceptions import HTTPException

from schema.errors import HemsyncError, OutOfScope, UnknownReference

from ..errors import ApiError, InternalError, ServerBusy, TooManyRequests

__all__ = ["operation_outcome", "register", "MEDIA_TYPE"]

MEDIA_TYPE = "application/fhir+json"
#: HTTP status -> OperationOutcome issue code
ISSUE_CODES = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported",
               406: "not-supported", 410: "deleted", 413: "too-costly", 422: "processing", 426: "security",
               429: "throttled", 500: "exception", 503: "transient"}


def operation_outcome(status, message, code=None, severity="error", diagnostics=None):
    """An OperationOutcome of one issue."""
    issue = {"severity": severity, "code": ISSUE_CODES.get(status, "exception") if code is None else code,
             "details": {"text": message}}
    if diagnostics:
        issue["diagnostics"] = diagnostics
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def _respond(status, message, hemsync_code=None, retry_after=None):
    response = jsonify(operation_outcome(status, message, diagnostics=hemsync_code))
    response.status_code = status
    response.mimetype = MEDIA_TYPE
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def register(blueprint):
    """Answer every error raised under ``blueprint`` as an OperationOutcome."""

    @blueprint.errorhandler(ApiError)
    def api_error(error):
        retry = error.retry_after if isinstance(error, (TooManyRequests, ServerBusy)) else None
        return _respond(error.status, error.message, error.code, retry)

    @blueprint.errorhandler(HemsyncError)
    def contract_error(error):
        # Outside its scope a record does not exist for the client: 404, never "it is there but not yours".
        status = 404 if isinstance(error, OutOfScope) else 422 if isinstance(error, UnknownReference) else 400
        return _respond(status, error.message, error.code)

    @blueprint.errorhandler(HTTPException)
    def http_error(error):
        return _respond(error.code or 500, error.description or error.name)

    @blueprint.errorhandler(Exception)
    def unexpected(error):
        current_app.logger.exception("unhandled error in the FHIR API")
        return _respond(500, InternalError.__doc__.strip() + " The error is logged; it is safe to retry.",
                        InternalError.code)
