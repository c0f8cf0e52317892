"""A user (doctor, nurse, dispatcher) -> Practitioner with the HSA-id of HL7 Sweden's SEBasePractitioner."""

from .elements import BASE

__all__ = ["HSA_ID", "ROLE_EXTENSION", "to_fhir"]

HSA_ID = "urn:oid:1.2.752.29.4.19"
#: The user's hemsync role (Practitioner has none; PractitionerRole would need an organisation hemsync does not keep).
ROLE_EXTENSION = f"{BASE}/StructureDefinition/staff-role"


def to_fhir(user):
    """The Practitioner of a staff member, as a list of one resource (name, HSA-id, role; never a token)."""
    practitioner = {"resourceType": "Practitioner", "id": user["id"], "active": True,
                    "name": [{"text": user["name"]}],
                    "extension": [{"url": ROLE_EXTENSION, "valueCode": user["role"]}]}
    if user.get("hsa_id"):
        practitioner["identifier"] = [{
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "PRN"}]},
            "system": HSA_ID, "value": user["hsa_id"]}]
    return [practitioner]
