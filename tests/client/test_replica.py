"""The replica on real SQLite files: local writes, the outbox, pulled pages, wipe, migrations."""

import contextlib
import json
import os
import sqlite3
import stat
import subprocess
import sys
import threading
import uuid

import pytest

from client_sync.errors import NotLoggedIn, OtherUser, RecordNotFound
from client_sync.lock import sync_lock
from client_sync.http import split_page
from client_sync.replica import COLUMNS, INDEXED, LISTED, MIGRATIONS, Replica
from client_sync.sync import sync
from schema.wire import record_digest
from schema.clock import Hlc
from schema.errors import Forbidden, InvalidRecord
from schema.merge import Actor, apply_change
from schema import records
from schema.wire import encode_state
from server.pull import Page
from server.store.base import encode_wire

from .conftest import PERSONNUMMER


def new_patient(replica, **extra):
    patient_id = str(uuid.uuid4())
    replica.write("patient", patient_id,
                  {"personnummer": PERSONNUMMER, "name": "Tolvan Tolvansson", "municipality": "Umeå", **extra})
    return patient_id


def server_state(changes, actor=Actor("u-dr-bo", "doctor")):
    """A server state made by merging ``changes`` (dicts of fields) as Dr Bo from another device."""
    import datetime as dt

    state, record_id = None, str(uuid.uuid4())
    for n, fields in enumerate(changes, 1):
        change = {"change_id": str(uuid.uuid4()), "record_type": "patient", "record_id": record_id,
                  "device_id": "d-bo", "op": n, "hlc": str(Hlc(1_900_000_000_000 + n)),
                  "base": {p: w["version"] for p, w in state["fields"].items()} if state else {},
                  "fields": fields}
        state = apply_change(state, change, actor, dt.datetime.now(dt.timezone.utc)).state
    return state


def test_a_local_write_shows_at_once_and_waits_in_the_outbox(doctor):
    replica, _ = doctor
    patient_id = new_patient(replica)
    record = replica.get("patient", patient_id)
    assert record.fields == {"id": patient_id, "personnummer": "191212121212", "name": "Tolvan Tolvansson",
                             "municipality": "Umeå"}
    assert record.version is None
    assert [c["op"] for c in record.pending] == [1]
    assert replica.unsent_count() == 1


def test_a_change_carries_the_base_of_every_field_it_saw_pending_writes_included(doctor):
    replica, _ = doctor
    patient_id = new_patient(replica)
    first = replica.outbox()[0]["change"]
    replica.write("patient", patient_id, {"phone": "090-123456"})
    second = replica.outbox()[1]["change"]
    assert first["base"] == {}
    assert second["base"] == {"personnummer": first["change_id"], "name": first["change_id"],
                              "municipality": first["change_id"]}
    assert second["op"] == first["op"] + 1
    assert Hlc.parse(second["hlc"]) > Hlc.parse(first["hlc"])
    assert second["device_id"] == replica.device_id()


def test_a_write_the_rules_refuse_writes_nothing(doctor):
    replica, _ = doctor
    patient_id = new_patient(replica)
    with pytest.raises(Forbidden, match="may not create visit_request"):
        replica.write("visit_request", str(uuid.uuid4()),
                      {"patient_id": patient_id, "reason": "fever", "urgency": "acute"})
    with pytest.raises(InvalidRecord):
        replica.write("patient", patient_id, {"spo2_scale": 3})
    assert replica.unsent_count() == 1
    assert replica.setting("op") == 1


def test_the_replica_refuses_writes_before_a_login(tmp_path):
    with Replica(tmp_path / "fresh.db") as replica, pytest.raises(NotLoggedIn):
        replica.write("patient", str(uuid.uuid4()), {"name": "x"})


def test_every_opening_of_patient_records_is_logged_locally(doctor):
    replica, _ = doctor
    patient_id = new_patient(replica)
    visit_id = str(uuid.uuid4())
    replica.write("visit", visit_id, {"patient_id": patient_id, "kind": "home_visit"})
    replica.get("patient", patient_id)
    replica.list("visit")
    replica.history("visit", visit_id)
    entries = replica.access_entries(100)
    # Each write shows the written record back, so it is an opening too.
    assert [(e["patient_id"], e["record_type"], e["record_id"]) for e in entries] == [
        (patient_id, "patient", patient_id), (patient_id, "visit", visit_id),
        (patient_id, "patient", patient_id), (patient_id, "visit", visit_id), (patient_id, "visit", visit_id)]


