"""The protocol's request and response bodies as marshmallow schemas.

Request schemas validate what clients send (a wrong shape is a whole-request
``invalid_batch``); all of them feed the OpenAPI document, so the served
description cannot drift from what the server checks. docs/protocol.md is
the prose version.
"""

import math

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, missing, validate

from .errors import InvalidBatch

__all__ = [
    "ChangeSchema",
    "PushRequestSchema",
    "PushResponseSchema",
    "PullResponseSchema",
    "HandshakeRequestSchema",
    "HandshakeResponseSchema",
    "DispatchSettingsSchema",
    "STAFF_FIELDS",
    "DEVICE_HEALTH_FIELDS",
    "AccessLogRequestSchema",
    "AccessLogResponseSchema",
    "ErrorSchema",
    "HealthSchema",
    "DeviceHealthSchema",
    "AuditEntrySchema",
    "QuarantineEntrySchema",
    "AuditLogResponseSchema",
    "QuarantineResponseSchema",
    "DevicesResponseSchema",
    "StaffSchema",
    "RecordStateSchema",
    "FetchRequestSchema",
    "FetchResponseSchema",
    "DigestResponseSchema",
    "QueueResponseSchema",
    "SuggestionsResponseSchema",
    "EscalationsResponseSchema",
    "load",
]


#: The largest integer SQLite stores; counters and operation numbers above it are refused.
SQLITE_MAX = 2 ** 63 - 1


class Strict(Schema):
    class Meta:
        unknown = RAISE


class ChangeSchema(Strict):
    """One local edit as a laptop pushes it."""

    change_id = fields.String(required=True, validate=validate.Length(1, 100))
    record_type = fields.String(required=True)
    record_id = fields.String(required=True, validate=validate.Length(1, 100))
    device_id = fields.String(metadata={"description": "ignored: the server takes the device from the token"})
    # Bounded to SQLite's INTEGER: a larger one was a 500 (found by the fuzzing of issue 6).
    op = fields.Integer(required=True, strict=True, allow_none=True,
                        validate=validate.Range(min=-SQLITE_MAX - 1, max=SQLITE_MAX))
    hlc = fields.String(required=True, metadata={"example": "0001764079200000-000000"})
    # base and resolves become a write's parents, kept in the record for good. They are
    # checked per change when it merges (schema.validation.check_envelope): a bad one is
    # that change's rejection, never the whole batch's, so a device's other changes flow.
    # Field values likewise: the record type's schema checks them when the change merges
    # (checking them here as well was a fifth of a push's time, make bench profile).
    base = fields.Raw(load_default=dict, metadata={
        "type": "object", "description": "field -> the version seen, or the list of competing versions"})
    fields_ = fields.Dict(data_key="fields", attribute="fields", required=True)
    resolves = fields.Raw(load_default=list, metadata={"type": "array", "items": {"type": "string"}})


class PushRequestSchema(Strict):
    pending = fields.Integer(strict=True, load_default=0, validate=validate.Range(min=0, max=SQLITE_MAX),
                             metadata={"description": "changes still waiting on the laptop after this batch"})
    changes = fields.List(fields.Nested(ChangeSchema), required=True)


class ErrorBodySchema(Schema):
    code = fields.String(required=True)
    message = fields.String(required=True)
    details = fields.Dict(required=True)


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBodySchema, required=True)


class ChangeResultSchema(Schema):
    change_id = fields.String(required=True)
    result = fields.String(required=True, validate=validate.OneOf(("applied", "conflict", "rejected")))
    hlc = fields.String(metadata={"description": "the HLC the change was merged with"})
    restamped = fields.Boolean()
    original_hlc = fields.String()
    conflicts = fields.List(fields.String())
    error = fields.Nested(ErrorBodySchema)


class PushResponseSchema(Schema):
    results = fields.List(fields.Nested(ChangeResultSchema), required=True)
    server_hlc = fields.String(required=True)


class RecordStateSchema(Schema):
    """A record's merged state on the wire (schema/wire.py)."""

    type = fields.String(required=True)
    id = fields.String(required=True)
    rev = fields.Integer(required=True)
    fields_ = fields.Dict(data_key="fields", attribute="fields", required=True)
    writes = fields.List(fields.List(fields.Raw()), required=True)
    conflicts = fields.List(fields.Dict())
    history = fields.List(fields.Dict())


class PurgeMarkerSchema(Schema):
    type = fields.String(required=True)
    id = fields.String(required=True)


class PullResponseSchema(Schema):
    records = fields.List(fields.Nested(RecordStateSchema), required=True)
    purge = fields.List(fields.Nested(PurgeMarkerSchema), required=True)
    cursor = fields.String(required=True, metadata={"description": "opaque: send it back as ?cursor="})
    more = fields.Boolean(required=True)


class HandshakeRequestSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    pending = fields.Integer(strict=True, load_default=0, validate=validate.Range(min=0, max=SQLITE_MAX))
    rejected = fields.Integer(strict=True, load_default=0, validate=validate.Range(min=0, max=SQLITE_MAX))


class StaffSchema(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    role = fields.String(required=True)
    municipalities = fields.List(fields.String(), required=True)
    hsa_id = fields.String(allow_none=True)


#: What devices learn of a user (the handshake's ``user`` and ``staff``): never a token.
STAFF_FIELDS = tuple(StaffSchema().fields)


class DeviceSchema(Schema):
    id = fields.String(required=True)
    label = fields.String(allow_none=True)


class DispatchSettingsSchema(Schema):
    """:meth:`schema.dispatch.DispatchSettings.to_wire`: times as HH:MM, spans in minutes."""

    timezone = fields.String(required=True)
    workday_start = fields.String(required=True)
    workday_end = fields.String(required=True)
    working_weekdays = fields.List(fields.Integer(), required=True, metadata={"description": "0 is Monday"})
    planned_days = fields.Integer(required=True)
    risk_step_minutes = fields.Integer(required=True)
    escalate_before_minutes = fields.Integer(required=True)
    acute_window_minutes = fields.Integer(required=True)
    recent_discharge_days = fields.Integer(required=True)


class HandshakeResponseSchema(Schema):
    server_version = fields.String(required=True)
    min_client_version = fields.String(required=True)
    device = fields.Nested(DeviceSchema, required=True)
    user = fields.Nested(StaffSchema, required=True)
    staff = fields.List(fields.Nested(StaffSchema), required=True)
    municipalities = fields.List(fields.String(), required=True,
                                 metadata={"description": "the region's municipalities, as it spells them"})
    server_time = fields.String(required=True)
    max_clock_ahead_ms = fields.Integer(required=True)
    page_size = fields.Integer(required=True)
    max_batch = fields.Integer(required=True, metadata={"description": "most changes one push may carry"})
    content_encodings = fields.List(fields.String(), metadata={
        "description": "the request body encodings the server reads, best first (br, gzip)"})
    dispatch = fields.Nested(DispatchSettingsSchema, required=True, metadata={
        "description": "the region's dispatch settings, so a laptop's queue and deadlines are the server's"})


class AccessEntrySchema(Strict):
    """One opening of a patient's records on a laptop (ids UUIDs, ``opened_at`` ISO 8601 with offset).

    Only the shape is checked here; an entry whose ids, time, record type or patient
    the server cannot take as true is kept as refused (server.audit.access_problem).
    """

    id = fields.String(required=True, validate=validate.Length(1, 100))
    patient_id = fields.String(required=True, validate=validate.Length(max=100))
    record_type = fields.String(allow_none=True, validate=validate.Length(max=100))
    record_id = fields.String(allow_none=True, validate=validate.Length(max=100))
    opened_at = fields.String(required=True, validate=validate.Length(max=100))


class AccessLogRequestSchema(Strict):
    entries = fields.List(fields.Nested(AccessEntrySchema), required=True)


class RefusedAccessSchema(Schema):
    id = fields.String(required=True)
    reason = fields.String(required=True)


class AccessLogResponseSchema(Schema):
    accepted = fields.Integer(required=True, metadata={"description": "entries new to the server"})
    refused = fields.List(fields.Nested(RefusedAccessSchema), required=True, metadata={
        "description": "entries the server does not take as true: kept in the audit log as refused, never dropped"})


class HealthSchema(Schema):
    status = fields.String(required=True)


class DeviceHealthSchema(Schema):
    id = fields.String(required=True)
    label = fields.String(allow_none=True)
    user_id = fields.String()
    user_name = fields.String()
    user_role = fields.String()
    created_at = fields.String(allow_none=True)
    revoked_at = fields.String(allow_none=True)
    last_sync_at = fields.String(allow_none=True)
    last_seen_at = fields.String(allow_none=True)
    client_version = fields.String(allow_none=True)
    pending = fields.Integer(allow_none=True)
    reported_rejected = fields.Integer(allow_none=True, metadata={"description": "rejected changes the laptop reported"})
    rejected_count = fields.Integer(allow_none=True)
    last_op = fields.Integer(allow_none=True)
    clock_offset_ms = fields.Integer(allow_none=True)
    clock_flagged_at = fields.String(allow_none=True)
    op_gaps = fields.Integer(allow_none=True)


#: The device-health columns an admin sees (API and CLI alike), as the OpenAPI schema declares them.
DEVICE_HEALTH_FIELDS = tuple(DeviceHealthSchema().fields)


class AuditEntrySchema(Schema):
    id = fields.Integer(required=True)
    at = fields.String(required=True)
    kind = fields.String(required=True)
    user_id = fields.String(allow_none=True)
    device_id = fields.String(allow_none=True)
    patient_id = fields.String(allow_none=True)
    record_type = fields.String(allow_none=True)
    record_id = fields.String(allow_none=True)
    change_id = fields.String(allow_none=True)
    details = fields.Dict()
    key = fields.String(allow_none=True, metadata={"description": "what an entry is de-duplicated by"})


class QuarantineEntrySchema(Schema):
    id = fields.Integer(required=True)
    change_id = fields.String()
    device_id = fields.String()
    user_id = fields.String()
    record_type = fields.String(allow_none=True)
    record_id = fields.String(allow_none=True)
    patient_id = fields.String(allow_none=True, metadata={"description": "the patient the change is about"})
    code = fields.String()
    message = fields.String()
    change = fields.Dict()
    error = fields.Nested(ErrorBodySchema)
    at = fields.String()


class AuditLogResponseSchema(Schema):
    entries = fields.List(fields.Nested(AuditEntrySchema), required=True)
    next = fields.Integer(allow_none=True, metadata={"description": "send back as ?after= for the next page"})


class QuarantineResponseSchema(Schema):
    entries = fields.List(fields.Nested(QuarantineEntrySchema), required=True)
    next = fields.Integer(allow_none=True, metadata={"description": "send back as ?after= for the next page"})


class DevicesResponseSchema(Schema):
    devices = fields.List(fields.Nested(DeviceHealthSchema), required=True)


class FetchRequestSchema(Strict):
    records = fields.List(fields.String(), required=True,
                          metadata={"description": "\"type/id\" keys, at most HEMSYNC_PAGE_SIZE"})


class FetchResponseSchema(Schema):
    records = fields.List(fields.Nested(RecordStateSchema), required=True)
    missing = fields.List(fields.String(), required=True,
                          metadata={"description": "keys unknown or outside the device's scope"})


class DigestResponseSchema(Schema):
    digest = fields.String(required=True, metadata={"description": "SHA-256 over the sorted \"type/id digest\" lines"})
    records = fields.Dict(keys=fields.String(), values=fields.String(), required=True,
                          metadata={"description": "\"type/id\" -> SHA-256 of the record's canonical JSON"})


class QueueEntrySchema(Schema):
    """One open request at its place in the dispatch queue, with why it is there (schema.dispatch)."""

    position = fields.Integer(required=True)
    request_id = fields.String(required=True)
    patient_id = fields.String(required=True)
    municipality = fields.String(allow_none=True)
    urgency = fields.String(required=True)
    status = fields.String(required=True)
    received_at = fields.String(required=True)
    deadline = fields.String(required=True)
    effective_deadline = fields.String(required=True, metadata={"description": "brought forward per risk flag"})
    news2 = fields.Integer(allow_none=True)
    news2_partial = fields.Boolean()
    emergency = fields.Boolean(required=True)
    emergency_reason = fields.String(allow_none=True)
    advice = fields.String(allow_none=True, metadata={"example": "emergency: consider ambulance (112)"})
    flags = fields.List(fields.String())
    override = fields.Integer(allow_none=True)
    override_reason = fields.String(allow_none=True)
    escalated_at = fields.String(allow_none=True)
    out_of_hours = fields.Boolean(metadata={"description": "acute and received outside working hours: on call"})
    why = fields.String(required=True)


class QueueResponseSchema(Schema):
    at = fields.String(required=True, metadata={"description": "the server time the queue was computed at"})
    entries = fields.List(fields.Nested(QueueEntrySchema), required=True)


class SuggestionSchema(Schema):
    doctor_id = fields.String(required=True)
    name = fields.String(required=True)
    reason = fields.String(required=True)
    open_accepted = fields.Integer(required=True)


class SuggestionsResponseSchema(Schema):
    request_id = fields.String(required=True)
    suggestions = fields.List(fields.Nested(SuggestionSchema), required=True)


class EscalationSchema(Schema):
    id = fields.Integer(required=True)
    request_id = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(("deadline", "out_of_hours")))
    patient_id = fields.String(allow_none=True)
    municipality = fields.String(allow_none=True)
    at = fields.String(required=True)
    details = fields.Nested(QueueEntrySchema, metadata={"description": "the queue entry when it was escalated"})


