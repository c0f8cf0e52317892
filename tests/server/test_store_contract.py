"""The storage contract: every Store implementation passes this suite, SQLite and PostgreSQL alike.

Each test gets a fresh store of each kind (``database`` in tests/conftest.py: a new
SQLite file, a new PostgreSQL database); without a reachable PostgreSQL its half skips.
"""

import json
import sqlite3
import threading
import uuid

import psycopg

import pytest

from schema.merge import Actor, apply_change, view
from schema.wire import decode_state
from server.store import PostgresStore, ScopeKeys, UnwaitedFailed, open_store
from server.store.base import ViewCache, encode_wire

NOW = __import__("datetime").datetime(2030, 1, 2, 10, tzinfo=__import__("datetime").timezone.utc)
NURSE = Actor("u-nurse", "nurse")


@pytest.fixture
def store(database):
    """A fresh, empty store of each implementation."""
    made = open_store(database)
    yield made
    made.close()


def _patient(record_id, municipality="Halmstad", personnummer="191212121212", n=1):
    change = {"change_id": f"c-{record_id}-{n}", "record_type": "patient", "record_id": record_id,
              "device_id": "d1", "op": n, "hlc": f"{1_900_000_000_000 + n:016d}-000000", "base": {},
              "fields": {"personnummer": personnummer, "name": "Tolvan", "municipality": municipality}}
    return apply_change(None, change, NURSE, NOW).state


def _user(user_id="u1", role="nurse", municipalities=("Halmstad",)):
    return {"id": user_id, "name": "Maria", "role": role, "municipalities": list(municipalities),
            "hsa_id": None, "created_at": "2030-01-01T00:00:00+00:00"}


def test_users_and_devices_are_found_by_id_and_token_hash(store):
    store.add_user(_user())
    store.add_device({"id": "d1", "user_id": "u1", "label": "laptop", "token_hash": "h1", "created_at": "t"})
    assert store.get_user("u1")["municipalities"] == ["Halmstad"]
    assert store.device_by_token_hash("h1")["id"] == "d1"
    assert store.device_by_token_hash("nope") is None
    store.update_device("d1", {"pending": 3}, {"rejected_count": 2})
    store.update_device("d1", {}, {"rejected_count": 1})
    device = store.get_device("d1")
    assert (device["pending"], device["rejected_count"]) == (3, 3)
    assert [d["user_name"] for d in store.devices()] == ["Maria"]


def test_a_record_written_moves_to_the_head_of_the_feed(store):
    store.put_record(_patient("p1"), "c1")
    first = store.get_record("patient", "p1").seq
    store.put_record(_patient("p2", personnummer="193804029829"), "c2")
    second = store.get_record("patient", "p2").seq
    store.put_record(_patient("p1"), "c3")
    again = store.get_record("patient", "p1").seq
    assert first < second < again == store.head()
    keys = ScopeKeys(full=frozenset({"p1", "p2"}))
    assert [(r.id, r.seq) for r in store.records_since(0, keys, 10)] == [("p2", second), ("p1", again)]
    assert [r.id for r in store.records_since(second, keys, 10)] == ["p1"]
    assert [r.id for r in store.records_since(0, keys, 10, upto=second)] == ["p2"]
    assert store.get_record("patient", "p1").state["fields"]["name"]["value"] == "Tolvan"


def test_scope_keys_select_records_by_patient_type_municipality_and_id(store):
    store.put_record(_patient("p1"), "c1")
    store.put_record(_patient("p2", "Laholm", "193804029829"), "c2")
    assert store.patients_in(["Laholm"]) == ["p2"]
    lite = ScopeKeys(lite=frozenset({"p2"}), lite_types=("warning",))
    assert store.records_since(0, lite, 10) == []
    assert store.records_in(ScopeKeys(full=frozenset({"p2"}))) == [("patient", "p2", "p2", "Laholm")]


