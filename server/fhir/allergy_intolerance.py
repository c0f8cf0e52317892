"""warning of kind allergy -> AllergyIntolerance."""

from .elements import keep_unmapped, meta, reference

__all__ = ["to_fhir", "CRITICALITY"]

CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
#: severity -> criticality; high and life-threatening are both ``high``, so the severity is kept exactly too.
CRITICALITY = {"low": "low", "high": "high", "life_threatening": "high"}
MAPPED = frozenset({"patient_id", "text", "active"})


def to_fhir(record, state):
    """The AllergyIntolerance of an allergy warning, as a list of one resource.

    Entered in error: verificationStatus ``entered-in-error`` and no clinicalStatus
    (invariant ait-2); otherwise clinicalStatus active or inactive (ait-1).
    """
    allergy = {"resourceType": "AllergyIntolerance", "id": record["id"], "meta": meta(state),
               "type": "allergy", "code": {"text": record["text"]},
               "patient": reference("Patient", record["patient_id"])}
    if record.get("entered_in_error"):
        allergy["verificationStatus"] = {"coding": [{"system": VERIFICATION, "code": "entered-in-error"}]}
    else:
        allergy["clinicalStatus"] = {"coding": [{"system": CLINICAL,
                                                 "code": "active" if record.get("active", True) else "inactive"}]}
    if record.get("severity"):
        allergy["criticality"] = CRITICALITY[record["severity"]]
    return [keep_unmapped(allergy, "warning", record, MAPPED, state)]
