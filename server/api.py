"""The HTTP endpoints: thin views over push, pull, auth and the admin reads.

Every ``/v1/`` call is authenticated (bearer token -> device -> user), refused
for a revoked device, and checked for the client's version, before any view
runs. The views only translate between HTTP and the modules that do the work.
"""

import dataclasses

from flask import Blueprint, current_app, g, jsonify, request

from schema.clock import now_text, utcnow

from . import audit, auth, integrity, queue, scope
from .errors import ClientTooOld, InvalidRequest, RoleForbidden
from .body_encoding import CONTENT_ENCODINGS, json_body
from .bodies import AccessLogRequestSchema, HandshakeRequestSchema, load
from .pull import pull
from .push import push
from .settings import SERVER_VERSION, dispatch_settings

__all__ = ["public", "v1", "caller"]

public = Blueprint("public", __name__)
v1 = Blueprint("v1", __name__, url_prefix="/v1")

_HANDSHAKE = HandshakeRequestSchema()
_ACCESS_LOG = AccessLogRequestSchema()
#: Device columns an admin sees: never the token hash.
THROTTLE = "hemsync.auth_throttle"
DEVICE_RATE = "hemsync.device_rate"
DEVICE_PUSHES = "hemsync.device_pushes"


@v1.record_once
def _throttle(state):
    """One throttle of failed authentications, one rate and one push slot per device, per app (per process)."""
    state.app.extensions[THROTTLE] = auth.AuthThrottle.from_settings(state.app.config["HEMSYNC"])
    state.app.extensions[DEVICE_RATE] = auth.DeviceRate.from_settings(state.app.config["HEMSYNC"])
    state.app.extensions[DEVICE_PUSHES] = auth.DevicePushes()


def _store():
    return current_app.extensions["hemsync.store"]


def _settings():
    return current_app.config["HEMSYNC"]



@public.get("/healthz")
def healthz():
    """Liveness: the server answers and its database opens."""
    _store().head()
    return jsonify({"status": "ok"})


def caller():
    """``(device, user)`` of the request's bearer token; locked-out addresses and over-rate devices stop here.

    A missing, unknown or revoked token is written to the audit log and counted
    against the client's address; past HEMSYNC_AUTH_FAILURES the address waits.
    A device past HEMSYNC_DEVICE_RATE requests a minute is answered 429 with Retry-After.
    The sync API and the FHIR API (server.fhir) authenticate alike, here.
    """
    store = _store()
    throttle, address = current_app.extensions[THROTTLE], request.remote_addr or "unknown"
    throttle.check(address)

    def failed(reason, token_hash, device):
        locked = throttle.failed(address)
        store.audit([audit.auth_failed(reason, address, f"{request.method} {request.path}", token_hash, device,
                                       locked_out=locked)])

    device, user = auth.authenticate(store, request.headers.get("Authorization"), on_failure=failed)
    current_app.extensions[DEVICE_RATE].take(device["id"])
    return device, user


@v1.before_request
def authenticate():
    """Who is calling (:func:`caller`); integration clients, revoked devices and old clients stop here."""
    store, settings = _store(), _settings()
    g.device, g.user = caller()
    if g.user["role"] == auth.CLIENT_ROLE:
        raise RoleForbidden("an integration client reads FHIR at /fhir/r4/ and does not sync: "
                            "enroll a laptop for a person to sync")
    version = request.headers.get(auth.CLIENT_HEADER)
    try:
        auth.check_client_version(version, settings["HEMSYNC_MIN_CLIENT_VERSION"])
    except ClientTooOld:
        # Device health shows the admin which laptops wait for an upgrade.
        store.update_device(g.device["id"], {"client_version": version, "last_seen_at": now_text()})
        raise


@v1.post("/handshake")
def handshake():
    """The client's version and outbox size in; who it is, the staff directory and limits out."""
    settings = _settings()
    body = load(_HANDSHAKE, _optional_body(), "handshake body")
    _store().note_device(g.device["id"], {
        "pending": body["pending"], "reported_rejected": body["rejected"], "last_seen_at": now_text(),
        "client_version": request.headers.get(auth.CLIENT_HEADER),
    })
    return jsonify({
        "server_version": SERVER_VERSION,
        "min_client_version": settings["HEMSYNC_MIN_CLIENT_VERSION"],
        "device": {"id": g.device["id"], "label": g.device["label"]},
        "user": scope.staff_entry(g.user),
        "staff": scope.staff(_store()),
        "municipalities": _store().municipalities(),
        "server_time": now_text(),
        "max_clock_ahead_ms": settings["HEMSYNC_MAX_CLOCK_AHEAD"] * 1000,
        "page_size": settings["HEMSYNC_PAGE_SIZE"],
        "max_batch": settings["HEMSYNC_MAX_BATCH"],
        "content_encodings": list(CONTENT_ENCODINGS),
        "dispatch": dispatch_settings(settings).to_wire(),
    })


@v1.post("/push")
def push_changes():
    """Merge a batch of changes; one result per change. A device pushes one batch at a time."""
    body = json_body(_settings()["HEMSYNC_MAX_BODY_BYTES"])
    with current_app.extensions[DEVICE_PUSHES].one_at_a_time(g.device["id"]):
        return jsonify(push(_store(), _settings(), g.device, g.user, body))


@v1.get("/pull")
def pull_records():
    """One page of record states and purge markers since the cursor."""
    page = pull(_store(), _settings(), g.device, g.user, request.args.get("cursor"), request.args.get("limit"))
    return current_app.response_class(page.to_json(), mimetype="application/json")


