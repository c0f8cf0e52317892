"""One example per rule of DOMAIN.md, named after the rule.

Each test builds the situation with laptops that work offline from the same
server state, then merges their changes as the server would, in both arrival
orders where the rule claims not to care.
"""

import pytest

from schema import errors
from schema.merge import Actor, apply_change, view
from schema.records.patient import duplicate_conflict
from schema.state import open_conflict

from .merging import NOW, Laptop, new_id, sequence

PNR = "191212121212"


@pytest.fixture
def doctor():
    return Laptop("dev-doc-a", "doc-a", "doctor")


@pytest.fixture
def doctor_b():
    return Laptop("dev-doc-b", "doc-b", "doctor", wall_ms=1_764_064_800_500)


@pytest.fixture
def doctor_a2():
    """The same doctor's second laptop: a visit is edited only by its own doctor."""
    return Laptop("dev-doc-a2", "doc-a", "doctor", wall_ms=1_764_064_800_500)


@pytest.fixture
def nurse():
    return Laptop("dev-nurse", "nurse-1", "nurse")


@pytest.fixture
def dispatcher():
    return Laptop("dev-disp", "disp-1", "dispatcher")


def create(laptop, record_type, fields, others=()):
    """Create a record on one laptop, merge it on the 'server' and let every laptop see it."""
    rid = new_id()
    change = laptop.change(record_type, rid, fields)
    state = apply_change(None, change, laptop.actor, NOW).state
    for other in (laptop, *others):
        other.see(state)
    return state


def both_orders(state, a, b, laptops):
    """Merge two concurrent changes in both arrival orders; assert the same result; return it."""
    actors = {l.device_id: l.actor for l in laptops}
    first, _ = sequence(state, [a, b], actors)
    second, _ = sequence(state, [b, a], actors)
    assert first == second
    return first


def visit_fields(patient="p1", **more):
    return {"patient_id": patient, "kind": "home_visit", **more}


# --- the merge core ---------------------------------------------------------


def test_change_on_the_current_version_simply_applies(doctor):
    visit = create(doctor, "visit", visit_fields(place="hemma"))
    change = doctor.change("visit", visit["id"], {"place": "SÄBO Solgården"})
    outcome = apply_change(visit, change, doctor.actor, NOW)
    assert (outcome.result, view(outcome.state)["place"]) == ("applied", "SÄBO Solgården")
    assert [h["value"] for h in outcome.state["history"]] == ["hemma"]


def test_concurrent_changes_to_different_fields_both_apply_as_a_soft_conflict(doctor, doctor_a2):
    visit = create(doctor, "visit", visit_fields(place="hemma", outcome=None), [doctor_a2])
    a = doctor.change("visit", visit["id"], {"place": "köket"})
    b = doctor_a2.change("visit", visit["id"], {"outcome": "stays_home"})
    merged, outcomes = sequence(visit, [a, b], {l.device_id: l.actor for l in (doctor, doctor_a2)})
    assert (view(merged)["place"], view(merged)["outcome"]) == ("köket", "stays_home")
    assert merged["conflicts"] == []
    assert [d["rule"] for d in outcomes[1].decisions] == ["soft_conflict"]


def test_last_writer_wins_compares_hlc_then_device_id(doctor, doctor_a2):
    visit = create(doctor, "visit", visit_fields(place="hemma"), [doctor_a2])
    a = doctor.change("visit", visit["id"], {"place": "A"})
    b = doctor_a2.change("visit", visit["id"], {"place": "B"})
    b["hlc"] = a["hlc"]  # same clock reading: the device id decides, the same way everywhere
    merged = both_orders(visit, a, b, [doctor, doctor_a2])
    assert view(merged)["place"] == "B"


def test_a_value_that_loses_last_writer_wins_goes_to_the_records_history(doctor, doctor_a2):
    visit = create(doctor, "visit", visit_fields(place="hemma"), [doctor_a2])
    a = doctor.change("visit", visit["id"], {"place": "A"})
    b = doctor_a2.change("visit", visit["id"], {"place": "B"}, tick_ms=5000)
    merged = both_orders(visit, a, b, [doctor, doctor_a2])
    lost = [h for h in merged["history"] if h["field"] == "place"]
    assert [(h["value"], h["device_id"]) for h in lost] == [("hemma", "dev-doc-a"), ("A", "dev-doc-a")]


def test_assessment_and_plan_keep_both_and_raise_a_conflict(doctor, doctor_a2):
    visit = create(doctor, "visit", visit_fields(assessment="start"), [doctor_a2])
    a = doctor.change("visit", visit["id"], {"assessment": "pneumoni"})
    b = doctor_a2.change("visit", visit["id"], {"assessment": "UVI"})
    merged = both_orders(visit, a, b, [doctor, doctor_a2])
    conflict = open_conflict(merged, "assessment")
    assert sorted((v["value"], v["by"], v["device_id"]) for v in conflict["values"]) == [
        ("UVI", "doc-a", "dev-doc-a2"), ("pneumoni", "doc-a", "dev-doc-a")]
    assert (conflict["severity"], conflict["status"]) == ("medium", "open")


def test_while_a_conflict_is_open_the_field_shows_the_higher_hlc_value(doctor, doctor_a2):
    visit = create(doctor, "visit", visit_fields(plan="start"), [doctor_a2])
    a = doctor.change("visit", visit["id"], {"plan": "early"})
    b = doctor_a2.change("visit", visit["id"], {"plan": "late"}, tick_ms=5000)
    merged = both_orders(visit, a, b, [doctor, doctor_a2])
    assert view(merged)["plan"] == "late"


