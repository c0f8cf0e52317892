"""Which resources a stored record makes, for whom: the one table from record types to mapping modules.

Every record type but ``conflict`` (its content is on the records it is about,
in the open-conflict extension) has a mapping here; a test checks that a new
record type cannot be added without one. Each mapping returns the record's
resources, the first carrying the record's own id.
"""

from schema import records
from schema.merge import view

from . import (allergy_intolerance, care_plan, composition, encounter, flag, hospital_stay, medication_statement,
               observation, patient, service_request)

__all__ = ["MAPPINGS", "UNEXPORTED", "SOURCES", "resources_of"]


def _warning(record, state):
    module = allergy_intolerance if record.get("kind") == "allergy" else flag
    return module.to_fhir(record, state)


def _visit(record, state):
    return encounter.to_fhir(record, state) + composition.to_fhir(record, state)


#: record type -> (mapping, the resource types it may make)
MAPPINGS = {
    "patient": (patient.to_fhir, ("Patient",)),
    "warning": (_warning, ("AllergyIntolerance", "Flag")),
    "observation": (observation.to_fhir, ("Observation",)),
    "visit_request": (service_request.to_fhir, ("ServiceRequest", "Task")),
    "visit": (_visit, ("Encounter", "Composition")),
    "amendment": (composition.amendment_to_fhir, ("Composition",)),
    "round": (None, ("Encounter",)),  # per resident: encounter.round_items_to_fhir
    "admission": (service_request.admission_to_fhir, ("ServiceRequest",)),
    "medication": (medication_statement.to_fhir, ("MedicationStatement",)),
    "medication_review": (care_plan.review_to_fhir, ("CarePlan",)),
    "care_plan": (care_plan.to_fhir, ("CarePlan",)),
    "hospital_stay": (hospital_stay.to_fhir, ("Encounter",)),
}
#: Record types with no resource of their own, and why.
UNEXPORTED = {"conflict": "its competing values are on the record it is about (open-conflict extension)"}
#: resource type -> the record types whose records may make it (for a read by id)
SOURCES = {}
for _type, (_, _made) in MAPPINGS.items():
    for _resource_type in _made:
        SOURCES.setdefault(_resource_type, []).append(_type)


def resources_of(stored, patients):
    """``[(patient id, resource)]`` of a stored record, for a reader who may see ``patients``.

    A round makes one Encounter per resident among ``patients``; any other
    record makes its resources, all of its patient.
    """
    # Not StoredRecord.view(): its process-wide cache would keep every record an export reads.
    record = view(stored.state)
    if stored.type == "round":
        return [(e["subject"]["reference"].split("/", 1)[1], e)
                for e in encounter.round_items_to_fhir(record, stored.state, patients)]
    mapping, _ = MAPPINGS[stored.type]
    patient_id = records.get(stored.type).patient_of(stored.state)
    return [(patient_id, resource) for resource in mapping(record, stored.state)]

