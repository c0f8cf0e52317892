"""warning (allergy, uppmärksamhetssignal): add wins.

A warning added anywhere survives. Deactivating needs a reason and a doctor;
a deactivation concurrent with any edit keeps the warning active and raises a
high-severity conflict, whichever of the two reaches the server first.
"""

from marshmallow import fields, validate

from ..errors import Forbidden
from ..guards import require_reason
from ..recordtype import FieldSpec, RecordType
from ..rules import AddWins
from ..state import competitor, raise_conflict, seen_write
from ..validation import RecordRef, RecordSchema, StrictBool, Text
from . import register


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
    state, cid = ctx.state, ctx.change["change_id"]
    active = state["fields"].get("active")
    if active is None or active["value"] is not False:
        return
    if active["version"] == cid:
        unseen = _unseen_writes(ctx)
        if not unseen:
            return
        edits = [{**w, "value": True} for w in unseen]
    elif ctx.base.get("active") != active["version"]:
        edits = [ctx.write(True)]
    else:
        return
    before = seen_write(state, "active", _version_before(ctx, active))
    raise_conflict(ctx, "active", [active, *edits], "add_wins", "high")
    state["fields"]["active"] = competitor(before)
    state["history"] = [h for h in state["history"]
                        if not (h["field"] == "active" and h["version"] == before["version"])]
    ctx.decide(rule="add_wins", field="active", action="kept_active", deactivation=active["version"])


def _unseen_writes(ctx):
    """Writes to other fields this change had not seen, one per change."""
    seen, out = set(), []
    for path, write in sorted(ctx.state["fields"].items()):
        if path not in ctx.values and ctx.base.get(path) != write["version"] and write["version"] not in seen:
            seen.add(write["version"])
            out.append(write)
    return out


def _version_before(ctx, deactivation):
    """The active=true write the deactivation replaced (what its device had seen)."""
    if deactivation["version"] == ctx.change["change_id"]:
        return ctx.base.get("active") or _creation_version(ctx)
    return ctx.base.get("active") or _creation_version(ctx)


def _creation_version(ctx):
    return min((h for h in ctx.state["history"] if h["field"] == "active"),
               key=lambda h: h["hlc"], default=ctx.state["fields"]["active"])["version"]


def _default_active(ctx):
    return True


RECORD = register(RecordType(
    name="warning",
    schema=WarningSchema,
    severity="high",
    fields={"active": FieldSpec(rule=AddWins(), severity="high", clinical=True),
            "text": FieldSpec(clinical=True)},
    guards=(require_reason("active", "deactivation_reason", lambda v: v is False), only_doctors_deactivate),
    after_merge=(deactivation_keeps_it_active,),
    on_create={"active": _default_active},
))

__all__ = ["RECORD"]