def test_a_retried_change_never_creates_a_second_conflict(doctor, doctor_a2):
    visit = create(doctor, "visit", visit_fields(plan="start"), [doctor_a2])
    a = doctor.change("visit", visit["id"], {"plan": "x"})
    b = doctor_a2.change("visit", visit["id"], {"plan": "y"})
    actors = {l.device_id: l.actor for l in (doctor, doctor_a2)}
    once, _ = sequence(visit, [a, b], actors)
    again, outcomes = sequence(visit, [a, b, b, a, b], actors)
    assert again == once and len(again["conflicts"]) == 1
    assert [o.result for o in outcomes[2:]] == ["duplicate"] * 3


def test_conflict_ids_are_derived_from_what_conflicts(doctor, doctor_a2):
    visit = create(doctor, "visit", visit_fields(plan="start"), [doctor_a2])
    a = doctor.change("visit", visit["id"], {"plan": "x"})
    b = doctor_a2.change("visit", visit["id"], {"plan": "y"})
    merged = both_orders(visit, a, b, [doctor, doctor_a2])
    from schema.state import conflict_id

    assert merged["conflicts"][0]["id"] == conflict_id("visit", visit["id"], "plan", [a["change_id"], b["change_id"]])


def test_a_conflict_is_resolved_by_a_normal_change_that_names_it(doctor, doctor_a2):
    visit = create(doctor, "visit", visit_fields(plan="start"), [doctor_a2])
    a = doctor.change("visit", visit["id"], {"plan": "x"})
    b = doctor_a2.change("visit", visit["id"], {"plan": "y"})
    merged = both_orders(visit, a, b, [doctor, doctor_a2])
    doctor.see(merged)
    conflict = open_conflict(merged, "plan")
    fix = doctor.change("visit", visit["id"], {"plan": "x och y"}, resolves=[conflict["id"]])
    resolved = apply_change(merged, fix, doctor.actor, NOW).state
    assert view(resolved)["plan"] == "x och y"
    assert (resolved["conflicts"][0]["status"], resolved["conflicts"][0]["resolved_by"]) == ("resolved", "doc-a")
    assert {h["value"] for h in resolved["history"] if h["field"] == "plan"} == {"start", "x", "y"}


def test_a_clinical_conflict_is_resolved_only_by_a_doctor(doctor, doctor_b, nurse):
    plan = create(nurse, "care_plan", {"patient_id": "p1", "kind": "sip", "content": "a"}, [doctor, doctor_b])
    a = doctor.change("care_plan", plan["id"], {"content": "b"})
    b = nurse.change("care_plan", plan["id"], {"content": "c"})
    merged = both_orders(plan, a, b, [doctor, nurse])
    nurse.see(merged)
    conflict = open_conflict(merged, "content")
    attempt = nurse.change("care_plan", plan["id"], {"content": "b+c"}, resolves=[conflict["id"]], local=False)
    with pytest.raises(errors.Forbidden, match="a doctor must resolve it"):
        apply_change(merged, attempt, nurse.actor, NOW)


def test_two_concurrent_resolutions_are_two_concurrent_edits_of_the_field(doctor, doctor_a2):
    visit = create(doctor, "visit", visit_fields(plan="start"), [doctor_a2])
    a = doctor.change("visit", visit["id"], {"plan": "x"})
    b = doctor_a2.change("visit", visit["id"], {"plan": "y"})
    merged = both_orders(visit, a, b, [doctor, doctor_a2])
    doctor.see(merged)
    doctor_a2.see(merged)
    cid = open_conflict(merged, "plan")["id"]
    ra = doctor.change("visit", visit["id"], {"plan": "x!"}, resolves=[cid])
    rb = doctor_a2.change("visit", visit["id"], {"plan": "y!"}, resolves=[cid])
    final, _ = sequence(merged, [ra, rb], {l.device_id: l.actor for l in (doctor, doctor_a2)})
    second = open_conflict(final, "plan")
    assert sorted(v["value"] for v in second["values"]) == ["x!", "y!"]
    assert [c["status"] for c in final["conflicts"] if c["id"] == cid] == ["resolved"]


def test_a_resolution_of_a_conflict_widened_meanwhile_stays_in_conflict_with_the_new_edit(doctor, doctor_a2):
    visit = create(doctor, "visit", visit_fields(plan="start"), [doctor_a2])
    third = Laptop("dev-doc-a3", "doc-a", "doctor", wall_ms=1_764_064_800_900)
    third.see(visit)
    a = doctor.change("visit", visit["id"], {"plan": "x"})
    b = doctor_a2.change("visit", visit["id"], {"plan": "y"})
    merged = both_orders(visit, a, b, [doctor, doctor_a2])
    doctor.see(merged)
    seen = open_conflict(merged, "plan")
    fix = doctor.change("visit", visit["id"], {"plan": "x och y"}, resolves=[seen["id"]])
    widened = apply_change(merged, third.change("visit", visit["id"], {"plan": "z"}), third.actor, NOW).state
    assert open_conflict(widened, "plan")["id"] != seen["id"]
    final = apply_change(widened, fix, doctor.actor, NOW).state
    assert sorted(v["value"] for v in open_conflict(final, "plan")["values"]) == ["x och y", "z"]
    assert [c["status"] for c in final["conflicts"] if c["id"] == seen["id"]] == ["resolved"]


