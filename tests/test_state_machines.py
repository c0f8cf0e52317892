"""The state machines, transition by transition, legal and illegal, with the role that may take each.

The expected tables are written out from DOMAIN.md here, not derived from the
code, so that a change to a machine has to be a change to this test too.
"""

import itertools

import pytest

from schema import errors
from schema.records import admission, medication, visit_request
from schema.roles import ROLES

from .merging import NOW, Laptop, new_id
from schema.merge import apply_change, view

R = ("requested", "triaged", "assigned", "accepted", "en_route", "on_site", "completed", "cancelled")
VISIT_REQUEST_STEPS = {
    **{(s, "triaged"): {"dispatcher"} for s in ("requested",)},
    **{(s, "assigned"): {"dispatcher"} for s in ("requested", "triaged", "accepted", "en_route")},
    **{(s, "accepted"): {"doctor"} for s in ("requested", "triaged", "assigned")},
    **{(s, "en_route"): {"doctor"} for s in ("requested", "triaged", "assigned", "accepted")},
    **{(s, "on_site"): {"doctor"} for s in ("requested", "triaged", "assigned", "accepted", "en_route")},
    **{(s, "completed"): {"doctor"} for s in ("requested", "triaged", "assigned", "accepted", "en_route", "on_site")},
    **{(s, "cancelled"): {"dispatcher", "nurse"} for s in ("requested", "triaged", "assigned", "accepted")},
}
A = ("proposed", "accepted", "declined", "arrived")
ADMISSION_STEPS = {("proposed", "accepted"): {"doctor"}, ("proposed", "arrived"): {"doctor"},
                   ("accepted", "arrived"): {"doctor"}, ("proposed", "declined"): {"doctor"}}
M = ("active", "paused", "discontinued")
MEDICATION_STEPS = {("active", "paused"): {"doctor"}, ("paused", "active"): {"doctor"},
                    ("active", "discontinued"): {"doctor"}, ("paused", "discontinued"): {"doctor"}}


def _cases(states, steps):
    return [(s, t, role, role in steps.get((s, t), ()))
            for s, t in itertools.product(states, states) if s != t for role in ROLES]


@pytest.mark.parametrize("source,target,role,legal", _cases(R, VISIT_REQUEST_STEPS))
def test_visit_request_steps_follow_domain_md(source, target, role, legal):
    assert visit_request.MACHINE.allowed(source, target, role) is legal


@pytest.mark.parametrize("source,target,role,legal", _cases(A, ADMISSION_STEPS))
def test_admission_steps_follow_domain_md(source, target, role, legal):
    assert admission.MACHINE.allowed(source, target, role) is legal


@pytest.mark.parametrize("source,target,role,legal", _cases(M, MEDICATION_STEPS))
def test_medication_status_steps_follow_domain_md(source, target, role, legal):
    assert medication.MACHINE.allowed(source, target, role) is legal


def _request_in(status):
    """A request walked to ``status`` by the roles allowed to, plus the laptops used."""
    nurse = Laptop("dev-n", "nurse-1", "nurse")
    doctor = Laptop("dev-d", "doc-1", "doctor")
    dispatcher = Laptop("dev-x", "disp-1", "dispatcher")
    laptops = {"nurse": nurse, "doctor": doctor, "dispatcher": dispatcher,
               "admin": Laptop("dev-a", "admin-1", "admin")}
    rid = new_id()
    state = apply_change(None, nurse.change("visit_request", rid, {"patient_id": "p", "reason": "r",
                                                                   "urgency": "urgent"}), nurse.actor, NOW).state
    path = {"requested": [], "triaged": [("dispatcher", "triaged")],
            "assigned": [("dispatcher", "assigned")], "accepted": [("doctor", "accepted")],
            "en_route": [("doctor", "en_route")], "on_site": [("doctor", "on_site")],
            "completed": [("doctor", "completed")], "cancelled": [("dispatcher", "cancelled")]}[status]
    for role, target in path:
        laptops[role].see(state)
        fields = {"status": target, **({"cancel_reason": "x"} if target == "cancelled" else {})}
        state = apply_change(state, laptops[role].change("visit_request", rid, fields), laptops[role].actor,
                             NOW).state
    for laptop in laptops.values():
        laptop.see(state)
    return state, laptops


@pytest.mark.parametrize("source,target,role,legal", [
    c for c in _cases(R, VISIT_REQUEST_STEPS) if c[2] != "admin"])
def test_each_visit_request_step_is_taken_or_refused_through_the_merge(source, target, role, legal):
    state, laptops = _request_in(source)
    fields = {"status": target, **({"cancel_reason": "x"} if target == "cancelled" else {})}
    if target == "assigned":
        fields["assigned_doctor_id"] = "doc-1"
    change = laptops[role].change("visit_request", state["id"], fields, local=False)
    if legal:
        assert view(apply_change(state, change, laptops[role].actor, NOW).state)["status"] == target
    else:
        with pytest.raises((errors.InvalidTransition, errors.Forbidden)):
            apply_change(state, change, laptops[role].actor, NOW)


def test_a_new_request_must_start_as_requested():
    nurse = Laptop("dev-n", "nurse-1", "nurse")
    with pytest.raises(errors.InvalidTransition, match="starts as 'requested'"):
        nurse.change("visit_request", new_id(), {"patient_id": "p", "reason": "r", "urgency": "acute",
                                                 "status": "accepted"})
