"""medication: discontinued beats any concurrent change; concurrent doses keep both.

A stopped drug never comes back silently: a change made without having seen
the discontinuation (to any field) leaves the drug discontinued and raises a
high-severity conflict, whichever reaches the server first. Restarting a
drug is a new medication record.
"""

from marshmallow import fields, validate

from ..guards import require_reason, state_machine_steps
from ..recordtype import FieldSpec, RecordType
from ..rules import KeepBoth, StateMachine, Transition
from ..state import concurrent_changes, field_writes, settle
from ..validation import IsoDate, RecordRef, RecordSchema, Text
from . import register

DOCTOR = frozenset({"doctor"})
MACHINE = StateMachine(
    initial="active",
    transitions=(
        Transition(frozenset({"active"}), "paused", DOCTOR),
        Transition(frozenset({"paused"}), "active", DOCTOR),
        Transition(frozenset({"active", "paused"}), "discontinued", DOCTOR),
    ),
    rank={"active": 0, "paused": 0, "discontinued": 1},
    conflict_when={("discontinued", "active"), ("discontinued", "paused")},
    final=("discontinued",),
)


class MedicationSchema(RecordSchema):
    patient_id = RecordRef(required=True, allow_none=False)
    drug = Text(required=True, allow_none=False, limit=200)
    strength = Text(limit=100)
    dose = Text(limit=200)
    route = Text(limit=100)
    frequency = Text(limit=200)
    start_date = IsoDate()
    status = fields.String(validate=validate.OneOf(tuple(MACHINE.rank)))
    reason = Text(limit=2000)


def discontinued_beats(ctx):
    """Any change concurrent with a discontinuation leaves it discontinued and raises a conflict."""
    status = ctx.state["fields"].get("status")
    if status is None or status["value"] != "discontinued":
        return
    settle(ctx, "status", field_writes(ctx.state, "status"), extra=concurrent_changes(ctx, "status", status),
           rule_name="discontinued_beats")


RECORD = register(RecordType(
    name="medication",
    creators=frozenset({"doctor"}),
    editors=frozenset({"doctor"}),
    schema=MedicationSchema,
    index={"status": "status"},
    severity="high",
    status_field="status",
    fields={
        "status": FieldSpec(rule=MACHINE, severity="high"),
        "dose": FieldSpec(rule=KeepBoth(), severity="high", clinical=True),
    },
    guards=(state_machine_steps, require_reason("status", "reason", lambda v: v == "discontinued")),
    after_merge=(discontinued_beats,),
    keeps_bases=True,
    on_create={"status": lambda ctx: MACHINE.initial},
))
