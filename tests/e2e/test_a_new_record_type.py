"""Adding a record type is one module: a type declared here alone merges, scopes, audits and syncs.

The ``wound_note`` type below is declared in this test module and nowhere else
(registered for the test, removed after it). The real server on loopback and
real replica files handle it with no other file knowing of it: the record type
declares its patient, its index columns and its rules, and the server's one
write path, the scope, the audit and the laptop read everything from there.
"""

import pytest
from marshmallow import fields, validate

from client_sync.sync import sync
from schema import records
from schema.recordtype import FieldSpec, RecordType
from schema.rules import KeepBoth
from schema.validation import RecordRef, RecordSchema, Text

from .conftest import new_patient, replica_wires, server_wires

pytestmark = [pytest.mark.e2e, pytest.mark.both_stores]


class WoundNoteSchema(RecordSchema):
    patient_id = RecordRef(required=True, allow_none=False)
    text = Text(limit=4000)
    stage = fields.String(allow_none=True, validate=validate.OneOf(("1", "2", "3", "4")))
    status = fields.String(allow_none=True, validate=validate.OneOf(("open", "healed")))


WOUND_NOTE = RecordType(
    name="wound_note",
    creators=frozenset({"doctor", "nurse"}),
    editors=frozenset({"doctor", "nurse"}),
    schema=WoundNoteSchema,
    index={"status": "status"},
    severity="medium",
    fields={"text": FieldSpec(rule=KeepBoth(), severity="medium", clinical=True)},
)


@pytest.fixture
def wound_note():
    """The throwaway record type, registered for one test only."""
    records.register(WOUND_NOTE)
    yield WOUND_NOTE
    del records.REGISTRY[WOUND_NOTE.name]


def test_a_record_type_declared_in_one_module_merges_scopes_audits_and_syncs(wound_note, laptops, live, admin):
    nurse = laptops("Nora", "nurse", municipalities=["Umeå"])
    doctor = laptops("Dan", "doctor", municipalities=["Umeå"])
    elsewhere = laptops("Vera", "nurse", municipalities=["Vännäs"])
    patient_id = new_patient(nurse)
    note_id = "6f1c9a52-8d0e-4b7a-9c3f-2e5d4a1b0c99"
    nurse.write("wound_note", note_id, {"patient_id": patient_id, "text": "Sår vä underben", "stage": "2",
                                        "status": "open"})
    sync(nurse), sync(doctor), sync(elsewhere)

    # syncs and scopes: the doctor of Umeå has it, the nurse of Vännäs never sees it
    assert doctor.get("wound_note", note_id).fields["stage"] == "2"
    assert elsewhere.local("wound_note", note_id) is None
    # indexed by the columns the type declares
    assert live.rows("SELECT patient_id, status FROM records WHERE type = 'wound_note'") == [(patient_id, "open")]

    # merges by its own rules: both edit the text offline, both texts are kept as a conflict
    nurse.write("wound_note", note_id, {"text": "Sår vä underben, rodnad kring"})
    doctor.write("wound_note", note_id, {"text": "Sår vä underben, ingen infektion"})
    sync(nurse), sync(doctor), sync(nurse)
    for replica in (nurse, doctor):
        record = replica.get("wound_note", note_id)
        assert [c["field"] for c in record.open_conflicts] == ["text"]
        assert {v["value"] for v in record.open_conflicts[0]["values"]} == {
            "Sår vä underben, rodnad kring", "Sår vä underben, ingen infektion"}
        assert replica_wires(replica) == server_wires(live, replica)

    # scopes on write: the server refuses a nurse of Vännäs adding one to a patient of Umeå
    elsewhere.write("wound_note", "0b7d3f2e-1c4a-4e9b-8a6d-5f0e9c8b7a61", {"patient_id": patient_id, "text": "fel"})
    sync(elsewhere)
    assert [r["error"]["code"] for r in elsewhere.rejected()] == ["out_of_scope"]
    assert live.store.get_record("wound_note", "0b7d3f2e-1c4a-4e9b-8a6d-5f0e9c8b7a61") is None

    # audits: every change and every pull of it is logged under its patient
    entries = admin("/v1/admin/audit", patient_id=patient_id, limit=1000)["entries"]
    changes = [e for e in entries if e["kind"] == "change" and e["record_type"] == "wound_note"]
    assert len(changes) == 3 and {e["patient_id"] for e in changes} == {patient_id}
    pulled = [e for e in entries if e["kind"] == "pull" and f"wound_note/{note_id}" in e["details"]["records"]]
    assert {e["user_id"] for e in pulled} >= {doctor.actor().user_id}
