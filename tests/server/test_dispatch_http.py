"""Dispatch over HTTP: the queue, suggestions and the escalation feed, for dispatchers only, audited.

The rules themselves (deadlines at the edges of working hours, NEWS2 bands, the
order) are tested at the pure level in tests/test_dispatch.py; here the requests
are real records merged by the server (received at a controlled ``now`` where
the order depends on it) and the reads are real HTTP.
"""

import datetime as dt

import pytest
import requests

from server.jobs import escalate_due
from server.push import push
from tests.server.conftest import PERSONNUMMER, new_patient, new_request

pytestmark = pytest.mark.both_stores

STOCKHOLM_WINTER = dt.timezone(dt.timedelta(hours=1))
#: Wednesday 9 January 2030, 09:00 Swedish time: a working day, inside working hours.
T = dt.datetime(2030, 1, 9, 9, 0, tzinfo=STOCKHOLM_WINTER)
#: A NEWS2 of 10 with every parameter present: RR 26 (3), SpO2 91 (3), pulse 118 (2), 38.9 °C (1), BP 102 (2).
SICK = {"resp_rate": 26, "spo2": 91, "supplemental_o2": False, "pulse": 118, "temperature": 38.9,
        "systolic_bp": 102, "consciousness": "A"}


def push_at(server, laptop, now, *changes):
    """Push a batch as ``laptop`` with the server's clock at ``now``; assert every change applied."""
    store = server.store
    answer = push(store, server.app.config["HEMSYNC"], store.get_device(laptop.device_id),
                  store.get_user(laptop.user_id), {"pending": 0, "changes": list(changes)}, now=now)
    assert [r["result"] for r in answer["results"]] == ["applied"] * len(changes), answer
    return answer


def get(laptop, path, **params):
    """GET as this laptop; return the response."""
    return laptop.session.get(laptop.server.url + path, params=params, timeout=10)


def ids(answer):
    return [e["request_id"] for e in answer.json()["entries"]]


@pytest.fixture
def patients(region):
    """Patients of Halmstad made by its nurse: plain, palliative, sick (with an observation), red."""
    nurse, made = region.nurse, {}
    for n, name in enumerate(("plain", "palliative", "sick", "red")):
        change = new_patient(nurse, personnummer=PERSONNUMMER[n], palliative=name == "palliative")
        made[name] = change["record_id"]
        push_at(region.server, nurse, T - dt.timedelta(hours=1), change)
    return made


def request_at(region, patient_id, minutes, laptop=None, **fields):
    """An urgent request created ``minutes`` after T; return its id."""
    change = new_request(laptop or region.nurse, patient_id, urgency="urgent", **fields)
    push_at(region.server, laptop or region.nurse, T + dt.timedelta(minutes=minutes), change)
    return change["record_id"]