def test_get_of_an_unknown_record_says_so(doctor):
    replica, _ = doctor
    with pytest.raises(RecordNotFound):
        replica.get("patient", str(uuid.uuid4()))


def test_list_filters_on_field_values_as_text(doctor):
    replica, _ = doctor
    kept = new_patient(replica, palliative=True, spo2_scale=2)
    new_patient(replica, palliative=False)
    assert [r.id for r in replica.list("patient", {"palliative": "true", "spo2_scale": "2"})] == [kept]


def test_a_pulled_page_and_its_cursor_commit_together_or_not_at_all(doctor):
    replica, _ = doctor
    state = server_state([{"personnummer": PERSONNUMMER, "name": "A", "municipality": "Umeå"}])

    def crash():
        raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):
        replica.apply_page([encode_state(state)], [], "7", before_commit=crash)
    assert replica.record_count() == 0
    assert replica.setting("cursor") is None
    replica.apply_page([encode_state(state)], [], "7")
    assert replica.record_count() == 1
    assert replica.setting("cursor") == "7"


def test_pulled_times_move_the_device_clock_past_them(doctor):
    replica, _ = doctor
    state = server_state([{"personnummer": PERSONNUMMER, "name": "A", "municipality": "Umeå"}])
    far = state["fields"]["name"]["hlc"]
    replica.apply_page([encode_state(state)], [], "1")
    replica.write("patient", state["id"], {"name": "B"})
    assert Hlc.parse(replica.outbox()[-1]["change"]["hlc"]) > Hlc.parse(far)


def test_fields_and_keys_a_newer_server_sends_are_kept(doctor):
    replica, _ = doctor
    state = server_state([{"personnummer": PERSONNUMMER, "name": "A", "municipality": "Umeå"}])
    wire = encode_state(state)
    wire["fields"]["favourite_colour"] = "blue"
    wire["writes"][0][4].append("favourite_colour")
    wire["shiny_new_key"] = {"kept": True}
    replica.apply_page([wire], [], "1")
    assert replica.get("patient", state["id"]).fields["favourite_colour"] == "blue"
    stored = json.loads(replica.conn.execute("SELECT wire FROM records").fetchone()[0])
    assert stored == wire
    assert replica.digests() == {f"patient/{state['id']}": record_digest(wire)}


def _region_states():
    """Records of every kind a page carries: all of the follow-up's types, a round with an open conflict."""
    from tests.followup_region import build
    from tests.merging import Laptop, sequence

    doctor, nurse = Laptop("dev-doc", "doc-a", "doctor"), Laptop("dev-nurse", "nurse-1", "nurse")
    item = {"question": "smärta?", "status": "open", "note": "ny"}
    create = doctor.change("round", str(uuid.uuid4()), {"facility": "Solgården", "municipality": "Halmstad",
                                                        "date": "2026-11-25", "items": {"p1": item}})
    created, _ = sequence(None, [create], {"dev-doc": doctor.actor})
    doctor.see(created), nurse.see(created)
    round_, _ = sequence(created, [nurse.change("round", create["record_id"], {"items": {"p1": {"note": "ont"}}}),
                                   doctor.change("round", create["record_id"], {"items": {"p1": {"note": "sov"}}})],
                         {"dev-doc": doctor.actor, "dev-nurse": nurse.actor})
    assert [c["status"] for c in round_["conflicts"]] == ["open"]
    return [*build().states.values(), round_]


def _rows(replica):
    return {(t, i): (json.loads(w), rest) for t, i, w, *rest in replica.conn.execute(
        f"SELECT type, id, wire, rev, open_conflicts, patient_id, {', '.join(COLUMNS)} FROM records")}


