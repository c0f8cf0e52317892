"""One JSON error shape with stable codes; brotli and gzip both ways; the size limit after decompression."""

import gzip
import json
import pathlib
import re

import brotli
import requests

from server.errors import ERROR_STATUS

from .conftest import new_patient
import pytest

pytestmark = pytest.mark.both_stores

PROTOCOL = pathlib.Path(__file__).parents[2] / "docs" / "protocol.md"


def _assert_error(response, status, code):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]


def test_the_error_code_table_matches_docs_protocol(live_server):
    text = PROTOCOL.read_text()
    documented = dict(re.findall(r"^\| `([a-z_]+)` \| (\d{3}) \|", text, re.MULTILINE))
    assert {code: int(status) for code, status in documented.items()} == ERROR_STATUS


def test_every_per_change_code_of_the_schema_is_documented():
    from schema import errors

    text = PROTOCOL.read_text()
    per_change = set(re.findall(r"`([a-z_]+)`", text.split("Per-change codes", 1)[1].split("\n\n")[0]))
    codes = {cls.code for cls in vars(errors).values() if isinstance(cls, type)
             and issubclass(cls, errors.HemsyncError) and cls is not errors.HemsyncError}
    assert codes | {"unknown_field", "missing_field", "forbidden_field", "unknown_municipality",
                    "record_too_large"} == per_change


def test_unknown_paths_and_wrong_methods_answer_in_the_error_shape(live_server):
    _assert_error(requests.get(live_server.url + "/nowhere"), 404, "not_found")
    _assert_error(requests.delete(live_server.url + "/healthz"), 405, "method_not_allowed")


def test_malformed_json_is_refused_whole(region):
    nurse = region.nurse
    headers = {**nurse.session.headers, "Content-Type": "application/json"}
    for body in (b"{", b"", b"\xff\xfe", b"[1, 2"):
        _assert_error(requests.post(region.server.url + "/v1/push", data=body, headers=headers), 400,
                      "malformed_json")
    bad_gzip = requests.post(region.server.url + "/v1/push", data=b"not gzip",
                             headers={**headers, "Content-Encoding": "gzip"})
    _assert_error(bad_gzip, 400, "malformed_json")
    for bad_brotli in (b"not brotli", brotli.compress(b'{"changes": []}')[:-2]):
        _assert_error(requests.post(region.server.url + "/v1/push", data=bad_brotli,
                                    headers={**headers, "Content-Encoding": "br"}), 400, "malformed_json")


@pytest.mark.parametrize("encoding, compress, accepted", [
    ("gzip", gzip.compress, "gzip"),
    ("br", brotli.compress, "gzip, br"),  # brotli is preferred whatever the order the client lists them in
])
def test_a_compressed_body_is_read_and_the_answer_given_in_the_encoding_accepted(region, encoding, compress,
                                                                                  accepted):
    nurse = region.nurse
    body = compress(json.dumps({"changes": [new_patient(nurse)]}).encode())
    response = requests.post(region.server.url + "/v1/push", data=body, headers={
        **nurse.session.headers, "Content-Type": "application/json", "Content-Encoding": encoding,
        "Accept-Encoding": accepted})
    assert response.status_code == 200
    assert response.json()["results"][0]["result"] == "applied"
    openapi = requests.get(region.server.url + "/openapi.json", headers={"Accept-Encoding": accepted})
    assert openapi.headers["Content-Encoding"] == encoding


def test_the_handshake_names_the_body_encodings_the_server_reads(region):
    handshake = requests.post(region.server.url + "/v1/handshake", headers=region.nurse.session.headers)
    assert handshake.json()["content_encodings"] == ["br", "gzip"]


def test_a_body_over_the_limit_is_413_counted_after_decompression(tmp_path):
    from tests.live_server import start_live_server

    with start_live_server(tmp_path, max_body_bytes=2000) as server:
        user = server.add_user("Maria Ek", "nurse", ["Halmstad"])
        _, token = server.enroll(user)
        headers = {"Authorization": f"Bearer {token}", "X-Hemsync-Client": "0.1.0",
                   "Content-Type": "application/json"}
        big = json.dumps({"changes": [], "padding": " " * 5000}).encode()
        _assert_error(requests.post(server.url + "/v1/push", data=big, headers=headers), 413, "payload_too_large")
        bomb = gzip.compress(big)
        assert len(bomb) < 2000
        _assert_error(requests.post(server.url + "/v1/push", data=bomb, headers={**headers, "Content-Encoding": "gzip"}),
                      413, "payload_too_large")
        brotli_bomb = brotli.compress(big)
        assert len(brotli_bomb) < 2000
        _assert_error(requests.post(server.url + "/v1/push", data=brotli_bomb,
                                    headers={**headers, "Content-Encoding": "br"}), 413, "payload_too_large")
        assert server.store.head() == 0


def test_healthz_answers_ok_without_a_token(live_server):
    assert requests.get(live_server.url + "/healthz").json() == {"status": "ok"}


def test_the_openapi_document_describes_every_endpoint(live_server):
    spec = requests.get(live_server.url + "/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    assert {"/healthz", "/v1/handshake", "/v1/push", "/v1/pull", "/v1/access-log", "/v1/admin/audit",
            "/v1/admin/devices", "/v1/admin/quarantine"} <= set(spec["paths"])
    assert {"Change", "PushRequest", "PushResponse", "PullResponse", "Error"} <= set(spec["components"]["schemas"])
    assert "fields" in spec["components"]["schemas"]["Change"]["properties"]


def _undocumented(value, schema, spec, where="$"):
    """Paths of keys in ``value`` that its OpenAPI ``schema`` does not name (objects with properties only)."""
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    if isinstance(value, list) and "items" in schema:
        return [p for i, item in enumerate(value) for p in _undocumented(item, schema["items"], spec, f"{where}[{i}]")]
    if isinstance(value, dict) and "properties" in schema:
        properties = schema["properties"]
        return [f"{where}.{key}" for key in value if key not in properties] + [
            p for key, item in value.items() if key in properties
            for p in _undocumented(item, properties[key], spec, f"{where}.{key}")]
    return []


def test_every_key_of_the_admin_endpoints_answers_is_in_their_openapi_schema(region):
    nurse, admin = region.nurse, region.admin
    nurse.post("/v1/handshake", {"pending": 2, "rejected": 1})
    patient = new_patient(nurse)
    nurse.push(patient)
    nurse.push(nurse.change("visit", patient_id=patient["record_id"], kind="home_visit"))
    nurse.sync()
    spec = requests.get(region.server.url + "/openapi.json").json()
    for path in ("/v1/admin/devices", "/v1/admin/quarantine", "/v1/admin/audit"):
        answer = admin.session.get(region.server.url + path)
        assert answer.status_code == 200, path
        body = answer.json()
        assert any(body.values()), path  # something was listed, so the item schema was checked
        schema = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert _undocumented(body, schema, spec) == [], path