def test_the_queue_puts_emergencies_then_overrides_then_effective_deadline_then_receipt(region, patients):
    nurse, dispatcher = region.nurse, region.dispatcher
    observation = nurse.change("observation", patient_id=patients["sick"], measured_at=T.isoformat(), **SICK)
    push_at(region.server, nurse, T, observation)
    # Every request is urgent and received the same working day: the same deadline, 16:00.
    late = request_at(region, patients["plain"], 60)
    early = request_at(region, patients["plain"], 0)
    palliative = request_at(region, patients["palliative"], 120)
    overridden = request_at(region, patients["plain"], 180)
    red = request_at(region, patients["red"], 240, retts_colour="red")
    news2 = request_at(region, patients["sick"], 300, observation_id=observation["record_id"])
    dispatcher.sync()
    [result] = dispatcher.push(dispatcher.edit("visit_request", overridden, priority_override=1,
                                               priority_override_reason="relative must leave at 14"))["results"]
    assert result["result"] == "applied"

    answer = get(dispatcher, "/v1/queue")

    assert answer.status_code == 200
    # NEWS2 10 also raises the medium-risk flag: 30 minutes ahead of the red one among emergencies.
    assert ids(answer) == [news2, red, overridden, palliative, early, late]
    by_id = {e["request_id"]: e for e in answer.json()["entries"]}
    assert by_id[news2] == {
        "position": 1, "request_id": news2, "patient_id": patients["sick"], "municipality": "Halmstad",
        "urgency": "urgent", "status": "requested",
        "received_at": "2030-01-09T13:00:00+00:00", "deadline": "2030-01-09T15:00:00+00:00",
        "effective_deadline": "2030-01-09T14:30:00+00:00", "news2": 10, "news2_partial": False,
        "emergency": True, "emergency_reason": "NEWS2 10", "advice": "emergency: consider ambulance (112)",
        "flags": ["news2_medium"], "override": None, "override_reason": None, "escalated_at": None,
        "out_of_hours": False,
        "why": "Emergency (NEWS2 10); due 2030-01-09 15:30 (deadline 2030-01-09 16:00 brought forward 30 min: "
               "news2_medium); received 2030-01-09 14:00.",
    }
    assert (by_id[red]["emergency_reason"], by_id[red]["news2"]) == ("RETTS red", None)
    assert (by_id[overridden]["override"], by_id[overridden]["override_reason"]) == (1, "relative must leave at 14")
    assert by_id[overridden]["why"].startswith("Override rank 1 (relative must leave at 14); due 2030-01-09 16:00")
    assert (by_id[palliative]["flags"], by_id[palliative]["effective_deadline"]) == (
        ["palliative"], "2030-01-09T14:30:00+00:00")
    assert [by_id[r]["position"] for r in (early, late)] == [5, 6]


def test_an_override_without_a_reason_is_rejected_and_changes_nothing(region, patients):
    request_id = request_at(region, patients["plain"], 0)
    region.dispatcher.sync()
    [result] = region.dispatcher.push(region.dispatcher.edit("visit_request", request_id,
                                                             priority_override=1))["results"]
    assert (result["result"], result["error"]["code"]) == ("rejected", "missing_field")
    [entry] = get(region.dispatcher, "/v1/queue").json()["entries"]
    assert (entry["override"], entry["why"]) == (None, "Due 2030-01-09 16:00; received 2030-01-09 09:00.")