def test_request_keys_match_visit_requests_only_even_when_another_record_has_the_same_id(store):
    store.put_record(_patient("same-id"), "c1")
    request = {"change_id": "c2", "record_type": "visit_request", "record_id": "same-id", "device_id": "d1",
               "op": 2, "hlc": f"{1_900_000_000_001:016d}-000000", "base": {},
               "fields": {"patient_id": "other-patient", "reason": "feber", "urgency": "acute"}}
    store.put_record(apply_change(None, request, NURSE, NOW).state, "c2")
    keys = ScopeKeys(requests=frozenset({"same-id"}))
    assert [(r.type, r.id) for r in store.records_since(0, keys, 10)] == [("visit_request", "same-id")]
    assert [row[:2] for row in store.records_in(keys)] == [("visit_request", "same-id")]
    assert keys.covers("visit_request", "same-id", "other-patient", None)
    assert not keys.covers("patient", "same-id", "same-id", "Halmstad")


def test_records_are_found_by_ids_by_their_patients_and_by_their_type(store):
    store.put_record(_patient("p1"), "c1")
    store.put_record(_patient("p2", "Laholm", "193804029829"), "c2")
    assert [r.id for r in store.get_records("patient", ["p2", "p1", "nobody"])] == ["p1", "p2"]
    assert store.get_records("visit_request", ["p1"]) == []
    assert [r.id for r in store.records_of_patients("patient", {"p2"})] == ["p2"]
    assert store.records_of_patients("patient", set()) == []
    assert [r.id for r in store.records_of_type("patient")] == ["p1", "p2"]
    assert store.records_of_type("hospital_stay") == []


def test_field_values_read_the_named_fields_of_every_record_of_a_type_as_json_has_them(store):
    stay = {"change_id": "c3", "record_type": "hospital_stay", "record_id": "s1", "device_id": "d1", "op": 3,
            "hlc": f"{1_900_000_000_002:016d}-000000", "base": {},
            "fields": {"patient_id": "p1", "hospital": "Hallands sjukhus", "admitted_at": "2030-01-01T08:00:00+01:00",
                       "planned": True, "follow_up": "Hb om en vecka"}}
    store.put_record(apply_change(None, stay, NURSE, NOW).state, "c3")
    store.put_record(_patient("p2", "Laholm", "193804029829"), "c2")
    assert store.field_values("hospital_stay", ("planned", "admitted_at", "discharged_at")) == [
        {"id": "s1", "patient_id": "p1", "planned": True, "admitted_at": "2030-01-01T08:00:00+01:00"}]
    assert store.field_values("patient", ("municipality",)) == [
        {"id": "p2", "patient_id": "p2", "municipality": "Laholm"}]
    assert store.field_values("visit", ("kind",)) == []
    with pytest.raises(ValueError, match="no field colour"):
        store.field_values("hospital_stay", ("colour",))


def test_the_escalation_feed_holds_a_request_and_kind_once(store):
    entry = {"request_id": "r1", "kind": "deadline", "patient_id": "p1", "municipality": "Halmstad",
             "at": "2030-01-02T10:00:00+00:00", "details": {"why": "due"}}
    first = store.add_escalation(entry)
    assert first is not None
    assert store.add_escalation({**entry, "at": "2030-01-02T10:01:00+00:00"}) is None
    second = store.add_escalation({**entry, "kind": "out_of_hours"})
    third = store.add_escalation({**entry, "request_id": "r2", "municipality": "Laholm"})
    assert [e["id"] for e in store.escalations()] == [third, second, first]
    assert [e["id"] for e in store.escalations(after=first)] == [second, third]
    assert [e["id"] for e in store.escalations(limit=1)] == [third]
    assert [e["request_id"] for e in store.escalations(municipality="Laholm")] == ["r2"]
    assert store.escalations(after=first, limit=1)[0]["details"] == {"why": "due"}


def test_patients_are_found_by_personnummer(store):
    store.put_record(_patient("p1"), "c1")
    store.put_record(_patient("p2"), "c2")
    assert [r.id for r in store.patients_with_personnummer("191212121212")] == ["p1", "p2"]


def test_a_transaction_commits_whole_or_not_at_all(store):
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.put_record(_patient("p1"), "c1")
            store.audit([{"kind": "change", "patient_id": "p1"}])
            raise RuntimeError("crash")
    assert (store.head(), store.get_record("patient", "p1"), store.audit_log()) == (0, None, [])
    with store.transaction():
        store.put_record(_patient("p1"), "c1")
    assert store.get_record("patient", "p1") is not None


def _change_row(change_id, record_id="p1"):
    return {"change_id": change_id, "device_id": "d1", "user_id": "u1", "op": 1, "record_type": "patient",
            "record_id": record_id, "original_hlc": "h", "hlc": "h", "result": {"result": "applied"}}


