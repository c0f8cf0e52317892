"""admission (direktinskrivning): proposed → accepted → arrived, or proposed → declined.

Concurrent steps: arrived beats declined (the patient did arrive) and raises a
conflict; a decline concurrent with the ward's acceptance also raises one.
A dropped proposal is declined with a reason; there is no cancelled state.
"""

from marshmallow import fields, validate

from ..guards import require_reason, state_machine_steps
from ..recordtype import FieldSpec, RecordType
from ..references import Ref
from ..rules import StateMachine, Transition
from ..validation import RecordRef, RecordSchema, Text
from . import register

DOCTOR = frozenset({"doctor"})
MACHINE = StateMachine(
    initial="proposed",
    transitions=(
        Transition(frozenset({"proposed"}), "accepted", DOCTOR),
        Transition(frozenset({"proposed", "accepted"}), "arrived", DOCTOR),
        Transition(frozenset({"proposed"}), "declined", DOCTOR),
    ),
    rank={"proposed": 0, "accepted": 1, "declined": 2, "arrived": 3},
    conflict_when={("arrived", "declined"), ("declined", "accepted")},
    final=("arrived", "declined"),
)


class AdmissionSchema(RecordSchema):
    patient_id = RecordRef(required=True, allow_none=False)
    visit_id = RecordRef()
    hospital = Text(required=True, allow_none=False, limit=200)
    ward = Text(required=True, allow_none=False, limit=200)
    reason = Text(required=True, allow_none=False, limit=4000)
    status = fields.String(validate=validate.OneOf(tuple(MACHINE.rank)))
    accepted_by_name = Text(limit=200)
    contact_phone = Text(limit=40)
    decline_reason = Text(limit=2000)


RECORD = register(RecordType(
    name="admission",
    creators=frozenset({"doctor"}),
    editors=frozenset({"doctor"}),
    schema=AdmissionSchema,
    index={"status": "status"},
    severity="medium",
    status_field="status",
    fields={"status": FieldSpec(rule=MACHINE, severity="medium"), "reason": FieldSpec(clinical=True),
            "visit_id": FieldSpec(ref=Ref.record("visit"))},
    guards=(state_machine_steps, require_reason("status", "decline_reason", lambda v: v == "declined")),
    on_create={"status": lambda ctx: MACHINE.initial},
))
