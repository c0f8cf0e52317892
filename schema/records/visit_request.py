"""visit_request: a nurse asks for a doctor; the state machine of DOMAIN.md.

requested → triaged → assigned → accepted → en_route → on_site → completed,
cancelled from requested, triaged, assigned or accepted; forward steps may be
skipped; the dispatcher's re-assignment (accepted or en_route → assigned) is
the one backward step. Concurrent steps: the furthest state wins, except that
en_route, on_site and completed beat cancelled and raise a conflict. The
server is referee for acceptance: the first doctor's acceptance it receives
keeps the request, a later one is rejected as ``already_accepted``.
"""

from marshmallow import fields, validate

from .. import dispatch
from ..clock import Hlc
from ..errors import AlreadyAccepted, Forbidden
from ..guards import require_reason, seen_value, state_machine_steps
from ..recordtype import FieldSpec, RecordType
from ..references import Ref
from ..rules import StateMachine, Transition
from ..validation import IsoDateTime, RecordRef, RecordSchema, StrictBool, StrictInt, Text
from . import register

OPEN = ("requested", "triaged", "assigned", "accepted")
GOING = ("en_route", "on_site", "completed")
DOCTOR_STEPS = ("accepted", "en_route", "on_site", "completed")
DISPATCHER, NURSE, DOCTOR = frozenset({"dispatcher"}), frozenset({"nurse"}), frozenset({"doctor"})

MACHINE = StateMachine(
    initial="requested",
    transitions=(
        Transition(frozenset({"requested"}), "triaged", DISPATCHER),
        Transition(frozenset({"requested", "triaged", "accepted", "en_route"}), "assigned", DISPATCHER),
        Transition(frozenset({"requested", "triaged", "assigned"}), "accepted", DOCTOR),
        Transition(frozenset({"requested", "triaged", "assigned", "accepted"}), "en_route", DOCTOR),
        Transition(frozenset({"requested", "triaged", "assigned", "accepted", "en_route"}), "on_site", DOCTOR),
        Transition(frozenset({"requested", "triaged", "assigned", "accepted", "en_route", "on_site"}),
                   "completed", DOCTOR),
        Transition(frozenset(OPEN), "cancelled", DISPATCHER | NURSE),
    ),
    rank={"requested": 0, "triaged": 1, "assigned": 2, "accepted": 3, "cancelled": 4,
          "en_route": 5, "on_site": 6, "completed": 7},
    # A losing cancel, a losing (re-)assignment and an acceptance a cancel overtook
    # were each someone's deliberate act: the people involved must hear of it.
    conflict_when=(
        {(w, "cancelled") for w in GOING}
        | {(w, "assigned") for w in ("accepted", *GOING)}
        | {("cancelled", "accepted")}
    ),
    final=("completed", "cancelled"),
)


#: The urgencies a nurse picks from (DOMAIN.md "Dispatch").
URGENCIES = ("acute", "urgent", "planned")
#: The RETTS colours, shown as received, never recomputed.
RETTS_COLOURS = ("red", "orange", "yellow", "green", "blue")


class VisitRequestSchema(RecordSchema):
    patient_id = RecordRef(required=True, allow_none=False)
    reason = Text(required=True, allow_none=False, limit=4000)
    urgency = fields.String(required=True, validate=validate.OneOf(URGENCIES))
    observation_id = RecordRef()
    retts_colour = fields.String(allow_none=True, validate=validate.OneOf(RETTS_COLOURS))
    requested_by = RecordRef()
    received_at = IsoDateTime()
    deadline = IsoDateTime()
    callback_phone = Text(limit=40)
    status = fields.String(validate=validate.OneOf(tuple(MACHINE.rank)))
    status_history = fields.List(fields.Dict())
    assigned_doctor_id = RecordRef()
    accepted_by = RecordRef()
    priority_override = StrictInt(minimum=1, maximum=10_000)
    priority_override_reason = Text(limit=2000)
    cancel_reason = Text(limit=2000)
    escalated_at = IsoDateTime()
    out_of_hours = StrictBool(allow_none=True)


def roles_on_own_requests(ctx):
    """A nurse edits and cancels only her own requests; a doctor only what is hers to take."""
    role, me = ctx.actor.role, ctx.actor.user_id
    if ctx.creating:
        return
    if role == "nurse" and ctx.current("requested_by") != me:
        raise Forbidden("a nurse may change only the requests she made", details={"requested_by": ["not you"]})
    target = ctx.values.get("status")
    if role != "doctor" or target not in DOCTOR_STEPS:
        return
    accepted_by = ctx.current("accepted_by")
    if accepted_by and accepted_by != me:
        if ctx.base.get("accepted_by") != ctx.state["fields"]["accepted_by"]["version"]:
            raise AlreadyAccepted(
                "another doctor's acceptance reached the server first: the request is theirs; "
                "your visit records are kept",
                details={"accepted_by": [accepted_by]},
            )
        raise Forbidden("this request is accepted by another doctor", details={"accepted_by": [accepted_by]})
    # What the doctor saw decides, so an assignment made meanwhile is a concurrent
    # edit (the state machine raises the conflict) rather than a refusal that
    # would depend on which change arrived first.
    assigned = seen_value(ctx, "assigned_doctor_id")
    if not accepted_by and assigned and assigned != me:
        raise Forbidden("this request is assigned to another doctor; ask the dispatcher to re-assign it",
                        details={"assigned_doctor_id": [assigned]})