def test_naming_a_conflict_that_is_not_on_the_changed_field_is_rejected(doctor):
    visit = create(doctor, "visit", visit_fields(plan="start"))
    bad = doctor.change("visit", visit["id"], {"plan": "x"}, resolves=["no-such-conflict"], local=False)
    with pytest.raises(errors.UnknownConflict):
        apply_change(visit, bad, doctor.actor, NOW)


def test_applying_a_change_twice_equals_applying_it_once(doctor):
    visit = create(doctor, "visit", visit_fields(place="hemma"))
    change = doctor.change("visit", visit["id"], {"place": "köket"})
    once = apply_change(visit, change, doctor.actor, NOW).state
    twice = apply_change(once, change, doctor.actor, NOW)
    assert (twice.result, twice.state) == ("duplicate", once)


def test_a_rejected_change_leaves_the_state_untouched(doctor, nurse):
    visit = create(doctor, "visit", visit_fields(place="hemma"), [nurse])
    before = repr(visit)
    with pytest.raises(errors.Forbidden):
        apply_change(visit, nurse.change("visit", visit["id"], {"place": "x"}), nurse.actor, NOW)
    assert repr(visit) == before


def test_marking_entered_in_error_needs_a_reason_and_syncs_like_any_change(doctor):
    visit = create(doctor, "visit", visit_fields())
    with pytest.raises(errors.InvalidRecord, match="entered_in_error_reason"):
        apply_change(visit, doctor.change("visit", visit["id"], {"entered_in_error": True}), doctor.actor, NOW)
    marked = apply_change(visit, doctor.change("visit", visit["id"], {
        "entered_in_error": True, "entered_in_error_reason": "fel patient"}), doctor.actor, NOW).state
    assert view(marked)["entered_in_error"] is True
    assert marked["fields"]["entered_in_error"]["by"] == "doc-a"


# --- patient ----------------------------------------------------------------


def test_patient_fields_merge_field_by_field_last_writer_wins(doctor, nurse):
    patient = create(nurse, "patient", {"personnummer": PNR, "name": "Tolvan", "municipality": "Halmstad"},
                     [doctor])
    a = nurse.change("patient", patient["id"], {"phone": "035-1"})
    b = doctor.change("patient", patient["id"], {"phone": "035-2", "palliative": True}, tick_ms=3000)
    merged = both_orders(patient, a, b, [doctor, nurse])
    assert (view(merged)["phone"], view(merged)["palliative"], merged["conflicts"]) == ("035-2", True, [])
    assert [h["value"] for h in merged["history"] if h["field"] == "phone"] == ["035-1"]


def test_personnummer_is_fixed_at_creation(nurse):
    patient = create(nurse, "patient", {"personnummer": PNR, "name": "Tolvan", "municipality": "Halmstad"})
    change = nurse.change("patient", patient["id"], {"personnummer": "193804029829"}, local=False)
    with pytest.raises(errors.ImmutableField, match="admin corrects it"):
        apply_change(patient, change, nurse.actor, NOW)


def test_personnummer_is_stored_as_twelve_digits(nurse):
    patient = create(nurse, "patient", {"personnummer": "19121212-1212", "name": "T", "municipality": "Laholm"})
    assert view(patient)["personnummer"] == PNR


def test_two_patients_with_the_same_personnummer_raise_a_high_duplicate_patient_conflict(nurse, doctor):
    one = create(nurse, "patient", {"personnummer": PNR, "name": "Tolvan", "municipality": "Halmstad"})
    two = create(doctor, "patient", {"personnummer": "19121212-1212", "name": "T.", "municipality": "Halmstad"})
    conflict = duplicate_conflict([two, one])
    assert conflict == duplicate_conflict([one, two])
    assert (conflict["severity"], conflict["rule"], conflict["patients"]) == (
        "high", "duplicate_patient", sorted([one["id"], two["id"]]))


# --- warning ----------------------------------------------------------------


def warning_fields(**more):
    return {"patient_id": "p1", "kind": "allergy", "text": "PcV", "severity": "high", **more}


def test_a_warning_added_anywhere_survives_a_concurrent_deactivation(doctor, doctor_b):
    warning = create(doctor, "warning", warning_fields(active=False, deactivation_reason="fel"), [doctor_b])
    a = doctor.change("warning", warning["id"], {"active": True})
    b = doctor_b.change("warning", warning["id"], {"active": False, "deactivation_reason": "utredd"})
    merged = both_orders(warning, a, b, [doctor, doctor_b])
    assert view(merged)["active"] is True
    assert open_conflict(merged, "active")["severity"] == "high"


def test_deactivating_a_warning_needs_a_reason(doctor):
    warning = create(doctor, "warning", warning_fields())
    with pytest.raises(errors.InvalidRecord, match="deactivation_reason"):
        apply_change(warning, doctor.change("warning", warning["id"], {"active": False}), doctor.actor, NOW)


def test_a_nurse_may_edit_but_not_deactivate_a_warning(nurse):
    warning = create(nurse, "warning", warning_fields())
    change = nurse.change("warning", warning["id"], {"active": False, "deactivation_reason": "x"}, local=False)
    with pytest.raises(errors.Forbidden, match="only a doctor"):
        apply_change(warning, change, nurse.actor, NOW)


