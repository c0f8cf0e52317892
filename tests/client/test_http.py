"""SyncClient: time-outs, retries with backoff and Retry-After, brotli and gzip, typed errors that keep the response."""

import gzip
import json

import brotli
import pytest
import requests

from client_sync.errors import (
    BadServerUrl,
    ClientTooOld,
    ConnectionLost,
    DeviceRevoked,
    ProtocolError,
    RequestRefused,
    ServerFailed,
    Unauthorized,
)
from client_sync.http import DEFAULT_TIMEOUT, SyncClient

from .fake_server import FakeResponse, error


class Script:
    """A session that answers from a list and remembers every request."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.requests = []

    def request(self, method, url, **kwargs):
        self.requests.append((method, url, kwargs))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def client_with(*answers, **options):
    session, sleeps = Script(*answers), []
    client = SyncClient("http://127.0.0.1:5000/", "secret", session=session, sleep=sleeps.append, **options)
    return client, session, sleeps


def test_a_body_goes_out_gzipped_with_the_token_and_the_client_version():
    client, session, _ = client_with(FakeResponse(200, {"accepted": 1}))
    assert client.push_access_log([{"id": "e1"}]) == {"accepted": 1}
    method, url, kwargs = session.requests[0]
    assert (method, url) == ("POST", "http://127.0.0.1:5000/v1/access-log")
    assert json.loads(gzip.decompress(kwargs["data"])) == {"entries": [{"id": "e1"}]}
    assert kwargs["headers"]["Content-Encoding"] == "gzip"
    assert kwargs["headers"]["Accept-Encoding"] == "br, gzip"
    assert kwargs["headers"]["Authorization"] == "Bearer secret"
    assert kwargs["headers"]["X-Hemsync-Client"] == client.client_version
    assert kwargs["timeout"] == DEFAULT_TIMEOUT


@pytest.mark.parametrize("encodings, sent", [(["br", "gzip"], "br"), (["gzip"], "gzip"), (None, "gzip")])
def test_bodies_go_out_in_brotli_only_after_a_handshake_naming_it(encodings, sent):
    answer = {"user": {}, "device": {}} | ({"content_encodings": encodings} if encodings is not None else {})
    client, session, _ = client_with(FakeResponse(200, answer), FakeResponse(200, {"accepted": 1}))
    client.handshake(0, 0)
    client.push_access_log([{"id": "e1"}])
    _, _, kwargs = session.requests[1]
    assert kwargs["headers"]["Content-Encoding"] == sent
    unpack = brotli.decompress if sent == "br" else gzip.decompress
    assert json.loads(unpack(kwargs["data"])) == {"entries": [{"id": "e1"}]}


def test_connection_errors_time_outs_5xx_and_429_are_retried_with_backoff():
    client, session, sleeps = client_with(
        requests.ConnectionError("down"), requests.Timeout("slow"), error(502, "bad_gateway"),
        error(429, "slow_down"), FakeResponse(200, {"records": [], "cursor": "c", "more": False}),
        backoff=1, max_backoff=100)
    assert client.pull()["cursor"] == "c"
    assert len(session.requests) == 5
    assert [0 <= s <= 2 ** n for n, s in enumerate(sleeps)] == [True] * 4


def test_retry_after_is_honoured_up_to_the_longest_backoff_with_jitter_on_top():
    client, _, sleeps = client_with(error(503, "busy", headers={"Retry-After": "7"}),
                                    error(429, "slow", headers={"Retry-After": "120"}),
                                    FakeResponse(200, {}), max_backoff=30)
    client.digest()
    assert 7.0 <= sleeps[0] <= 10.5 and 30.0 <= sleeps[1] <= 45.0
    assert client.asked_to_wait["status"] == 429 and client.asked_to_wait["seconds"] == 30.0


def test_laptops_told_the_same_retry_after_do_not_come_back_in_step():
    sleeps = []
    for _ in range(20):
        client, _, slept = client_with(error(503, "server_busy", headers={"Retry-After": "4"}), FakeResponse(200, {}))
        client.digest()
        sleeps += slept
    assert min(sleeps) >= 4.0 and len(set(sleeps)) == 20


def test_after_the_last_try_a_connection_error_is_connection_lost_keeping_the_cause():
    client, session, _ = client_with(*[requests.ConnectionError("down")] * 3, retries=2)
    with pytest.raises(ConnectionLost) as raised:
        client.handshake(0, 0)
    assert isinstance(raised.value.__cause__, requests.ConnectionError)
    assert len(session.requests) == 3


def test_after_the_last_try_a_5xx_is_a_server_error_with_its_response():
    answer = error(500, "internal_error", "a bug")
    client, _, _ = client_with(answer, answer, retries=1)
    with pytest.raises(ServerFailed) as raised:
        client.pull()
    assert raised.value.response is answer and raised.value.code == "internal_error"


def test_an_answer_cut_short_is_retried():
    class Garbled(FakeResponse):
        def json(self):
            raise json.JSONDecodeError("cut", "", 0)

    client, session, _ = client_with(Garbled(200, {}), FakeResponse(200, {"ok": True}))
    assert client.digest() == {"ok": True}
    client, session, _ = client_with(Garbled(200, {}), retries=0)
    with pytest.raises(ProtocolError):
        client.digest()


@pytest.mark.parametrize("answer, kind", [
    (error(401, "unauthorized"), Unauthorized),
    (error(403, "device_revoked", details={"wipe": True}), DeviceRevoked),
    (error(426, "client_too_old"), ClientTooOld),
    (error(400, "invalid_batch"), RequestRefused),
    (FakeResponse(404, "not json at all"), RequestRefused),
])
def test_error_answers_become_typed_errors_that_keep_code_details_and_response(answer, kind):
    client, session, _ = client_with(answer)
    with pytest.raises(kind) as raised:
        client.push([], 0)
    assert raised.value.response is answer
    assert len(session.requests) == 1  # a 4xx is never retried


@pytest.mark.parametrize("url", ["http://hemsync.region.se", "http://10.0.0.5:5000", "http://127.0.0.1.example.se",
                                 "ftp://hemsync.region.se"])
def test_the_laptop_refuses_plain_http_to_a_server_that_is_not_loopback(url):
    session = Script()
    with pytest.raises(BadServerUrl, match="https://"):
        SyncClient(url, "secret", session=session)
    assert session.requests == []


@pytest.mark.parametrize("url", ["127.0.0.1:5000", "hemsync.region.se", "http://", "https://host:port"])
def test_a_server_address_without_scheme_or_host_is_refused_with_what_to_write(url):
    with pytest.raises(BadServerUrl, match="server address|names no server"):
        SyncClient(url, "secret", session=Script())


@pytest.mark.parametrize("url", ["https://hemsync.region.se/", "http://127.0.0.1:5000", "http://127.8.0.1",
                                 "http://[::1]:5000", "http://localhost:5000"])
def test_https_anywhere_and_plain_http_to_loopback_are_allowed_with_certificates_verified(url):
    client, session, _ = client_with(FakeResponse(200, {}))
    client = SyncClient(url, "secret", session=session)
    client.digest()
    _, sent_to, kwargs = session.requests[0]
    assert sent_to == url.rstrip("/") + "/v1/digest"
    assert "verify" not in kwargs  # requests' default: the server's certificate is verified
