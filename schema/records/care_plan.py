"""care_plan (SIP, brytpunktssamtal, inskrivningssamtal): text keeps both; dates and status LWW."""

from marshmallow import fields, validate

from ..recordtype import RecordType
from ..validation import IsoDate, RecordRef, RecordSchema, Text
from . import register
from .medication_review import TEXT

KINDS = ("sip", "breakpoint_conversation", "enrollment_conversation", "care_plan")


class CarePlanSchema(RecordSchema):
    patient_id = RecordRef(required=True, allow_none=False)
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    date = IsoDate()
    participants = Text(limit=2000)
    content = Text()
    next_review = IsoDate()
    status = fields.String(allow_none=True, validate=validate.OneOf(("planned", "done")))


RECORD = register(RecordType(
    name="care_plan",
    creators=frozenset({"doctor", "nurse"}),
    editors=frozenset({"doctor", "nurse"}),
    schema=CarePlanSchema,
    index={"status": "status"},
    severity="medium",
    fields={"participants": TEXT, "content": TEXT},
))