def test_a_deactivation_concurrent_with_an_edit_keeps_the_warning_active_and_raises_a_conflict(doctor, nurse):
    warning = create(doctor, "warning", warning_fields(), [nurse])
    edit = nurse.change("warning", warning["id"], {"text": "PcV: utslag och andnöd"})
    off = doctor.change("warning", warning["id"], {"active": False, "deactivation_reason": "tål PcV"})
    merged = both_orders(warning, edit, off, [doctor, nurse])
    assert (view(merged)["active"], view(merged)["text"]) == (True, "PcV: utslag och andnöd")
    conflict = open_conflict(merged, "active")
    assert sorted((v["value"], v["by"]) for v in conflict["values"]) == [(False, "doc-a"), (True, "nurse-1")]
    assert conflict["severity"] == "high"


# --- visit_request ------------------------------------------------------------


@pytest.fixture
def request_state(nurse, doctor, doctor_b, dispatcher):
    return create(nurse, "visit_request", {"patient_id": "p1", "reason": "feber", "urgency": "acute"},
                  [doctor, doctor_b, dispatcher])


def step(laptop, state, **fields):
    """One change by one laptop applied on top of the state it saw; everyone then sees the result."""
    change = laptop.change("visit_request", state["id"], fields)
    return apply_change(state, change, laptop.actor, NOW).state


def test_request_by_and_time_of_receipt_are_stamped_by_the_server_side(request_state):
    record = view(request_state)
    assert (record["requested_by"], record["status"], record["received_at"]) == (
        "nurse-1", "requested", NOW.isoformat())
    assert record["deadline"] == "2026-11-25T12:00:00+00:00"


def _cancel_against(status_laptop, dispatcher, request_state, status):
    going = status_laptop.change("visit_request", request_state["id"], {"status": status})
    cancel = dispatcher.change("visit_request", request_state["id"],
                               {"status": "cancelled", "cancel_reason": "inlagd"})
    return both_orders(request_state, going, cancel, [status_laptop, dispatcher])


@pytest.mark.parametrize("status", ["en_route", "on_site", "completed"])
def test_en_route_on_site_and_completed_beat_cancelled_and_raise_a_conflict(
        doctor, dispatcher, request_state, status):
    merged = _cancel_against(doctor, dispatcher, request_state, status)
    assert view(merged)["status"] == status
    assert sorted(v["value"] for v in open_conflict(merged, "status")["values"]) == sorted([status, "cancelled"])


def test_a_dispatcher_closes_a_scheduling_conflict_of_a_visit_request(doctor, dispatcher, request_state):
    cancel = dispatcher.change("visit_request", request_state["id"],
                               {"status": "cancelled", "cancel_reason": "inlagd via 112"})
    accept = doctor.change("visit_request", request_state["id"], {"status": "accepted"})
    merged = both_orders(request_state, cancel, accept, [dispatcher, doctor])
    conflict = open_conflict(merged, "status")
    assert conflict["severity"] == "low"
    dispatcher.see(merged)
    resolution = dispatcher.change("visit_request", request_state["id"], {"status": "cancelled"},
                                   resolves=[conflict["id"]])
    resolved = apply_change(merged, resolution, dispatcher.actor, NOW).state
    assert open_conflict(resolved, "status") is None
    assert view(resolved)["status"] == "cancelled"


def test_completed_beats_cancelled(doctor, dispatcher, request_state):
    merged = _cancel_against(doctor, dispatcher, request_state, "completed")
    assert view(merged)["status"] == "completed"


def test_otherwise_the_furthest_state_wins(dispatcher, doctor, request_state):
    triage = dispatcher.change("visit_request", request_state["id"], {"status": "triaged"}, tick_ms=9000)
    accept = doctor.change("visit_request", request_state["id"], {"status": "accepted"})
    merged = both_orders(request_state, triage, accept, [dispatcher, doctor])
    assert (view(merged)["status"], merged["conflicts"]) == ("accepted", [])


def test_the_first_acceptance_the_server_receives_keeps_the_request(doctor, doctor_b, request_state):
    a = doctor.change("visit_request", request_state["id"], {"status": "accepted"})
    b = doctor_b.change("visit_request", request_state["id"], {"status": "accepted"})
    first = apply_change(request_state, a, doctor.actor, NOW).state
    with pytest.raises(errors.AlreadyAccepted, match="your visit records are kept"):
        apply_change(first, b, doctor_b.actor, NOW)
    assert view(first)["accepted_by"] == "doc-a"


def test_assignment_and_priority_override_belong_to_the_dispatcher(doctor, nurse, dispatcher, request_state):
    for laptop in (doctor, nurse):
        with pytest.raises(errors.Forbidden):
            step(laptop, request_state, assigned_doctor_id="doc-b")
        with pytest.raises(errors.Forbidden):
            step(laptop, request_state, priority_override=1, priority_override_reason="x")
    state = step(dispatcher, request_state, status="assigned", assigned_doctor_id="doc-b")
    state = step(dispatcher, state, priority_override=1, priority_override_reason="ensam, oro")
    assert (view(state)["assigned_doctor_id"], view(state)["priority_override"]) == ("doc-b", 1)


def test_a_priority_override_needs_a_reason(dispatcher, request_state):
    with pytest.raises(errors.InvalidRecord, match="priority_override_reason"):
        step(dispatcher, request_state, priority_override=2)


