"""DOMAIN.md "Safety rules added after review", where they live in the pure merge (schema/).

The same rules over real HTTP are in tests/server/test_safety_rules.py, on the
laptop in tests/client/test_safety_rules.py; these prove them with no server and
no I/O, so every rule's edge is cheap to show.
"""

import pytest

from schema import errors
from schema.merge import Actor, apply_change, view

from .merging import NOW, Laptop, deep_list, new_id, sequence

PNR = "191212121212"
NORMAL_VITALS = {"resp_rate": 16, "temperature": 37.0, "systolic_bp": 120, "pulse": 70, "consciousness": "A"}


class StaffAndRecords:
    """An in-memory :class:`schema.references.Directory`: the region's municipalities, staff and records."""

    def __init__(self, municipalities=("Halmstad", "Laholm"), staff=(), records=()):
        self._municipalities = list(municipalities)
        self.staff = {person["id"]: person for person in staff}
        self.records = {(state["type"], state["id"]): state for state in records}

    def municipalities(self):
        return self._municipalities

    def person(self, user_id):
        return self.staff.get(user_id)

    def record(self, record_type, record_id):
        state = self.records.get((record_type, record_id))
        return view(state) if state is not None else None


@pytest.fixture
def nurse():
    return Laptop("dev-nurse", "nurse-1", "nurse")


@pytest.fixture
def doctor():
    return Laptop("dev-doc", "doc-1", "doctor", wall_ms=1_764_064_800_500)


def created(laptop, record_type, fields, directory=None, others=()):
    """A record made on one laptop and merged as the server would; every laptop given sees it."""
    change = laptop.change(record_type, new_id(), fields, local=False)
    state = apply_change(None, change, laptop.actor, NOW, {"directory": directory} if directory else None).state
    for other in (laptop, *others):
        other.see(state)
    return state


POISONED_BASES = {
    "a 700-deep list": lambda version: {"name": deep_list(700)},
    "a dict": lambda version: {"name": {"version": version}},
    "an int": lambda version: {"name": 7},
    "a list of 10,000": lambda version: {"name": [version] * 10_000},
    "an unknown field": lambda version: {"no_such_field": version},
    "an over-long version": lambda version: {"name": "x" * 10_000},
}


@pytest.mark.parametrize("poison", POISONED_BASES)
def test_a_poisoned_base_is_refused_and_the_record_stays_mergeable_for_the_next_honest_change(nurse, doctor,
                                                                                              poison):
    patient = created(nurse, "patient", {"personnummer": PNR, "name": "Tolvan", "municipality": "Halmstad"},
                      others=[doctor])
    poisoned = nurse.change("patient", patient["id"], {"phone": "070"}, local=False)
    poisoned["base"] = POISONED_BASES[poison](poisoned["base"]["name"])
    with pytest.raises(errors.InvalidRecord) as refused:
        apply_change(patient, poisoned, nurse.actor, NOW)
    assert refused.value.code == "invalid_value"
    honest = doctor.change("patient", patient["id"], {"phone": "035-12 34 56"}, local=False)
    merged = apply_change(patient, honest, doctor.actor, NOW)
    assert (merged.result, view(merged.state)["phone"]) == ("applied", "035-12 34 56")


def test_resolves_must_be_a_short_list_of_conflict_ids(nurse):
    patient = created(nurse, "patient", {"personnummer": PNR, "name": "Tolvan", "municipality": "Halmstad"})
    for resolves in ({"c": 1}, [["deep"]], ["c"] * 65, "c-1"):
        change = nurse.change("patient", patient["id"], {"phone": "070"}, local=False)
        change["resolves"] = resolves
        with pytest.raises(errors.InvalidRecord, match="resolves"):
            apply_change(patient, change, nurse.actor, NOW)


def test_a_records_patient_is_fixed_when_it_is_made_and_setting_it_again_changes_nothing(nurse):
    warning = created(nurse, "warning", {"patient_id": "p1", "kind": "allergy", "text": "penicillin",
                                         "severity": "high"})
    moved = nurse.change("warning", warning["id"], {"patient_id": "p2"}, local=False)
    with pytest.raises(errors.ImmutableField) as refused:
        apply_change(warning, moved, nurse.actor, NOW)
    assert (refused.value.code, list(refused.value.details)) == ("immutable_field", ["patient_id"])
    again = nurse.change("warning", warning["id"], {"patient_id": "p1", "text": "penicillin, utslag"}, local=False)
    assert view(apply_change(warning, again, nurse.actor, NOW).state)["patient_id"] == "p1"