def stamp_acceptance(ctx):
    """accepted_by is stamped by the server: set on acceptance, cleared on re-assignment."""
    target = ctx.values.get("status")
    if target in DOCTOR_STEPS and not seen_value(ctx, "accepted_by"):
        ctx.values["accepted_by"] = ctx.actor.user_id
    elif target == "assigned" and seen_value(ctx, "status") in ("accepted", "en_route"):
        ctx.values["accepted_by"] = None


def _received(ctx):
    return ctx.now.isoformat()


def _deadline(ctx):
    return dispatch.deadline_for(ctx.values["urgency"], ctx.now, ctx.options.get("dispatch")).isoformat()


def _out_of_hours(ctx):
    return ctx.values["urgency"] == "acute" and dispatch.is_out_of_hours(ctx.now, ctx.options.get("dispatch"))


def status_writes(state):
    """Every write of the request's status, in the order the steps were taken (HLC, then device)."""
    return sorted(_all_writes(state, "status"), key=lambda w: (w["hlc"], w["device_id"] or ""))


def status_steps(state):
    """Every status the request has had, in order: ``(status, when (aware UTC, from its HLC), by whom)``."""
    return [(w["value"], Hlc.parse(w["hlc"]).time, w["by"]) for w in status_writes(state)]


def status_history(state):
    """Every status the request has had, with when (server HLC time) and by whom."""
    return {"status_history": [{"status": status, "at": at.isoformat(), "by": by}
                               for status, at, by in status_steps(state)]}


def _all_writes(state, path):
    seen = {}
    for write in [state["fields"].get(path), *(h for h in state["history"] if h["field"] == path),
                  *(w for c in state["conflicts"] if c["field"] == path for w in c["values"])]:
        if write is not None:
            seen.setdefault(write["version"], write)
    return seen.values()


RECORD = register(RecordType(
    name="visit_request",
    creators=frozenset({"nurse"}),
    editors=frozenset({"nurse", "dispatcher", "doctor"}),
    editable={
        "nurse": {"reason", "callback_phone", "status", "cancel_reason"},
        "dispatcher": {"status", "assigned_doctor_id", "priority_override", "priority_override_reason",
                       "cancel_reason"},
        "doctor": {"status"},
    },
    creatable={"nurse": {"patient_id", "reason", "urgency", "observation_id", "retts_colour", "callback_phone",
                         "status"}},
    schema=VisitRequestSchema,
    # Who a request belongs to: its accepting doctor, else the one it is assigned to.
    index={"status": "status", "assignee": ("accepted_by", "assigned_doctor_id")},
    changes_scope=True,
    severity="low",
    status_field="status",
    fields={
        # Scheduling (status, assignment) is low severity: the dispatcher who schedules closes
        # its conflicts, as DOMAIN.md's role table says; reason and the visit's text stay clinical.
        "status": FieldSpec(rule=MACHINE, severity="low"),
        "requested_by": FieldSpec(stamped=True),
        "accepted_by": FieldSpec(stamped=True),
        "received_at": FieldSpec(server=True),
        "deadline": FieldSpec(server=True),
        "status_history": FieldSpec(server=True),
        "escalated_at": FieldSpec(server=True),
        "out_of_hours": FieldSpec(server=True),
        "reason": FieldSpec(clinical=True),
        "assigned_doctor_id": FieldSpec(ref=Ref.person("doctor")),
        "observation_id": FieldSpec(ref=Ref.record("observation")),
    },
    guards=(
        state_machine_steps,
        roles_on_own_requests,
        require_reason("status", "cancel_reason", lambda v: v == "cancelled"),
        require_reason("priority_override", "priority_override_reason", lambda v: v is not None),
        stamp_acceptance,
    ),
    on_create={
        "status": lambda ctx: MACHINE.initial,
        "requested_by": lambda ctx: ctx.actor.user_id,
        "received_at": _received,
        "deadline": _deadline,
        "out_of_hours": _out_of_hours,
    },
    views=(status_history,),
))

__all__ = ["RECORD", "MACHINE", "status_steps", "status_writes"]
