"""The OpenAPI document served at ``GET /openapi.json``, built from the protocol's schemas.

The request and response bodies come from :mod:`server.bodies` — the same
marshmallow schemas the server validates with — so this document cannot drift
from what the server accepts.
"""

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, jsonify

from . import bodies
from .errors import ERROR_STATUS
from .settings import SERVER_VERSION

__all__ = ["build_spec", "openapi"]

openapi = Blueprint("openapi", __name__)

_ERRORS = {str(status): {"description": code, "content": {"application/json": {"schema": "Error"}}}
           for code, status in sorted(ERROR_STATUS.items(), key=lambda item: item[1])}

_SECURED = [{"bearer": []}]
_CLIENT = {"name": "X-Hemsync-Client", "in": "header", "required": True, "schema": {"type": "string"},
           "description": "the client's version; older than the server accepts gets 426 client_too_old"}


def _json(schema, description="OK"):
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _operation(summary, response, request_body=None, parameters=(), secured=True):
    operation = {"summary": summary, "responses": {"200": _json(response), **(_ERRORS if secured else {})}}
    if secured:
        operation["security"] = _SECURED
        operation["parameters"] = [_CLIENT, *parameters]
    elif parameters:
        operation["parameters"] = list(parameters)
    if request_body:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": request_body}}}
    return operation


def _query(name, description, kind="string"):
    return {"name": name, "in": "query", "required": False, "schema": {"type": kind}, "description": description}


def build_spec(version):
    """The OpenAPI 3 document of the sync protocol, as a dict."""
    spec = APISpec(title="hemsync sync server", version=version, openapi_version="3.0.3",
                   plugins=[MarshmallowPlugin()],
                   info={"description": "Offline-first sync for mobile home-care doctors; see docs/protocol.md."})
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    for name in bodies.__all__:
        # Nested schemas were registered already by the plugin when their parent was.
        if name.endswith("Schema") and name[: -len("Schema")] not in spec.components.schemas:
            spec.components.schema(name[: -len("Schema")], schema=getattr(bodies, name))
    spec.path(path="/healthz", operations={"get": _operation("liveness", "Health", secured=False)})
    spec.path(path="/openapi.json", operations={"get": {
        "summary": "this document", "responses": {"200": {"description": "the OpenAPI document"}}}})
    spec.path(path="/v1/handshake", operations={"post": _operation(
        "client version and outbox size in; identity, staff directory and limits out",
        "HandshakeResponse", "HandshakeRequest")})
    spec.path(path="/v1/push", operations={"post": _operation(
        "merge a batch of changes; one result per change", "PushResponse", "PushRequest")})
    spec.path(path="/v1/pull", operations={"get": _operation(
        "one page of record states and purge markers since the cursor", "PullResponse",
        parameters=(_query("cursor", "opaque; omit for a first sync"),
                    _query("limit", "most records in the page", "integer")))})
    spec.path(path="/v1/access-log", operations={"post": _operation(
        "openings of patient records logged on the laptop", "AccessLogResponse", "AccessLogRequest")})
    spec.path(path="/v1/admin/audit", operations={"get": _operation(
        "the audit log (admin; the read is audited)", "AuditLogResponse",
        parameters=(_query("patient_id", "only this patient's entries"), _query("after", "entry id", "integer"),
                    _query("limit", "most entries", "integer")))})
    spec.path(path="/v1/admin/devices", operations={"get": _operation(
        "device health (admin)", "DevicesResponse")})
    spec.path(path="/v1/admin/quarantine", operations={"get": _operation(
        "rejected changes and why (admin; the read is audited, it holds clinical text)", "QuarantineResponse",
        parameters=(_query("after", "entry id", "integer"), _query("limit", "most entries", "integer")))})
    spec.path(path="/v1/digest", operations={"get": _operation(
        "digests of every record in the device's scope, as pull would ship it now", "DigestResponse")})
    spec.path(path="/v1/fetch", operations={"post": _operation(
        "named records in the device's scope, as pull ships them (audited)", "FetchResponse", "FetchRequest")})
    spec.path(path="/v1/queue", operations={"get": _operation(
        "the open requests in dispatch order, with why (dispatcher; audited)", "QueueResponse",
        parameters=(_query("municipality", "only this municipality's requests"),))})
    spec.path(path="/v1/requests/{request_id}/suggestions", operations={"get": _operation(
        "doctors to assign an open request to, named doctor first (dispatcher; audited)", "SuggestionsResponse",
        parameters=({"name": "request_id", "in": "path", "required": True, "schema": {"type": "string"}},))})
    spec.path(path="/v1/escalations", operations={"get": _operation(
        "the escalation feed: newest first, or oldest first after a cursor (dispatcher; audited)",
        "EscalationsResponse",
        parameters=(_query("after", "entry id: only newer entries, oldest first", "integer"),
                    _query("limit", "most entries", "integer"),
                    _query("municipality", "only this municipality's entries")))})
    return spec.to_dict()


@openapi.get("/openapi.json")
def openapi_json():
    """Serve the OpenAPI document."""
    return jsonify(build_spec(SERVER_VERSION))