def test_the_dispatcher_may_reassign_an_accepted_request_back_to_assigned(doctor, dispatcher, request_state):
    state = step(doctor, request_state, status="accepted")
    dispatcher.see(state)
    state = step(dispatcher, state, status="assigned", assigned_doctor_id="doc-b")
    assert (view(state)["status"], view(state)["accepted_by"]) == ("assigned", None)


def test_a_request_assigned_to_another_doctor_cannot_be_accepted(doctor_b, dispatcher, request_state):
    state = step(dispatcher, request_state, status="assigned", assigned_doctor_id="doc-a")
    doctor_b.see(state)
    with pytest.raises(errors.Forbidden, match="assigned to another doctor"):
        step(doctor_b, state, status="accepted")


@pytest.mark.parametrize("final", ["completed", "cancelled"])
def test_completed_and_cancelled_are_final(doctor, dispatcher, request_state, final):
    laptop = doctor if final == "completed" else dispatcher
    state = step(laptop, request_state, status=final, **({"cancel_reason": "x"} if final == "cancelled" else {}))
    doctor.see(state)
    with pytest.raises(errors.InvalidTransition, match="final"):
        step(doctor, state, status="en_route")


def test_a_nurse_cancels_only_her_own_request_and_only_before_en_route(nurse, doctor, request_state):
    other = Laptop("dev-nurse-2", "nurse-2", "nurse")
    other.see(request_state)
    with pytest.raises(errors.Forbidden, match="only the requests she made"):
        step(other, request_state, status="cancelled", cancel_reason="x")
    going = step(doctor, request_state, status="en_route")
    nurse.see(going)
    with pytest.raises(errors.InvalidTransition, match="en_route to cancelled"):
        step(nurse, going, status="cancelled", cancel_reason="x")
    nurse.see(request_state)
    assert view(step(nurse, request_state, status="cancelled", cancel_reason="bättre"))["status"] == "cancelled"


def test_escalated_at_is_written_by_the_server_itself_never_by_a_client(dispatcher, request_state):
    from schema.merge import SYSTEM

    with pytest.raises(errors.Forbidden, match="set by the server"):
        step(dispatcher, request_state, escalated_at=NOW.isoformat())
    change = {"change_id": "esc-1", "record_type": "visit_request", "record_id": request_state["id"],
              "device_id": "server", "op": None, "hlc": "0001764064900000-000000",
              "base": {"escalated_at": None}, "fields": {"escalated_at": NOW.isoformat()}}
    escalated = apply_change(request_state, change, SYSTEM, NOW).state
    assert view(escalated)["escalated_at"] == NOW.isoformat()


def test_status_history_shows_each_status_with_when_and_by_whom(doctor, request_state):
    state = step(doctor, request_state, status="accepted")
    doctor.see(state)
    state = step(doctor, state, status="en_route")
    assert [(h["status"], h["by"]) for h in view(state)["status_history"]] == [
        ("requested", "nurse-1"), ("accepted", "doc-a"), ("en_route", "doc-a")]


# --- visit: sealing ---------------------------------------------------------------


def test_signing_stamps_the_signer_and_seals_the_visit(doctor):
    visit = create(doctor, "visit", visit_fields(assessment="ok"))
    signed = apply_change(visit, doctor.change("visit", visit["id"], {"signed_at": NOW.isoformat()}),
                          doctor.actor, NOW).state
    doctor.see(signed)
    assert view(signed)["signed_by"] == "doc-a"
    with pytest.raises(errors.SealedRecord, match="add an amendment"):
        apply_change(signed, doctor.change("visit", visit["id"], {"plan": "later"}), doctor.actor, NOW)


def test_signing_is_refused_while_the_visit_has_an_open_conflict(doctor, doctor_a2):
    visit = create(doctor, "visit", visit_fields(assessment="a", doctor_id="doc-a"), [doctor_a2])
    b_own = Laptop("dev-doc-a2", "doc-a", "doctor")
    b_own.see(visit)
    merged = both_orders(visit, doctor.change("visit", visit["id"], {"assessment": "x"}),
                         b_own.change("visit", visit["id"], {"assessment": "y"}), [doctor, b_own])
    doctor.see(merged)
    with pytest.raises(errors.OpenConflict):
        apply_change(merged, doctor.change("visit", visit["id"], {"signed_at": NOW.isoformat()}),
                     doctor.actor, NOW)


def test_only_the_visits_doctor_signs_it(doctor, doctor_b):
    visit = create(doctor, "visit", visit_fields(), [doctor_b])
    with pytest.raises(errors.Forbidden, match="own visits"):
        apply_change(visit, doctor_b.change("visit", visit["id"], {"signed_at": NOW.isoformat()}),
                     doctor_b.actor, NOW)


def test_signing_is_refused_when_the_visit_changed_since_the_signer_last_synced(doctor):
    visit = create(doctor, "visit", visit_fields(assessment="a"))
    other_laptop = Laptop("dev-doc-a2", "doc-a", "doctor")
    other_laptop.see(visit)
    edited = apply_change(visit, other_laptop.change("visit", visit["id"], {"plan": "ny plan"}),
                          other_laptop.actor, NOW).state
    with pytest.raises(errors.StaleSignature, match="sign again"):
        apply_change(edited, doctor.change("visit", visit["id"], {"signed_at": NOW.isoformat()}),
                     doctor.actor, NOW)


