"""What `hemsync` prints for a person: names instead of ids, Stockholm times, ids short enough to type back.

A doctor's, a nurse's and a dispatcher's day through every command that prints
for a person; each human output is checked for what must never show (a staff
id, a UTC time, a hybrid clock, the whole id of anything but the record it is
about) and for the names and local times it shows instead, and each short id it
prints is typed back to the next command. ``--json`` stays the replica's exact
values.
"""

import json
import re
import uuid

import pytest

from client_sync.cli import cli
from client_sync.http import SyncClient
from client_sync.replica import Replica
from client_sync.sync import sync

from .conftest import PERSONNUMMER
from .test_ways_out import reject_unsent

WHOLE_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
#: Where a whole id may show: as the handle of the record a line is about (a printed record's first line, a list's
#: row, a verb's "(visit ID, not yet on the server)", a queue entry, a conflict); never for what it refers to.
SUBJECT = re.compile(rf"^(?:\w+ )?{WHOLE_ID.pattern}|\(\w+ {WHOLE_ID.pattern}, |request {WHOLE_ID.pattern} for"
                     rf"|^conflict {WHOLE_ID.pattern} on", re.MULTILINE)
UTC_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d|\+00:00|\d\d:\d\dZ")
HLC = re.compile(r"\b\d{16}\b")
STAFF_IDS = ("u-dr-anna", "u-dr-bo", "u-nurse-cia", "u-disp-dan")
MEASURED = "2026-11-25T10:00:00+00:00"  # 11:00 in Stockholm (winter time)


def shown_to_a_person(output, staff_ids=STAFF_IDS):
    """Fail when a human output shows what a person should not have to read; return it."""
    assert not WHOLE_ID.search(SUBJECT.sub("", output)), output
    assert not UTC_TIME.search(output), output
    assert not HLC.search(output), output
    for user_id in staff_ids:
        assert user_id not in output, output
    return output


