"""patient: demographics and care setting; field by field, last writer wins.

The personnummer is fixed at creation (an admin corrects it, never a merge);
two patients with the same personnummer are a duplicate the server reports.
"""

from marshmallow import fields, validate

from ..guards import immutable
from ..recordtype import FieldSpec, RecordType
from ..rules import Immutable
from ..validation import IsoDate, Personnummer, RecordRef, RecordSchema, StrictBool, StrictInt, Text
from . import register

CARE_SETTINGS = ("own_home", "sabo", "short_term", "lss")


class PatientSchema(RecordSchema):
    personnummer = Personnummer(required=True)
    name = Text(required=True, allow_none=False, limit=200)
    address = Text(limit=500)
    access_notes = Text(limit=2000)
    phone = Text(limit=40)
    municipality = Text(required=True, allow_none=False, limit=100)
    care_setting = fields.String(allow_none=True, validate=validate.OneOf(CARE_SETTINGS))
    facility = Text(limit=200)
    unit = Text(limit=200)
    listed_health_centre = Text(limit=200)
    named_doctor_id = RecordRef()
    named_nurse_id = RecordRef()
    palliative = StrictBool(allow_none=True)
    discharged_at = IsoDate()
    enrolled_at = IsoDate()
    moved_in_at = IsoDate()
    spo2_scale = StrictInt(minimum=1, maximum=2)


RECORD = register(RecordType(
    name="patient",
    schema=PatientSchema,
    severity="low",
    fields={"personnummer": FieldSpec(rule=Immutable(), severity="high")},
    guards=(immutable("personnummer"),),
    patient_field="id",
))
