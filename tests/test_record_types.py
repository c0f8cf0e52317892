"""What a record type declares is what the server and the laptop use: one place per fact."""

from click.testing import CliRunner

from client_sync.cli import cli as laptop_cli
from schema import records
from server.store import index_columns


def _state(rtype, record_id, **values):
    return {"type": rtype, "id": record_id, "rev": 1, "conflicts": [],
            "fields": {k: {"value": v, "version": "v"} for k, v in values.items()}}


def test_a_records_patient_and_index_columns_come_from_its_record_type():
    request = _state("visit_request", "r1", patient_id="p1", status="assigned", assigned_doctor_id="d1")
    assert index_columns(request) == {"patient_id": "p1", "municipality": None, "personnummer": None,
                                      "status": "assigned", "assignee": "d1"}
    accepted = _state("visit_request", "r1", patient_id="p1", accepted_by="d2", assigned_doctor_id="d1")
    assert index_columns(accepted)["assignee"] == "d2"
    patient = _state("patient", "p1", municipality="Laholm", personnummer="191212121212")
    assert index_columns(patient) == {"patient_id": "p1", "municipality": "Laholm",
                                      "personnummer": "191212121212", "status": None, "assignee": None}
    round_ = _state("round", "o1", municipality="Hylte", **{"items.p2.question": "q", "items.p1.note": "n"})
    assert records.get("round").patient_of(round_) is None
    assert records.get("round").patients_shown(round_) == ["p1", "p2"]


def test_only_the_types_that_declare_it_change_scope():
    assert {name for name in records.names() if records.get(name).changes_scope} == {"patient", "visit_request"}


def test_the_laptops_urgency_and_retts_choices_are_the_request_types():
    rtype = records.get("visit_request")
    help_text = CliRunner().invoke(laptop_cli, ["request", "--help"]).output
    for value in (*rtype.choices("urgency"), *rtype.choices("retts_colour")):
        assert value in help_text
    assert rtype.choices("urgency") == ("acute", "urgent", "planned")
