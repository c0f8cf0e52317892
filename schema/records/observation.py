"""observation (vitals): append only; NEWS2 computed with the scale stored on it.

A correction is a new observation naming the one it supersedes.
"""

from marshmallow import fields, validate

from ..guards import append_only
from ..news2 import score_fields
from ..recordtype import FieldSpec, RecordType
from ..references import Ref
from ..validation import IsoDateTime, Number, RecordRef, RecordSchema, StrictBool, StrictInt
from . import register


class ObservationSchema(RecordSchema):
    patient_id = RecordRef(required=True, allow_none=False)
    measured_at = IsoDateTime(required=True, allow_none=False)
    measured_by = RecordRef()
    resp_rate = StrictInt(minimum=0, maximum=80)
    spo2 = StrictInt(minimum=0, maximum=100)
    spo2_scale = StrictInt(minimum=1, maximum=2)
    supplemental_o2 = StrictBool(allow_none=True)
    temperature = Number(minimum=25, maximum=45)
    systolic_bp = StrictInt(minimum=0, maximum=300)
    pulse = StrictInt(minimum=0, maximum=300)
    consciousness = fields.String(allow_none=True, validate=validate.OneOf(("A", "C", "V", "P", "U")))
    supersedes_id = RecordRef()
    news2 = StrictInt()
    news2_partial = StrictBool(allow_none=True)


def _news2(ctx):
    """NEWS2 of the observation being created, scored once for both fields that store it."""
    if "news2" not in ctx.memo:
        ctx.memo["news2"] = score_fields(ctx.values)
    return ctx.memo["news2"]


def scale_of_the_patient(ctx):
    """A new observation is scored on its patient's SpO2 scale, whatever the device sent.

    Scale 2 exists for patients with hypercapnic respiratory failure (COPD):
    scoring them on scale 1 under-triages a low SpO2 on air and over-triages a
    high one on oxygen. The patient record holds the scale; the observation
    copies it when it is made (on the laptop offline, and again on the server).
    """
    directory = ctx.options.get("directory")
    if not ctx.creating or directory is None:
        return
    patient = directory.record("patient", ctx.values.get("patient_id"))
    if patient is None:
        return  # an unknown patient is refused by scope; nothing to copy from
    scale = patient.get("spo2_scale") or 1
    if ctx.values.get("spo2_scale") not in (None, scale):
        ctx.decide(rule="spo2_scale_of_patient", field="spo2_scale", action="replaced",
                   sent=ctx.values["spo2_scale"], patient=scale)
    ctx.values["spo2_scale"] = scale


RECORD = register(RecordType(
    name="observation",
    creators=frozenset({"doctor", "nurse"}),
    editors=frozenset({"doctor", "nurse"}),
    schema=ObservationSchema,
    severity="medium",
    append_only=True,
    fields={
        "measured_by": FieldSpec(stamped=True),
        "measured_at": FieldSpec(clinical_time=True),
        "news2": FieldSpec(server=True),
        "news2_partial": FieldSpec(server=True),
        "supersedes_id": FieldSpec(ref=Ref.record("observation")),
    },
    guards=(append_only, scale_of_the_patient),
    on_create={
        "measured_by": lambda ctx: ctx.actor.user_id,
        "news2": lambda ctx: _news2(ctx)["news2"],
        "news2_partial": lambda ctx: _news2(ctx)["news2_partial"],
    },
))
