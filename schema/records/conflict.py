"""conflict: made only by the server, resolved by a change to the field that names it.

No role creates or edits a conflict record directly (see ``schema.roles``); the
schema describes the shape the server ships and laptops show.
"""

from marshmallow import Schema, fields, validate

from ..recordtype import RecordType
from ..validation import RecordSchema
from . import register


class CompetingValueSchema(Schema):
    value = fields.Raw(allow_none=True)
    by = fields.String(allow_none=True)
    device_id = fields.String(allow_none=True)
    hlc = fields.String()
    version = fields.String()


class ConflictSchema(RecordSchema):
    record_type = fields.String(required=True)
    record_id = fields.String(required=True)
    field = fields.String(required=True)
    values = fields.List(fields.Nested(CompetingValueSchema), required=True)
    severity = fields.String(required=True, validate=validate.OneOf(("high", "medium", "low")))
    status = fields.String(required=True, validate=validate.OneOf(("open", "resolved")))
    resolution = fields.Raw(allow_none=True)
    resolved_by = fields.String(allow_none=True)


RECORD = register(RecordType(
    name="conflict",
    schema=ConflictSchema,
    index={"status": "status"},
    severity="low",
    fields={},
    patient_field=None,
))
