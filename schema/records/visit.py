"""visit (home visit, round item, phone consult): documented, then signed and sealed.

``assessment`` and ``plan`` keep both values of concurrent edits in a conflict;
other fields are last writer wins. Signing is the visit's doctor's act, refused
while a conflict is open or while the visit holds edits the signer had not seen.
A signed visit is sealed: a change made on top of the signature is rejected,
but one made offline before the laptop knew of it is not lost — its text
becomes an amendment and a high-severity conflict for the signer.
"""

from marshmallow import fields, validate

from ..errors import Forbidden, SealedRecord, StaleSignature
from ..recordtype import FieldSpec, RecordType
from ..references import Ref
from ..roles import ERROR_MARK
from ..rules import KeepBoth
from ..state import add_conflict, competitor, refuse_while_open
from ..validation import IsoDateTime, RecordRef, RecordSchema, Text
from . import register

KINDS = ("home_visit", "round_item", "phone")
OUTCOMES = ("stays_home", "direct_admission", "emergency_department", "died")


class VisitSchema(RecordSchema):
    patient_id = RecordRef(required=True, allow_none=False)
    request_id = RecordRef()
    doctor_id = RecordRef()
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    started_at = IsoDateTime()
    ended_at = IsoDateTime()
    place = Text(limit=500)
    assessment = Text()
    plan = Text()
    outcome = fields.String(allow_none=True, validate=validate.OneOf(OUTCOMES))
    signed_at = IsoDateTime()
    signed_by = RecordRef()


def own_visits(ctx):
    """A doctor creates, edits and signs only her own visits."""
    doctor = ctx.values.get("doctor_id") if ctx.creating else ctx.current("doctor_id")
    if ctx.actor.role == "doctor" and doctor not in (None, ctx.actor.user_id):
        raise Forbidden("a doctor may document and sign only her own visits",
                        details={"doctor_id": ["another doctor's visit"]})
    if ctx.actor.role == "admin" and set(ctx.values) - ERROR_MARK:
        raise Forbidden("an admin may only mark a visit entered in error", details={})


def sealed(ctx):
    """After signing only an error mark by the signer or an admin; late offline text becomes an amendment."""
    signed = ctx.state["fields"].get("signed_at")
    if ctx.creating or signed is None or signed["value"] is None:
        return
    changed = sorted(set(ctx.values) - ERROR_MARK)
    if not changed:
        if ctx.actor.user_id != ctx.current("signed_by") and ctx.actor.role != "admin":
            raise Forbidden("only the signer or an admin may mark a signed visit entered in error",
                            details={"entered_in_error": ["signer or admin"]})
        return
    if _acknowledges_late_edits(ctx, changed):
        return
    if ctx.base.get("signed_at") == signed["version"]:
        raise SealedRecord(
            "this visit is signed and sealed: add an amendment instead (hemsync amend VISIT_ID --text ...)",
            details={path: ["sealed"] for path in changed},
        )
    from ..merge import derived_id

    text = "\n".join(f"{path}: {ctx.values[path]}" for path in changed)
    record_id = derived_id(ctx.change["change_id"], "amendment")
    ctx.derived.append({
        "change_id": derived_id(ctx.change["change_id"], "amendment-change"),
        "record_type": "amendment",
        "record_id": record_id,
        "device_id": ctx.change["device_id"],
        "op": None,
        "hlc": ctx.change["hlc"],
        "base": {},
        "fields": {"visit_id": ctx.state["id"], "patient_id": ctx.current("patient_id"),
                   "text": f"Written before the visit was signed, arrived after:\n{text}"},
        "derived_from": ctx.change["change_id"],
    })
    for path in changed:
        current = ctx.state["fields"].get(path)
        shown = [competitor(current)] if current else []
        late = {**ctx.write(ctx.values[path]), "parents": []}
        add_conflict(ctx, path, [*shown, late], "sealed_amendment", "sealed_amendment", severity="high")
    ctx.skip.update(changed)
    ctx.decide(rule="sealed_amendment", field=",".join(changed), action="amendment", amendment=record_id)


def _acknowledges_late_edits(ctx, changed):
    """The signer closes a late-edit conflict by naming it and keeping the signed value."""
    named = set(ctx.change.get("resolves") or ())
    late = {c["field"]: c for c in ctx.state["conflicts"]
            if c["id"] in named and c["kind"] == "sealed_amendment" and c["status"] == "open"}
    if not late or set(changed) - set(late):
        return False
    if ctx.actor.user_id != ctx.current("signed_by"):
        raise Forbidden("only the signer closes a conflict on a signed visit", details={})
    if any(ctx.values[path] != ctx.current(path) for path in changed):
        raise SealedRecord("the signed text stands: close the conflict with the signed value; "
                           "the late text is kept as an amendment", details={p: ["sealed"] for p in changed})
    for conflict in late.values():
        conflict.update(status="resolved", resolution=ctx.current(conflict["field"]),
                        resolved_by=ctx.actor.user_id)
    ctx.skip.update(changed)
    return True


def signing(ctx):
    """Signing: the visit's doctor, no open conflict, nothing unseen; signed_by is stamped."""
    if ctx.values.get("signed_at") is None or ctx.state["fields"].get("signed_at", {}).get("value"):
        return
    doctor = ctx.values.get("doctor_id") or ctx.current("doctor_id") or ctx.actor.user_id
    if ctx.actor.user_id != doctor:
        raise Forbidden("only the visit's doctor may sign it", details={"signed_at": ["not your visit"]})
    refuse_while_open(ctx, "signing")
    unseen = sorted(p for p, w in ctx.state["fields"].items()
                    if p not in ctx.values and ctx.base.get(p) != w["version"])
    if unseen and not ctx.creating:
        raise StaleSignature(
            f"the visit changed after you last synced ({', '.join(unseen)}): sync, review and sign again",
            details={p: ["changed since you last saw it"] for p in unseen},
        )
    ctx.values["signed_by"] = ctx.actor.user_id


RECORD = register(RecordType(
    name="visit",
    creators=frozenset({"doctor"}),
    editors=frozenset({"doctor", "admin"}),
    editable={"admin": set()},
    schema=VisitSchema,
    severity="medium",
    fields={
        "assessment": FieldSpec(rule=KeepBoth(), severity="medium", clinical=True),
        "plan": FieldSpec(rule=KeepBoth(), severity="medium", clinical=True),
        "signed_by": FieldSpec(stamped=True),
        "started_at": FieldSpec(clinical_time=True),
        "ended_at": FieldSpec(clinical_time=True),
        "signed_at": FieldSpec(clinical_time=True),
        "request_id": FieldSpec(fixed=True, ref=Ref.record("visit_request")),
        "doctor_id": FieldSpec(ref=Ref.person("doctor")),
    },
    guards=(own_visits, sealed, signing),
    on_create={"doctor_id": lambda ctx: ctx.actor.user_id if ctx.actor.role == "doctor" else None},
))
