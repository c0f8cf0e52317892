"""Tokens, revocation, the handshake and old clients, over real HTTP."""

import json

import pytest
import requests

from server.auth import hash_token

from .conftest import CLIENT_VERSION, new_patient

# Every test here runs against the SQLite store and the PostgreSQL store.
pytestmark = pytest.mark.both_stores

V1_CALLS = (("post", "/v1/handshake", {}), ("post", "/v1/push", {"changes": []}), ("get", "/v1/pull", None),
            ("post", "/v1/access-log", {"entries": []}), ("get", "/v1/admin/audit", None))


def _call(server, method, path, body, headers):
    return requests.request(method, server.url + path, json=body, headers=headers)


@pytest.mark.parametrize("method,path,body", V1_CALLS)
def test_a_call_without_a_known_token_is_unauthorized(live_server, method, path, body):
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic abc"}):
        response = _call(live_server, method, path, body, {**headers, "X-Hemsync-Client": CLIENT_VERSION})
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("method,path,body", V1_CALLS)
def test_a_revoked_device_is_told_to_wipe_on_every_call(region, method, path, body):
    nurse = region.nurse
    region.server.revoke(nurse.device_id)
    response = _call(region.server, method, path, body, dict(nurse.session.headers))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "device_revoked"
    assert response.json()["error"]["details"]["wipe"] is True


def test_a_revoked_device_pushes_nothing_and_keeps_its_last_reported_waiting_count(region):
    nurse = region.nurse
    nurse.post("/v1/handshake", {"pending": 4, "rejected": 1})
    region.server.revoke(nurse.device_id)
    response = nurse.post("/v1/push", {"pending": 0, "changes": [new_patient(nurse)]})
    assert response.status_code == 403
    assert region.server.store.head() == 0
    health = region.admin.session.get(region.server.url + "/v1/admin/devices").json()["devices"]
    mine = next(d for d in health if d["id"] == nurse.device_id)
    assert (mine["pending"], bool(mine["revoked_at"])) == (4, True)


def test_an_old_client_is_told_to_upgrade_and_nothing_of_its_batch_is_applied(tmp_path):
    from tests.live_server import start_live_server

    with start_live_server(tmp_path, min_client_version="2.0") as server:
        user = server.add_user("Maria Ek", "nurse", ["Halmstad"])
        _, token = server.enroll(user)
        for version in ("1.9.9", None, "banana"):
            headers = {"Authorization": f"Bearer {token}"} | ({"X-Hemsync-Client": version} if version else {})
            response = requests.post(server.url + "/v1/push", json={"changes": []}, headers=headers)
            assert response.status_code == 426
            error = response.json()["error"]
            assert error["code"] == "client_too_old"
            assert "upgrade" in error["message"]
            assert error["details"]["min_client_version"] == "2.0"
        ok = requests.post(server.url + "/v1/handshake", json={},
                           headers={"Authorization": f"Bearer {token}", "X-Hemsync-Client": "2.0.1"})
        assert ok.status_code == 200


def test_the_handshake_records_the_outbox_and_returns_identity_staff_and_limits(region):
    nurse = region.nurse
    response = nurse.post("/v1/handshake", {"pending": 3, "rejected": 2})
    assert response.status_code == 200
    body = response.json()
    assert body["device"]["id"] == nurse.device_id
    assert body["user"]["id"] == nurse.user_id
    assert body["user"]["role"] == "nurse"
    assert body["max_clock_ahead_ms"] == 120_000
    assert body["min_client_version"] == "0.1.0"
    assert {s["role"] for s in body["staff"]} == {"doctor", "nurse", "dispatcher", "admin"}
    assert all(set(s) == {"id", "name", "role", "municipalities", "hsa_id"} for s in body["staff"])
    device = region.server.store.get_device(nurse.device_id)
    assert (device["pending"], device["reported_rejected"], device["client_version"]) == (3, 2, CLIENT_VERSION)


def test_a_token_is_stored_only_as_its_hash(region):
    device = region.server.store.get_device(region.nurse.device_id)
    assert device["token_hash"] == hash_token(region.nurse.token)
    assert region.nurse.token not in region.server.database_text()


