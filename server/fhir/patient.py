"""patient -> Patient (HL7 Sweden's SEBasePatient identifiers), and finding patients by identifier.

The personnummer or samordningsnummer is the identifier with the systems of
HL7 Sweden's base profiles (hl7se.fhir.base 1.1.0, SEBasePatient). The
Skatteverket OIDs Inera's services use are accepted as aliases when a client
searches (:func:`parse_identifier`), never written.
"""

from schema.errors import InvalidRecord
from schema.identity import is_samordningsnummer, normalize_personnummer

from .elements import keep_unmapped, meta, practitioner

__all__ = ["PERSONNUMMER", "SAMORDNINGSNUMMER", "ALIASES", "to_fhir", "parse_identifier", "identifier_of"]

PERSONNUMMER = "http://electronichealth.se/identifier/personnummer"
SAMORDNINGSNUMMER = "http://electronichealth.se/identifier/samordningsnummer"
#: Every system a Swedish national identity number comes with, to the one hemsync writes.
ALIASES = {
    PERSONNUMMER: PERSONNUMMER,
    SAMORDNINGSNUMMER: SAMORDNINGSNUMMER,
    "urn:oid:1.2.752.129.2.1.3.1": PERSONNUMMER,
    "urn:oid:1.2.752.129.2.1.3.3": SAMORDNINGSNUMMER,
}
MAPPED = frozenset({"personnummer", "name", "address", "phone", "named_doctor_id"})


def identifier_of(personnummer):
    """The Identifier of a stored 12-digit number, with the system of its kind."""
    system = SAMORDNINGSNUMMER if is_samordningsnummer(personnummer) else PERSONNUMMER
    return {"system": system, "value": personnummer}


def _name(text):
    parts = text.split()
    name = {"use": "official", "text": text}
    if len(parts) > 1:
        name |= {"family": parts[-1], "given": parts[:-1]}
    return name


def to_fhir(record, state):
    """The Patient of a patient record, as a list of one resource.

    A patient entered in error is ``active: false`` (Patient has no status).
    """
    patient = {"resourceType": "Patient", "id": record["id"], "meta": meta(state),
               "identifier": [identifier_of(record["personnummer"])],
               "active": not record.get("entered_in_error")}
    if record.get("name"):
        patient["name"] = [_name(record["name"])]
    if record.get("phone"):
        patient["telecom"] = [{"system": "phone", "value": record["phone"]}]
    if record.get("address"):
        patient["address"] = [{"use": "home", "text": record["address"]}]
    if record.get("named_doctor_id"):
        patient["generalPractitioner"] = [practitioner(record["named_doctor_id"])]
    return [keep_unmapped(patient, "patient", record, MAPPED, state)]


def parse_identifier(token):
    """The 12-digit number a search token ``system|value`` names; raise InvalidRecord when it names none.

    The system must be one of :data:`ALIASES` (a bare value, without ``|``, is taken
    as a personnummer or samordningsnummer too); the value is checked like any
    personnummer (checksum, date).
    """
    system, bar, value = (token or "").rpartition("|")
    if not bar:
        system, value = None, token
    if system and system not in ALIASES:
        raise InvalidRecord(
            f"identifier system {system!r} is not one hemsync searches: use {PERSONNUMMER}, {SAMORDNINGSNUMMER} "
            "or the Skatteverket OIDs urn:oid:1.2.752.129.2.1.3.1 / urn:oid:1.2.752.129.2.1.3.3",
            details={"identifier": [token]})
    number = normalize_personnummer(value)
    if system and ALIASES[system] != identifier_of(number)["system"]:
        raise InvalidRecord(f"{value} is not a {ALIASES[system].rsplit('/', 1)[-1]}: check the system",
                            details={"identifier": [token]})
    return number
