"""warning of kind condition or other (uppmärksamhetssignal) -> Flag."""

from .elements import keep_unmapped, meta, reference

__all__ = ["to_fhir"]

MAPPED = frozenset({"patient_id", "text", "active"})


def to_fhir(record, state):
    """The Flag of a warning that is no allergy, as a list of one resource."""
    status = "entered-in-error" if record.get("entered_in_error") else (
        "active" if record.get("active", True) else "inactive")
    flag = {"resourceType": "Flag", "id": record["id"], "meta": meta(state), "status": status,
            "code": {"text": record["text"]}, "subject": reference("Patient", record["patient_id"])}
    return [keep_unmapped(flag, "warning", record, MAPPED, state)]