def test_an_edit_made_before_the_laptop_knew_of_the_signature_becomes_an_amendment_and_a_high_conflict(doctor):
    visit = create(doctor, "visit", visit_fields(assessment="a", plan="p"))
    offline = Laptop("dev-doc-a2", "doc-a", "doctor")
    offline.see(visit)
    late = offline.change("visit", visit["id"], {"plan": "ny plan"})
    signed = apply_change(visit, doctor.change("visit", visit["id"], {"signed_at": NOW.isoformat()}),
                          doctor.actor, NOW).state
    outcome = apply_change(signed, late, offline.actor, NOW)
    assert outcome.result == "conflict" and view(outcome.state)["plan"] == "p"
    assert open_conflict(outcome.state, "plan")["severity"] == "high"
    [amendment] = outcome.derived
    assert amendment["record_type"] == "amendment" and "ny plan" in amendment["fields"]["text"]
    made = apply_change(None, amendment, offline.actor, NOW).state
    assert view(made)["visit_id"] == visit["id"] and view(made)["author_id"] == "doc-a"


def test_entered_in_error_may_be_set_on_a_sealed_visit_by_its_signer_or_an_admin(doctor, doctor_b):
    visit = create(doctor, "visit", visit_fields(), [doctor_b])
    signed = apply_change(visit, doctor.change("visit", visit["id"], {"signed_at": NOW.isoformat()}),
                          doctor.actor, NOW).state
    mark = {"entered_in_error": True, "entered_in_error_reason": "fel patient"}
    admin = Laptop("dev-admin", "admin-1", "admin")
    for laptop in (doctor, doctor_b, admin):
        laptop.see(signed)
    with pytest.raises(errors.Forbidden):
        apply_change(signed, doctor_b.change("visit", visit["id"], mark), doctor_b.actor, NOW)
    for laptop in (doctor, admin):
        marked = apply_change(signed, laptop.change("visit", visit["id"], mark), laptop.actor, NOW).state
        assert view(marked)["entered_in_error"] is True


def test_other_visit_fields_are_last_writer_wins(doctor):
    visit = create(doctor, "visit", visit_fields(outcome="stays_home"))
    other = Laptop("dev-doc-a2", "doc-a", "doctor", wall_ms=1_764_064_900_000)
    other.see(visit)
    merged = both_orders(visit, doctor.change("visit", visit["id"], {"outcome": "direct_admission"}),
                         other.change("visit", visit["id"], {"outcome": "emergency_department"}),
                         [doctor, other])
    assert (view(merged)["outcome"], merged["conflicts"]) == ("emergency_department", [])


# --- append only ----------------------------------------------------------------


def test_an_observation_is_append_only_and_a_correction_supersedes_it(nurse):
    obs = create(nurse, "observation", {"patient_id": "p1", "measured_at": NOW.isoformat(), "pulse": 80})
    with pytest.raises(errors.AppendOnly, match="supersedes"):
        apply_change(obs, nurse.change("observation", obs["id"], {"pulse": 90}), nurse.actor, NOW)
    fix = create(nurse, "observation", {"patient_id": "p1", "measured_at": NOW.isoformat(), "pulse": 90,
                                        "supersedes_id": obs["id"]})
    assert view(fix)["supersedes_id"] == obs["id"]


def test_news2_is_computed_from_the_observation_with_the_scale_stored_on_it(nurse):
    vitals = {"patient_id": "p1", "measured_at": NOW.isoformat(), "resp_rate": 22, "spo2": 89,
              "supplemental_o2": False, "temperature": 38.5, "systolic_bp": 105, "pulse": 112,
              "consciousness": "A"}
    scale1 = view(create(nurse, "observation", {**vitals, "spo2_scale": 1}))
    scale2 = view(create(nurse, "observation", {**vitals, "spo2_scale": 2}))
    assert (scale1["news2"], scale2["news2"], scale1["measured_by"]) == (2 + 3 + 1 + 1 + 2, 2 + 0 + 1 + 1 + 2,
                                                                         "nurse-1")
    partial = view(create(nurse, "observation", {"patient_id": "p1", "measured_at": NOW.isoformat(),
                                                 "pulse": 120}))
    assert (partial["news2"], partial["news2_partial"]) == (2, True)


def test_an_amendment_is_append_only(doctor):
    amendment = create(doctor, "amendment", {"visit_id": "v1", "patient_id": "p1", "text": "tillägg"})
    with pytest.raises(errors.AppendOnly):
        apply_change(amendment, doctor.change("amendment", amendment["id"], {"text": "x"}), doctor.actor, NOW)


# --- round ------------------------------------------------------------------------


def round_fields(**items):
    return {"facility": "Solgården", "municipality": "Halmstad", "date": "2026-11-25", "items": items}


def test_round_items_add_wins_keyed_by_resident_and_merged_field_by_field(doctor, nurse):
    rnd = create(doctor, "round", round_fields(p1={"question": "smärta?", "status": "open"}), [nurse])
    a = nurse.change("round", rnd["id"], {"items": {"p2": {"question": "sömn?"}, "p1": {"note": "ont i höft"}}})
    b = doctor.change("round", rnd["id"], {"items": {"p3": {"question": "BT?"}, "p1": {"status": "done"}}})
    merged = view(both_orders(rnd, a, b, [doctor, nurse]))
    assert merged["items"] == {
        "p1": {"question": "smärta?", "status": "done", "note": "ont i höft"},
        "p2": {"question": "sömn?"},
        "p3": {"question": "BT?"},
    }


