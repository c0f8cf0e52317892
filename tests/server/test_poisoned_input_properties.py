"""Poisoned input: arbitrary JSON in any field of a change harms no one but its sender.

An attacker's laptop (a nurse of the same municipality, so every record is in
its scope) pushes changes to the records honest devices are editing, with
hypothesis-drawn JSON planted in one field: the base, a base value, resolves,
the fields, a field value, the record id, change id, record type, op, HLC or
device id. The same honest plan runs twice, on two copies of one server
database: once with the attacker's pushes (the poisoned run), once without (the
control run). The claims, for every drawn plan and poison:

- no answer is a 5xx; every answer is the JSON error shape or per-change results;
- a poisoned change is never ``merge_failed`` (the shared validation names what
  is wrong with it, the merge never trips over it);
- the honest devices' results, the next honest change to every record, the
  record states and what honest devices pull are exactly the control run's
  whenever the poison was refused; when the drawn JSON happened to make a valid
  change (a text where a text belongs), every honest change is still merged
  or refused with the same code as in the control run.

The server is the production app (``server.create_app``: the same WSGI app,
JSON parsing and push code as HTTP) driven by Flask's test client, for speed.
"""

import contextlib
import json
import pathlib
import shutil
import tempfile
import time
import uuid

import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from schema.clock import Hlc
from server import auth, create_app

CLIENT_HEADERS = {"X-Hemsync-Client": "0.1.0"}
HONEST = ("nurse", "doctor")
PATIENT, WARNING = "0b0a3d3e-6a53-4c0e-9d1c-5d3f9a0c0001", "0b0a3d3e-6a53-4c0e-9d1c-5d3f9a0c0002"
RECORDS = {"patient": PATIENT, "warning": WARNING}
CREATIONS = {
    "patient": {"personnummer": "191212121212", "name": "Tolvan Tolvansson", "municipality": "Halmstad",
                "address": "Storgatan 1"},
    "warning": {"patient_id": PATIENT, "kind": "allergy", "text": "PcV", "severity": "high"},
}
HONEST_EDITS = {
    "patient": [{"address": "Lillgatan 2"}, {"phone": "035-12 34 56"}, {"palliative": True},
                {"address": "Havsvägen 3", "phone": "035-65 43 21"}],
    "warning": [{"text": "PcV, utslag"}, {"severity": "life_threatening"}, {"source": "journal"},
                {"text": "PcV och cefalosporiner"}],
}
#: What the attacker's change would set were it not poisoned: a valid edit by a nurse.
ATTACK_TEMPLATE = {"patient": {"address": "Giftgatan 6"}, "warning": {"text": "ingen allergi"}}
SLOTS = ("base", "base value", "resolves", "fields", "field value", "record_id", "change_id", "record_type",
         "op", "hlc", "device_id")
#: What a poisoned change may be refused with: each names what is wrong, none is "the server tripped".
POISON_CODES = {"invalid_value", "unknown_field", "missing_field", "unknown_record_type", "forbidden_field",
                "forbidden", "out_of_scope", "immutable_field", "unknown_reference", "unknown_municipality",
                "unknown_conflict", "stale_signature", "depends_on_rejected", "change_id_taken",
                "record_too_large", "invalid_transition", "append_only", "sealed_record", "open_conflict"}
#: What a whole poisoned request may be refused with (a shape the schema of a push refuses).
REQUEST_CODES = {"invalid_batch", "malformed_json", "payload_too_large"}

# Near-valid atoms make the poison sharper than random text: ids and versions that exist,
# field names, a valid HLC, a municipality of another region.
ATOMS = st.sampled_from([PATIENT, WARNING, str(uuid.UUID(int=0)), "patient", "warning", "address", "text",
                         "patient_id", "municipality", "Varberg", "Halmstad", "", "0001764064800000-000000",
                         "c-nurse-0", "c-doctor-0", "history", "conflicts", "__proto__", "\u0000", "\ud800"])
