"""The invariants of DOMAIN.md at the merge level, for any order and any duplication.

Several laptops start from the same server state of one record, go offline and
each make a few changes (one of them often to a field another laptop changes
too: a hard conflict). The server then merges everything in an arrival order
that keeps each laptop's own changes in op order, possibly with retried
duplicates. The claims:

- convergence: every arrival order gives the same state;
- nothing lost: every value any laptop wrote is current, a competing value of a
  conflict, or in the record's history;
- idempotency: merging a change again changes nothing.
"""

import dataclasses
import json

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from schema import errors
from schema.merge import apply_change
from schema.recordtype import flatten
from schema.rules import StateMachine
from schema import records

from .merging import NOW, Laptop, interleavings, new_id, sequence

TEXT = st.sampled_from(["ingen förändring", "pneumoni", "UVI", "oro, yrsel", "trött"])
DATES = st.sampled_from(["2027-01-10", "2027-02-01", "2027-03-15"])


@dataclasses.dataclass(frozen=True)
class Profile:
    """A record type under test: who edits it and what edits they make."""

    record_type: str
    created_by: tuple
    fields: dict
    users: tuple
    edits: dict


def one_or_two(options):
    """A change setting one or two fields drawn from ``options`` (name -> strategy)."""
    names = st.lists(st.sampled_from(sorted(options)), min_size=1, max_size=2, unique=True)
    return names.flatmap(lambda ns: st.fixed_dictionaries({n: options[n] for n in ns}))


VISIT_EDITS = one_or_two({"assessment": TEXT, "plan": TEXT, "place": st.sampled_from(["hemma", "SÄBO"]),
                          "outcome": st.sampled_from(["stays_home", "direct_admission"])})
MEDICATION_EDITS = st.one_of(
    one_or_two({"dose": st.sampled_from(["10 mg", "20 mg", "40 mg"]),
                "frequency": st.sampled_from(["1x1", "1x2"]), "route": st.sampled_from(["po", "iv"])}),
    st.sampled_from([{"status": "paused"}, {"status": "active"},
                     {"status": "discontinued", "reason": "biverkan"}]),
)
WARNING_TEXT_EDITS = one_or_two({"text": TEXT, "source": st.sampled_from(["journal", "anhörig"]),
                                 "severity": st.sampled_from(["high", "life_threatening"])})
WARNING_DOCTOR_EDITS = st.one_of(
    WARNING_TEXT_EDITS,
    st.sampled_from([{"active": False, "deactivation_reason": "utredd"}, {"active": True}]),
)
RESIDENTS = st.sampled_from(["p1", "p2", "p3"])


def round_edits(fields):
    item = one_or_two(fields)
    return st.dictionaries(RESIDENTS, item, min_size=1, max_size=2).map(lambda items: {"items": items})


ROUND_NOTE = {"note": TEXT, "question": st.sampled_from(["smärta?", "sömn?"])}
PATIENT_EDITS = one_or_two({"phone": st.sampled_from(["035-1", "035-2"]), "address": TEXT,
                            "palliative": st.booleans(), "named_doctor_id": st.sampled_from(["doc-a", "doc-b"])})
CARE_PLAN_EDITS = one_or_two({"content": TEXT, "participants": TEXT, "status": st.sampled_from(["planned", "done"]),
                              "next_review": DATES})
STAY_EDITS = one_or_two({"follow_up": TEXT, "ward": st.sampled_from(["Medicin 3", "Kirurgi 2"]),
                        "discharged_at": st.sampled_from(["2026-11-24T11:00:00+01:00", "2026-11-25T09:30:00+01:00"]),
                        "planned": st.booleans()})

REQUEST_EDITS = {
    "dispatcher": st.sampled_from([
        {"status": "triaged"}, {"status": "assigned", "assigned_doctor_id": "doc-a"},
        {"priority_override": 1, "priority_override_reason": "ensam"},
        {"priority_override": 2, "priority_override_reason": "oro"},
        {"status": "cancelled", "cancel_reason": "inlagd"}]),
    "doctor": st.sampled_from([{"status": s} for s in ("accepted", "en_route", "on_site", "completed")]),
    "nurse": st.sampled_from([{"reason": "feber och oro"}, {"callback_phone": "070-1"},
                              {"status": "cancelled", "cancel_reason": "bättre"}]),
}