def test_admin_endpoints_are_for_admins_only(region):
    for path in ("/v1/admin/audit", "/v1/admin/devices", "/v1/admin/quarantine"):
        response = region.doctor.session.get(region.server.url + path)
        assert (response.status_code, response.json()["error"]["code"]) == (403, "forbidden")
        assert region.admin.session.get(region.server.url + path).status_code == 200


def test_device_health_never_shows_tokens_or_their_hashes(region):
    devices = region.admin.session.get(region.server.url + "/v1/admin/devices").json()["devices"]
    assert devices and all("token_hash" not in d and "token" not in d for d in devices)


def _auth_failures(server):
    return [e for e in server.store.audit_log(limit=10_000) if e["kind"] == "auth_failed"]


def test_failed_and_revoked_token_attempts_are_audited_without_the_token(region):
    server, nurse = region.server, region.nurse
    headers = {"X-Hemsync-Client": CLIENT_VERSION}
    requests.post(server.url + "/v1/push", json={"changes": []}, headers=headers)
    requests.post(server.url + "/v1/push", json={"changes": []},
                  headers={**headers, "Authorization": "Bearer guessed-token-123"})
    server.revoke(nurse.device_id)
    requests.get(server.url + "/v1/pull", headers=dict(nurse.session.headers))
    entries = _auth_failures(server)
    assert [(e["details"]["reason"], e["details"]["endpoint"], e["details"]["address"]) for e in entries] == [
        ("missing", "POST /v1/push", "127.0.0.1"), ("unknown", "POST /v1/push", "127.0.0.1"),
        ("revoked", "GET /v1/pull", "127.0.0.1")]
    assert entries[1]["details"]["token_sha256_prefix"] == hash_token("guessed-token-123")[:12]
    assert (entries[2]["device_id"], entries[2]["user_id"]) == (nurse.device_id, nurse.user_id)
    logged = json.dumps(entries)
    assert "guessed-token-123" not in logged and nurse.token not in logged
    assert hash_token(nurse.token) not in logged  # a prefix at most


def test_after_a_few_failed_authentications_an_address_is_answered_429_with_retry_after(tmp_path):
    from tests.live_server import start_live_server

    with start_live_server(tmp_path, auth_failures=3, auth_lockout_seconds=30) as server:
        user = server.add_user("Maria Ek", "nurse", ["Halmstad"])
        _, token = server.enroll(user)
        bad = {"Authorization": "Bearer wrong", "X-Hemsync-Client": CLIENT_VERSION}
        statuses = [requests.post(server.url + "/v1/handshake", json={}, headers=bad).status_code for _ in range(3)]
        assert statuses == [401, 401, 401]
        locked = requests.post(server.url + "/v1/handshake", json={}, headers=bad)
        assert (locked.status_code, locked.json()["error"]["code"]) == (429, "too_many_requests")
        assert 0 < int(locked.headers["Retry-After"]) <= 30
        # While locked out, the address gets no answer about any token, a right one included.
        good = {"Authorization": f"Bearer {token}", "X-Hemsync-Client": CLIENT_VERSION}
        assert requests.post(server.url + "/v1/handshake", json={}, headers=good).status_code == 429
        failures = _auth_failures(server)
        assert len(failures) == 3 and [e["details"]["locked_out"] for e in failures] == [False, False, True]
        assert requests.get(server.url + "/healthz").status_code == 200  # only /v1/ needs a token


def test_the_failure_throttle_locks_out_longer_while_failures_go_on_and_keeps_bounded_memory():
    from server.auth import AuthThrottle
    from server.errors import TooManyRequests

    now = [1000.0]
    throttle = AuthThrottle(max_failures=2, lockout_seconds=10, max_addresses=100, clock=lambda: now[0])
    assert [throttle.failed("10.0.0.1") for _ in range(2)] == [False, True]
    with pytest.raises(TooManyRequests) as locked:
        throttle.check("10.0.0.1")
    assert locked.value.retry_after == 10
    now[0] += 11
    throttle.check("10.0.0.1")  # waited: may try again
    throttle.failed("10.0.0.1")
    with pytest.raises(TooManyRequests) as longer:
        throttle.check("10.0.0.1")
    assert longer.value.retry_after == 20
    now[0] += 1000  # a long quiet spell: forgotten
    assert throttle.failed("10.0.0.1") is False
    for n in range(5000):
        throttle.failed(f"192.0.2.{n}")
    assert len(throttle) == 100
