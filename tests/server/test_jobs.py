"""The escalation job: once per request, at the right time, never for accepted ones, whoever races it.

The clock is the test's: requests are received at a chosen ``now`` and the job
runs at a chosen ``now``.
"""

import datetime as dt
import itertools
import json
import pathlib
import platform
import subprocess
import sys
import textwrap
import threading
import uuid

import pytest
from click.testing import CliRunner

from schema.clock import HybridClock
from schema.identity import make_test_personnummer
from server import auth, jobs, settings
from server.cli import main
from server.jobs import ESCALATION_JOB, escalate_due
from server.push import push
from server.store import SqliteStore, open_store

STOCKHOLM_WINTER = dt.timezone(dt.timedelta(hours=1))
#: Wednesday 9 January 2030, 10:00 Swedish time: a working day, inside working hours.
T = dt.datetime(2030, 1, 9, 10, 0, tzinfo=STOCKHOLM_WINTER)
#: Saturday 12 January 2030, 03:00: out of hours.
SATURDAY_NIGHT = dt.datetime(2030, 1, 12, 3, 0, tzinfo=STOCKHOLM_WINTER)
SETTINGS = settings.load({})


class Clinic:
    """A nurse and a doctor of Halmstad and their devices on one store; changes pushed at a chosen time."""

    def __init__(self, store):
        self.store = store
        self.clock = HybridClock()
        self.serial = itertools.count(900)  # invented test personnummer, one per patient
        self.nurse = self._person("Maria Ek", "nurse")
        self.doctor = self._person("Anna Berg", "doctor")

    def _person(self, name, role):
        auth.add_municipality(self.store, "Halmstad")
        user = auth.add_user(self.store, name, role, ["Halmstad"])
        device, _ = auth.enroll(self.store, user["id"])
        return user, device

    def push(self, who, now, record_type, record_id=None, base=None, **fields):
        """Merge one change of ``who`` received at ``now``; return the record id."""
        user, device = who
        record_id = record_id or str(uuid.uuid4())
        change = {"change_id": str(uuid.uuid4()), "record_type": record_type, "record_id": record_id, "op": None,
                  "hlc": str(self.clock.now()), "base": base or {}, "fields": fields}
        [result] = push(self.store, SETTINGS, device, user, {"changes": [change]}, now=now)["results"]
        assert result["result"] == "applied", result
        return record_id

    def request(self, now, urgency="acute", **patient):
        """A new patient and a request for a doctor, received at ``now``; return the request id."""
        patient_id = self.push(self.nurse, now, "patient", name="Testperson",
                               personnummer=make_test_personnummer(dt.date(1930, 1, 1), next(self.serial)),
                               municipality="Halmstad", **patient)
        return self.push(self.nurse, now, "visit_request", patient_id=patient_id, reason="feber", urgency=urgency)

    def accept(self, request_id, now):
        """The doctor accepts the request."""
        state = self.store.get_record("visit_request", request_id).state
        self.push(self.doctor, now, "visit_request", request_id,
                  base={p: w["version"] for p, w in state["fields"].items()}, status="accepted")

    def field(self, request_id, name):
        """A field of the stored request."""
        write = self.store.get_record("visit_request", request_id).state["fields"].get(name)
        return None if write is None else write["value"]


@pytest.fixture
def store(database):
    """A fresh server store, of each kind (SQLite, PostgreSQL)."""
    made = open_store(database)
    yield made
    made.close()


@pytest.fixture
def clinic(store):
    """A nurse and a doctor on the store."""
    return Clinic(store)


def test_a_request_is_not_escalated_31_minutes_before_its_deadline_and_is_29_minutes_before(clinic, store):
    request_id = clinic.request(T)  # acute: due at 12:00
    assert escalate_due(store, T + dt.timedelta(minutes=89), SETTINGS) == []
    assert clinic.field(request_id, "escalated_at") is None

    at = T + dt.timedelta(minutes=91)
    [entry] = escalate_due(store, at, SETTINGS)

    assert (entry["request_id"], entry["kind"], entry["municipality"]) == (request_id, "deadline", "Halmstad")
    assert entry["details"]["effective_deadline"] == "2030-01-09T11:00:00+00:00"
    assert clinic.field(request_id, "escalated_at") == at.astimezone(dt.timezone.utc).isoformat()