SCALARS = st.one_of(
    st.none(), st.booleans(),
    st.integers(), st.sampled_from([2 ** 63 - 1, 2 ** 63, 2 ** 64, -(2 ** 63) - 1, 10 ** 40, -1, 0]),
    st.floats(), st.text(max_size=20), ATOMS,
)
ARBITRARY_JSON = st.one_of(
    st.recursive(SCALARS, lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.text(max_size=8), ATOMS), inner, max_size=4)),
        max_leaves=12),
    # Nested past the server's depth limit, and a long list of versions: the shapes that froze records.
    st.integers(28, 40).map(lambda depth: json.loads("[" * depth + "]" * depth)),
    st.integers(60, 200).map(lambda n: [f"c-nurse-{i}" for i in range(n)]),
)


@st.composite
def plans(draw):
    """Honest edits (device, record, edit) with one or two poisoned pushes among them."""
    honest = draw(st.lists(st.tuples(st.sampled_from(HONEST), st.sampled_from(sorted(RECORDS)),
                                     st.integers(0, 3)), min_size=1, max_size=5))
    attacks = draw(st.lists(st.tuples(st.integers(0, len(honest)), st.sampled_from(sorted(RECORDS)),
                                      st.sampled_from(SLOTS), ARBITRARY_JSON), min_size=1, max_size=2))
    steps = [("honest", *step) for step in honest]
    for position, record, slot, poison in sorted(attacks, key=lambda a: -a[0]):
        steps.insert(position, ("attack", record, slot, poison))
    return steps


class Region:
    """One copy of the prepared server: an app on its own database file, a test client, tokens."""

    def __init__(self, db_path, tokens, ops=None):
        self.app = create_app({"HEMSYNC_DB": str(db_path)})
        self.store = self.app.extensions["hemsync.store"]
        self.client = self.app.test_client()
        self.tokens = tokens
        self.ops = dict(ops or {name: 1 for name in tokens})

    def push(self, who, changes):
        """POST a batch as ``who``; return (status, body), checking the answer's shape."""
        response = self.client.post("/v1/push", data=json.dumps({"changes": changes}),
                                    content_type="application/json",
                                    headers={**CLIENT_HEADERS, "Authorization": f"Bearer {self.tokens[who]}"})
        assert response.status_code < 500, response.get_data(as_text=True)
        body = response.get_json()
        if response.status_code == 200:
            assert [r["change_id"] for r in body["results"]] == [c.get("change_id") for c in changes]
        else:
            assert set(body) == {"error"} and {"code", "message", "details"} <= set(body["error"])
        return response.status_code, body

    def pull(self, who):
        """Every record the device would pull now (a fresh full pull), in feed order."""
        response = self.client.get("/v1/pull", query_string={"limit": 1000},
                                   headers={**CLIENT_HEADERS, "Authorization": f"Bearer {self.tokens[who]}"})
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()["records"]

    def state(self, record_type):
        """The stored state of one of the shared records."""
        return self.store.get_record(record_type, RECORDS[record_type]).state

    def change(self, who, record_type, fields, step, wall_ms):
        """A change by ``who`` on top of the record as the server holds it now (as after a sync)."""
        stored = self.store.get_record(record_type, RECORDS[record_type])
        op, self.ops[who] = self.ops[who], self.ops[who] + 1
        return {"change_id": f"c-{who}-{step}", "record_type": record_type, "record_id": RECORDS[record_type],
                "op": op, "hlc": str(Hlc(wall_ms + step * 1000, 0)),
                "base": {path: write["version"] for path, write in stored.state["fields"].items()} if stored else {},
                "fields": fields}

    def close(self):
        self.store.close()


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A server database with a Halmstad nurse, doctor and attacker, and the shared patient and warning."""
    folder = tmp_path_factory.mktemp("poison")
    app = create_app({"HEMSYNC_DB": str(folder / "template.db")})
    store = app.extensions["hemsync.store"]
    auth.add_municipality(store, "Halmstad")
    auth.add_municipality(store, "Varberg")
    tokens = {}
    for name, role in (("nurse", "nurse"), ("doctor", "doctor"), ("attacker", "nurse")):
        user = auth.add_user(store, name, role, ["Halmstad"], user_id=f"user-{name}")
        tokens[name] = auth.enroll(store, user["id"])[1]
    store.close()
    region = Region(folder / "template.db", tokens)
    wall_ms = int(time.time() * 1000) - 60_000
    for step, record_type in enumerate(("patient", "warning")):
        change = region.change("nurse", record_type, CREATIONS[record_type], step, wall_ms)
        change["change_id"] = f"c-nurse-create-{record_type}"
        assert region.push("nurse", [change])[1]["results"][0]["result"] == "applied"
    region.close()
    return folder / "template.db", tokens, region.ops


def poisoned(change, slot, poison):
    """The change with ``poison`` planted in ``slot``."""
    change = json.loads(json.dumps(change))
    if slot == "base value":
        change["base"][next(iter(change["fields"]))] = poison
    elif slot == "field value":
        change["fields"][next(iter(change["fields"]))] = poison
    else:
        change[slot] = poison
    return change


def run(prepared, steps, wall_ms, attack):
    """Play the plan on a fresh copy of the prepared database; return what honest devices saw and the poison's fate."""
    with tempfile.TemporaryDirectory() as folder:
        copy = pathlib.Path(folder) / "hemsync.db"
        db_path, tokens, ops = prepared
        shutil.copyfile(db_path, copy)
        region = Region(copy, tokens, ops)
        with contextlib.closing(region):
            honest, fates = [], []
            for step, (kind, *rest) in enumerate(steps):
                if kind == "honest":
                    who, record_type, edit = rest
                    change = region.change(who, record_type, HONEST_EDITS[record_type][edit], step, wall_ms)
                    honest.append(region.push(who, [change]))
                elif attack:
                    record_type, slot, poison = rest
                    change = region.change("attacker", record_type, ATTACK_TEMPLATE[record_type], step, wall_ms)
                    fates.append(fate(region.push("attacker", [poisoned(change, slot, poison)])))
            # The next honest change to every record, by every honest device.
            for offset, (who, record_type) in enumerate((w, r) for w in HONEST for r in sorted(RECORDS)):
                change = region.change(who, record_type, HONEST_EDITS[record_type][offset % 4],
                                       len(steps) + offset, wall_ms)
                honest.append(region.push(who, [change]))
            answers = [(status, body.get("results", body)) for status, body in honest]  # not server_hlc
            return {"answers": answers, "states": {t: region.state(t) for t in RECORDS},
                    "pulled": {who: region.pull(who) for who in HONEST}}, fates


