"""The FHIR datatypes every mapping builds the same way: ids, references, codings, narrative, extensions.

A record maps to one or more resources. The first keeps the record's id; the
others (an observation's vital signs, a round's residents) get an id derived from
it, ``<record id>.<part>`` (FHIR ids are 1-64 of ``A-Za-z0-9-.``), so the resource
names its record and a read by id finds it again (:func:`split_id`).

**Nothing is dropped.** A record's fields that its resource does not carry in a
FHIR element of the same meaning go, with their exact value, into the extension
:data:`FIELD_EXTENSION` (:func:`keep_unmapped`); the open conflicts of the record
go into :data:`CONFLICT_EXTENSION`. Both are defined in docs/fhir.md.
"""

import datetime as dt
import html
import json

from schema.clock import Hlc
from schema.merge import SYSTEM

__all__ = ["BASE", "FIELD_EXTENSION", "CONFLICT_EXTENSION", "RECORD_EXTENSION", "SNOMED", "LOINC", "UCUM", "ACT_CODE",
           "derived_id", "split_id", "reference", "practitioner", "concept", "narrative", "keep_unmapped", "last_written", "meta",
           "instant", "COMMON_FIELDS"]

#: Canonical base of what hemsync defines (extensions); a name, never fetched.
BASE = "https://hemsync.se/fhir"
FIELD_EXTENSION = f"{BASE}/StructureDefinition/record-field"
CONFLICT_EXTENSION = f"{BASE}/StructureDefinition/open-conflict"
#: Which hemsync record a resource was made from (``record_type/record_id``).
RECORD_EXTENSION = f"{BASE}/StructureDefinition/record"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
#: Fields every record may carry, mapped by every resource (the id, and entered in error as its status).
COMMON_FIELDS = frozenset({"id", "entered_in_error"})
_ID_PART_LENGTH = 64 - 36 - 1


def derived_id(record_id, part):
    """The id of a record's further resource ``part`` (at most 27 characters of ``A-Za-z0-9-``)."""
    return f"{record_id}.{part[:_ID_PART_LENGTH]}"


def split_id(resource_id):
    """``(record id, part or None)`` of a resource id made by :func:`derived_id` (or a record's own id)."""
    record_id, _, part = resource_id.partition(".")
    return record_id, part or None


def reference(resource_type, resource_id):
    """A literal reference ``{"reference": "Type/id"}``, or None without an id."""
    return {"reference": f"{resource_type}/{resource_id}"} if resource_id else None


def practitioner(user_id):
    """A reference to a staff member's Practitioner; the server's own acts name the server, which is no one's."""
    if user_id == SYSTEM.user_id:
        return {"display": "hemsync (the server itself)"}
    return reference("Practitioner", user_id)


def concept(text, system=None, code=None, display=None):
    """A CodeableConcept with its text, and a coding when ``code`` is given."""
    value = {"text": text}
    if code:
        value["coding"] = [{"system": system, "code": code, **({"display": display} if display else {})}]
    return value


def narrative(text, status="generated"):
    """A Narrative holding plain text (escaped, line breaks kept) as the XHTML FHIR requires."""
    body = "<br/>".join(html.escape(line, quote=False) for line in str(text).splitlines()) or "-"
    return {"status": status, "div": f'<div xmlns="http://www.w3.org/1999/xhtml"><p>{body}</p></div>'}


def _value(value):
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def keep_unmapped(resource, record_type, record, mapped, state=None):
    """Add to ``resource`` the extensions that keep what no FHIR element of it holds; return it.

    Every field of ``record`` not in ``mapped`` (nor :data:`COMMON_FIELDS`) and not
    None becomes one :data:`FIELD_EXTENSION` (``name``, ``value`` as JSON text);
    each open conflict of ``state`` one :data:`CONFLICT_EXTENSION`; and
    :data:`RECORD_EXTENSION` names the record.
    """
    extensions = [{"url": RECORD_EXTENSION, "valueString": f"{record_type}/{record['id']}"}]
    for name in sorted(set(record) - set(mapped) - COMMON_FIELDS):
        if record[name] is not None:
            extensions.append({"url": FIELD_EXTENSION, "extension": [
                {"url": "name", "valueString": name}, {"url": "value", "valueString": _value(record[name])}]})
    for conflict in (state or {}).get("conflicts", ()):
        if conflict.get("status") == "open":
            extensions.append({"url": CONFLICT_EXTENSION, "extension": [
                {"url": "field", "valueString": conflict["field"]},
                {"url": "values", "valueString": _value([v.get("value") for v in conflict.get("values", ())])}]})
    resource["extension"] = resource.get("extension", []) + extensions
    return resource


def last_written(state):
    """The FHIR instant of a record's latest write (its HLC's wall time), or None for an empty state."""
    # HLC strings are fixed-width digits: the greatest string is the latest time, parsed once.
    latest = max((w["hlc"] for w in state.get("fields", {}).values() if w.get("hlc")), default=None)
    if latest is None:
        return None
    return instant(dt.datetime.fromtimestamp(Hlc.parse(latest).wall_ms / 1000, tz=dt.timezone.utc))


def instant(moment):
    """An aware datetime as a FHIR instant (UTC, milliseconds)."""
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def meta(state):
    """``meta`` with ``lastUpdated`` from the record's latest write."""
    updated = last_written(state)
    return {"lastUpdated": updated} if updated else {}
