"""amendment: text added to a sealed visit; append only."""

from ..guards import append_only
from ..recordtype import FieldSpec, RecordType
from ..references import Ref
from ..validation import RecordRef, RecordSchema, Text
from . import register


class AmendmentSchema(RecordSchema):
    visit_id = RecordRef(required=True, allow_none=False)
    patient_id = RecordRef(required=True, allow_none=False)
    text = Text(required=True, allow_none=False)
    author_id = RecordRef()


RECORD = register(RecordType(
    name="amendment",
    creators=frozenset({"doctor"}),
    editors=frozenset({"doctor"}),
    schema=AmendmentSchema,
    severity="high",
    append_only=True,
    fields={"author_id": FieldSpec(stamped=True), "text": FieldSpec(clinical=True),
            "visit_id": FieldSpec(fixed=True, ref=Ref.record("visit"))},
    guards=(append_only,),
    on_create={"author_id": lambda ctx: ctx.actor.user_id},
))
