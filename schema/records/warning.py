"""warning (allergy, uppmärksamhetssignal): add wins.

A warning added anywhere survives. Deactivating needs a reason and a doctor;
a deactivation concurrent with any edit keeps the warning active and raises a
high-severity conflict, whichever of the two reaches the server first.
"""

from marshmallow import fields, validate

from ..errors import Forbidden
from ..guards import require_reason
from ..recordtype import FieldSpec, RecordType
from ..rules import AddWins, KeepBoth
from ..state import competitor, concurrent_changes, field_writes, heads, settle, shown_head
from ..validation import RecordRef, RecordSchema, StrictBool, Text
from . import register

RULE = AddWins()


class WarningSchema(RecordSchema):
    patient_id = RecordRef(required=True, allow_none=False)
    kind = fields.String(required=True, validate=validate.OneOf(("allergy", "condition", "other")))
    text = Text(required=True, allow_none=False, limit=2000)
    severity = fields.String(required=True, validate=validate.OneOf(("low", "high", "life_threatening")))
    source = Text(limit=500)
    active = StrictBool()
    deactivation_reason = Text(limit=2000)


def only_doctors_deactivate(ctx):
    """The role table lets a nurse edit a warning but only a doctor deactivate it."""
    if ctx.values.get("active") is False and ctx.actor.role != "doctor":
        raise Forbidden("only a doctor may deactivate a warning", details={"active": ["doctor only"]})


def deactivation_keeps_it_active(ctx):
    """A deactivation concurrent with an edit loses: the warning stays active, a conflict opens."""
    writes = field_writes(ctx.state, "active")
    shown = shown_head(RULE, heads(writes))
    edits = [{**e, "value": True} for e in concurrent_changes(ctx, "active", shown)] if shown["value"] is False else []
    settle(ctx, "active", writes, extra=edits, rule_name="add_wins")
    if not edits:
        return
    before = _last_active(writes, shown)
    if before is not None:
        ctx.state["fields"]["active"] = competitor(before)
        ctx.state["history"] = [h for h in ctx.state["history"]
                                if not (h["field"] == "active" and h["version"] == before["version"])]
    ctx.decide(rule="add_wins", field="active", action="kept_active", deactivation=shown["version"])


def _last_active(writes, write):
    """The nearest write the deactivation was made on top of that had the warning active."""
    by_version = {w["version"]: w for w in writes}
    frontier = list(write["parents"])
    while frontier:
        found = by_version.get(frontier.pop(0))
        if found is not None:
            if found["value"] is True:
                return found
            frontier.extend(found["parents"])
    return None


def _default_active(ctx):
    return True


RECORD = register(RecordType(
    name="warning",
    creators=frozenset({"doctor", "nurse"}),
    editors=frozenset({"doctor", "nurse"}),
    schema=WarningSchema,
    severity="high",
    fields={"active": FieldSpec(rule=RULE, severity="high", clinical=True),
            # Two nurses rewording an allergy apart: both texts stay until a doctor decides.
            "text": FieldSpec(rule=KeepBoth(), severity="high", clinical=True)},
    guards=(require_reason("active", "deactivation_reason", lambda v: v is False), only_doctors_deactivate),
    after_merge=(deactivation_keeps_it_active,),
    keeps_bases=True,
    on_create={"active": _default_active},
))

__all__ = ["RECORD"]