def test_a_round_items_note_keeps_both_and_question_and_status_are_last_writer_wins(doctor, nurse):
    rnd = create(doctor, "round", round_fields(p1={"question": "q", "status": "open", "note": "n"}), [nurse])
    a = nurse.change("round", rnd["id"], {"items": {"p1": {"note": "nurse note", "question": "q1"}}})
    b = doctor.change("round", rnd["id"], {"items": {"p1": {"note": "doctor note", "question": "q2"}}},
                      tick_ms=4000)
    merged = both_orders(rnd, a, b, [doctor, nurse])
    assert [c["field"] for c in merged["conflicts"]] == ["items.p1.note"]
    assert view(merged)["items"]["p1"]["question"] == "q2"


def test_a_nurse_may_edit_only_a_round_items_question_and_note(nurse, doctor):
    rnd = create(doctor, "round", round_fields(p1={"question": "q"}), [nurse])
    with pytest.raises(errors.Forbidden):
        apply_change(rnd, nurse.change("round", rnd["id"], {"items": {"p1": {"status": "done"}}}), nurse.actor, NOW)
    with pytest.raises(errors.Forbidden):
        apply_change(rnd, nurse.change("round", rnd["id"], {"status": "done"}), nurse.actor, NOW)


# --- admission --------------------------------------------------------------------


def admission(doctor, others):
    return create(doctor, "admission", {"patient_id": "p1", "hospital": "Hallands sjukhus Halmstad",
                                        "ward": "Med 3", "reason": "pneumoni"}, others)


def test_arrived_beats_declined_and_raises_a_conflict(doctor, doctor_b):
    adm = admission(doctor, [doctor_b])
    accepted = apply_change(adm, doctor.change("admission", adm["id"], {"status": "accepted"}),
                            doctor.actor, NOW).state
    doctor.see(accepted)
    arrived = doctor.change("admission", adm["id"], {"status": "arrived"})
    declined = doctor_b.change("admission", adm["id"], {"status": "declined", "decline_reason": "fullt"})
    actors = {l.device_id: l.actor for l in (doctor, doctor_b)}
    one, _ = sequence(accepted, [arrived, declined], actors)
    two, _ = sequence(accepted, [declined, arrived], actors)
    assert one == two and view(one)["status"] == "arrived"
    assert [v["value"] for v in open_conflict(one, "status")["values"]] == ["declined", "arrived"]


def test_a_dropped_admission_is_declined_with_a_reason(doctor):
    adm = admission(doctor, [])
    with pytest.raises(errors.InvalidRecord, match="decline_reason"):
        apply_change(adm, doctor.change("admission", adm["id"], {"status": "declined"}), doctor.actor, NOW)
    with pytest.raises(errors.InvalidRecord):
        apply_change(adm, doctor.change("admission", adm["id"], {"status": "cancelled"}), doctor.actor, NOW)


# --- medication -------------------------------------------------------------------


def medication(doctor, others):
    return create(doctor, "medication", {"patient_id": "p1", "drug": "Furosemid", "dose": "40 mg",
                                         "frequency": "1x1"}, others)


def test_discontinued_beats_any_concurrent_change_and_raises_a_conflict(doctor, doctor_b):
    med = medication(doctor, [doctor_b])
    stop = doctor.change("medication", med["id"], {"status": "discontinued", "reason": "njursvikt"})
    dose = doctor_b.change("medication", med["id"], {"frequency": "1x2"})
    merged = both_orders(med, stop, dose, [doctor, doctor_b])
    assert (view(merged)["status"], view(merged)["frequency"]) == ("discontinued", "1x2")
    conflict = open_conflict(merged, "status")
    assert conflict["severity"] == "high"
    assert sorted(map(repr, (v["value"] for v in conflict["values"]))) == ["'discontinued'", "{'frequency': '1x2'}"]


def test_a_concurrent_pause_does_not_bring_a_discontinued_drug_back(doctor, doctor_b):
    med = medication(doctor, [doctor_b])
    stop = doctor.change("medication", med["id"], {"status": "discontinued", "reason": "biverkan"})
    pause = doctor_b.change("medication", med["id"], {"status": "paused"}, tick_ms=9000)
    merged = both_orders(med, stop, pause, [doctor, doctor_b])
    assert view(merged)["status"] == "discontinued" and open_conflict(merged, "status")


def test_a_discontinued_drug_never_comes_back(doctor):
    med = medication(doctor, [])
    stopped = apply_change(med, doctor.change("medication", med["id"], {"status": "discontinued", "reason": "x"}),
                           doctor.actor, NOW).state
    doctor.see(stopped)
    with pytest.raises(errors.InvalidTransition, match="final"):
        apply_change(stopped, doctor.change("medication", med["id"], {"status": "active"}), doctor.actor, NOW)


def test_two_concurrent_dose_changes_keep_both_and_raise_a_conflict(doctor, doctor_b):
    med = medication(doctor, [doctor_b])
    merged = both_orders(med, doctor.change("medication", med["id"], {"dose": "20 mg"}),
                         doctor_b.change("medication", med["id"], {"dose": "80 mg"}), [doctor, doctor_b])
    conflict = open_conflict(merged, "dose")
    assert (conflict["severity"], sorted(v["value"] for v in conflict["values"])) == ("high", ["20 mg", "80 mg"])


def test_other_medication_fields_are_last_writer_wins(doctor, doctor_b):
    med = medication(doctor, [doctor_b])
    merged = both_orders(med, doctor.change("medication", med["id"], {"route": "po"}),
                         doctor_b.change("medication", med["id"], {"route": "iv"}, tick_ms=5000), [doctor, doctor_b])
    assert (view(merged)["route"], merged["conflicts"]) == ("iv", [])