@pytest.mark.parametrize("failing", ["a write the database refuses", "an error in the block"])
def test_a_savepoint_that_fails_leaves_no_trace_and_the_transaction_goes_on(store, failing):
    # Push's savepoint per change: on PostgreSQL its writes are pipelined, so the refused write
    # surfaces only when the savepoint ends; what it wrote before must be undone all the same.
    store.save_change(_change_row("c1"))
    with store.transaction():
        with pytest.raises((RuntimeError, sqlite3.IntegrityError, psycopg.IntegrityError)):
            with store.savepoint():
                store.put_record(_patient("p1"), "c2")
                store.audit([{"kind": "change", "patient_id": "p1"}])
                if failing == "an error in the block":
                    raise RuntimeError("a bug in a merge")
                store.save_change(_change_row("c1"))  # c1 is taken: the primary key refuses it
        with store.savepoint():
            store.put_record(_patient("p2", personnummer="193804029829"), "c3")
            store.audit([{"kind": "change", "patient_id": "p2"}])
            store.save_change(_change_row("c3", "p2"))
    assert store.get_record("patient", "p1") is None
    assert [e["patient_id"] for e in store.audit_log()] == ["p2"]
    assert [r.id for r in store.records_since(0, ScopeKeys(full=frozenset({"p1", "p2"})), 10)] == ["p2"]
    assert store.get_change("c3")["record_id"] == "p2"


def test_a_write_refused_among_unwaited_writes_fails_them_all_where_the_store_does_not_wait(store):
    # PostgreSQL sends a push's writes unwaited: the refused one aborts those after it unseen, so
    # the whole is refused (push then applies the batch again, waiting); SQLite waits anyway.
    store.save_change(_change_row("c1"))
    refused = UnwaitedFailed if isinstance(store, PostgresStore) else sqlite3.IntegrityError
    with pytest.raises(refused):
        with store.transaction(), store.unwaited():
            with store.savepoint():
                store.put_record(_patient("p1"), "c2")
                store.save_change(_change_row("c1"))  # c1 is taken: the primary key refuses it
            store.put_record(_patient("p2", personnummer="193804029829"), "c3")
    assert (store.get_record("patient", "p1"), store.get_record("patient", "p2"), store.head()) == (None, None, 0)


def test_changes_keep_their_result_and_rejections_are_found_by_reference(store):
    store.save_change({"change_id": "c1", "device_id": "d1", "user_id": "u1", "op": 1, "record_type": "patient",
                       "record_id": "p1", "original_hlc": "h", "hlc": "h", "result": {"result": "rejected"}})
    store.quarantine({"change_id": "c1", "device_id": "d1", "user_id": "u1", "record_type": "patient",
                      "record_id": "p1", "code": "invalid_value", "message": "m", "change": {"x": 1},
                      "error": {"code": "invalid_value"}})
    assert store.get_change("c1")["result"] == {"result": "rejected"}
    assert store.rejected_refs("d1", {"c1", "c9"}, {"p1"}) == {"c1", "p1"}
    assert store.rejected_refs("d2", {"c1"}, {"p1"}) == set()
    store.put_record(_patient("p1"), "c2")
    assert store.rejected_refs("d1", set(), {"p1"}) == set()
    assert store.quarantined()[0]["change"] == {"x": 1}


def test_the_stored_changes_among_many_ids_are_found_in_one_look_up(store):
    for change_id in ("c1", "c2", "c\x00"):
        store.save_change({"change_id": change_id, "device_id": "d1", "user_id": "u1", "op": 1,
                           "record_type": "patient", "record_id": "p1", "original_hlc": "h", "hlc": "h",
                           "result": {"change_id": change_id, "result": "applied"}})
    found = store.get_changes(["c2", "c9", "c1", "c\x00"])
    assert sorted(found) == ["c\x00", "c1", "c2"]  # a NUL is kept, or on PostgreSQL found as U+FFFD
    assert found["c2"] == store.get_change("c2") and found["c2"]["result"]["result"] == "applied"
    assert store.get_changes([]) == {}