def test_a_request_is_escalated_once_however_often_the_job_runs(clinic, store):
    request_id = clinic.request(T)
    late = T + dt.timedelta(hours=3)
    assert len(escalate_due(store, late, SETTINGS)) == 1
    rev = store.get_record("visit_request", request_id).state["rev"]
    assert escalate_due(store, late, SETTINGS) == []
    assert escalate_due(store, late + dt.timedelta(hours=1), SETTINGS) == []
    assert store.get_record("visit_request", request_id).state["rev"] == rev
    assert [e["request_id"] for e in store.escalations()] == [request_id]


def test_risk_flags_bring_the_escalation_forward_with_the_effective_deadline(clinic, store):
    request_id = clinic.request(T, palliative=True)  # effective deadline 11:30
    assert escalate_due(store, T + dt.timedelta(minutes=59), SETTINGS) == []
    assert [e["request_id"] for e in escalate_due(store, T + dt.timedelta(minutes=61), SETTINGS)] == [request_id]


def test_an_accepted_request_is_not_escalated(clinic, store):
    request_id = clinic.request(T)
    clinic.accept(request_id, T + dt.timedelta(minutes=5))
    assert escalate_due(store, T + dt.timedelta(hours=5), SETTINGS) == []
    assert clinic.field(request_id, "escalated_at") is None


def test_the_escalation_is_a_server_change_in_the_feed_and_in_the_audit_log(clinic, store):
    request_id = clinic.request(T)
    head = store.head()
    escalate_due(store, T + dt.timedelta(hours=2), SETTINGS)
    stored = store.get_record("visit_request", request_id)
    write = stored.state["fields"]["escalated_at"]
    assert (write["by"], write["device_id"]) == ("hemsync-server", "hemsync-server")
    assert stored.seq == store.head() == head + 1  # it reaches laptops through the feed
    kinds = [(e["kind"], e["record_id"]) for e in store.audit_log(limit=1000) if e["record_id"] == request_id]
    assert ("escalation", request_id) in kinds and ("change", request_id) in kinds


def test_a_request_already_in_the_feed_is_not_escalated_again(clinic, store):
    # What a second process finds when the first one's entry got in between its read and its write.
    request_id = clinic.request(T)
    store.add_escalation({"request_id": request_id, "kind": "deadline", "at": T.isoformat(), "details": {}})
    assert escalate_due(store, T + dt.timedelta(hours=2), SETTINGS) == []
    assert clinic.field(request_id, "escalated_at") is None


def test_an_acute_request_out_of_hours_goes_to_the_feed_at_once_for_the_on_call_service(clinic, store):
    acute = clinic.request(SATURDAY_NIGHT)
    clinic.request(SATURDAY_NIGHT, urgency="urgent")
    assert clinic.field(acute, "out_of_hours") is True

    [entry] = escalate_due(store, SATURDAY_NIGHT + dt.timedelta(minutes=1), SETTINGS)

    assert (entry["request_id"], entry["kind"], entry["details"]["out_of_hours"]) == (acute, "out_of_hours", True)
    assert clinic.field(acute, "escalated_at") is None  # its deadline is still far
    assert escalate_due(store, SATURDAY_NIGHT + dt.timedelta(minutes=2), SETTINGS) == []
    [deadline] = escalate_due(store, SATURDAY_NIGHT + dt.timedelta(minutes=95), SETTINGS)
    assert (deadline["request_id"], deadline["kind"]) == (acute, "deadline")


