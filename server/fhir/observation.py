"""observation (vitals) -> a vital-signs panel, one Observation per vital sign, and NEWS2 as a score.

Codes (R4 core vital-signs profiles; docs/fhir.md lists them with their sources):
LOINC with UCUM units for the measured signs, SNOMED CT for ACVPU and the NEWS2
total (UK-extension concepts: LOINC has no NEWS2 code). The panel keeps the
record's id and what has no FHIR element (supplemental oxygen, the SpO2 scale,
what it supersedes, whether NEWS2 is partial) in the record-field extension.
"""

from .elements import LOINC, SNOMED, UCUM, concept, derived_id, keep_unmapped, meta, practitioner, reference

__all__ = ["SIGNS", "ACVPU", "to_fhir"]

#: field -> (id part, LOINC codes (first is the profile's), display, UCUM unit)
SIGNS = {
    "resp_rate": ("resp-rate", ("9279-1",), "Respiratory rate", "/min"),
    "spo2": ("spo2", ("2708-6", "59408-5"), "Oxygen saturation in Arterial blood", "%"),
    "pulse": ("pulse", ("8867-4",), "Heart rate", "/min"),
    "temperature": ("temperature", ("8310-5",), "Body temperature", "Cel"),
    "systolic_bp": ("systolic-bp", ("8480-6",), "Systolic blood pressure", "mm[Hg]"),
}
#: ACVPU level -> SNOMED CT finding (the NHS NEWS2 ACVPU value set).
ACVPU = {
    "A": ("248234008", "Mentally alert"),
    "C": ("130987000", "Acute confusion"),
    "V": ("300202002", "Responds to voice"),
    "P": ("450847001", "Responds to pain"),
    "U": ("422768004", "Unresponsive"),
}
ACVPU_CODE = ("1104441000000107", "ACVPU (Alert Confusion Voice Pain Unresponsive) scale score")
NEWS2_CODE = ("1104051000000101", "Royal College of Physicians NEWS2 (National Early Warning Score 2) total score")
PANEL_CODE = ("85353-1", "Vital signs, weight, height, head circumference, oxygen saturation and BMI panel")
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
MAPPED = frozenset({"patient_id", "measured_at", "measured_by", "consciousness", "news2", *SIGNS})


def _observation(record, state, resource_id, code, category="vital-signs"):
    observation = {
        "resourceType": "Observation", "id": resource_id, "meta": meta(state),
        "status": "entered-in-error" if record.get("entered_in_error") else "final",
        "category": [{"coding": [{"system": CATEGORY, "code": category}]}],
        "code": code, "subject": reference("Patient", record["patient_id"]),
        "effectiveDateTime": record["measured_at"],
    }
    if record.get("measured_by"):
        observation["performer"] = [practitioner(record["measured_by"])]
    return observation


def to_fhir(record, state):
    """The panel, then one Observation per sign present, ACVPU and NEWS2 (when computed)."""
    members = []
    for field, (part, codes, display, unit) in SIGNS.items():
        if record.get(field) is None:
            continue
        code = {"coding": [{"system": LOINC, "code": c} for c in codes], "text": display}
        code["coding"][0]["display"] = display
        member = _observation(record, state, derived_id(record["id"], part), code)
        member["valueQuantity"] = {"value": record[field], "unit": unit, "system": UCUM, "code": unit}
        members.append(member)
    if record.get("consciousness"):
        member = _observation(record, state, derived_id(record["id"], "acvpu"),
                              concept("ACVPU", SNOMED, *ACVPU_CODE), category="exam")
        member["valueCodeableConcept"] = concept(record["consciousness"], SNOMED, *ACVPU[record["consciousness"]])
        members.append(member)
    panel = _observation(record, state, record["id"], concept("Vitalparametrar", LOINC, *PANEL_CODE))
    panel["hasMember"] = [reference("Observation", m["id"]) for m in members]
    if record.get("news2") is not None:
        score = _observation(record, state, derived_id(record["id"], "news2"),
                             concept("NEWS2", SNOMED, *NEWS2_CODE), category="survey")
        score["valueInteger"] = record["news2"]
        score["derivedFrom"] = [reference("Observation", m["id"]) for m in members]
        members.append(score)
    if not panel["hasMember"]:
        del panel["hasMember"]
    return [keep_unmapped(panel, "observation", record, MAPPED, state), *members]
