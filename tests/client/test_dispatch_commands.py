"""`hemsync queue` and `hemsync suggest`: the dispatch order computed offline from the replica."""

import json

from .conftest import PERSONNUMMER
from .test_cli import login_as, put


def request(hemsync, patient_id, urgency, **more):
    args = ["request", patient_id, "--urgency", urgency, "--reason", "feber", "--json"]
    for name, value in more.items():
        args += [f"--{name}", value]
    return json.loads(hemsync(*args).stdout)


def test_the_laptop_queue_puts_an_emergency_first_and_says_why(hemsync, server):
    login_as(hemsync, server, "u-nurse-cia")
    patient = put(hemsync, "patient", personnummer=PERSONNUMMER, name="Tolvan", municipality="Umeå")
    planned = request(hemsync, patient["id"], "planned")
    red = request(hemsync, patient["id"], "urgent", retts="red")
    queue = json.loads(hemsync("queue", "--json").stdout)
    assert [(e["request_id"], e["position"], e["emergency"]) for e in queue] == [
        (red["id"], 1, True), (planned["id"], 2, False)]
    assert queue[0]["advice"] == "emergency: consider ambulance (112)"
    text = hemsync("queue").stdout
    assert "consider ambulance (112)" in text and text.index(red["id"]) < text.index(planned["id"])
    assert f"request {red['id']} for Tolvan ({patient['id'][:8]})" in text
    assert json.loads(hemsync("queue", "--municipality", "Kiruna", "--json").stdout) == []


def test_opening_the_queue_is_logged_as_opening_the_patients_records(hemsync, server, tmp_path):
    login_as(hemsync, server, "u-nurse-cia")
    patient = put(hemsync, "patient", personnummer=PERSONNUMMER, name="Tolvan", municipality="Umeå")
    request(hemsync, patient["id"], "acute")
    from client_sync.replica import Replica

    with Replica(tmp_path / "laptop.db") as replica:
        before = replica.access_count()
    hemsync("queue")
    with Replica(tmp_path / "laptop.db") as replica:
        assert replica.access_count() == before + 1


def test_suggest_puts_the_patients_named_doctor_first(hemsync, server):
    login_as(hemsync, server, "u-nurse-cia")
    patient = put(hemsync, "patient", personnummer=PERSONNUMMER, name="Tolvan", municipality="Umeå",
                  named_doctor_id="u-dr-bo")
    req = request(hemsync, patient["id"], "urgent")
    hemsync("sync")  # the staff directory comes with the handshake
    found = json.loads(hemsync("suggest", req["id"], "--json").stdout)
    assert [(s["doctor_id"], s["reason"]) for s in found] == [
        ("u-dr-bo", "named doctor (continuity)"), ("u-dr-anna", "same municipality")]
    assert "no visit_request with an id starting 'nope'" in hemsync("suggest", "nope", ok=False).output
