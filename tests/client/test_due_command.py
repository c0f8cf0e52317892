"""`hemsync due`: the due lists computed offline from the replica, each showing in the access log."""

import json

from client_sync.replica import Replica

from .test_cli import login_as, put

# Skatteverket's published test personnummer: born 1912, so well past 75.
TOLVAN = "191212121212"


def test_the_laptop_lists_a_sabo_resident_without_a_named_doctor_offline_and_logs_it(hemsync, server, tmp_path):
    login_as(hemsync, server, "u-nurse-cia")
    patient = put(hemsync, "patient", personnummer=TOLVAN, name="Tolvan", municipality="Umeå",
                  care_setting="sabo", moved_in_at="2026-10-01")
    with Replica(tmp_path / "laptop.db") as replica:
        before = replica.access_count()
    lists = json.loads(hemsync("due", "--date", "2026-11-20", "--json").stdout)
    assert [e["patient_id"] for e in lists["sabo_without_named_doctor"]] == [patient["id"]]
    assert [e["since"] for e in lists["enrollment_conversation_due"]] == ["2026-10-01"]
    with Replica(tmp_path / "laptop.db") as replica:
        assert replica.access_count() == before + 1
    text = hemsync("due", "--list", "sabo_without_named_doctor", "--date", "2026-11-20").stdout
    assert text.startswith("sabo_without_named_doctor (1)") and "SÄBO resident without a named doctor" in text


def test_a_done_enrollment_conversation_takes_the_patient_off_the_list(hemsync, server):
    login_as(hemsync, server, "u-nurse-cia")
    patient = put(hemsync, "patient", personnummer=TOLVAN, name="Tolvan", municipality="Umeå",
                  care_setting="sabo", moved_in_at="2026-10-01")
    put(hemsync, "care_plan", patient_id=patient["id"], kind="enrollment_conversation", date="2026-10-05",
        status="done")
    lists = json.loads(hemsync("due", "--date", "2026-11-20", "--json").stdout)
    assert lists["enrollment_conversation_due"] == []


def test_a_dispatchers_laptop_shows_no_due_lists(hemsync, server):
    login_as(hemsync, server, "u-disp-dan")
    assert "does not see the due lists" in hemsync("due", ok=False).output