def test_requests_pushed_over_http_are_stamped_and_queued_and_one_municipality_can_be_asked_for(region):
    halmstad = new_patient(region.nurse)
    laholm = new_patient(region.laholm_nurse, "Laholm", PERSONNUMMER[1])
    halmstad_request = new_request(region.nurse, halmstad["record_id"], urgency="acute")
    laholm_request = new_request(region.laholm_nurse, laholm["record_id"], urgency="planned")
    region.nurse.push(halmstad, halmstad_request)
    region.laholm_nurse.push(laholm, laholm_request)

    everything = get(region.dispatcher, "/v1/queue")
    only_laholm = get(region.dispatcher, "/v1/queue", municipality="Laholm")

    assert ids(everything) == [halmstad_request["record_id"], laholm_request["record_id"]]
    assert ids(only_laholm) == [laholm_request["record_id"]]
    [entry] = only_laholm.json()["entries"]
    received = dt.datetime.fromisoformat(entry["received_at"])
    assert abs(received - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(minutes=1)
    assert entry["municipality"] == "Laholm" and entry["deadline"] > entry["received_at"]


def test_every_patient_the_queue_shows_is_written_to_the_audit_log(region, patients):
    request_at(region, patients["plain"], 0)
    request_at(region, patients["palliative"], 10)
    assert get(region.dispatcher, "/v1/queue").status_code == 200
    audit = get(region.admin, "/v1/admin/audit").json()["entries"]
    shown = [e for e in audit if e["details"].get("endpoint") == "GET /v1/queue"]
    assert sorted(e["patient_id"] for e in shown) == sorted([patients["plain"], patients["palliative"]])
    assert {(e["kind"], e["user_id"], e["device_id"]) for e in shown} == {
        ("pull", region.dispatcher.user_id, region.dispatcher.device_id)}
    plain = next(e for e in shown if e["patient_id"] == patients["plain"])
    assert f"patient/{patients['plain']}" in plain["details"]["records"]


@pytest.mark.parametrize("role", ["nurse", "doctor", "admin"])
@pytest.mark.parametrize("path", ["/v1/queue", "/v1/escalations", "/v1/requests/any/suggestions"])
def test_only_a_dispatcher_reads_the_queue_suggestions_and_escalations(region, role, path):
    answer = get(getattr(region, role), path)
    assert (answer.status_code, answer.json()["error"]["code"]) == (403, "forbidden")


def test_suggestions_put_the_named_doctor_first_then_the_municipality_by_load_then_others(region):
    bo = region.laptop("bo", "doctor", ["Halmstad"])
    patient = new_patient(region.nurse, named_doctor_id=region.laholm_doctor.user_id)
    busy = new_request(region.nurse, patient["record_id"])
    asked = new_request(region.nurse, patient["record_id"])
    region.nurse.push(patient, busy, asked)
    bo.sync()
    assert bo.push(bo.edit("visit_request", busy["record_id"], status="accepted"))["results"][0]["result"] == \
        "applied"
    region.laptop("cia", "doctor", ["Varberg"])

    answer = get(region.dispatcher, f"/v1/requests/{asked['record_id']}/suggestions")

    assert answer.status_code == 200
    users = {u["id"]: u["name"] for u in region.server.store.users()}
    assert [(users[s["doctor_id"]], s["reason"], s["open_accepted"]) for s in answer.json()["suggestions"]] == [
        ("laholm_doctor", "named doctor (continuity)", 0),
        ("doctor", "same municipality", 0),
        ("bo", "same municipality", 1),
        ("cia", "other", 0),
    ]
    audit = get(region.admin, "/v1/admin/audit", patient_id=patient["record_id"]).json()["entries"]
    assert any(e["details"].get("endpoint", "").endswith("/suggestions") for e in audit)


def test_suggestions_for_a_request_that_is_not_open_are_not_found(region):
    answer = get(region.dispatcher, "/v1/requests/no-such-request/suggestions")
    assert (answer.status_code, answer.json()["error"]["code"]) == (404, "not_found")


def test_the_escalation_feed_is_newest_first_or_after_a_cursor_and_audited(region, patients):
    first = request_at(region, patients["plain"], 0)
    second = request_at(region, patients["palliative"], 0)
    settings = region.server.app.config["HEMSYNC"]
    # The palliative request is due 30 minutes earlier: it is escalated by the first run.
    escalate_due(region.server.store, T.replace(hour=15, minute=2), settings)
    escalate_due(region.server.store, T.replace(hour=15, minute=40), settings)

    newest = get(region.dispatcher, "/v1/escalations").json()
    assert [(e["request_id"], e["kind"]) for e in newest["entries"]] == [(first, "deadline"), (second, "deadline")]
    oldest_id = newest["entries"][-1]["id"]
    after = get(region.dispatcher, "/v1/escalations", after=oldest_id).json()
    assert [e["request_id"] for e in after["entries"]] == [first]
    assert after["next"] == newest["next"] == newest["entries"][0]["id"]
    assert get(region.dispatcher, "/v1/escalations", after=after["next"]).json() == {
        "entries": [], "next": after["next"]}
    entry = newest["entries"][1]
    assert entry["details"]["flags"] == ["palliative"] and entry["municipality"] == "Halmstad"
    audit = get(region.admin, "/v1/admin/audit", patient_id=patients["plain"]).json()["entries"]
    assert [e["kind"] for e in audit if e["details"].get("endpoint") == "GET /v1/escalations"] == ["pull", "pull"]


def test_the_office_endpoints_are_in_the_openapi_document(live_server):
    spec = requests.get(live_server.url + "/openapi.json", timeout=10).json()
    assert {"/v1/queue", "/v1/requests/{request_id}/suggestions", "/v1/escalations", "/v1/digest",
            "/v1/fetch"} <= set(spec["paths"])