@pytest.fixture
def hemsync_as(runner, tmp_path, online, server):
    """Run `hemsync` on the replica of one person (``user_id``), logged in and synced on first use."""
    logged_in = set()

    def run(user_id, *args, ok=True):
        path = str(tmp_path / f"{user_id}.db")
        if user_id not in logged_in:
            _, token = server.enroll(user_id)
            runner.invoke(cli, ["--replica", path, "login", "--server", "http://127.0.0.1:5000"], input=token)
            runner.invoke(cli, ["--replica", path, "sync"])
            logged_in.add(user_id)
        result = runner.invoke(cli, ["--replica", path, *args], catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        print(f"$ hemsync {' '.join(args)}\n{result.output}")
        return result.output

    return run


@pytest.fixture
def ward(nurse, server, tmp_path):
    """Tolvan (SÄBO since October, named doctor: Dr Anna), her vitals and an urgent request by Nurse Cia, on the server: the ids."""
    n, cn = nurse
    patient_id, observation_id = str(uuid.uuid4()), str(uuid.uuid4())
    n.write("patient", patient_id, {"personnummer": PERSONNUMMER, "name": "Tolvan Tolvansson", "municipality": "Umeå",
                                    "named_doctor_id": "u-dr-anna", "care_setting": "sabo",
                                    "moved_in_at": "2026-10-01"})
    n.write("observation", observation_id, {"patient_id": patient_id, "measured_at": MEASURED, "pulse": 104,
                                            "resp_rate": 22})
    sync(n, client=cn)
    return patient_id, observation_id


def test_a_day_of_every_role_prints_names_and_stockholm_times_never_ids_or_utc(ward, hemsync_as, server):
    patient_id, observation_id = ward
    # The nurse asks for a doctor, typing short ids as the outputs show them.
    asked = shown_to_a_person(hemsync_as("u-nurse-cia", "request", patient_id[:8], "--urgency", "urgent",
                                         "--reason", "Feber", "--observation", observation_id[:8]))
    assert re.match(rf"visit_request {WHOLE_ID.pattern} of Tolvan Tolvansson \({patient_id[:8]}\) "
                    r"\(not yet on the server", asked), asked
    assert "  requested_by: Nurse Cia" in asked and f"  observation_id: observation {observation_id[:8]}" in asked
    request_id = json.loads(hemsync_as("u-nurse-cia", "list", "visit_request", "--json"))[0]["id"]
    shown_to_a_person(hemsync_as("u-nurse-cia", "sync"))

    # The dispatcher sees the queue by name, asks for suggestions and assigns with the ids shown.
    hemsync_as("u-disp-dan", "sync")
    queue = shown_to_a_person(hemsync_as("u-disp-dan", "queue"))
    assert f"request {request_id} for Tolvan Tolvansson ({patient_id[:8]})" in queue
    suggested = hemsync_as("u-disp-dan", "suggest", request_id[:8])
    assert shown_to_a_person(suggested, ("u-nurse-cia", "u-disp-dan")).startswith(
        "  1. Dr Anna (u-dr-anna): named doctor")  # the id is what `assign --doctor` takes
    assigned = shown_to_a_person(hemsync_as("u-disp-dan", "assign", request_id[:8], "--doctor", "u-dr-anna"))
    assert "  assigned_doctor_id: Dr Anna" in assigned
    assert "  received_at: " in assigned and "  deadline: " in assigned
    shown_to_a_person(hemsync_as("u-disp-dan", "override", request_id[:8], "--rank", "1", "--reason", "Anhörig"))
    shown_to_a_person(hemsync_as("u-disp-dan", "sync"))

    # The doctor: the list, the record, the vitals at their local time, the steps, the note, signed and amended.
    hemsync_as("u-dr-anna", "sync")
    listed = shown_to_a_person(hemsync_as("u-dr-anna", "list", "observation"))
    assert listed.startswith(f"{observation_id}  measured_at=2026-11-25 11:00, measured_by=Nurse Cia, ")
    assert f"patient_id=Tolvan Tolvansson ({patient_id[:8]})" in listed
    got = shown_to_a_person(hemsync_as("u-dr-anna", "get", "patient", patient_id[:8]))
    assert got.startswith(f"patient {patient_id} Tolvan Tolvansson (server rev ")
    assert "  named_doctor_id: Dr Anna" in got
    accepted = shown_to_a_person(hemsync_as("u-dr-anna", "accept", request_id[:8]))
    assert "  accepted_by: Dr Anna" in accepted and "  status: accepted" in accepted
    shown_to_a_person(hemsync_as("u-dr-anna", "progress", request_id[:8], "on_site"))
    noted = shown_to_a_person(hemsync_as("u-dr-anna", "note", request_id[:8], "--assessment", "Pneumoni", "--sign"))
    visit_id = re.search(r"\(visit ([\w-]+),", noted).group(1)[:8]
    signed = shown_to_a_person(hemsync_as("u-dr-anna", "get", "visit", visit_id))
    assert re.search(r"  signed_at: \d{4}-\d\d-\d\d \d\d:\d\d\n", signed) and "  signed_by: Dr Anna" in signed
    assert f"  request_id: visit_request {request_id[:8]}" in signed
    amended = shown_to_a_person(hemsync_as("u-dr-anna", "amend", visit_id, "--text", "Puls 72"))
    assert f"  visit_id: visit {visit_id}" in amended and "  author_id: Dr Anna" in amended
    history = shown_to_a_person(hemsync_as("u-dr-anna", "history", "observation", observation_id[:8]))
    assert re.search(r"\d\d:\d\d  measured_at = 2026-11-25 11:00  by Nurse Cia \(current\)\n", history), history
    shown_to_a_person(hemsync_as("u-dr-anna", "retract", "observation", observation_id[:8], "--reason", "Fel patient"))
    due = shown_to_a_person(hemsync_as("u-dr-anna", "due", "--list", "enrollment_conversation_due", "--date",
                                       "2026-11-20"))
    assert f"  Tolvan Tolvansson ({patient_id[:8]}), Umeå: " in due
    shown_to_a_person(hemsync_as("u-dr-anna", "sync"))
    status = shown_to_a_person(hemsync_as("u-dr-anna", "status"))
    assert re.search(r"last sync:   \d{4}-\d\d-\d\d \d\d:\d\d\n", status)

    # --json keeps the replica's exact values: whole ids, staff ids, UTC times.
    exact = json.loads(hemsync_as("u-dr-anna", "get", "observation", observation_id, "--json"))
    assert (exact["id"], exact["measured_by"], exact["measured_at"]) == (observation_id, "u-nurse-cia", MEASURED)


def test_the_nurses_cancel_prints_the_request_by_patient_name(ward, hemsync_as):
    patient_id, _ = ward
    asked = hemsync_as("u-nurse-cia", "request", patient_id[:8], "--urgency", "planned", "--reason", "Kontroll",
                       "--json")
    cancelled = shown_to_a_person(hemsync_as("u-nurse-cia", "cancel", json.loads(asked)["id"][:8], "--reason",
                                             "Inlagd via 112"))
    assert "of Tolvan Tolvansson" in cancelled and "  status: cancelled" in cancelled


def test_conflicts_and_rejected_changes_show_who_and_when_and_take_their_short_ids(ward, hemsync_as, server,
                                                                                    tmp_path):
    patient_id, _ = ward
    hemsync_as("u-dr-anna", "sync")
    visit = json.loads(hemsync_as("u-dr-anna", "put", "visit", "--data", json.dumps(
        {"patient_id": patient_id, "kind": "home_visit", "assessment": "start"}), "--json"))
    hemsync_as("u-dr-anna", "sync")
    _, token = server.enroll("u-dr-anna")  # the same doctor on her second laptop
    second = Replica(tmp_path / "second.db")
    second.login("http://127.0.0.1:5000", token, server.handshake_for(token))
    client = SyncClient("http://127.0.0.1:5000", token)  # routed to the fake server by `online`
    sync(second, client=client)
    second.write("visit", visit["id"], {"assessment": "från andra datorn"})
    sync(second, client=client)
    hemsync_as("u-dr-anna", "put", "visit", "--data", json.dumps({"id": visit["id"], "assessment": "från första"}))
    hemsync_as("u-dr-anna", "sync")
    listed = shown_to_a_person(hemsync_as("u-dr-anna", "conflicts"))
    conflict_id = json.loads(hemsync_as("u-dr-anna", "conflicts", "--json"))[0]["id"]
    assert listed.startswith(f"conflict {conflict_id} on visit {visit['id'][:8]} of Tolvan Tolvansson "
                             f"({patient_id[:8]}), assessment (medium, open)\n")
    assert re.search(r"    från andra datorn  by Dr Anna at \d{4}-\d\d-\d\d \d\d:\d\d\n", listed)
    resolved = shown_to_a_person(hemsync_as("u-dr-anna", "resolve", conflict_id[:8], "--value", '"enade"'))
    assert "  assessment: enade" in resolved
    hemsync_as("u-dr-anna", "sync")

    # The server rejects the next edit: the list, the record and the archive name it and say when.
    hemsync_as("u-dr-anna", "put", "visit", "--data", json.dumps({"id": visit["id"], "plan": "Doxycyklin"}))
    with Replica(tmp_path / "u-dr-anna.db") as replica:
        [change_id] = reject_unsent(replica, "sealed_record", "this visit is signed and sealed")
    rejected = shown_to_a_person(hemsync_as("u-dr-anna", "rejected"))
    assert rejected.startswith(f"{change_id}: visit {visit['id'][:8]} of Tolvan Tolvansson ({patient_id[:8]})\n"
                               "    plan=Doxycyklin\n")
    assert re.search(r"    rejected at \d{4}-\d\d-\d\d \d\d:\d\d \(sealed_record\)", rejected)
    got = shown_to_a_person(hemsync_as("u-dr-anna", "get", "visit", visit["id"][:8]))
    assert f"  ! change {change_id} was rejected by the server (sealed_record)" in got
    shown_to_a_person(hemsync_as("u-dr-anna", "discard", change_id))
    archived = shown_to_a_person(hemsync_as("u-dr-anna", "rejected", "--archived"))
    assert re.search(r"    discarded at \d{4}-\d\d-\d\d \d\d:\d\d\n", archived)
    second.close()


def test_a_conflict_is_found_by_a_unique_start_of_its_id_and_a_start_several_share_is_refused(doctor, monkeypatch):
    from client_sync.errors import AmbiguousId, ConflictNotFound

    replica, _ = doctor
    two = [(None, {"id": "ab12f00d-0000-4000-8000-000000000001"}), (None, {"id": "ab34f00d-0000-4000-8000-000000000002"})]
    monkeypatch.setattr(replica, "_conflicts", lambda include_resolved=False: two)
    assert replica.find_conflict("ab1")["id"] == two[0][1]["id"]
    assert replica.find_conflict(two[1][1]["id"])["id"] == two[1][1]["id"]
    with pytest.raises(AmbiguousId, match="type more of the id"):
        replica.find_conflict("ab")
    with pytest.raises(ConflictNotFound):
        replica.find_conflict("cd")
