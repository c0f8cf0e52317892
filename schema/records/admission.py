"""admission (direktinskrivning): proposed → accepted → arrived, or proposed → declined.

Concurrent steps: arrived beats declined (the patient did arrive) and raises a
conflict; a decline concurrent with the ward's acceptance also raises one.
A dropped proposal is declined with a reason; there is no cancelled state.
An admission that reaches ``arrived`` creates its hospital stay on the server
(:func:`create_stay`), once.
"""

from marshmallow import fields, validate

from ..clock import Hlc
from ..guards import require_reason, state_machine_steps
from ..recordtype import FieldSpec, RecordType
from ..references import Ref
from ..rules import StateMachine, Transition
from ..state import value_of
from ..validation import RecordRef, RecordSchema, Text
from . import register
from .hospital_stay import stay_id_for_admission

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


def create_stay(writes, state, before):
    """After an admission is stored: one that arrived creates its hospital stay, as the server, once.

    The stay's id derives from the admission, so a re-synced or concurrent
    ``arrived`` finds it made; ``admitted_at`` is the time the arrival was
    recorded (its write's clock), not the time it reached the server. A direct
    admission is unplanned care: the stay counts as a readmission when it
    follows a discharge. Returns no conflicts.
    """
    arrived = state["fields"].get("status")
    if arrived is None or arrived["value"] != "arrived" or value_of(state, "entered_in_error"):
        return []
    stay_id = stay_id_for_admission(state["id"])
    if writes.store.get_record("hospital_stay", stay_id) is not None:
        return []
    admitted = Hlc.parse(arrived["hlc"]).time
    writes.server_writes().write("hospital_stay", stay_id, {
        "patient_id": value_of(state, "patient_id"), "hospital": value_of(state, "hospital"),
        "ward": value_of(state, "ward"), "admitted_at": admitted.isoformat(), "planned": False,
        "source": "direct_admission", "admission_id": state["id"]}, change_id=stay_id)
    return []


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
    after_store=(create_stay,),
))
