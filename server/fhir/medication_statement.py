"""medication -> MedicationStatement."""

from .elements import keep_unmapped, meta, reference

__all__ = ["to_fhir", "STATUS"]

STATUS = {"active": "active", "paused": "on-hold", "discontinued": "stopped"}
MAPPED = frozenset({"patient_id", "drug", "status", "start_date", "reason"})


def to_fhir(record, state):
    """The MedicationStatement of a medication, as a list of one resource.

    Strength, dose, route and frequency are free text in hemsync: they make the
    dosage's text, and each is kept exactly in the record-field extension.
    """
    statement = {"resourceType": "MedicationStatement", "id": record["id"], "meta": meta(state),
                 "status": "entered-in-error" if record.get("entered_in_error") else
                 STATUS[record.get("status") or "active"],
                 "medicationCodeableConcept": {"text": " ".join(
                     str(record[f]) for f in ("drug", "strength") if record.get(f))},
                 "subject": reference("Patient", record["patient_id"])}
    if record.get("start_date"):
        statement["effectivePeriod"] = {"start": record["start_date"]}
    if record.get("reason"):
        statement["statusReason"] = [{"text": record["reason"]}]
    dosage = ", ".join(str(record[f]) for f in ("dose", "route", "frequency") if record.get(f))
    if dosage:
        statement["dosage"] = [{"text": dosage}]
    return [keep_unmapped(statement, "medication", record, MAPPED, state)]
