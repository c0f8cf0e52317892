"""Closing the lid mid-write on the laptop's pages loses nothing (issue 11, "safe at the edges of offline").

The pages run as their own process (proof/crash.py's copy of `hemsync ui`,
frozen at a chosen SQL statement of the first page write) and are SIGKILLed
there, at every statement of the write in turn: the write is then wholly in
the replica and its outbox or wholly absent, never half. Then `hemsync ui`
starts again on the same file: its page shows what was kept, a retried write
lands once, and the next sync carries it to the real server.
"""

import re
import sqlite3
import threading
import uuid

import requests

from client_sync.replica import Replica
from client_sync.sync import sync
from tests.live_ui import UiProcess

from .conftest import new_patient, replica_wires, server_wires

ACCEPT = {"step": "accepted"}


def browser_of(ui):
    """A session that opened the launch link as the doctor's browser does, and the CSRF token of today's page."""
    session = requests.Session()
    assert session.get(ui.launch_url, timeout=10).status_code == 200  # it moves on to today's page by itself
    today = session.get(ui.base + "/today", timeout=10)
    assert today.status_code == 200, today.text
    return session, re.search(r'name="csrf_token" value="([^"]+)"', today.text).group(1)


def accept_on_the_page(ui, session, token, request_id):
    """POST the request's "Acceptera" button as the page does; the answer, or None when the process died first."""
    try:
        return session.post(f"{ui.base}/requests/{request_id}/step", data={**ACCEPT, "csrf_token": token},
                            headers={"Origin": ui.base}, allow_redirects=False, timeout=30)
    except requests.ConnectionError:
        return None


def kill_mid_write(path, statement, request_id):
    """Accept on the pages frozen at ``statement`` of the write and SIGKILL them there; True when they froze."""
    with UiProcess.frozen_at(path, statement) as ui:
        session, token = browser_of(ui)
        answers = []
        poster = threading.Thread(target=lambda: answers.append(accept_on_the_page(ui, session, token, request_id)))
        poster.start()
        found = ui.wait_for(r"paused at statement|finished after (\d+) statements")
        ui.kill()
        poster.join(timeout=30)
    return found


def kept_or_absent(path, request_id):
    """'kept' when the acceptance is wholly in the replica and its outbox, 'absent' when wholly not; fail on a half."""
    with Replica(path) as replica:
        accepted = [r for r in replica.outbox() if r["change"]["record_id"] == request_id
                    and r["change"]["fields"].get("status") == "accepted"]
        shown = replica.local("visit_request", request_id).fields
        ops = [r["op"] for r in replica.outbox()]
        assert replica.setting("op", 0) == max(ops, default=0), "the outbox and the operation counter disagree"
        assert len(accepted) <= 1
        assert (shown["status"] == "accepted") == bool(accepted), (shown["status"], accepted)
        assert (shown.get("accepted_by") is not None) == bool(accepted)
        return "kept" if accepted else "absent"


def next_step_offered(ui, session, request_id):
    """The step today's page offers for the request (``accepted`` is its "Acceptera" button)."""
    page = session.get(f"{ui.base}/today", timeout=10).text
    form = page[page.index(f'action="/requests/{request_id}/step"'):]
    return re.search(r'name="step" value="(\w+)"', form[:form.index("</form>")]).group(1)


def copy_of(source, target):
    """A consistent copy of a replica file (SQLite's backup: the write-ahead log included)."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    return target


def assigned_to(nurse, dispatcher, doctor_id, patient_id, reason):
    """A request of the nurse's for the patient, assigned to the doctor by the dispatcher; its id."""
    request_id = str(uuid.uuid4())
    nurse.write("visit_request", request_id, {"patient_id": patient_id, "urgency": "urgent", "reason": reason})
    sync(nurse)
    sync(dispatcher)
    dispatcher.write("visit_request", request_id, {"assigned_doctor_id": doctor_id, "status": "assigned"})
    sync(dispatcher)
    return request_id


def test_the_pages_killed_at_any_statement_of_a_write_keep_it_whole_or_not_at_all_and_a_retry_lands_once(
        laptops, live, tmp_path):
    nurse, dispatcher = laptops("Cia", role="nurse"), laptops("Dan", role="dispatcher")
    patient_id = new_patient(nurse)
    anna = laptops("Anna")
    anna_id = anna.setting("user")["id"]
    first, second = (assigned_to(nurse, dispatcher, anna_id, patient_id, reason) for reason in ("Feber", "Andfådd"))
    sync(anna)
    other = laptops.device_of(anna_id, "Anna's other laptop")  # her second laptop: its own operation numbers
    sync(other)

    # How many statements the page's write takes, then a kill at each of them on a fresh copy.
    whole = kill_mid_write(copy_of(anna.path, tmp_path / "count.db"), 10**6, first)
    statements = int(whole.group(1))
    assert kept_or_absent(tmp_path / "count.db", first) == "kept"
    outcomes = {}
    for statement in range(1, statements + 2):  # the last point: the write done, its answer not yet sent
        path = copy_of(anna.path, tmp_path / f"killed-{statement}.db")
        assert kill_mid_write(path, statement, first).group(0).startswith("paused at")
        outcomes[statement] = kept_or_absent(path, first)
    # Killed before its commit's end the write is not there at all; killed after it, whole.
    assert outcomes == {s: "absent" if s <= statements else "kept" for s in outcomes}, outcomes
    kept_at = statements + 1

    # Killed after the commit: the restarted pages show it accepted; pressing again does not write it twice.
    kept = copy_of(tmp_path / f"killed-{kept_at}.db", tmp_path / "kept.db")
    with UiProcess.hemsync_ui(kept) as ui:
        session, token = browser_of(ui)
        assert next_step_offered(ui, session, first) == "en_route"
        assert accept_on_the_page(ui, session, token, first).status_code == 404  # not the request's next step
    assert kept_or_absent(kept, first) == "kept"

    # Killed before it (on the other laptop): the restarted pages offer it again, and the retry lands once.
    absent = copy_of(other.path, tmp_path / "absent.db")
    assert kill_mid_write(absent, kept_at - 1, second).group(0).startswith("paused at")
    assert kept_or_absent(absent, second) == "absent"
    with UiProcess.hemsync_ui(absent) as ui:
        session, token = browser_of(ui)
        assert next_step_offered(ui, session, second) == "accepted"
        assert accept_on_the_page(ui, session, token, second).status_code == 302
        assert next_step_offered(ui, session, second) == "en_route"
        assert accept_on_the_page(ui, session, token, second).status_code == 404
    assert kept_or_absent(absent, second) == "kept"

    # The next sync of each carries its acceptance to the server, once, and the replicas agree with it.
    for path, request_id in ((kept, first), (absent, second)):
        with Replica(path) as replica:
            sync(replica)
            assert replica.outbox() == [] and replica_wires(replica) == server_wires(live, replica)
            accepted = replica.local("visit_request", request_id)  # the server's state: nothing waits on top
            assert (accepted.fields["status"], accepted.fields["accepted_by"]) == ("accepted", anna_id)
            assert [h["status"] for h in accepted.fields["status_history"]].count("accepted") == 1