def test_only_a_doctor_changes_medication(nurse, doctor):
    med = medication(doctor, [nurse])
    with pytest.raises(errors.Forbidden, match="nurse may not change medication"):
        apply_change(med, nurse.change("medication", med["id"], {"dose": "1"}), nurse.actor, NOW)


# --- medication_review and care_plan ----------------------------------------------


@pytest.mark.parametrize("record_type,text_field,fields", [
    ("medication_review", "findings", {"patient_id": "p1", "date": "2026-11-25"}),
    ("care_plan", "content", {"patient_id": "p1", "kind": "breakpoint_conversation"}),
])
def test_review_and_care_plan_text_keeps_both_and_dates_and_status_are_last_writer_wins(
        doctor, doctor_b, record_type, text_field, fields):
    rec = create(doctor, record_type, fields, [doctor_b])
    a = doctor.change(record_type, rec["id"], {text_field: "A", "status": "planned", "next_review": "2027-01-01"})
    b = doctor_b.change(record_type, rec["id"], {text_field: "B", "status": "done", "next_review": "2027-02-01"},
                        tick_ms=5000)
    merged = both_orders(rec, a, b, [doctor, doctor_b])
    assert [c["field"] for c in merged["conflicts"]] == [text_field]
    assert (view(merged)["status"], view(merged)["next_review"]) == ("done", "2027-02-01")


# --- hospital_stay ----------------------------------------------------------------

STAY = {"patient_id": "p1", "hospital": "Hallands sjukhus Halmstad", "ward": "Medicin 3",
        "admitted_at": "2026-11-20T08:00:00+01:00", "planned": False, "source": "manual"}


def test_a_hospital_stays_follow_up_keeps_both_and_its_other_fields_are_last_writer_wins(doctor, nurse):
    stay = create(nurse, "hospital_stay", STAY, [doctor])
    a = doctor.change("hospital_stay", stay["id"], {"follow_up": "Kontroll av Hb om en vecka",
                                                    "discharged_at": "2026-11-24T11:00:00+01:00"})
    b = nurse.change("hospital_stay", stay["id"], {"follow_up": "Ny läkemedelslista, se över diuretika",
                                                   "discharged_at": "2026-11-24T14:00:00+01:00"}, tick_ms=5000)
    merged = both_orders(stay, a, b, [doctor, nurse])
    assert [(c["field"], c["severity"]) for c in merged["conflicts"]] == [("follow_up", "medium")]
    assert sorted(v["value"] for v in merged["conflicts"][0]["values"]) == [
        "Kontroll av Hb om en vecka", "Ny läkemedelslista, se över diuretika"]
    assert view(merged)["discharged_at"] == "2026-11-24T14:00:00+01:00"
    assert [h["value"] for h in merged["history"] if h["field"] == "discharged_at"] == [
        "2026-11-24T11:00:00+01:00"]


@pytest.mark.parametrize("role", ["doctor", "nurse"])
def test_doctors_and_nurses_create_and_edit_hospital_stays(role):
    laptop = Laptop(f"dev-{role}", f"{role}-1", role)
    stay = create(laptop, "hospital_stay", STAY)
    edited = apply_change(stay, laptop.change("hospital_stay", stay["id"], {"ward": "Kirurgi 2"}), laptop.actor, NOW)
    assert view(edited.state)["ward"] == "Kirurgi 2"


@pytest.mark.parametrize("role", ["dispatcher", "admin"])
def test_dispatchers_and_admins_neither_create_nor_edit_hospital_stays(role, nurse):
    laptop = Laptop(f"dev-{role}", f"{role}-1", role)
    with pytest.raises(errors.Forbidden):
        apply_change(None, laptop.change("hospital_stay", new_id(), STAY, local=False), laptop.actor, NOW)
    stay = create(nurse, "hospital_stay", STAY, [laptop])
    with pytest.raises(errors.Forbidden):
        apply_change(stay, laptop.change("hospital_stay", stay["id"], {"ward": "x"}, local=False), laptop.actor, NOW)


def test_a_hospital_stay_stays_with_its_patient(nurse):
    stay = create(nurse, "hospital_stay", STAY)
    with pytest.raises(errors.HemsyncError) as raised:
        apply_change(stay, nurse.change("hospital_stay", stay["id"], {"patient_id": "p2"}, local=False),
                     nurse.actor, NOW)
    assert raised.value.code == "immutable_field"


def test_a_hospital_stay_cannot_be_discharged_more_than_a_day_ahead(nurse):
    stay = create(nurse, "hospital_stay", STAY)
    with pytest.raises(errors.InvalidRecord, match="24 hours in the future"):
        apply_change(stay, nurse.change("hospital_stay", stay["id"], {"discharged_at": "2026-12-24T10:00:00+01:00"},
                                        local=False), nurse.actor, NOW)


def test_conflicts_are_made_only_by_the_server(doctor):
    with pytest.raises(errors.Forbidden):
        apply_change(None, {"change_id": "c", "record_type": "conflict", "record_id": "x", "device_id": "d",
                            "op": 1, "hlc": "0000000000000001-000000", "base": {},
                            "fields": {"record_type": "visit", "record_id": "v", "field": "plan", "values": [],
                                       "severity": "low", "status": "open"}},
                     Actor("doc-a", "doctor"), NOW)
