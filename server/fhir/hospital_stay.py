"""hospital_stay <-> Encounter (class IMP, inpatient), and a discharge notice Bundle -> a stay's fields.

A discharge notice is a ``transaction`` Bundle from the hospital's system (docs/fhir.md):

- one Encounter of the stay: ``identifier`` (the hospital's id of the stay: a
  notice sent again names the same stay), ``subject`` the patient by identifier
  (personnummer or samordningsnummer, ``subject.identifier``, or a reference to
  a Patient entry of the Bundle carrying it), ``period.start`` admitted,
  ``period.end`` discharged, ``serviceProvider.display`` the hospital,
  ``location[0].location.display`` the ward, ``priority`` ``EL`` (elective) for a
  planned stay;
- optionally one ServiceRequest whose ``encounter`` is the stay: the follow-up
  the ward asks for, as its ``note`` texts (or ``code.text``).
"""

import dataclasses

from schema.errors import InvalidRecord

from .elements import ACT_CODE, keep_unmapped, meta, reference
from .patient import ALIASES, parse_identifier

__all__ = ["to_fhir", "from_fhir", "PRIORITY", "Notice"]

PRIORITY = "http://terminology.hl7.org/CodeSystem/v3-ActPriority"
MAPPED = frozenset({"patient_id", "hospital", "ward", "admitted_at", "discharged_at", "planned"})


def to_fhir(record, state):
    """The Encounter of a hospital stay, as a list of one resource."""
    status = "entered-in-error" if record.get("entered_in_error") else (
        "finished" if record.get("discharged_at") else "in-progress")
    stay = {"resourceType": "Encounter", "id": record["id"], "meta": meta(state), "status": status,
            "class": {"system": ACT_CODE, "code": "IMP", "display": "inpatient encounter"},
            "subject": reference("Patient", record["patient_id"]),
            "period": {k: record[f] for k, f in (("start", "admitted_at"), ("end", "discharged_at"))
                       if record.get(f)},
            "serviceProvider": {"display": record["hospital"]}}
    if record.get("ward"):
        stay["location"] = [{"location": {"display": record["ward"]}}]
    if record.get("planned") is not None:
        code = "EL" if record["planned"] else "EM"
        stay["priority"] = {"coding": [{"system": PRIORITY, "code": code}],
                            "text": "planerad" if record["planned"] else "oplanerad"}
    # follow_up, source and admission_id have no Encounter element: the record-field extension keeps them.
    return [keep_unmapped(stay, "hospital_stay", record, MAPPED, state)]


@dataclasses.dataclass(frozen=True)
class Notice:
    """A discharge notice read from a Bundle: whose, which stay (the hospital's ``system|value``), what."""

    personnummer: str
    stay_key: str
    has_system: bool
    fields: dict


def _invalid(message, where):
    return InvalidRecord(message, details={where: [message]})


def _one(resources, kind, required):
    found = [r for r in resources if r.get("resourceType") == kind]
    if len(found) > 1 or (required and not found):
        raise _invalid(f"a discharge notice holds {'exactly' if required else 'at most'} one {kind}; "
                       f"this one holds {len(found)}", kind)
    return found[0] if found else None


def _personnummer(subject, entries):
    identifier = (subject or {}).get("identifier")
    if identifier is None and (subject or {}).get("reference"):
        patient = entries.get(subject["reference"])
        identifiers = (patient or {}).get("identifier") or []
        identifier = next((i for i in identifiers if i.get("system") in ALIASES), None)
    if not identifier or not identifier.get("value"):
        raise _invalid("the Encounter's subject must name the patient's personnummer or samordningsnummer "
                       "(subject.identifier, or a Patient entry of the Bundle with that identifier)", "subject")
    return parse_identifier(f"{identifier.get('system') or ''}|{identifier['value']}".lstrip("|"))


def from_fhir(bundle):
    """The :class:`Notice` of a discharge notice Bundle; raise InvalidRecord naming what is missing or wrong."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise _invalid("send a Bundle (resourceType Bundle) of type transaction", "resourceType")
    if bundle.get("type") != "transaction":
        raise _invalid(f"a discharge notice is a transaction Bundle, not {bundle.get('type')!r}", "type")
    entries = {e.get("fullUrl"): e.get("resource") for e in bundle.get("entry") or [] if isinstance(e, dict)}
    resources = [r for r in entries.values() if isinstance(r, dict)]
    stay = _one(resources, "Encounter", required=True)
    identifier = next((i for i in stay.get("identifier") or [] if isinstance(i, dict) and i.get("value")), None)
    if identifier is None:
        raise _invalid("the Encounter needs the hospital's identifier of the stay (identifier.system and value), "
                       "so that a notice sent again updates the same stay", "identifier")
    period = stay.get("period") or {}
    hospital = (stay.get("serviceProvider") or {}).get("display")
    if not period.get("start") or not hospital:
        raise _invalid("the Encounter needs period.start (admitted) and serviceProvider.display (the hospital)",
                       "Encounter")
    fields = {"hospital": hospital, "admitted_at": period["start"], "discharged_at": period.get("end"),
              "ward": next((loc.get("location", {}).get("display") for loc in stay.get("location") or []), None),
              "source": "discharge_notice"}
    priority = {c.get("code") for c in (stay.get("priority") or {}).get("coding") or []
                if c.get("system") == PRIORITY}
    if priority:
        fields["planned"] = "EL" in priority
    asked = _one(resources, "ServiceRequest", required=False)
    if asked is not None:
        texts = [n.get("text") for n in asked.get("note") or [] if n.get("text")]
        fields["follow_up"] = "\n".join(texts) or (asked.get("code") or {}).get("text")
    return Notice(personnummer=_personnummer(stay.get("subject"), entries),
                  stay_key=f"{identifier.get('system') or ''}|{identifier['value']}",
                  has_system=bool(identifier.get("system")), fields={k: v for k, v in fields.items() if v is not None})
