"""Convergence and nothing lost over real HTTP, for hypothesis-drawn interleavings of edits and syncs.

Four laptops (one doctor on two laptops, another doctor, a nurse) share a
patient, a visit and a medication. Hypothesis draws a sequence of steps —
an offline edit on some laptop, or a sync (sometimes pushed twice, as a retry
after a lost answer) — then everyone syncs to the head. Every laptop must then
hold exactly the server's state, and every value any laptop wrote must be
current, competing in a conflict, or in the record's history on the server.
"""

import itertools
import uuid

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from client_sync.http import SyncClient
from client_sync.sync import sync
from schema.wire import decode_state

from .conftest import new_patient, replica_wires, server_wires

pytestmark = [pytest.mark.e2e, pytest.mark.both_stores]
_names = itertools.count()

EDITS = {
    "patient": [{"address": a} for a in ("Storgatan 1", "Lillgatan 2")] + [{"phone": "035-1"}, {"palliative": True}],
    "visit": [{"plan": p} for p in ("vila", "återbesök", "remiss")] + [{"assessment": "pneumoni"}],
    "medication": [{"dose": d} for d in ("10 mg", "20 mg")] + [
        {"status": "discontinued", "reason": "biverkan"}, {"frequency": "1x2"}],
}
WHO_EDITS = {0: ("patient", "visit", "medication"), 1: ("patient", "visit", "medication"),
             2: ("patient", "medication"), 3: ("patient",)}

steps = st.lists(
    st.one_of(
        st.tuples(st.just("edit"), st.integers(0, 3), st.sampled_from(("patient", "visit", "medication")),
                  st.integers(0, 3)),
        st.tuples(st.just("sync"), st.integers(0, 3), st.booleans(), st.just(0)),
    ),
    min_size=4, max_size=14,
)


def team(laptops):
    """Dr A on two laptops, Dr B, nurse C; a patient, a visit of Dr A and a medication, synced to all."""
    n = next(_names)
    doctor_a = laptops(f"A{n}", "doctor")
    replicas = [doctor_a, laptops.device_of(doctor_a.actor().user_id, f"A{n} second"),
                laptops(f"B{n}", "doctor"), laptops(f"C{n}", "nurse")]
    ids = {"patient": new_patient(doctor_a), "visit": str(uuid.uuid4()), "medication": str(uuid.uuid4())}
    doctor_a.write("visit", ids["visit"], {"patient_id": ids["patient"], "kind": "home_visit", "plan": "start"})
    doctor_a.write("medication", ids["medication"], {"patient_id": ids["patient"], "drug": "Furosemid",
                                                     "dose": "40 mg"})
    for replica in replicas:
        sync(replica)
    return replicas, ids


def retried_sync(replica, url):
    """Push the outbox once without keeping the answers (the answer was lost), then sync normally."""
    batch = replica.unsent(100)
    if batch:
        SyncClient(url, replica.setting("token")).push(batch, pending=0)
    sync(replica)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(steps)
def test_any_interleaving_of_offline_edits_syncs_and_retries_converges_and_loses_nothing(laptops, live, plan):
    replicas, ids = team(laptops)
    written = []
    for kind, who, what, which in plan:
        replica = replicas[who]
        if kind == "sync":
            retried_sync(replica, live.url) if what else sync(replica)
            continue
        if what not in WHO_EDITS[who]:
            continue
        fields = EDITS[what][which]
        # Every drawn edit is allowed to its author in any state (WHO_EDITS keeps each role
        # to what it may write; discontinuing twice is no step): a refusal here is a bug.
        record = replica.write(what, ids[what], fields)
        event(f"{what} edited")
        written.extend((what, change["change_id"], path) for change in record.pending[-1:] for path in fields)
    for _ in range(2):
        for replica in replicas:
            sync(replica)
    for replica in replicas:
        assert replica.outbox() == [] and replica.rejected() == []
        assert replica_wires(replica) == server_wires(live, replica)
    states = {kind: decode_state(server_wires(live, replicas[0])[f"{kind}/{rid}"]) for kind, rid in ids.items()}
    for kind, change_id, path in written:
        state = states[kind]
        kept = (state["fields"].get(path, {}).get("version") == change_id
                or any(h["version"] == change_id and h["field"] == path for h in state["history"])
                or any(v["version"] == change_id for c in state["conflicts"] for v in c["values"]))
        assert kept, f"{kind}.{path} written by {change_id} was lost"