def fate(answer):
    """What became of a poisoned push: a request code, a rejection code, or accepted."""
    status, body = answer
    if status != 200:
        assert body["error"]["code"] in REQUEST_CODES, body
        return f"request refused {body['error']['code']}"
    (result,) = body["results"]
    if result["result"] == "rejected":
        assert result["error"]["code"] in POISON_CODES, result
        return f"rejected {result['error']['code']}"
    return "accepted (the drawn JSON made a valid change)"


def codes(outcome):
    """Per honest change: its rejection code, or None when merged."""
    return [body[0]["error"]["code"] if status == 200 and body[0]["result"] == "rejected" else None
            for status, body in outcome["answers"]]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(steps=plans())
def test_poisoned_input_never_fails_the_server_nor_changes_another_devices_results(prepared, steps):
    note(f"plan: {steps!r}")  # the plan in full, surrogates and huge numbers included
    wall_ms = int(time.time() * 1000) - 30_000
    control, _ = run(prepared, steps, wall_ms, attack=False)
    attacked, fates = run(prepared, steps, wall_ms, attack=True)
    for (_, _, slot, _), outcome in zip((s for s in steps if s[0] == "attack"), fates):
        event(f"poison in {slot}")
        event(f"poison {outcome}")
    assert all(status == 200 for status, _ in attacked["answers"])
    assert codes(control) == [None] * len(control["answers"]), "an honest change was refused without poison"
    if all(not f.startswith("accepted") for f in fates):
        assert attacked == control
    else:
        assert codes(attacked) == codes(control)