def test_the_recent_audit_is_newest_first_and_filters_by_patient_and_by_user(store):
    store.audit([{"kind": "pull", "patient_id": "p1", "user_id": "u1"}, {"kind": "pull", "patient_id": "p2", "user_id": "u1"},
                 {"kind": "pull", "patient_id": "p1", "user_id": "u2"}, {"kind": "access", "patient_id": "p1", "user_id": "u1"}])
    assert [(e["kind"], e["user_id"]) for e in store.recent_audit(patient_id="p1")] == [
        ("access", "u1"), ("pull", "u2"), ("pull", "u1")]
    assert [e["patient_id"] for e in store.recent_audit(user_id="u1", limit=2)] == ["p1", "p2"]
    assert [e["kind"] for e in store.recent_audit(patient_id="p1", user_id="u2")] == ["pull"]


def test_the_audit_log_skips_entries_whose_key_it_has_and_filters_by_patient(store):
    assert store.audit([{"kind": "access", "patient_id": "p1", "key": "k1"},
                        {"kind": "pull", "patient_id": "p2"}]) == 2
    assert store.audit([{"kind": "access", "patient_id": "p1", "key": "k1"}]) == 0
    assert [e["kind"] for e in store.audit_log(patient_id="p1")] == ["access"]
    first = store.audit_log()[0]["id"]
    assert [e["patient_id"] for e in store.audit_log(after=first)] == ["p2"]


def test_scopes_are_stored_once_by_content(store):
    keys = ScopeKeys(full=frozenset({"a", "b"}), municipalities=frozenset({"Halmstad"}), lite_types=("patient",))
    assert store.save_scope(keys) == store.save_scope(ScopeKeys(**{**keys.__dict__}))
    assert store.get_scope(store.save_scope(keys)) == keys


def test_device_holdings_are_held_and_released(store):
    store.hold("d1", [("patient", "p1"), ("patient", "p1")])
    assert store.holds("d1", "patient", "p1") and not store.holds("d2", "patient", "p1")
    store.release("d1", [("patient", "p1")])
    assert not store.holds("d1", "patient", "p1")


def test_many_holdings_and_audit_entries_are_written_whole_and_in_order(store):
    pairs = [("visit", f"v{n}'\"{n}") for n in range(450)]  # past one statement's rows, quotes and all
    store.hold("d1", pairs + pairs[:10])
    assert all(store.holds("d1", t, i) for t, i in pairs)
    store.release("d1", pairs[:250])
    assert [store.holds("d1", t, i) for t, i in pairs] == [False] * 250 + [True] * 200
    entries = [{"kind": "pull", "patient_id": f"p{n}", "change_id": i, "key": f"k{n}", "details": {"n": n}}
               for n, (_, i) in enumerate(pairs)]
    assert store.audit(entries + entries[:5]) == 450
    logged = store.audit_log(limit=1000)
    assert [(e["patient_id"], e["change_id"], e["details"]) for e in logged] == [
        (f"p{n}", i, {"n": n}) for n, (_, i) in enumerate(pairs)]


def test_the_server_clock_persists(store):
    assert store.clock() is None
    store.save_clock("0000000000000001-000000")
    store.save_clock("0000000000000002-000000")
    assert store.clock() == "0000000000000002-000000"


def test_writers_on_several_threads_are_serialised_without_losing_a_write(store):
    def write(n):
        with store.transaction():
            store.put_record(_patient(f"p{n}", personnummer="191212121212"), f"c{n}")

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.head() == 8


# --- several processes on one database ------------------------------------------------------
# A second store opened on the same database is what a second server process has: its own
# connections, nothing shared in memory.

@pytest.fixture
def stores(database):
    """Two stores on one fresh database, as two server processes have."""
    first, second = open_store(database), open_store(database)
    yield first, second
    first.close()
    second.close()


def _waits(thread, seconds=0.5):
    """True when ``thread`` is still blocked after ``seconds``."""
    thread.join(timeout=seconds)
    return thread.is_alive()