def test_a_new_patients_municipality_is_matched_ignoring_case_and_stored_as_the_region_spells_it(nurse):
    directory = StaffAndRecords()
    patient = created(nurse, "patient", {"personnummer": PNR, "name": "Tolvan", "municipality": "  hALMSTAD"},
                      directory)
    assert view(patient)["municipality"] == "Halmstad"
    typo = nurse.change("patient", new_id(), {"personnummer": PNR, "name": "Tolvan", "municipality": "Lahom"},
                        local=False)
    with pytest.raises(errors.UnknownReference) as refused:
        apply_change(None, typo, nurse.actor, NOW, {"directory": directory})
    assert refused.value.code == "unknown_municipality"
    assert refused.value.details["nearest"] == ["Laholm"]


def test_a_new_observation_is_scored_on_its_patients_spo2_scale_whatever_the_device_sent(nurse):
    patient = created(nurse, "patient", {"personnummer": PNR, "name": "Tolvan", "municipality": "Halmstad",
                                         "spo2_scale": 2})
    directory = StaffAndRecords(records=[patient])
    scored = []
    for sent in ({}, {"spo2_scale": 1}):
        for spo2, oxygen in ((89, False), (98, True)):
            observation = view(created(nurse, "observation", {
                "patient_id": patient["id"], "measured_at": NOW.isoformat(), "spo2": spo2,
                "supplemental_o2": oxygen, **NORMAL_VITALS, **sent}, directory))
            scored.append((observation["spo2_scale"], observation["news2"]))
    # RCP's chart, scale 2: 88-92 % on air scores 0; >= 97 % on oxygen scores 3, and oxygen 2 more.
    assert scored == [(2, 0), (2, 5)] * 2


def test_a_warnings_text_edited_apart_keeps_both_as_a_high_severity_conflict_in_either_order(nurse, doctor):
    warning = created(nurse, "warning", {"patient_id": "p1", "kind": "allergy", "text": "penicillin",
                                         "severity": "high"}, others=[doctor])
    ours = nurse.change("warning", warning["id"], {"text": "penicillin: utslag"})
    theirs = doctor.change("warning", warning["id"], {"text": "penicillin: anafylaxi 2019"})
    actors = {nurse.device_id: nurse.actor, doctor.device_id: doctor.actor}
    for order in ([ours, theirs], [theirs, ours]):
        state, outcomes = sequence(warning, order, actors)
        [conflict] = state["conflicts"]
        assert (outcomes[1].result, conflict["field"], conflict["severity"]) == ("conflict", "text", "high")
        assert sorted(v["value"] for v in conflict["values"]) == ["penicillin: anafylaxi 2019",
                                                                  "penicillin: utslag"]


@pytest.mark.parametrize("doctor_id", ["Anna Berg", "nurse-1", "u-unknown"])
def test_a_request_is_assigned_only_to_a_doctor_of_the_staff_directory(nurse, doctor_id):
    staff = [{"id": "doc-1", "name": "Anna Berg", "role": "doctor"},
             {"id": "nurse-1", "name": "Maria Ek", "role": "nurse"}]
    directory = StaffAndRecords(staff=staff)
    dispatcher = Laptop("dev-disp", "disp-1", "dispatcher")
    request = created(nurse, "visit_request", {"patient_id": "p1", "reason": "feber", "urgency": "acute"},
                      others=[dispatcher])
    assign = dispatcher.change("visit_request", request["id"], {"assigned_doctor_id": doctor_id,
                                                                "status": "assigned"}, local=False)
    with pytest.raises(errors.UnknownReference) as refused:
        apply_change(request, assign, dispatcher.actor, NOW, {"directory": directory})
    assert (refused.value.code, list(refused.value.details)) == ("unknown_reference", ["assigned_doctor_id"])
    right = dispatcher.change("visit_request", request["id"], {"assigned_doctor_id": "doc-1", "status": "assigned"},
                              local=False)
    assert view(apply_change(request, right, dispatcher.actor, NOW, {"directory": directory}).state)[
        "assigned_doctor_id"] == "doc-1"


def test_a_nurses_new_request_may_not_carry_dispatcher_fields(nurse):
    for fields in ({"priority_override": 1, "priority_override_reason": "brådskande"},
                   {"assigned_doctor_id": "doc-1"}):
        change = nurse.change("visit_request", new_id(), {"patient_id": "p1", "reason": "feber", "urgency": "acute",
                                                          **fields}, local=False)
        with pytest.raises(errors.Forbidden) as refused:
            apply_change(None, change, Actor("nurse-1", "nurse"), NOW)
        assert refused.value.code == "forbidden_field"
        assert set(refused.value.details) == set(fields)
