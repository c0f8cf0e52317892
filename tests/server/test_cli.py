"""``hemsync-server``: every command documented with an example, --json for scripts, errors as messages."""

import json

import pytest
from click.testing import CliRunner

from server import create_app
from server.cli import main
from server.seed import MUNICIPALITIES, demo_users


@pytest.fixture
def run(tmp_path):
    """Invoke ``hemsync-server --db <tmp> ARGS``; return (exit code, output)."""
    runner = CliRunner()

    def invoke(*args):
        result = runner.invoke(main, ["--db", str(tmp_path / "cli.db"), *args])
        return result.exit_code, result.output

    return invoke


def test_every_command_says_what_it_does_with_an_example(run):
    code, output = run("--help")
    assert code == 0 and "Example" in output
    for name, command in main.commands.items():
        code, output = run(name, "--help")
        assert code == 0, name
        assert "Example" in output and "hemsync-server" in output, name
        assert command.help.split("\n")[0].strip(), name


def test_every_command_that_prints_takes_json(run):
    for name, command in main.commands.items():
        if name != "serve":
            assert any(p.name == "as_json" for p in command.params), name


def _first_admin(run):
    """The first admin of a new database, who also puts Halmstad on the region's list."""
    code, output = run("add-user", "--name", "Per Nyström", "--role", "admin", "--json")
    assert code == 0, output
    admin = json.loads(output)["id"]
    code, output = run("add-municipality", "Halmstad", "--by", admin)
    assert code == 0, output
    return admin


def test_users_devices_and_revocation_from_the_command_line(run):
    admin = _first_admin(run)
    code, output = run("add-user", "--name", "Maria Ek", "--role", "nurse", "--municipality", "Halmstad",
                       "--by", admin, "--json")
    assert code == 0
    user = json.loads(output)
    assert (user["role"], user["municipalities"]) == ("nurse", ["Halmstad"])
    code, output = run("enroll", "--user", user["id"], "--label", "Marias laptop", "--by", admin, "--json")
    device = json.loads(output)
    assert device["token"] and device["label"] == "Marias laptop"
    code, output = run("devices", "--json")
    [health] = json.loads(output)
    assert health["id"] == device["device_id"] and "token_hash" not in health
    assert run("revoke", "--device", device["device_id"], "--by", admin)[0] == 0
    code, output = run("devices")
    assert "REVOKED" in output
    code, output = run("audit", "--by", admin, "--json")
    assert [(e["details"]["action"], e["user_id"]) for e in json.loads(output)] == [
        ("add_user", admin), ("add_municipality", admin), ("add_user", admin), ("enroll", admin), ("revoke", admin)]


def test_admin_acts_name_the_admin_and_refuse_an_unknown_or_non_admin_by(run):
    admin = _first_admin(run)
    code, output = run("add-user", "--name", "Anna Berg", "--role", "doctor", "--municipality", "Halmstad",
                       "--by", admin, "--json")
    doctor = json.loads(output)["id"]
    for by in ((), ("--by", "nobody"), ("--by", doctor)):
        for act in (("add-user", "--name", "X", "--role", "nurse", "--municipality", "Halmstad"),
                    ("add-user", "--name", "Second admin", "--role", "admin"),
                    ("enroll", "--user", doctor), ("revoke", "--device", "any"),
                    ("audit",), ("quarantine",)):
            code, output = run(*act, *by)
            assert code == 1 and "only an admin may" in output and "--by" in output, (act, by, output)
    code, output = run("enroll", "--user", doctor, "--by", admin, "--json")
    device = json.loads(output)["device_id"]
    entries = json.loads(run("audit", "--by", admin, "--json")[1])
    enrolled = [e for e in entries if e["details"].get("action") == "enroll"]
    assert [(e["user_id"], e["device_id"], e["details"]["for_user"]) for e in enrolled] == [(admin, device, doctor)]


def test_library_errors_become_messages_not_tracebacks(run):
    admin = _first_admin(run)
    code, output = run("add-user", "--name", "X", "--role", "nurse", "--by", admin)
    assert code == 1 and "municipality" in output and "Traceback" not in output
    code, output = run("enroll", "--user", "nobody", "--by", admin)
    assert code == 1 and "no user nobody" in output
    code, output = run("add-user", "--name", "X", "--role", "doctor", "--municipality", "Halmstad", "--hsa-id", "bad",
                       "--by", admin)
    assert code == 1 and "HSA-id" in output


