"""`make demo`: three laptops go offline, conflict in every way DOMAIN.md names, come back and agree.

Starts the real server (cheroot, as `serve` runs it, on a free loopback port) on a temporary database
with the demo region, gives Anna Berg and Sara Holm (doctors) and Maria Ek
(nurse, Halmstad) a laptop each, and tells what each merge rule did.
"""

import datetime as dt
import json
import tempfile
import threading
import uuid

from client_sync.errors import ClientError
from client_sync.http import SyncClient
from client_sync.replica import Replica
from client_sync.sync import sync
from schema.errors import HemsyncError
from server import auth, create_app
from server.seed import demo_users, seed_demo
from server.wsgi import make_server


def say(text=""):
    """One line of the demo's account."""
    print(text, flush=True)


def start_server(directory):
    """The real app as `hemsync-server serve` serves it, on 127.0.0.1, with the demo region seeded."""
    app = create_app({"HEMSYNC_DB": f"{directory}/server.db"})
    store = app.extensions["hemsync.store"]
    seed_demo(store, app.config["HEMSYNC"])
    wsgi = make_server(app, host="127.0.0.1", port=0, threads=4)
    wsgi.prepare()
    threading.Thread(target=wsgi.serve, daemon=True).start()
    return store, wsgi, f"http://127.0.0.1:{wsgi.bind_addr[1]}"


def laptop(store, url, directory, user_id, label):
    """A replica logged in as a demo user on a newly enrolled device."""
    _, token = auth.enroll(store, user_id, label)
    replica = Replica(f"{directory}/{label}.db")
    replica.login(url, token, SyncClient(url, token).handshake(0, 0))
    return replica


def full_pull(replica):
    """What the server would hand this laptop now, from an empty cursor."""
    client, wires, cursor = SyncClient(replica.setting("server_url"), replica.setting("token")), {}, None
    while True:
        page = client.pull(cursor)
        wires.update({(w["type"], w["id"]): w for w in page["records"]})
        if not page["more"]:
            return wires
        cursor = page["cursor"]


def held(replica):
    """What the laptop holds as the server's state."""
    return {(t, i): json.loads(w) for t, i, w in replica.conn.execute("SELECT type, id, wire FROM records")}


def attempt(who, what, act):
    """Run a local write; a refusal by the shared rules is part of the story."""
    try:
        act()
        say(f"  {who}: {what}")
    except (HemsyncError, ClientError) as exc:
        say(f"  {who}: {what} -> refused on the laptop, offline: {exc}")