def test_a_reader_never_sees_a_feed_number_past_one_that_commits_later(database, stores):
    first, second = stores
    reader = open_store(database)
    keys = ScopeKeys(full=frozenset({"p1", "p2"}))
    took_number, release_first = threading.Event(), threading.Event()
    seqs = {}

    def early_but_slow():
        with first.transaction():
            first.put_record(_patient("p1"), "c1")
            seqs["first"] = first.get_record("patient", "p1").seq
            took_number.set()
            release_first.wait(10)

    def late_but_quick():
        with second.transaction():
            second.put_record(_patient("p2", personnummer="193804029829"), "c2")
            seqs["second"] = second.get_record("patient", "p2").seq

    slow = threading.Thread(target=early_but_slow)
    slow.start()
    assert took_number.wait(10)
    quick = threading.Thread(target=late_but_quick)
    quick.start()
    try:
        # The second writer cannot draw a number while the first's is uncommitted ...
        assert _waits(quick) and "second" not in seqs
        # ... so a reader between the two sees neither, and its cursor stays before both.
        assert (reader.head(), reader.records_since(0, keys, 10)) == (0, [])
    finally:
        release_first.set()
        slow.join(10)
        quick.join(10)
        reader.close()
    assert seqs["first"] < seqs["second"]
    assert [r.id for r in first.records_since(0, keys, 10)] == ["p1", "p2"]