def test_the_demo_seed_covers_halland_and_doubles_nothing_when_run_twice(run, tmp_path):
    from server.store import SqliteStore

    assert run("seed-demo")[0] == 0
    store = SqliteStore(tmp_path / "cli.db")
    head = store.head()
    assert run("seed-demo", "--json")[0] == 0
    assert store.head() == head
    users = store.users()
    assert {u["role"] for u in users} == {"doctor", "nurse", "dispatcher", "admin"}
    assert set().union(*(u["municipalities"] for u in users)) == set(MUNICIPALITIES)
    urgencies = {r.state["fields"]["urgency"]["value"] for r in _all(store, "visit_request")}
    assert urgencies == {"acute", "urgent", "planned"}
    notes = [r.state["fields"]["access_notes"]["value"] for r in _all(store, "patient")]
    assert all(note.startswith("TESTDATA") for note in notes)
    assert store.quarantined() == []
    store.close()


def test_an_admin_corrects_a_personnummer_keeping_the_old_one_and_flagging_a_duplicate(run, tmp_path):
    from server.store import SqliteStore

    run("seed-demo")
    store = SqliteStore(tmp_path / "cli.db")
    patients = {r.state["fields"]["personnummer"]["value"]: r for r in _all(store, "patient")}
    tolvan = patients["191212121212"]
    wrong = next(r for pnr, r in patients.items() if pnr != "191212121212")
    admin = demo_users()["admin-per"]
    code, output = run("correct-personnummer", "--patient", wrong.id, "--personnummer", "19121212-1212",
                       "--reason", "fel vid registrering", "--by", admin, "--json")
    assert code == 0, output
    state = store.get_record("patient", wrong.id).state
    assert state["fields"]["personnummer"]["value"] == "191212121212"
    assert state["fields"]["personnummer"]["by"] == admin
    old = wrong.state["fields"]["personnummer"]["value"]
    assert old in [h["value"] for h in state["history"] if h["field"] == "personnummer"]
    [notice] = [c for c in state["conflicts"] if c["kind"] == "duplicate_patient"]
    [other] = [c for c in store.get_record("patient", tolvan.id).state["conflicts"] if c["kind"] == "duplicate_patient"]
    assert notice["id"] == other["id"] and notice["status"] == "open"
    code, output = run("duplicates", "--by", admin, "--json")
    [conflict] = json.loads(output)
    assert sorted(conflict["patients"]) == sorted([wrong.id, tolvan.id]) and conflict["id"] == notice["id"]
    code, output = run("correct-personnummer", "--patient", wrong.id, "--personnummer", "19121212-1212",
                       "--reason", "x", "--by", demo_users()["doctor-anna"])
    assert code == 1 and "admin" in output
    store.close()


def test_an_admin_merges_duplicate_patients_moving_their_records_and_deleting_nothing(run, tmp_path):
    from server.store import SqliteStore

    run("seed-demo")
    store = SqliteStore(tmp_path / "cli.db")
    patients = {r.state["fields"]["personnummer"]["value"]: r for r in _all(store, "patient")}
    kept = patients["191212121212"]
    duplicate = next(r for r in _all(store, "patient") if r.id != kept.id and store.records_of_patients(
        "visit_request", [r.id]))
    moved = [(r.type, r.id) for name in ("visit_request", "observation", "warning")
             for r in store.records_of_patients(name, [duplicate.id])]
    admin = demo_users()["admin-per"]
    assert run("merge-patients", "--keep", kept.id, "--duplicate", duplicate.id, "--reason", "x",
               "--by", admin)[0] == 1  # not flagged as duplicates: refused
    run("correct-personnummer", "--patient", duplicate.id, "--personnummer", "19121212-1212",
        "--reason", "fel vid registrering", "--by", admin)
    code, output = run("merge-patients", "--keep", kept.id, "--duplicate", duplicate.id,
                       "--reason", "samma person", "--by", admin, "--json")
    assert code == 0, output
    assert json.loads(output)["moved"] >= len(moved) > 0
    for record_type, record_id in moved:
        assert store.get_record(record_type, record_id).state["fields"]["patient_id"]["value"] == kept.id
    gone = store.get_record("patient", duplicate.id).state
    assert gone["fields"]["entered_in_error"]["value"] is True
    assert gone["fields"]["entered_in_error"]["by"] == admin
    for patient_id in (kept.id, duplicate.id):
        [conflict] = [c for c in store.get_record("patient", patient_id).state["conflicts"]
                      if c["kind"] == "duplicate_patient"]
        assert (conflict["status"], conflict["resolution"], conflict["resolved_by"]) == ("resolved", kept.id, admin)
    assert run("duplicates", "--by", admin, "--json")[1].strip() == "[]"
    assert any(e["details"].get("action") == "merge_patients" for e in store.audit_log(duplicate.id, limit=1000))
    store.close()


def _all(store, record_type):
    from server.store import ScopeKeys

    everything = ScopeKeys(full=frozenset(store.patients_in(MUNICIPALITIES)), municipalities=frozenset(MUNICIPALITIES))
    return [r for r in store.records_since(0, everything, 10_000) if r.type == record_type]


