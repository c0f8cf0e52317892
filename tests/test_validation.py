"""Bad records are rejected whole, with a stable code and a message per field."""

import datetime as dt

import pytest

from schema import errors, records
from schema.merge import Actor, apply_change

from .merging import NOW

DOCTOR = Actor("doc-1", "doctor")
NURSE = Actor("nurse-1", "nurse")
PATIENT = {"personnummer": "19121212-1212", "name": "Tolvan Tolvansson", "municipality": "Halmstad"}
OBS = {"patient_id": "p1", "measured_at": NOW.isoformat()}


def create(record_type, fields, actor=NURSE):
    change = {"change_id": "c1", "record_type": record_type, "record_id": "r1", "device_id": "d1", "op": 1,
              "hlc": "0001764064800000-000000", "base": {}, "fields": fields}
    return apply_change(None, change, actor, NOW)


def rejected(record_type, fields, actor=NURSE):
    with pytest.raises(errors.HemsyncError) as caught:
        create(record_type, fields, actor)
    return caught.value


def test_an_unknown_record_type_is_rejected_with_the_known_ones_listed():
    error = rejected("prescription", {"x": 1})
    assert error.code == "unknown_record_type" and "medication" in error.message


def test_an_unknown_field_is_rejected_by_name():
    error = rejected("patient", {**PATIENT, "shoe_size": 42})
    assert (error.code, error.details) == ("unknown_field", {"shoe_size": ["'shoe_size' is not a field of this record type"]})


def test_a_new_record_names_every_required_field_it_lacks():
    error = rejected("patient", {"name": "Tolvan"})
    assert error.code == "missing_field"
    assert error.details == {"personnummer": ["'personnummer' is required when the record is created"],
                             "municipality": ["'municipality' is required when the record is created"]}


@pytest.mark.parametrize("field,value,message", [
    ("pulse", "80", "must be a whole number"),
    ("pulse", 80.5, "must be a whole number"),
    ("pulse", True, "must be a whole number"),
    ("pulse", 900, "900 is not possible here"),
    ("spo2", 101, "101 is not possible here"),
    ("temperature", 52.0, "52.0 is not possible here"),
    ("supplemental_o2", "yes", "must be true or false"),
    ("consciousness", "X", "Must be one of"),
    ("measured_at", "yesterday", "is not a time like"),
    ("measured_at", "2026-11-25T10:00:00", "has no UTC offset"),
])
def test_wrong_types_and_impossible_vitals_are_rejected_per_field(field, value, message):
    error = rejected("observation", {**OBS, field: value})
    assert error.code == "invalid_value" and list(error.details) == [field]
    assert message in error.details[field][0]


@pytest.mark.parametrize("pnr,message", [
    ("19121212-1213", "check digit"),
    ("19120230-1212", "not a real date"),
    ("19121212121", "digits"),
    ("abc", "digits"),
])
def test_an_invalid_personnummer_is_rejected_with_a_message_a_nurse_can_act_on(pnr, message):
    error = rejected("patient", {**PATIENT, "personnummer": pnr})
    assert error.code == "invalid_value" and message in error.details["personnummer"][0]


def test_a_clinical_time_more_than_24_hours_in_the_future_is_rejected():
    later = (NOW + dt.timedelta(hours=25)).isoformat()
    error = rejected("observation", {**OBS, "measured_at": later})
    assert error.code == "invalid_value" and "24 hours in the future" in error.message
    assert create("observation", {**OBS, "measured_at": (NOW + dt.timedelta(hours=23)).isoformat()}).result == "applied"


@pytest.mark.parametrize("record_type,fields,field", [
    ("observation", {**OBS, "news2": 3}, "news2"),
    ("observation", {**OBS, "measured_by": "someone"}, "measured_by"),
    ("visit_request", {"patient_id": "p", "reason": "r", "urgency": "acute", "requested_by": "x"}, "requested_by"),
    ("visit_request", {"patient_id": "p", "reason": "r", "urgency": "acute", "deadline": NOW.isoformat()}, "deadline"),
])
def test_server_and_stamped_fields_are_never_taken_from_a_client(record_type, fields, field):
    error = rejected(record_type, fields)
    assert (error.code, list(error.details)) == ("forbidden_field", [field])


def test_a_huge_text_is_rejected_not_stored():
    error = rejected("visit", {"patient_id": "p", "kind": "home_visit", "assessment": "x" * 20_001}, DOCTOR)
    assert "limit is 20000" in error.details["assessment"][0]


def test_sql_looking_text_is_just_text():
    text = "'); DROP TABLE records; --"
    assert create("patient", {**PATIENT, "name": text}).state["fields"]["name"]["value"] == text


def test_an_unknown_field_inside_a_round_item_is_rejected():
    error = rejected("round", {"facility": "F", "municipality": "M", "date": "2026-11-25",
                               "items": {"p1": {"question": "q", "colour": "red"}}}, DOCTOR)
    assert error.code == "unknown_field" and "items.p1.colour" in error.details


def test_an_empty_change_is_rejected():
    assert rejected("patient", {}).code == "invalid_value"


def test_every_record_type_of_domain_md_is_registered():
    assert records.names() == sorted([
        "patient", "warning", "visit_request", "visit", "amendment", "observation", "round",
        "admission", "medication", "medication_review", "care_plan", "hospital_stay", "conflict"])


def test_every_record_type_says_which_fields_a_new_record_requires():
    required = {name: sorted(n for n, f in records.get(name).validator.fields.items() if f.required)
                for name in records.names()}
    assert required["patient"] == ["municipality", "name", "personnummer"]
    assert required["visit_request"] == ["patient_id", "reason", "urgency"]
    assert required["observation"] == ["measured_at", "patient_id"]


def test_a_base_naming_a_version_the_record_never_had_is_refused_and_the_field_stays_mergeable():
    from .merging import Laptop, new_id, sequence

    nurse, attacker = Laptop("dev-nurse", "nurse-1", "nurse"), Laptop("dev-attacker", "nurse-2", "nurse")
    record_id = new_id()
    start = apply_change(None, nurse.change("patient", record_id, PATIENT), nurse.actor, NOW).state
    attacker.see(start)
    poison = attacker.change("patient", record_id, {"address": "Giftgatan 6"}, local=False)
    # Had it been the honest nurse's next change id, each write would have been the other's ancestor.
    poison["base"]["name"] = [poison["base"]["name"], "dev-nurse-2-next"]
    with pytest.raises(errors.InvalidRecord) as refused:
        apply_change(start, poison, attacker.actor, NOW)
    assert refused.value.code == "invalid_value" and "never had" in refused.value.message
    nurse.see(start)
    state, outcomes = sequence(start, [nurse.change("patient", record_id, {"name": "Tolvan T"})],
                               {"dev-nurse": nurse.actor})
    assert [o.result for o in outcomes] == ["applied"] and state["fields"]["name"]["value"] == "Tolvan T"