def test_a_page_stored_as_shipped_holds_what_each_record_decoded_and_stored_alone_holds(doctor, tmp_path):
    replica, _ = doctor
    states = _region_states()
    page = Page([encode_wire(s) for s in states], [], "c1", False).to_json()
    split = split_page(page)
    assert split["records"] == [encode_state(s) for s in states] and split["cursor"] == "c1"
    replica.apply_page(split["records"], [], "c1", texts=split["record_texts"])
    with Replica(tmp_path / "one-by-one.db") as alone:
        for state in states:
            alone.apply_page([json.loads(encode_wire(state))], [], "c1")
        assert _rows(replica) == _rows(alone)
        newest = max(Hlc.parse(w["hlc"]) for s in states for w in s["fields"].values())
        assert Hlc.parse(replica.setting("hlc")) >= newest and Hlc.parse(alone.setting("hlc")) >= newest
        for state in states:
            assert replica.local(state["type"], state["id"]) == alone.local(state["type"], state["id"])
    # The columns are the ones the merge state gives, as the server derives its own.
    for state in states:
        wire, (rev, open_conflicts, patient_id, *columns) = _rows(replica)[(state["type"], state["id"])]
        index = records.get(state["type"]).index_values(state)
        listed = [(state["fields"].get(name) or {}).get("value") for name in LISTED]
        assert (wire, rev, open_conflicts) == (encode_state(state), state["rev"],
                                               sum(c["status"] == "open" for c in state["conflicts"]))
        assert [patient_id, *columns] == [index["patient_id"], *(index[c] for c in INDEXED), *listed]
    assert {c for _, (_, (_, _, _, *columns)) in _rows(replica).items() for c in columns[-1:]} == {None, True}