def test_the_server_clock_never_goes_back_when_two_processes_advance_it(stores):
    def advance(store, times):
        for _ in range(times):
            with store.transaction():
                last = store.clock() or "0000000000000000-000000"
                millis, _, counter = last.partition("-")
                store.save_clock(f"{millis}-{int(counter) + 1:06d}")

    threads = [threading.Thread(target=advance, args=(s, 25)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Each read-advance-save happened under the lock: no two saw the same clock.
    assert stores[0].clock() == "0000000000000000-000050"


def test_device_counters_lose_no_increment_from_two_processes(stores):
    stores[0].add_user(_user())
    stores[0].add_device({"id": "d1", "user_id": "u1", "label": "l", "token_hash": "h1", "created_at": "t"})

    def count(store):
        for _ in range(20):
            store.update_device("d1", {"pending": 1}, {"rejected_count": 1, "op_gaps": 2})

    threads = [threading.Thread(target=count, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    device = stores[1].get_device("d1")
    assert (device["rejected_count"], device["op_gaps"]) == (40, 80)


def test_two_processes_escalate_a_request_once(stores):
    entry = {"request_id": "r1", "kind": "deadline", "patient_id": "p1", "municipality": "Halmstad",
             "at": "2030-01-02T10:00:00+00:00", "details": {}}
    together, results = threading.Barrier(2), []

    def escalate(store):
        together.wait(10)
        with store.transaction():
            results.append(store.add_escalation(entry))

    threads = [threading.Thread(target=escalate, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(None) == 1
    assert len(stores[0].escalations()) == 1


def test_the_store_applies_the_named_migrations(store):
    assert store.migrations() == ["m001_initial", "m002_op_gaps", "m002_escalations", "m003_municipalities",
                                  "m004_server_secret", "m005_duplicates", "m006_passwords",
                                  "m007_audit_by_user", "m008_records_by_patient_and_seq"]


def test_two_processes_given_the_same_retried_batch_apply_it_once(stores):
    from server import auth, push, settings

    first, second = stores
    auth.add_municipality(first, "Halmstad")
    user = auth.add_user(first, "Maria", "nurse", ["Halmstad"])
    device, _ = auth.enroll(first, user["id"], "laptop")
    change = {"change_id": f"{device['id']}-1", "record_type": "patient", "record_id": str(uuid.uuid4()),
              "device_id": device["id"], "op": 1, "hlc": f"{int(NOW.timestamp() * 1000):016d}-000000",
              "base": {}, "fields": {"personnummer": "191212121212", "name": "Tolvan", "municipality": "Halmstad"}}
    body = {"pending": 0, "changes": [change]}
    values, together, answers = settings.load(environ={}), threading.Barrier(2), []

    def receive(store):
        together.wait(10)
        answers.append(push.push(store, values, store.get_device(device["id"]), user, body, now=NOW))

    threads = [threading.Thread(target=receive, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a["results"] for a in answers] == [answers[0]["results"]] * 2
    assert answers[0]["results"][0]["result"] == "applied"
    assert first.head() == 1
    audited = [e for e in second.audit_log(limit=100) if e["change_id"] == change["change_id"]]
    assert len(audited) == len({e["kind"] for e in audited}) >= 1
    assert second.get_device(device["id"])["last_op"] == 1


def _raw(store, statement):
    """Run one SQL statement on the store's own connection, as a careless tool would."""
    if hasattr(store, "_pool"):
        with store._connection() as conn:
            conn.execute(statement)
    else:
        store._conn().execute(statement)


@pytest.mark.parametrize("statement", [
    "UPDATE audit SET kind = 'x'", "DELETE FROM audit", "UPDATE escalations SET kind = 'x'",
    "DELETE FROM escalations", "DELETE FROM records",
])
def test_the_database_refuses_to_rewrite_the_audit_log_the_escalation_feed_or_records(store, statement):
    store.put_record(_patient("p1"), "c1")
    store.audit([{"kind": "access", "patient_id": "p1"}])
    store.add_escalation({"request_id": "r1", "kind": "deadline", "at": "t", "details": {}})
    with pytest.raises(Exception, match="append only|never deleted"):
        _raw(store, statement)
    assert (len(store.audit_log()), len(store.escalations()), store.head()) == (1, 1, 1)


def test_a_database_that_cannot_be_reached_is_named_without_its_password():
    from server.errors import StoreError
    from server.store.postgres import redacted

    assert redacted("postgresql://hemsync:s3cret@db.example:5432/hemsync") == \
        "postgresql://hemsync:***@db.example:5432/hemsync"
    with pytest.raises(StoreError, match=r"could not connect to postgresql://hemsync:\*\*\*@127\.0\.0\.1:9/x") as caught:
        open_store("postgresql://hemsync:s3cret@127.0.0.1:9/x?connect_timeout=2")
    assert "s3cret" not in str(caught.value)


def test_a_postgresql_session_stuck_inside_a_transaction_cannot_hold_the_write_lock_for_long(postgres_url):
    store = open_store(postgres_url)
    try:
        with store.transaction():
            assert store._rows("SHOW idle_in_transaction_session_timeout")[0] == {
                "idle_in_transaction_session_timeout": "1min"}
    finally:
        store.close()


def test_a_transaction_cut_off_by_a_database_restart_is_undone_and_the_next_one_works(postgres_url):
    import psycopg

    from server.errors import DatabaseUnavailable

    store = open_store(postgres_url)
    try:
        # Answered 503 database_unavailable with Retry-After, not a 500 (tests/server/test_database_restart.py
        # restarts a real PostgreSQL).
        with pytest.raises(DatabaseUnavailable):
            with store.transaction():
                store.put_record(_patient("p1"), "c1")
                # What a restart does to the server's sessions: each ended, its transaction rolled back.
                with psycopg.connect(postgres_url, autocommit=True) as admin:
                    admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE datname = current_database() AND pid <> pg_backend_pid()")
                store.put_record(_patient("p2", personnummer="193804029829"), "c2")
        assert store.head() == 0
        store.put_record(_patient("p1"), "c1")
        assert store.get_record("patient", "p1").seq > 0
    finally:
        store.close()


def test_text_with_a_nul_character_is_kept_and_found_on_either_store(store):
    assert store.audit([{"kind": "rejected", "patient_id": "p\x00", "details": {"why": "a\x00b"}}]) == 1
    [entry] = store.audit_log(patient_id="p\x00")
    # SQLite keeps the NUL; PostgreSQL's text cannot hold one and keeps U+FFFD in its place.
    assert entry["patient_id"] in ("p\x00", "p\ufffd") and entry["details"] == {"why": "a\x00b"}
    assert store.get_record("patient", "p\x00") is None and store.get_change("c\x00") is None


def test_the_view_cache_keeps_the_most_recently_used_views_within_its_budget_of_text():
    wires = [encode_wire(_patient(f"p{n}", municipality)) for n, municipality in
             enumerate(("Halmstad", "Laholm", "Falkenberg", "Varberg"))]
    cache = ViewCache(budget=sum(len(w) for w in wires[:3]) + 5)  # "Varberg" is a letter longer than "Laholm"
    views = [cache.view(wire) for wire in wires[:3]]
    assert views[0] == view(decode_state(json.loads(wires[0])))
    assert [cache.view(wire) for wire in wires[:3]] == views and cache.view(wires[1]) is views[1]  # kept
    cache.view(wires[0])
    cache.view(wires[2])
    cache.view(wires[3])  # over the budget: the least recently used, wires[1], goes
    count, chars = cache.held()
    assert (count, chars <= cache.budget) == (3, True)
    assert cache.view(wires[0]) is views[0] and cache.view(wires[2]) is views[2]
    assert cache.view(wires[1]) is not views[1]  # made again