class EscalationsResponseSchema(Schema):
    entries = fields.List(fields.Nested(EscalationSchema), required=True)
    next = fields.Integer(allow_none=True, metadata={"description": "send back as ?after= for newer entries"})


def load(schema, body, what):
    """Validate a request body with a schema; raise InvalidBatch naming what is wrong."""
    if not isinstance(body, dict):
        raise InvalidBatch(f"the {what} must be a JSON object, see docs/protocol.md", details={"_body": ["not an object"]})
    check = _compiled(schema)
    loaded = check(body) if check is not None else None
    if loaded is not None:
        return loaded
    try:
        return schema.load(body)
    except ValidationError as exc:
        raise InvalidBatch(f"the {what} has the wrong shape: {_summary(exc.messages)}",
                           details=exc.messages) from exc


# A well-formed push batch is checked by its schema's fields compiled into plain Python
# (through marshmallow it was about a tenth of a push's server time, make bench profile):
# the compiled check answers what marshmallow would, or None whenever it is not sure (any
# input marshmallow would refuse, any field or option it does not know), and then marshmallow
# decides and words the error. tests/server/test_bodies.py draws batches to hold the two to
# the same answers. Other bodies are small and stay with marshmallow alone.
COMPILED_BODIES = (PushRequestSchema,)
_COMPILED = {}