def main():
    """Run the demo."""
    with tempfile.TemporaryDirectory() as directory:
        store, wsgi, url = start_server(directory)
        ids = demo_users()
        anna = laptop(store, url, directory, ids["doctor-anna"], "anna-laptop")
        sara = laptop(store, url, directory, ids["doctor-sara"], "sara-laptop")
        maria = laptop(store, url, directory, ids["nurse-halmstad"], "maria-laptop")
        names = {anna: "Anna Berg (doctor)", sara: "Sara Holm (doctor)", maria: "Maria Ek (nurse)"}
        say(f"hemsync demo: server at {url} with the demo region (Halland)")
        for replica in (anna, sara, maria):
            sync(replica)
            say(f"  {names[replica]} synced: {replica.record_count()} records in scope")

        request = next(r for r in maria.list("visit_request", {"status": "assigned"}))
        pid = request.fields["patient_id"]
        patient = maria.get("patient", pid)
        warning = next(r for r in anna.list("warning", {"patient_id": pid}))
        round_ = next(r for r in anna.list("round", {"municipality": "Halmstad"}) if pid in r.fields["items"])
        medication_id, plan_id = str(uuid.uuid4()), str(uuid.uuid4())
        anna.write("medication", medication_id, {"patient_id": pid, "drug": "Furosemid", "strength": "40 mg",
                                                 "dose": "1 x 1", "route": "oral", "status": "active"})
        anna.write("care_plan", plan_id, {"patient_id": pid, "kind": "care_plan", "content": "Trygghetsplan"})
        sync(anna), sync(sara), sync(maria)
        say(f"\nPatient {patient.fields['name']} (test data). Everyone goes offline and works apart:")

        attempt("Anna", "changes the address", lambda: anna.write("patient", pid, {"address": "Nygatan 1"}))
        attempt("Maria", "changes the address too, and the access notes",
                lambda: maria.write("patient", pid, {"address": "Gamla vägen 2", "access_notes": "Kod 1234"}))
        attempt("Anna", "accepts the assigned acute request and drives off (en_route)",
                lambda: (anna.write("visit_request", request.id, {"status": "accepted"}),
                         anna.write("visit_request", request.id, {"status": "en_route"})))
        attempt("Maria", "cancels her request", lambda: maria.write(
            "visit_request", request.id, {"status": "cancelled", "cancel_reason": "Mår bättre"}))
        attempt("Sara", "tries to accept the same request",
                lambda: sara.write("visit_request", request.id, {"status": "accepted"}))
        attempt("Sara", "deactivates the penicillin warning", lambda: sara.write(
            "warning", warning.id, {"active": False, "deactivation_reason": "Tål amoxicillin"}))
        attempt("Maria", "edits the warning's text",
                lambda: maria.write("warning", warning.id, {"text": "Penicillin: utslag och klåda"}))
        attempt("Anna", "discontinues furosemide", lambda: anna.write(
            "medication", medication_id, {"status": "discontinued", "reason": "Lågt blodtryck"}))
        attempt("Sara", "changes the furosemide dose", lambda: sara.write("medication", medication_id, {"dose": "1 x 2"}))
        attempt("Anna", "writes the care plan", lambda: anna.write("care_plan", plan_id, {"content": "Anna: vätska"}))
        attempt("Maria", "writes the care plan too",
                lambda: maria.write("care_plan", plan_id, {"content": "Maria: trycksår"}))
        attempt("Anna", "notes on the round item",
                lambda: anna.write("round", round_.id, {"items": {pid: {"note": "Anna: öka dos"}}}))
        attempt("Maria", "notes on the round item too",
                lambda: maria.write("round", round_.id, {"items": {pid: {"note": "Maria: sover dåligt"}}}))
        attempt("Maria", "tries to sign a visit", lambda: maria.write("visit", str(uuid.uuid4()), {
            "patient_id": pid, "kind": "home_visit", "signed_at": dt.datetime.now(dt.timezone.utc).isoformat()}))

        say("\nBack online in this order: Maria, Sara, Anna, then everyone once more.")
        for replica in (maria, sara, anna, maria, sara, anna):
            report = sync(replica)
            if report.applied or report.conflicts or report.rejected:
                say(f"  {names[replica]}: sent {report.applied + report.conflicts + len(report.rejected)} "
                    f"change(s), {report.conflicts} raised a conflict, {len(report.rejected)} rejected")

        say("\nWhat each rule did (as every laptop now shows it):")
        shown = anna.get("patient", pid)
        addresses = [h["value"] for h in anna.history("patient", pid) if h["field"] == "address"]
        say(f"  last writer wins: the address shows {shown.fields['address']!r}; "
            f"every value it has had stays in its history ({', '.join(map(repr, addresses))})")
        say(f"  different fields both apply: access notes {shown.fields['access_notes']!r}")
        req = anna.get("visit_request", request.id)
        say(f"  state machine: the request is {req.fields['status']!r} (en_route beats cancelled)"
            + (", with a conflict for the people involved" if req.open_conflicts else ""))
        warn = anna.get("warning", warning.id)
        say(f"  add wins: the warning is active={warn.fields['active']} with text {warn.fields['text']!r}; "
            f"{len(warn.open_conflicts)} conflict(s) for a doctor")
        med = anna.get("medication", medication_id)
        say(f"  discontinued beats: furosemide is {med.fields['status']!r}; "
            f"{len(med.open_conflicts)} high-severity conflict(s)")
        for title, record in (("care plan", anna.get("care_plan", plan_id)), ("round note", anna.get("round", round_.id))):
            for conflict in record.open_conflicts:
                values = " | ".join(repr(v["value"]) for v in conflict["values"])
                say(f"  keep both ({title}): {values}")

        say("\nDo all replicas agree with the server?")
        agree = True
        for replica in (anna, sara, maria):
            same = held(replica) == full_pull(replica)
            agree &= same
            say(f"  {names[replica]}: {replica.record_count()} records, "
                f"{'identical to the server' if same else 'DIFFERENT from the server'}, "
                f"{replica.unsent_count()} change(s) waiting")
        for replica in (anna, sara, maria):
            replica.close()
        wsgi.stop()
        store.close()
        say("All replicas agree." if agree else "The replicas do not agree.")
        raise SystemExit(0 if agree else 1)


if __name__ == "__main__":
    main()