PROFILES = [
    # One doctor: two doctors' acceptances are refereed by arrival order, which
    # DOMAIN.md allows; tests/test_rules.py covers that case by example.
    Profile("visit_request", ("nurse-1", "nurse"), {"patient_id": "p1", "reason": "feber", "urgency": "urgent"},
            (("disp-1", "dispatcher"), ("doc-a", "doctor"), ("nurse-1", "nurse")), REQUEST_EDITS),
    Profile("visit", ("doc-a", "doctor"), {"patient_id": "p1", "kind": "home_visit", "assessment": "a0"},
            (("doc-a", "doctor"),) * 3, {"doctor": VISIT_EDITS}),
    Profile("medication", ("doc-a", "doctor"), {"patient_id": "p1", "drug": "Furosemid", "dose": "40 mg"},
            (("doc-a", "doctor"), ("doc-b", "doctor"), ("doc-c", "doctor")), {"doctor": MEDICATION_EDITS}),
    Profile("warning", ("nurse-1", "nurse"),
            {"patient_id": "p1", "kind": "allergy", "text": "PcV", "severity": "high"},
            (("doc-a", "doctor"), ("nurse-1", "nurse"), ("doc-b", "doctor")),
            {"doctor": WARNING_DOCTOR_EDITS, "nurse": WARNING_TEXT_EDITS}),
    Profile("round", ("doc-a", "doctor"), {"facility": "Solgården", "municipality": "Halmstad",
                                           "date": "2026-11-25", "items": {"p1": {"question": "q0"}}},
            (("doc-a", "doctor"), ("nurse-1", "nurse"), ("nurse-2", "nurse")),
            {"doctor": round_edits({**ROUND_NOTE, "status": st.sampled_from(["open", "done"])}),
             "nurse": round_edits(ROUND_NOTE)}),
    Profile("patient", ("nurse-1", "nurse"), {"personnummer": "191212121212", "name": "Tolvan",
                                              "municipality": "Halmstad"},
            (("doc-a", "doctor"), ("nurse-1", "nurse"), ("nurse-2", "nurse")),
            {"doctor": PATIENT_EDITS, "nurse": PATIENT_EDITS}),
    Profile("care_plan", ("nurse-1", "nurse"), {"patient_id": "p1", "kind": "sip", "content": "c0"},
            (("doc-a", "doctor"), ("nurse-1", "nurse")),
            {"doctor": CARE_PLAN_EDITS, "nurse": CARE_PLAN_EDITS}),
    Profile("hospital_stay", ("nurse-1", "nurse"),
            {"patient_id": "p1", "hospital": "Hallands sjukhus Varberg", "admitted_at": "2026-11-20T08:00:00+01:00",
             "source": "manual"},
            (("doc-a", "doctor"), ("nurse-1", "nurse"), ("nurse-2", "nurse")),
            {"doctor": STAY_EDITS, "nurse": STAY_EDITS}),
]


@st.composite
def scenarios(draw, max_devices=3, max_changes=3):
    """A profile and, for 2..max_devices laptops, the edits each makes offline."""
    profile = draw(st.sampled_from(PROFILES))
    n = draw(st.integers(2, min(max_devices, len(profile.users))))
    plans = []
    for i in range(n):
        user, role = profile.users[i]
        edits = draw(st.lists(profile.edits[role], min_size=1, max_size=max_changes))
        skew = draw(st.integers(0, 2000))
        plans.append((user, role, skew, edits))
    return profile, plans


def play(profile, plans):
    """Create the record, let each laptop make its changes offline; return (start state, queues, actors)."""
    creator = Laptop("dev-creator", *profile.created_by)
    record_id = new_id()
    start = apply_change(None, creator.change(profile.record_type, record_id, profile.fields), creator.actor,
                         NOW).state
    queues, actors = [], {creator.device_id: creator.actor}
    for i, (user, role, skew, edits) in enumerate(plans):
        laptop = Laptop(f"dev-{i}", user, role, wall_ms=1_764_064_810_000 + skew)
        laptop.see(start)
        actors[laptop.device_id] = laptop.actor
        queue = []
        for fields in edits:
            expected = expected_refusal(profile, laptop, record_id, fields)
            try:
                queue.append(laptop.change(profile.record_type, record_id, fields))
            except errors.HemsyncError as refusal:
                # Only a step the state machine does not allow may be refused (never sent);
                # a legitimate change refused by the local merge is a bug.
                assert refusal.code == expected, f"{fields} refused locally: {refusal.code} {refusal.message}"
                event(f"refused locally as expected: {refusal.code}")
            else:
                assert expected is None, f"{fields} should have been refused locally as {expected}"
        queues.append(queue)
    return start, queues, actors


