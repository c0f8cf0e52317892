"""The one server write path: every server-side write is applied, persisted and audited the same way."""

import pytest

from schema.change import make_change
from schema.clock import utcnow
from schema.merge import SYSTEM
from server import settings
from server.errors import ChangeRefused
from server.seed import seed_demo
from server.store import SqliteStore
from server.writes import WriteApplier

SETTINGS = settings.load({})


@pytest.fixture
def store(tmp_path):
    made = SqliteStore(str(tmp_path / "server.db"))
    yield made
    made.close()


def test_a_server_side_change_the_merge_refuses_raises_change_refused_and_keeps_nothing(store):
    seed_demo(store, SETTINGS)
    patient_id = sorted(store.patients_in(["Halmstad"]))[0]
    before = store.get_record("patient", patient_id).state
    with pytest.raises(ChangeRefused, match="no_such_field"):
        with store.transaction():
            writes = WriteApplier(store, SETTINGS, {"id": "server-test"}, {"id": SYSTEM.user_id, "role": SYSTEM.role},
                                  utcnow())
            writes.write("patient", patient_id, {"name": "Ny Namn"})
            writes.write("patient", patient_id, {"no_such_field": 1})
    assert store.get_record("patient", patient_id).state == before


def test_a_resolution_carries_every_competing_version_in_its_base():
    state = {"id": "r1", "type": "warning", "rev": 2,
             "fields": {"text": {"value": "a", "version": "v3"}, "severity": {"value": "high", "version": "v1"}},
             "conflicts": [{"id": "c1", "field": "text", "values": [{"version": "v3"}, {"version": "v2"}]}]}
    change = make_change("warning", "r1", {"text": "ab"}, state=state, change_id="d-1", hlc="h", resolves=["c1"])
    assert change == {"change_id": "d-1", "record_type": "warning", "record_id": "r1", "op": None, "hlc": "h",
                      "base": {"text": ["v2", "v3"], "severity": "v1"}, "fields": {"text": "ab"},
                      "resolves": ["c1"]}