def test_init_creates_either_database_and_upgrades_an_older_one(database):
    from server.store import open_store

    runner = CliRunner()
    result = runner.invoke(main, ["--db", database, "init", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["db"] == database
    store = open_store(database)
    full = store.migrations()
    # An older database: a migration (the duplicates table) not yet applied.
    if database.startswith("postgresql://"):
        with store._connection() as conn:
            conn.execute("DROP TABLE duplicates")
            conn.execute("DELETE FROM hemsync_migrations WHERE name = 'm005_duplicates'")
    else:
        store._conn().execute("DROP TABLE duplicates")
        store._conn().execute("DELETE FROM _sqlite_migrations WHERE name = 'm005_duplicates'")
    store.close()
    assert runner.invoke(main, ["--db", database, "init"]).exit_code == 0
    store = open_store(database)
    assert sorted(store.migrations()) == sorted(full) and store.duplicates() == [] and len(store.server_secret()) == 32
    store.close()


def test_the_database_url_setting_chooses_the_store_over_the_database_file(postgres_url, tmp_path, monkeypatch):
    from server.store import PostgresStore

    monkeypatch.setenv("HEMSYNC_DB", str(tmp_path / "unused.db"))
    monkeypatch.setenv("HEMSYNC_DATABASE_URL", postgres_url)
    result = CliRunner().invoke(main, ["init", "--json"])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "unused.db").exists()
    app = create_app({"HEMSYNC_DATABASE_URL": postgres_url})
    assert isinstance(app.extensions["hemsync.store"], PostgresStore)
    app.extensions["hemsync.store"].close()


def test_a_backup_of_the_sqlite_file_is_a_private_copy_and_never_overwrites_one(run, tmp_path):
    from server.store import SqliteStore

    assert run("seed-demo")[0] == 0
    target = tmp_path / "backups" / "copy.db"
    code, output = run("backup", str(target), "--json")
    assert code == 0, output
    original, copy = SqliteStore(tmp_path / "cli.db"), SqliteStore(target)
    assert (copy.head(), len(copy.users())) == (original.head(), len(original.users())) and copy.head() > 0
    assert target.stat().st_mode & 0o077 == 0
    original.close(), copy.close()
    code, output = run("backup", str(target))
    assert code == 1 and "exists already" in output


def test_a_postgresql_database_is_backed_up_with_its_own_tools(postgres_url, tmp_path):
    result = CliRunner().invoke(main, ["--db", postgres_url, "backup", str(tmp_path / "copy.db")])
    assert result.exit_code == 1 and "pg_dump" in result.output


def test_copy_to_moves_everything_to_postgresql_with_its_feed_numbers_and_verifies_it(run, tmp_path, postgres_url):
    from server.store import open_store
    from server.store.copy import table_digests

    assert run("seed-demo")[0] == 0
    admin = demo_users()["admin-per"]
    assert run("audit", "--by", admin)[0] == 0
    code, output = run("copy-to", postgres_url, "--json")
    assert code == 0, output
    source, target = open_store(str(tmp_path / "cli.db")), open_store(postgres_url)
    assert table_digests(target) == table_digests(source)
    assert target.head() == source.head() > 0 and target.server_secret() == source.server_secret()
    # The feed carries on after the copied numbers.
    [patient] = target.get_records("patient", [next(r.id for r in _all(source, "patient"))])
    target.put_record(patient.state, "after-copy")
    assert target.get_record("patient", patient.id).seq == target.head() == source.head() + 1
    code, output = run("copy-to", postgres_url)
    assert code == 1 and "not empty" in output
    source.close(), target.close()


def test_an_admin_enrolls_an_integration_client_whose_token_is_shown_once_and_who_is_no_staff(run, tmp_path):
    admin = _first_admin(run)
    code, output = run("add-client", "--name", "Regionens journal", "--municipality", "halmstad", "--json")
    assert code == 1 and "only an admin may add an integration client" in output
    code, output = run("add-client", "--name", "Regionens journal", "--municipality", "Varbergg", "--by", admin)
    assert code == 1 and "Varbergg" in output and "Traceback" not in output
    code, output = run("add-client", "--name", "Regionens journal", "--municipality", "halmstad", "--by", admin,
                       "--json")
    assert code == 0, output
    client = json.loads(output)
    assert client["municipalities"] == ["Halmstad"] and len(client["token"]) > 30
    code, output = run("devices", "--json")
    assert client["token"] not in output and client["device_id"] in output
    entries = json.loads(run("audit", "--by", admin, "--json")[1])
    assert [(e["details"]["action"], e["user_id"], e["device_id"]) for e in entries][-1] == (
        "add_client", admin, client["device_id"])
    from server import scope
    from server.store import open_store
    store = open_store(tmp_path / "cli.db")
    try:
        assert client["client_id"] not in {u["id"] for u in scope.staff(store)}
    finally:
        store.close()