def expected_refusal(profile, laptop, record_id, fields):
    """The code the laptop's own merge must refuse this edit with, or None when the edit is legitimate.

    The drawn edits are all allowed to their authors except a status step the
    record's state machine does not allow from where the laptop sees it (the
    request another laptop step had already completed, say).
    """
    machine = records.get(profile.record_type).spec("status").rule if "status" in fields else None
    if not isinstance(machine, StateMachine):
        return None
    current = laptop.views[record_id]["fields"].get("status", {}).get("value", machine.initial)
    if fields["status"] == current or machine.allowed(current, fields["status"], laptop.actor.role):
        return None
    return "invalid_transition"


def hard_conflict_fields(profile, queues):
    """Fields that changes of two or more laptops set: where a field rule must decide."""
    nested = records.get(profile.record_type).nested
    writers = {}
    for queue in queues:
        for change in queue:
            for path in flatten(change["fields"], nested):
                writers.setdefault(path, set()).add(change["device_id"])
    return sorted(p for p, devices in writers.items() if len(devices) > 1)


def assert_nothing_lost(profile, state, queues):
    """Every value written is current, a competitor in a conflict, or in history."""
    nested = records.get(profile.record_type).nested
    for queue in queues:
        for change in queue:
            for path in flatten(change["fields"], nested):
                cid = change["change_id"]
                current = state["fields"].get(path, {}).get("version") == cid
                in_conflict = any(w["version"] == cid for c in state["conflicts"] for w in c["values"])
                in_history = any(h["field"] == path and h["version"] == cid for h in state["history"])
                assert current or in_conflict or in_history, f"{path} of {cid} was lost"


def with_duplicates(order, picks):
    """An arrival order with some changes delivered again (retries), at drawn positions."""
    out = list(order)
    for index, position in picks:
        change = order[index % len(order)]
        out.insert(max(position % (len(out) + 1), out.index(change) + 1), change)
    return out


def label(profile, queues):
    """Tell hypothesis's statistics how much real concurrency the example had."""
    hard = hard_conflict_fields(profile, queues)
    event(f"{profile.record_type}")
    event("hard conflict on one field" if hard else "no hard conflict (different fields only)")
    return hard


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(), st.randoms(use_true_random=False),
       st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50)), max_size=4))
def test_any_arrival_order_with_retries_gives_the_same_state_and_loses_nothing(scenario, rnd, picks):
    profile, plans = scenario
    start, queues, actors = play(profile, plans)
    label(profile, queues)
    orders = list(interleavings(queues))
    reference, _ = sequence(start, orders[0], actors)
    shuffled = orders[rnd.randrange(len(orders))]
    final, outcomes = sequence(start, with_duplicates(shuffled, picks) if shuffled else shuffled, actors)
    assert final == reference
    assert_nothing_lost(profile, final, queues)
    event(f"conflicts raised: {len([c for c in final['conflicts'] if c['status'] == 'open'])}")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(max_devices=3, max_changes=2))
def test_every_order_of_up_to_five_changes_gives_the_same_state(scenario):
    profile, plans = scenario
    start, queues, actors = play(profile, plans)
    if sum(map(len, queues)) > 5:
        queues = [q[:1] for q in queues]
    label(profile, queues)
    results = {json.dumps(sequence(start, order, actors)[0], sort_keys=True) for order in interleavings(queues)}
    assert len(results) == 1


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_merging_a_change_twice_equals_merging_it_once(scenario):
    profile, plans = scenario
    start, queues, actors = play(profile, plans)
    label(profile, queues)
    order = next(interleavings(queues))
    once, _ = sequence(start, order, actors)
    twice, outcomes = sequence(once, order, actors)
    assert twice == once and {o.result for o in outcomes} <= {"duplicate"}


def test_the_generators_really_produce_concurrency():
    """At least 30 % of drawn scenarios must hold a hard conflict, or the properties prove little."""
    hard = []

    @settings(max_examples=300, deadline=None, database=None)
    @given(scenarios())
    def draw(scenario):
        profile, plans = scenario
        _, queues, _ = play(profile, plans)
        hard.append(bool(hard_conflict_fields(profile, queues)))

    draw()
    assert sum(hard) / len(hard) >= 0.30, f"only {sum(hard)} of {len(hard)} scenarios hold a hard conflict"