def _race(runners):
    """Start every runner at once; return what each returned."""
    barrier = threading.Barrier(len(runners))
    results = [None] * len(runners)

    def run(n):
        barrier.wait()
        results[n] = runners[n]()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(runners))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_two_scheduler_threads_on_one_store_escalate_each_request_exactly_once(clinic, store):
    requests = {clinic.request(T) for _ in range(5)}
    at = T + dt.timedelta(hours=2)
    results = _race([lambda: escalate_due(store, at, SETTINGS)] * 2)
    assert sorted(e["request_id"] for added in results for e in added) == sorted(requests)
    assert sorted(e["request_id"] for e in store.escalations()) == sorted(requests)
    for request_id in requests:
        state = store.get_record("visit_request", request_id).state
        assert sum(1 for h in state["history"] if h["field"] == "escalated_at") == 0


def test_two_server_processes_on_one_database_escalate_each_request_exactly_once(clinic, store, database):
    requests = {clinic.request(T) for _ in range(5)}
    other = open_store(database)  # a second process's store on the same database
    at = T + dt.timedelta(hours=2)
    try:
        results = _race([lambda: escalate_due(store, at, SETTINGS), lambda: escalate_due(other, at, SETTINGS)])
    finally:
        other.close()
    assert sorted(e["request_id"] for added in results for e in added) == sorted(requests)
    assert len(store.escalations()) == 5
    escalation_changes = [e for e in store.audit_log(limit=1000) if e["kind"] == "escalation"]
    assert len(escalation_changes) == 5


def test_the_scheduler_runs_the_escalation_job_under_its_id_at_the_configured_interval(store):
    scheduler = jobs.scheduler(store, {**SETTINGS, "HEMSYNC_ESCALATION_INTERVAL": 45})
    job = scheduler.get_job(ESCALATION_JOB)
    assert (job.func, job.trigger.interval, job.max_instances) == (jobs.run_escalation, dt.timedelta(seconds=45), 1)
    quiet = jobs.scheduler(store, {**SETTINGS, "HEMSYNC_ESCALATION_INTERVAL": 0})
    assert quiet.get_job(ESCALATION_JOB) is None


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_freed_memory_goes_back_to_the_system_once_a_minute(store):
    job = jobs.scheduler(store, SETTINGS).get_job(jobs.MEMORY_JOB)
    assert (job.func, job.trigger.interval) == (jobs.return_freed_memory, dt.timedelta(seconds=60))
    # In a fresh process: blocks too big for Python's own allocator (so glibc's), freed but every hundredth,
    # the heap a pull page leaves behind.
    program = textwrap.dedent("""
        import os
        from proof.memory import status_kib
        from server.jobs import return_freed_memory
        def rss():
            return status_kib(os.getpid())
        blocks = [bytes(1100) + bytes([i % 256]) for i in range(200_000)]
        kept = blocks[::100]
        del blocks
        before = rss()
        assert return_freed_memory()
        print(before, rss())
    """)
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True,
                          cwd=pathlib.Path(__file__).resolve().parents[2])
    before, after = map(int, done.stdout.split())
    assert before - after > 100_000  # KiB: most of the ~220 MB freed is given back


def test_the_command_line_escalates_and_shows_the_feed_and_the_queue(tmp_path):
    db = tmp_path / "cli.db"
    store = SqliteStore(db)
    try:
        request_id = Clinic(store).request(dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=2))
    finally:
        store.close()
    runner = CliRunner()

    def run(*args):
        result = runner.invoke(main, ["--db", str(db), *args])
        assert result.exit_code == 0, result.output
        return result.output

    assert request_id in run("queue") and request_id in run("queue", "--municipality", "Halmstad")
    assert run("queue", "--municipality", "Laholm").strip() == "no open requests in Laholm"
    assert request_id in run("escalate")
    assert run("escalate").strip() == "nothing to escalate"
    assert request_id in run("escalations")
    entries = json.loads(run("escalations", "--json"))
    assert [e["request_id"] for e in entries if e["kind"] == "deadline"] == [request_id]