@v1.post("/access-log")
def access_log():
    """Openings of patient records logged on the laptop, offline too; de-duplicated by id."""
    body = load(_ACCESS_LOG, json_body(_settings()["HEMSYNC_MAX_BODY_BYTES"]), "access log")
    store, now = _store(), utcnow()
    keys = scope.keys_for(store, g.user)
    taken, refused = [], []
    for entry in body["entries"]:
        reason = audit.access_problem(entry, now) or _access_out_of_scope(store, keys, entry)
        if reason:
            refused.append((entry, reason))
        else:
            taken.append(entry)
    added = store.audit(audit.accesses(g.user, g.device, taken)) if taken else 0
    store.audit([audit.access_refused(g.user, g.device, entry, reason) for entry, reason in refused])
    return jsonify({"accepted": added, "refused": [{"id": e["id"], "reason": r} for e, r in refused]})


def _access_out_of_scope(store, keys, entry):
    """Why this device could not have opened the entry's patient, or None.

    The patient must be in the device's scope now or held by it (opened before it
    was purged). A patient the server does not know yet is taken: one created
    offline is opened on the laptop before its first push, and naming it shows
    nobody else's patient.
    """
    patient_id = entry["patient_id"]
    if patient_id in keys.full or patient_id in keys.lite:
        return None
    if store.holds(g.device["id"], "patient", patient_id):
        return None
    if entry.get("record_type") and entry.get("record_id") and \
            store.holds(g.device["id"], entry["record_type"], entry["record_id"]):
        return None
    if store.get_record("patient", patient_id) is None:
        return None
    return "the patient is neither in this device's scope nor held by it"


@v1.get("/digest")
def digest():
    """Digests of every record in the device's scope, for ``hemsync verify`` (not audited: no content)."""
    return jsonify(integrity.digest(_store(), _settings(), g.user))


@v1.post("/fetch")
def fetch():
    """Named records in the device's scope, as pull ships them; the rest as missing (audited)."""
    body = json_body(_settings()["HEMSYNC_MAX_BODY_BYTES"])
    return jsonify(integrity.fetch(_store(), _settings(), g.device, g.user, body))


@v1.get("/queue")
def dispatch_queue():
    """The open requests of the region (or one municipality) in dispatch order, with why (dispatcher)."""
    auth.require_role(g.user, "dispatcher")
    now = utcnow()
    entries = queue.queue(_store(), _settings(), now, municipality=request.args.get("municipality") or None)
    _audit_shown(entries, "GET /v1/queue")
    return jsonify({"at": now.isoformat(), "entries": entries})


@v1.get("/requests/<request_id>/suggestions")
def request_suggestions(request_id):
    """Doctors to assign an open request to: named doctor, the municipality's, others (dispatcher)."""
    auth.require_role(g.user, "dispatcher")
    found, suggested = queue.suggestions(_store(), request_id)
    _audit_shown([{"request_id": request_id, "patient_id": found["patient_id"]}],
                 f"GET /v1/requests/{request_id}/suggestions")
    return jsonify({"request_id": request_id, "suggestions": [dataclasses.asdict(s) for s in suggested]})


@v1.get("/escalations")
def escalations():
    """The escalation feed: newest first, or oldest first after ``?after=`` (dispatcher)."""
    auth.require_role(g.user, "dispatcher")
    after, limit = _paging(default_after=None)
    entries = _store().escalations(after=after, limit=limit, municipality=request.args.get("municipality") or None)
    _audit_shown(entries, "GET /v1/escalations")
    newest = max((e["id"] for e in entries), default=after)
    return jsonify({"entries": entries, "next": newest})


def _audit_shown(entries, endpoint):
    """Every patient an office read showed goes to the audit log, like a pull."""
    _store().audit(audit.office_read(g.user, g.device, entries, endpoint))


@v1.get("/admin/audit")
def admin_audit():
    """The audit log, oldest first, optionally for one patient (admin)."""
    auth.require_role(g.user, "admin")
    after, limit = _paging()
    patient_id = request.args.get("patient_id")
    entries = _store().audit_log(patient_id=patient_id, after=after, limit=limit)
    _store().audit(audit.audit_log_read(g.user, g.device, entries, "GET /v1/admin/audit", patient_id))
    return jsonify({"entries": entries, "next": entries[-1]["id"] if entries else after})


@v1.get("/admin/devices")
def admin_devices():
    """Device health: last sync, changes waiting, rejected, clock offset (admin)."""
    auth.require_role(g.user, "admin")
    return jsonify({"devices": auth.device_health(_store())})


@v1.get("/admin/quarantine")
def admin_quarantine():
    """Rejected changes with their reasons (admin)."""
    auth.require_role(g.user, "admin")
    after, limit = _paging()
    entries = _store().quarantined(after=after, limit=limit)
    _store().audit(audit.quarantine_read(g.user, g.device, entries, "GET /v1/admin/quarantine"))
    return jsonify({"entries": entries, "next": entries[-1]["id"] if entries else after})


def _optional_body():
    if not request.get_data(cache=True).strip():
        return {}
    return json_body(_settings()["HEMSYNC_MAX_BODY_BYTES"])


def _paging(default_after=0):
    try:
        after = int(request.args["after"]) if "after" in request.args else default_after
        limit = min(max(int(request.args.get("limit", 100)), 1), 1000)
    except ValueError:
        raise InvalidRequest("after and limit must be whole numbers", details=dict(request.args)) from None
    # Beyond SQLite's INTEGER the query raised (a 500, found by the fuzzing of issue 6).
    if after is not None and not -2 ** 63 <= after < 2 ** 63:
        raise InvalidRequest("after is out of range: send an entry id the server gave out",
                             details={"after": [request.args.get("after", "")[:40]]})
    return after, limit
