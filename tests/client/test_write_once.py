"""A local write does its work once: offline edits of one record cost the same each, however many."""

import uuid

from client_sync import replica as replica_module
from client_sync.replica import Replica

from .conftest import PERSONNUMMER


def _counting_merges(monkeypatch):
    calls = []
    real = replica_module.apply_change

    def counted(*args, **kwargs):
        calls.append(args[1]["change_id"])
        return real(*args, **kwargs)

    monkeypatch.setattr(replica_module, "apply_change", counted)
    return calls


def _patient(replica):
    patient_id = str(uuid.uuid4())
    replica.write("patient", patient_id,
                  {"personnummer": PERSONNUMMER, "name": "Tolvan Tolvansson", "municipality": "Umeå"})
    return patient_id


def test_offline_edits_of_one_record_merge_once_each_not_once_per_pending_change(doctor, monkeypatch):
    replica, _ = doctor
    patient_id = _patient(replica)
    calls = _counting_merges(monkeypatch)
    for n in range(50):
        written = replica.write("patient", patient_id, {"access_notes": f"note {n}"})
    assert len(calls) == 50
    assert written.fields["access_notes"] == "note 49"
    assert len(written.pending) == 51
    assert written == replica.local("patient", patient_id)


def test_a_write_sees_what_another_connection_wrote_to_the_same_record(doctor):
    replica, _ = doctor
    patient_id = _patient(replica)
    replica.write("patient", patient_id, {"phone": "1"})
    other = Replica(replica.path)
    try:
        other.write("patient", patient_id, {"phone": "2"})
    finally:
        other.close()
    written = replica.write("patient", patient_id, {"access_notes": "after the other"})
    assert written.fields["phone"] == "2"
    assert written.pending[-1]["base"]["phone"] == written.pending[-2]["change_id"]
    assert written == replica.local("patient", patient_id)