def test_a_page_laid_out_otherwise_is_parsed_whole_and_a_garbled_one_refused():
    states = _region_states()[:3]
    spaced = json.dumps({"records": [encode_state(s) for s in states], "purge": [], "cursor": "c", "more": False})
    assert split_page(spaced) == {**json.loads(spaced), "record_texts": None}
    page = Page([encode_wire(s) for s in states], [], "c", True).to_json()
    twice = page[:-1] + ',"records":[]}'
    assert split_page(twice) == {**json.loads(twice), "record_texts": None}
    for garbled in (page[:-1], page[:len(page) // 2], page.replace('"fields"', '"fields":', 1), page + "x"):
        with pytest.raises(ValueError):
            split_page(garbled)
    empty = Page([], [], "c", False).to_json()
    assert split_page(empty) == {"records": [], "purge": [], "cursor": "c", "more": False, "record_texts": []}


def test_a_malformed_record_fails_its_whole_page(doctor):
    replica, _ = doctor
    good, bad = (encode_state(s) for s in _region_states()[:2])
    bad["writes"][0][4].append("nowhere")
    with pytest.raises(ValueError):
        replica.apply_page([good, bad], [], "c1", texts=[json.dumps(good), json.dumps(bad)])
    assert replica.record_count() == 0 and replica.setting("cursor") is None


def test_a_purge_marker_removes_the_record(doctor):
    replica, _ = doctor
    state = server_state([{"personnummer": PERSONNUMMER, "name": "A", "municipality": "Umeå"}])
    replica.apply_page([encode_state(state)], [], "1")
    replica.apply_page([], [{"type": "patient", "id": state["id"]}], "2")
    assert replica.local("patient", state["id"]) is None


def test_local_edits_show_on_top_of_the_server_state(doctor):
    replica, _ = doctor
    state = server_state([{"personnummer": PERSONNUMMER, "name": "A", "municipality": "Umeå"}])
    replica.apply_page([encode_state(state)], [], "1")
    record = replica.write("patient", state["id"], {"address": "Storgatan 1", "phone": None})
    assert record.fields["address"] == "Storgatan 1"
    assert record.fields["phone"] is None
    assert record.version == 1


def test_wipe_deletes_all_patient_data_and_the_token(doctor):
    replica, _ = doctor
    new_patient(replica)
    replica.get("patient", replica.outbox()[0]["change"]["record_id"])
    report = replica.wipe()
    assert (report.records, report.unsent_changes, report.access_log) == (0, 1, 2)  # the write and the get
    for table in ("records", "outbox", "rejected", "rejected_archive", "access_log", "staff"):
        assert replica.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0
    assert replica.setting("token") is None
    for path in (replica.path, replica.path + "-wal"):
        with open(path, "rb") as file:
            assert b"Tolvan" not in file.read()


def test_logging_in_as_someone_else_is_refused_while_changes_wait(doctor, server):
    replica, _ = doctor
    new_patient(replica)
    _, token = server.enroll("u-dr-bo")
    with pytest.raises(OtherUser):
        replica.login("http://127.0.0.1:5000", token, server.handshake_for(token))
    assert replica.setting("user")["id"] == "u-dr-anna"


def test_an_old_replica_upgrades_itself_and_keeps_its_data(tmp_path):
    path = tmp_path / "old.db"
    import sqlite_utils

    db = sqlite_utils.Database(path)
    MIGRATIONS.apply(db, stop_before="0002_lookup_indexes")
    db["settings"].insert({"key": "cursor", "value": json.dumps("42")})
    db.close()
    with Replica(path) as replica:
        assert replica.setting("cursor") == "42"
        names = [m.name for m in MIGRATIONS.applied(replica.db)]
        assert names == ["0001_initial", "0002_lookup_indexes", "0003_unsent_index", "0004_rejected_archive",
                         "0005_index_columns"]
        assert "idx_records_patient_id_type_id" in {i.name for i in replica.db["records"].indexes}
        assert "idx_outbox_acked_op" in {i.name for i in replica.db["outbox"].indexes}


def test_a_replica_from_before_the_index_columns_fills_them_from_the_records_it_holds(tmp_path):
    import sqlite_utils

    from schema.change import make_change
    from schema.merge import SYSTEM

    path = tmp_path / "old.db"
    db = sqlite_utils.Database(path)
    MIGRATIONS.apply(db, stop_before="0005_index_columns")
    change = make_change("visit_request", "r1", {"patient_id": "p1", "reason": "Feber", "urgency": "urgent",
                                                 "status": "assigned", "assigned_doctor_id": "u-dr-anna"},
                         state=None, change_id="c1", hlc=str(Hlc(1_700_000_000_000, 0)), device_id="d1")
    state = apply_change(None, change, Actor("u-disp", SYSTEM.role), Hlc(1_700_000_000_000, 0).time).state
    db["records"].insert({"type": "visit_request", "id": "r1", "patient_id": "p1", "rev": 1, "open_conflicts": 0,
                          "wire": json.dumps(encode_state(state))})
    db.close()
    with Replica(path) as replica:
        row = replica.conn.execute("SELECT status, assignee FROM records WHERE id = 'r1'").fetchone()
        assert row == ("assigned", "u-dr-anna")
        assert [r.id for r in replica.local_naming("visit_request", "u-dr-anna", statuses=["assigned"])] == ["r1"]
        assert replica.local_naming("visit_request", "u-dr-anna", statuses=["completed"]) == []
        assert replica.local_naming("visit_request", "u-dr-anna", statuses=[None]) == []
        replica.conn.execute("UPDATE records SET status = NULL WHERE id = 'r1'")  # as a type without a status
        assert [r.id for r in replica.local_naming("visit_request", "u-dr-anna", statuses=[None, "done"])] == ["r1"]


def test_two_connections_never_half_see_a_write(doctor):
    replica, _ = doctor
    other = sqlite3.connect(replica.path)
    with replica.transaction():
        new_patient(replica)
        assert other.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0
    assert other.execute("SELECT count(*) FROM outbox").fetchone()[0] == 1
    other.close()


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_every_file_the_laptop_creates_is_owner_only(tmp_path, server):
    path = tmp_path / "new" / "replica.db"
    with Replica(path) as replica:
        _, token = server.enroll("u-dr-anna")
        replica.login("http://127.0.0.1:5000", token, server.handshake_for(token))
        new_patient(replica)
        with sync_lock(replica.path):
            made = sorted(p.name for p in path.parent.iterdir())
            modes = {name: _mode(path.parent / name) for name in made}
    assert made == ["replica.db", "replica.db-shm", "replica.db-wal", "replica.db.sync-lock",
                    "replica.db.sync-lock-journal"]
    assert modes == dict.fromkeys(made, 0o600)
    assert _mode(path.parent) == 0o700


def test_a_replica_left_readable_by_others_is_made_owner_only_when_opened(tmp_path):
    path = tmp_path / "old.db"
    with Replica(path) as replica:
        replica.set_setting("token", "secret")
        for name in (path, f"{path}-wal", f"{path}-shm"):
            os.chmod(name, 0o644)
        with Replica(path):
            assert {_mode(n) for n in (path, f"{path}-wal", f"{path}-shm")} == {0o600}


PATIENT_NAME = b"Zebulon Quackenbush"  # distinctive: found in the bytes only if a copy survived
HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN")
conn.execute("SELECT count(*) FROM records").fetchall()
print("reading", flush=True)
sys.stdin.readline()           # hold the read transaction until told
conn.execute("COMMIT")
print("idle", flush=True)
sys.stdin.readline()           # keep the connection open, idle, until told
"""


@contextlib.contextmanager
def another_process_reading(path):
    """A second process with the replica open in a read transaction; ``.release()`` ends the transaction."""
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline() == "reading\n"

    def release():
        process.stdin.write("\n")
        process.stdin.flush()
        assert process.stdout.readline() == "idle\n"

    process.release = release
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def copies_of_the_name(path):
    """How often the patient's name appears in the replica file, its WAL and its shared-memory file."""
    found = {}
    for suffix in ("", "-wal", "-shm", "-journal"):
        if os.path.exists(f"{path}{suffix}"):
            with open(f"{path}{suffix}", "rb") as file:
                found[suffix or "db"] = file.read().count(PATIENT_NAME)
    return found


def with_patients(replica, count=20):
    for _ in range(count):
        replica.write("patient", str(uuid.uuid4()), {"personnummer": PERSONNUMMER, "name": PATIENT_NAME.decode(),
                                                     "municipality": "Umeå"})
    state = server_state([{"personnummer": PERSONNUMMER, "name": PATIENT_NAME.decode(), "municipality": "Umeå"}])
    replica.apply_page([encode_state(state)], [], "1")
    assert sum(copies_of_the_name(replica.path).values()) > 0


def test_a_wipe_leaves_no_patient_text_in_the_file_while_another_process_holds_it_open(doctor):
    replica, _ = doctor
    with_patients(replica)
    with another_process_reading(replica.path) as other:
        threading.Timer(1.0, other.release).start()  # the other process finishes its read a second later
        report = replica.wipe(wait=20)
        assert report.scrubbed
        assert copies_of_the_name(replica.path) == {"db": 0, "-wal": 0, "-shm": 0}
    assert replica.setting("scrub_pending") is None


def test_a_wipe_another_process_blocks_says_so_and_the_next_opening_finishes_it(doctor):
    replica, _ = doctor
    with_patients(replica)
    with another_process_reading(replica.path):
        report = replica.wipe(wait=0.2)
        assert not report.scrubbed and replica.setting("scrub_pending") is True
        assert replica.record_count() == 0  # the rows are gone at once; old copies wait in the WAL
    replica.close()
    with Replica(replica.path) as reopened:
        assert reopened.setting("scrub_pending") is None
        assert set(copies_of_the_name(reopened.path).values()) == {0}


def test_logging_in_as_someone_else_wipes_like_a_revoked_laptop(doctor, server):
    replica, _ = doctor
    with_patients(replica)
    replica.record_results([{"change_id": c["change"]["change_id"], "result": "applied"} for c in replica.outbox()])
    replica.finish_pull()
    with another_process_reading(replica.path) as other:
        threading.Timer(1.0, other.release).start()
        _, token = server.enroll("u-dr-bo")
        report = replica.login("http://127.0.0.1:5000", token, server.handshake_for(token), wait=20)
        assert report.scrubbed and report.records == 1
        assert copies_of_the_name(replica.path) == {"db": 0, "-wal": 0, "-shm": 0}
    assert replica.setting("user")["id"] == "u-dr-bo"


def test_the_listed_fields_come_from_the_stored_columns_with_local_changes_replayed_on_top(doctor, nurse):
    (anna, ca), (cia, cc) = doctor, nurse
    first, second = new_patient(cia), new_patient(cia, name="Testa Testsson")
    sync(cia, client=cc)
    sync(anna, client=ca)
    assert anna.local_fields("patient", ["name", "personnummer"]) == {
        first: {"id": first, "name": "Tolvan Tolvansson", "personnummer": "191212121212"},
        second: {"id": second, "name": "Testa Testsson", "personnummer": "191212121212"}}
    anna.write("patient", second, {"name": "Testa Andersson"})
    assert anna.local_fields("patient", ["name"])[second]["name"] == "Testa Andersson"
    assert [p.fields["name"] for p in anna.local_in("patient", [second])] == ["Testa Andersson"]
    with pytest.raises(ValueError):
        anna.local_fields("patient", ["address"])
