"""Every record of the demo region exports as FHIR R4 that a validator library accepts, and nothing is dropped."""

import html
import json

import pytest
from fhir.resources.R4B import get_fhir_model_class

from schema import records
from schema.merge import view
from server.fhir import elements
from server.fhir.patient import parse_identifier
from server.fhir.resources import MAPPINGS, UNEXPORTED, resources_of
from server.store import ScopeKeys

from .clinic import HALMSTAD_PATIENT

#: The R4 (4.0.1) value sets of the status elements hemsync writes: the validator library does not
#: enforce code bindings (its models list the codes but accept any), so the test does.
STATUSES = {
    "Observation": {"registered", "preliminary", "final", "amended", "corrected", "cancelled", "entered-in-error",
                    "unknown"},
    "ServiceRequest": {"draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"},
    "Task": {"draft", "requested", "received", "accepted", "rejected", "ready", "cancelled", "in-progress",
             "on-hold", "failed", "completed", "entered-in-error"},
    "Encounter": {"planned", "arrived", "triaged", "in-progress", "onleave", "finished", "cancelled",
                  "entered-in-error", "unknown"},
    "Composition": {"preliminary", "final", "amended", "entered-in-error"},
    "MedicationStatement": {"active", "completed", "entered-in-error", "intended", "stopped", "on-hold", "unknown",
                            "not-taken"},
    "CarePlan": {"draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"},
    "Flag": {"active", "inactive", "entered-in-error"},
}


def validate(resource):
    """Parse a resource with the fhir.resources R4B model of its type (raises when it is not valid FHIR)."""
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    status = resource.get("status")
    if resource["resourceType"] in STATUSES:
        assert status in STATUSES[resource["resourceType"]], resource


def everything(store, municipalities):
    scope = ScopeKeys(full=frozenset(store.patients_in(municipalities)), municipalities=frozenset(municipalities))
    return scope, store.records_since(0, scope, 10_000)


def test_every_record_type_has_a_mapping_or_a_reason_it_has_none():
    assert set(MAPPINGS) | set(UNEXPORTED) == set(records.names())


def test_every_record_of_the_demo_region_exports_as_valid_fhir_r4(clinic):
    scope, stored = everything(clinic, ["Halmstad", "Varberg"])
    made = {}
    for record in stored:
        for _, resource in resources_of(record, scope.full):
            validate(resource)
            made.setdefault(record.type, set()).add(resource["resourceType"])
    assert set(made) == set(MAPPINGS)
    assert made["warning"] == {"AllergyIntolerance", "Flag"} and made["visit"] == {"Encounter", "Composition"}


def _kept(resource):
    """The record fields a resource keeps in the record-field extension."""
    return {e["extension"][0]["valueString"]: json.loads(e["extension"][1]["valueString"])
            for e in resource.get("extension", ()) if e["url"] == elements.FIELD_EXTENSION}


#: Fields a mapping turns into a FHIR code of the same meaning (their value is not written as such).
CODED = {("warning", "active"): "clinicalStatus / Flag.status", ("warning", "kind"): "AllergyIntolerance or Flag",
         ("visit_request", "urgency"): "priority", ("visit", "kind"): "Encounter.class",
         ("care_plan", "kind"): "category", ("observation", "consciousness"): "an ACVPU SNOMED code",
         ("hospital_stay", "planned"): "Encounter.priority EL (elective) or EM"}


def test_nothing_is_dropped_every_field_is_mapped_or_kept_in_the_extension(clinic):
    scope, stored = everything(clinic, ["Halmstad"])
    for record in stored:
        if record.type == "round":
            continue  # per resident: below
        values = view(record.state)
        resources = [r for _, r in resources_of(record, scope.full)]
        text = json.dumps(resources, ensure_ascii=False)
        for name, value in values.items():
            if value is None or name in elements.COMMON_FIELDS:
                continue
            kept = any(_kept(r).get(name) == value for r in resources) or (record.type, name) in CODED
            written = json.dumps(value, ensure_ascii=False).strip('"')
            assert kept or written in text or html.escape(written, quote=False) in text, (record.type, name, value)


def test_a_rounds_residents_are_exported_each_alone(clinic):
    scope, stored = everything(clinic, ["Halmstad"])
    [round_] = [s for s in stored if s.type == "round"]
    residents = set(view(round_.state)["items"])
    assert len(residents) == 2
    one = sorted(residents)[0]
    encounters = [r for _, r in resources_of(round_, {one})]
    assert [e["subject"]["reference"] for e in encounters] == [f"Patient/{one}"]
    assert all(other not in json.dumps(encounters) for other in residents - {one})


