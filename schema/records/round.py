"""round (rond): a doctor and a unit's nurse go through the residents.

``items`` is keyed by resident (``patient_id``) and merged item by item, field
by field: an item added anywhere survives (add wins, items are never removed);
``question`` and ``status`` are last writer wins, ``note`` keeps both.
"""

from marshmallow import Schema, fields, validate, RAISE

from ..recordtype import FieldSpec, RecordType
from ..references import Ref
from ..rules import KeepBoth
from ..validation import IsoDate, RecordRef, RecordSchema, Text
from . import register


class RoundItemSchema(Schema):
    class Meta:
        unknown = RAISE

    question = Text(limit=4000)
    status = fields.String(allow_none=True, validate=validate.OneOf(("open", "done", "deferred")))
    note = Text()


class RoundSchema(RecordSchema):
    facility = Text(required=True, allow_none=False, limit=200)
    unit = Text(limit=200)
    municipality = Text(required=True, allow_none=False, limit=100)
    date = IsoDate(required=True, allow_none=False)
    doctor_id = RecordRef()
    nurse_id = RecordRef()
    status = fields.String(allow_none=True, validate=validate.OneOf(("planned", "in_progress", "done")))
    items = fields.Dict(keys=fields.String(validate=validate.Length(1, 64)),
                        values=fields.Nested(RoundItemSchema))


RECORD = register(RecordType(
    name="round",
    creators=frozenset({"doctor", "nurse"}),
    editors=frozenset({"doctor", "nurse"}),
    editable={"nurse": {"items.*.question", "items.*.note"}},
    schema=RoundSchema,
    index={"municipality": "municipality", "status": "status"},
    severity="medium",
    nested=("items",),
    fields={"items.*.note": FieldSpec(rule=KeepBoth(), severity="medium", clinical=True),
            "items.*.question": FieldSpec(clinical=True),
            # A round lies in its municipality as a patient's records lie with the patient.
            "municipality": FieldSpec(fixed=True, ref=Ref.municipality()),
            "doctor_id": FieldSpec(ref=Ref.person("doctor")),
            "nurse_id": FieldSpec(ref=Ref.person("nurse"))},
    patient_field=None,
))
