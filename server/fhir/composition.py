"""The visit note -> Composition; an amendment -> a Composition that appends to it.

A signed visit is sealed: its note is ``final`` with the signer as legal
attester; an unsigned one is ``preliminary``. An amendment is its own final
Composition whose ``relatesTo`` says ``appends`` to the visit's, so the signed
note stays as it was signed and everything added later is beside it.
"""

from .elements import LOINC, concept, keep_unmapped, last_written, meta, narrative, practitioner, reference

__all__ = ["to_fhir", "amendment_to_fhir", "NOTE_TYPE"]

NOTE_TYPE = ("11506-3", "Progress note")
NOTE_MAPPED = frozenset({"patient_id", "doctor_id", "assessment", "plan", "signed_at", "signed_by"})
AMENDMENT_MAPPED = frozenset({"patient_id", "visit_id", "text", "author_id"})
SECTIONS = (("assessment", "Bedömning"), ("plan", "Planering"))


def _status(record, signed):
    if record.get("entered_in_error"):
        return "entered-in-error"
    return "final" if signed else "preliminary"


def to_fhir(record, state):
    """The Composition of a visit's note (id: the visit's), as a list of one resource.

    Its date is the signature's time, or the latest write of an unsigned note.
    """
    author = record.get("signed_by") or record.get("doctor_id")
    note = {"resourceType": "Composition", "id": record["id"], "meta": meta(state),
            "status": _status(record, record.get("signed_at")),
            "type": concept("Besöksanteckning", LOINC, *NOTE_TYPE),
            "subject": reference("Patient", record["patient_id"]),
            "encounter": reference("Encounter", record["id"]),
            "date": record.get("signed_at") or last_written(state),
            "author": [practitioner(author) if author else {"display": "okänd"}],
            "title": "Besöksanteckning",
            "section": [{"title": title, "text": narrative(record[field])}
                        for field, title in SECTIONS if record.get(field)]}
    if record.get("signed_at"):
        note["attester"] = [{"mode": "legal", "time": record["signed_at"],
                             "party": practitioner(record["signed_by"])}]
    if not note["section"]:
        del note["section"]
    # Only the note's own fields: the visit's other fields are the Encounter's (server.fhir.encounter);
    # an open conflict (two assessments kept) shows on both.
    return [keep_unmapped(note, "visit", {k: record.get(k) for k in NOTE_MAPPED | {"id"}}, NOTE_MAPPED, state)]


def amendment_to_fhir(record, state):
    """The Composition of an amendment, appending to its visit's note."""
    amendment = {"resourceType": "Composition", "id": record["id"], "meta": meta(state),
                 "status": _status(record, True),
                 "type": concept("Tillägg till besöksanteckning", LOINC, *NOTE_TYPE),
                 "subject": reference("Patient", record["patient_id"]),
                 "encounter": reference("Encounter", record["visit_id"]),
                 "date": last_written(state),
                 "author": [practitioner(record["author_id"]) if record.get("author_id")
                            else {"display": "okänd"}],
                 "title": "Tillägg",
                 "relatesTo": [{"code": "appends", "targetReference": reference("Composition", record["visit_id"])}],
                 "section": [{"title": "Tillägg", "text": narrative(record["text"])}]}
    return [keep_unmapped(amendment, "amendment", record, AMENDMENT_MAPPED, state)]
