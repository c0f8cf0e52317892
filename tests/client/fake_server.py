"""An in-memory stand-in for the sync server, speaking docs/protocol.md to a SyncClient.

It plugs in as the client's ``session`` (no sockets), merges pushed changes
with the shared schema, serves a change feed and a digest, and can be told to
fail: cut a connection, answer 5xx/429, lose an answer after applying a push.
It is small on purpose: the real server's behaviour is proven by tests/e2e.
"""

import datetime as dt
import gzip
import json
import urllib.parse
import uuid

import requests

from schema.errors import HemsyncError
from schema.merge import Actor, apply_change
from schema.wire import encode_state

from schema.wire import record_digest, scope_digest


class FakeResponse:
    """Just enough of requests.Response for SyncClient."""

    def __init__(self, status, body, headers=None):
        self.status_code = status
        self.headers = headers or {}
        self.text = json.dumps(body)
        # Laid out as the real server writes it (compact UTF-8, records first), so pages split as its do.
        self.content = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        self.reason = "fake"
        self._body = body

    def json(self):
        return self._body


def error(status, code, message="", details=None, headers=None):
    return FakeResponse(status, {"error": {"code": code, "message": message or code, "details": details or {}}},
                        headers)


class FakeServer:
    """A sync server in a dict; ``faults`` is a list of what the next calls do instead of answering."""

    def __init__(self, min_client_version="0.0.0"):
        self.states = {}
        self.seq = {}
        self.head = 0
        self.results = {}
        self.users = {}
        self.devices = {}
        self.tokens = {}
        self.revoked = set()
        self.access_log = []
        self.calls = []
        self.bodies = []
        self.faults = []
        self.purges = {}
        self.min_client_version = min_client_version

    def add_user(self, name, role, municipalities=("Umeå",)):
        user_id = f"u-{name.lower().replace(' ', '-')}"
        self.users[user_id] = {"id": user_id, "name": name, "role": role,
                               "municipalities": list(municipalities), "hsa_id": None}
        return user_id

    def enroll(self, user_id):
        device_id, token = f"d-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
        self.devices[device_id] = user_id
        self.tokens[token] = device_id
        return device_id, token

    def handshake_for(self, token):
        device_id = self.tokens[token]
        return self._handshake(device_id)

    def purge(self, device_id, record_type, record_id):
        """Send this device a purge marker at its next pull (the record left its scope)."""
        self.purges.setdefault(device_id, []).append({"type": record_type, "id": record_id})

    # -- the session interface ---------------------------------------------------

    def request(self, method, url, data=None, params=None, headers=None, timeout=None):
        path = urllib.parse.urlsplit(url).path
        self.calls.append((method, path))
        if self.faults:
            fault = self.faults.pop(0)
            if isinstance(fault, Exception):
                raise fault
            if isinstance(fault, FakeResponse):
                return fault
            if fault == "lose_answer":  # do the work, then the connection drops
                self._answer(method, path, data, params, headers)
                raise requests.ConnectionError("connection cut after the server answered")
        return self._answer(method, path, data, params, headers)

    def _answer(self, method, path, data, params, headers):
        body = None
        if data is not None:
            assert headers["Content-Encoding"] == "gzip"
            body = json.loads(gzip.decompress(data))
            self.bodies.append((path, body))
        token = headers.get("Authorization", "").removeprefix("Bearer ")
        device_id = self.tokens.get(token)
        if device_id is None:
            return error(401, "unauthorized")
        if device_id in self.revoked:
            return error(403, "device_revoked", details={"wipe": True})
        if _version(headers["X-Hemsync-Client"]) < _version(self.min_client_version):
            return error(426, "client_too_old")
        handler = {
            ("POST", "/v1/handshake"): lambda: self._handshake(device_id),
            ("POST", "/v1/access-log"): lambda: self._access(device_id, body),
            ("POST", "/v1/push"): lambda: self._push(device_id, body),
            ("GET", "/v1/pull"): lambda: self._pull(device_id, params),
            ("GET", "/v1/digest"): lambda: self._digest(),
            ("POST", "/v1/fetch"): lambda: self._fetch(body),
        }.get((method, path))
        if handler is None:
            return error(404, "not_found")
        return FakeResponse(200, handler())

    def _handshake(self, device_id):
        return {"server_version": "0.1.0", "min_client_version": self.min_client_version,
                "device": {"id": device_id, "label": None}, "user": self.users[self.devices[device_id]],
                "staff": list(self.users.values()), "server_time": _now().isoformat(),
                "max_clock_ahead_ms": 120_000, "page_size": 2, "max_batch": 100}

    def _access(self, device_id, body):
        known = {e["id"] for e in self.access_log}
        fresh = [{**e, "device_id": device_id} for e in body["entries"] if e["id"] not in known]
        self.access_log += fresh
        return {"accepted": len(fresh)}

    def _push(self, device_id, body):
        actor = Actor(self.devices[device_id], self.users[self.devices[device_id]]["role"])
        results = []
        for change in body["changes"]:
            if change["change_id"] not in self.results:
                self.results[change["change_id"]] = self._merge(change, actor)
            results.append(self.results[change["change_id"]])
        return {"results": results, "server_hlc": max((c["hlc"] for c in body["changes"]), default=None)}

    def _merge(self, change, actor):
        key = (change["record_type"], change["record_id"])
        try:
            outcome = apply_change(self.states.get(key), change, actor, _now())
        except HemsyncError as exc:
            return {"change_id": change["change_id"], "result": "rejected", "error": exc.to_dict()}
        self.states[key] = outcome.state
        self.head += 1
        self.seq[key] = self.head
        return {"change_id": change["change_id"], "result": outcome.result, "hlc": change["hlc"],
                "restamped": False, "conflicts": outcome.conflicts}

    def _pull(self, device_id, params):
        cursor = int(params.get("cursor", 0))
        limit = int(params.get("limit", 100))
        after = sorted((s, k) for k, s in self.seq.items() if s > cursor)
        page = after[:limit]
        purge = self.purges.pop(device_id, [])
        return {"records": [encode_state(self.states[k]) for _, k in page], "purge": purge,
                "cursor": str(page[-1][0] if page else max(cursor, self.head if not after else cursor)),
                "more": len(after) > limit}

    def digests(self):
        return {f"{t}/{i}": record_digest(encode_state(s)) for (t, i), s in self.states.items()}

    def _digest(self):
        digests = self.digests()
        return {"digest": scope_digest(digests), "records": digests}

    def _fetch(self, body):
        keys = [tuple(k.split("/", 1)) for k in body["records"]]
        return {"records": [encode_state(self.states[k]) for k in keys if k in self.states]}


def _version(text):
    return tuple(int(p) for p in text.split(".")[:3] if p.isdigit())


def _now():
    return dt.datetime.now(dt.timezone.utc)
