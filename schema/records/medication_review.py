"""medication_review (läkemedelsgenomgång): text keeps both; dates and status last writer wins."""

from marshmallow import fields, validate

from ..recordtype import FieldSpec, RecordType
from ..rules import KeepBoth
from ..validation import IsoDate, RecordRef, RecordSchema, Text
from . import register

TEXT = FieldSpec(rule=KeepBoth(), severity="medium", clinical=True)


class MedicationReviewSchema(RecordSchema):
    patient_id = RecordRef(required=True, allow_none=False)
    date = IsoDate(required=True, allow_none=False)
    participants = Text(limit=2000)
    findings = Text()
    decisions = Text()
    next_review = IsoDate()
    status = fields.String(allow_none=True, validate=validate.OneOf(("planned", "done")))


RECORD = register(RecordType(
    name="medication_review",
    creators=frozenset({"doctor"}),
    editors=frozenset({"doctor"}),
    schema=MedicationReviewSchema,
    index={"status": "status"},
    severity="medium",
    fields={"participants": TEXT, "findings": TEXT, "decisions": TEXT},
))