def test_entered_in_error_records_export_with_the_entered_in_error_status(clinic):
    scope, stored = everything(clinic, ["Halmstad"])
    [mistake] = [s for s in stored if s.type == "warning" and view(s.state).get("entered_in_error")]
    [allergy] = [r for _, r in resources_of(mistake, scope.full)]
    assert allergy["verificationStatus"]["coding"][0]["code"] == "entered-in-error"
    assert "clinicalStatus" not in allergy  # ait-2
    assert _kept(allergy)["entered_in_error_reason"] == "fel patient"


def test_vital_signs_carry_loinc_codes_ucum_units_and_news2_as_a_score(clinic):
    scope, stored = everything(clinic, ["Halmstad"])
    [vitals] = [s for s in stored if s.type == "observation"]
    resources = {r["id"]: r for _, r in resources_of(vitals, scope.full)}
    panel = resources[vitals.id]
    assert panel["code"]["coding"][0]["code"] == "85353-1" and len(panel["hasMember"]) == 6
    spo2 = resources[f"{vitals.id}.spo2"]
    assert [c["code"] for c in spo2["code"]["coding"]] == ["2708-6", "59408-5"]
    assert spo2["valueQuantity"] == {"value": 91, "unit": "%", "system": elements.UCUM, "code": "%"}
    assert resources[f"{vitals.id}.resp-rate"]["valueQuantity"]["code"] == "/min"
    assert resources[f"{vitals.id}.temperature"]["valueQuantity"]["code"] == "Cel"
    assert resources[f"{vitals.id}.systolic-bp"]["valueQuantity"]["code"] == "mm[Hg]"
    news2 = resources[f"{vitals.id}.news2"]
    assert news2["valueInteger"] == view(vitals.state)["news2"] and len(news2["derivedFrom"]) == 6
    assert all(r["subject"]["reference"] == f"Patient/{HALMSTAD_PATIENT}" for r in resources.values())


def test_the_signed_note_is_a_final_attested_composition_and_its_amendment_appends_to_it(clinic):
    scope, stored = everything(clinic, ["Halmstad"])
    [visit] = [s for s in stored if s.type == "visit"]
    [amendment] = [s for s in stored if s.type == "amendment"]
    encounter, note = [r for _, r in resources_of(visit, scope.full)]
    assert encounter["class"]["code"] == "HH" and encounter["status"] == "finished"
    assert note["status"] == "final" and note["attester"][0]["mode"] == "legal"
    assert "&lt;kontroll&gt;" in note["section"][1]["text"]["div"]
    [appended] = [r for _, r in resources_of(amendment, scope.full)]
    assert appended["relatesTo"] == [{"code": "appends", "targetReference": {"reference": f"Composition/{visit.id}"}}]


@pytest.mark.parametrize("token", [
    "http://electronichealth.se/identifier/personnummer|191212121212",
    "urn:oid:1.2.752.129.2.1.3.1|191212121212",
    "19121212-1212",
])
def test_a_personnummer_is_found_by_hl7_swedens_system_the_skatteverket_oid_or_alone(token):
    assert parse_identifier(token) == "191212121212"


def test_a_samordningsnummer_under_the_personnummer_system_or_an_unknown_system_is_refused():
    with pytest.raises(Exception, match="not a personnummer"):
        parse_identifier("http://electronichealth.se/identifier/personnummer|197010632391")
    assert parse_identifier("urn:oid:1.2.752.129.2.1.3.3|197010632391") == "197010632391"
    with pytest.raises(Exception, match="not one hemsync searches"):
        parse_identifier("urn:oid:1.2.3|191212121212")


def _marked_in_error(resource):
    if resource["resourceType"] == "Patient":
        return resource["active"] is False
    if resource["resourceType"] == "AllergyIntolerance":
        return resource["verificationStatus"]["coding"][0]["code"] == "entered-in-error"
    return resource["status"] == "entered-in-error"


def test_every_resource_of_a_record_entered_in_error_says_so_and_stays_valid(clinic):
    from server.fhir.encounter import round_items_to_fhir

    scope, stored = everything(clinic, ["Halmstad"])
    for record in stored:
        values = {**view(record.state), "entered_in_error": True, "entered_in_error_reason": "fel patient"}
        if record.type == "round":
            made = round_items_to_fhir(values, record.state, scope.full)
        else:
            made = MAPPINGS[record.type][0](values, record.state)
        assert made, record.type
        for resource in made:
            validate(resource)
            assert _marked_in_error(resource), (record.type, resource["resourceType"])