def _compiled(schema):
    """The compiled check of a schema instance's class, or None (not compiled: marshmallow alone)."""
    if type(schema) not in _COMPILED:
        compile_it = type(schema) in COMPILED_BODIES and _plain(schema)
        _COMPILED[type(schema)] = _compile_schema(schema) if compile_it else None
    return _COMPILED[type(schema)]


def _plain(schema):
    """A schema loaded as declared: unknown keys refused, no hooks, no options that change what it loads."""
    return (schema.unknown == RAISE and not any(schema._hooks.values()) and schema.only is None
            and not schema.exclude and not schema.partial and not schema.many)


def _compile_schema(schema):
    parts = []
    for name, field in schema.load_fields.items():
        check = _compile_field(field)
        if check is None:
            return None
        default = field.load_default
        parts.append((field.data_key or name, field.attribute or name, check, field.required, default))
    keys = {key for key, *_ in parts}

    def load_object(value):
        if type(value) is not dict or not keys.issuperset(value):
            return _UNSURE
        out = {}
        for key, attribute, check, required, default in parts:
            if key in value:
                loaded = check(value[key])
                if loaded is _UNSURE:
                    return _UNSURE
                out[attribute] = loaded
            elif required:
                return _UNSURE
            elif default is not missing:
                out[attribute] = default() if callable(default) else default
        return out

    return lambda body: None if (loaded := load_object(body)) is _UNSURE else loaded


_UNSURE = object()


def _compile_field(field):
    """A check of one field's value: the loaded value, or _UNSURE; None where the field is not known here."""
    allow_none = field.allow_none
    kind = type(field)
    if kind is fields.String:
        bounds = _bounds(field.validators, validate.Length)
        if bounds is None:
            return None
        low, high = bounds
        return lambda v: (None if v is None and allow_none else
                          v if type(v) is str and low <= len(v) <= high else _UNSURE)
    if kind is fields.Integer and field.strict:
        bounds = _bounds(field.validators, validate.Range)
        if bounds is None:
            return None
        low, high = bounds
        return lambda v: (None if v is None and allow_none else
                          v if type(v) is int and low <= v <= high else _UNSURE)
    if kind is fields.Raw and not field.validators:
        return lambda v: _UNSURE if v is None and not allow_none else v
    if kind is fields.Dict and field.key_field is None and field.value_field is None and not field.validators:
        return lambda v: (None if v is None and allow_none else dict(v) if type(v) is dict else _UNSURE)
    if kind is fields.List and not field.validators and type(field.inner) is fields.Nested:
        nested = field.inner.schema
        if not _plain(nested) or field.inner.many or field.inner.validators or field.inner.unknown is not None:
            return None
        load_one = _compile_schema(nested)
        if load_one is None:
            return None

        def load_list(v):
            if type(v) is not list:
                return _UNSURE
            out = [load_one(item) for item in v]
            return _UNSURE if None in out else out
        return lambda v: None if v is None and allow_none else load_list(v)
    return None


def _bounds(validators, kind):
    """(low, high) inclusive of the one validator of ``kind`` (or none), or None for anything else."""
    if not validators:
        return (-math.inf, math.inf)
    if len(validators) != 1 or type(validators[0]) is not kind:
        return None
    rule = validators[0]
    if kind is validate.Length:
        return None if rule.equal is not None else (rule.min or 0, math.inf if rule.max is None else rule.max)
    if not (rule.min_inclusive and rule.max_inclusive):
        return None
    return (-math.inf if rule.min is None else rule.min, math.inf if rule.max is None else rule.max)


def _summary(messages, prefix=""):
    parts = []
    for key, value in messages.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            parts.append(_summary(value, f"{name}."))
        else:
            parts.append(f"{name}: {' '.join(map(str, value))}")
    return "; ".join(parts[:5]) + ("; ..." if len(parts) > 5 else "")
