"""Transport: HTTPS with the server's own certificate, the body limit in the HTTP server, files owner-only."""

import datetime as dt
import ipaddress
import json
import os
import socket
import ssl
import stat
import subprocess
import sys
import time

import pytest
import requests
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from server.cli import main
from server.store import SqliteStore
from tests.live_server import start_live_server

from .conftest import CLIENT_VERSION


@pytest.fixture
def certificate(tmp_path):
    """A self-signed certificate for 127.0.0.1 and localhost: ``(certfile, keyfile)`` as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hemsync test server")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    certfile, keyfile = tmp_path / "tls.crt", tmp_path / "tls.key"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return str(certfile), str(keyfile)


def test_the_server_speaks_https_with_its_own_certificate(tmp_path, certificate):
    certfile, keyfile = certificate
    with start_live_server(tmp_path, certfile=certfile, keyfile=keyfile) as server:
        assert server.url.startswith("https://127.0.0.1:")
        user = server.add_user("Maria Ek", "nurse", ["Halmstad"])
        _, token = server.enroll(user)
        response = requests.post(server.url + "/v1/handshake", json={}, verify=certfile,
                                 headers={"Authorization": f"Bearer {token}", "X-Hemsync-Client": CLIENT_VERSION})
        assert response.status_code == 200
        assert response.json()["user"]["id"] == user
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(server.url + "/healthz")  # not trusted without the certificate
        try:
            plain = requests.get(server.url.replace("https://", "http://") + "/healthz").status_code
        except requests.ConnectionError:
            plain = "dropped"
        assert plain in (400, "dropped")  # plain HTTP to the TLS port is refused, never served


def test_serve_refuses_a_certificate_without_its_key_with_a_message(tmp_path, certificate):
    certfile, _ = certificate
    result = CliRunner().invoke(main, ["--db", str(tmp_path / "s.db"), "serve", "--port", "0",
                                       "--certfile", certfile])
    assert result.exit_code == 1
    assert "--keyfile" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(main, ["--db", str(tmp_path / "s.db"), "serve", "--port", "0",
                                       "--certfile", certfile, "--keyfile", certfile])
    assert result.exit_code == 1 and "do not load" in result.output


def _raw_request(server, head):
    """Send request headers and no body over a socket; return the raw answer and the seconds it took."""
    host, port = server.url.removeprefix("http://").split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer, time.monotonic() - started


def test_a_too_large_content_length_is_answered_413_before_the_body_is_read(tmp_path):
    with start_live_server(tmp_path, max_body_bytes=1_000_000) as server:
        # 200 MB announced, not a byte of it sent: the answer comes at once, and the connection closes.
        head = ("POST /v1/push HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer not-a-token\r\n"
                "Content-Type: application/json\r\nContent-Length: 200000000\r\n\r\n")
        answer, seconds = _raw_request(server, head)
        status, _, rest = answer.partition(b"\r\n")
        headers, _, body = rest.partition(b"\r\n\r\n")
        assert status == b"HTTP/1.1 413 Request Entity Too Large"
        assert b"content-type: application/json" in headers.lower()
        error = json.loads(body)["error"]
        assert error["code"] == "payload_too_large" and "1000000" in error["message"]
        assert seconds < 5


def test_the_http_servers_body_limit_is_hemsync_max_body_bytes(tmp_path):
    with start_live_server(tmp_path, max_body_bytes=1000) as server:
        over = requests.post(server.url + "/v1/push", data=b"x" * 1001, headers={"Content-Type": "application/json"})
        assert (over.status_code, over.json()["error"]["code"]) == (413, "payload_too_large")
        chunked = requests.post(server.url + "/v1/push", data=iter([b"x" * 600, b"x" * 600]),
                                headers={"Content-Type": "application/json"})
        assert chunked.status_code in (401, 413)  # never read past the limit, never a 500
        under = requests.post(server.url + "/v1/push", data=b"x" * 1000, headers={"Content-Type": "application/json"})
        assert (under.status_code, under.json()["error"]["code"]) == (401, "unauthorized")


def test_every_answer_says_how_long_the_app_took(tmp_path):
    from proof.fleet import server_timings

    with start_live_server(tmp_path) as server:
        started = time.perf_counter()
        answers = [requests.get(server.url + "/healthz"),
                   requests.post(server.url + "/v1/push", json={}, headers={"Authorization": "Bearer nope"})]
        waited = time.perf_counter() - started
    for answer in answers:
        assert answer.headers["Server-Timing"].startswith("app;dur=")
        assert 0 <= server_timings(answer)["app"] <= waited


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")
def test_the_server_database_and_its_wal_are_owner_only(tmp_path):
    directory = tmp_path / "var" / "hemsync"
    store = SqliteStore(directory / "hemsync.db")
    store.add_user({"id": "u1", "name": "Per", "role": "admin", "municipalities": [], "hsa_id": None,
                    "created_at": "2026-11-01T00:00:00Z"})
    files = [directory / name for name in ("hemsync.db", "hemsync.db-wal", "hemsync.db-shm")]
    assert all(f.exists() for f in files)
    assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in files} == {f.name: 0o600 for f in files}
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    store.close()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")
def test_an_existing_world_readable_database_is_made_owner_only_when_opened(tmp_path):
    path = tmp_path / "old.db"
    SqliteStore(path).close()
    os.chmod(path, 0o644)
    SqliteStore(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def _in_another_process(path, code):
    """Run ``code`` (Python, with ``conn``: a sqlite3 connection on ``path``) in a process of its own."""
    script = f"import sqlite3; conn = sqlite3.connect({str(path)!r}); {code}; conn.close()"
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX locks")
def test_a_second_store_on_the_file_in_one_process_keeps_the_first_ones_writes_visible_to_other_processes(tmp_path):
    path = tmp_path / "hemsync.db"
    first = SqliteStore(path)
    first.add_municipality("Halmstad")
    # Opening the file again in this process must not drop the first connection's locks: with them
    # gone, another process closing its connection thinks it is the last, and removes the WAL the
    # first connection still writes to.
    SqliteStore(path).close()
    _in_another_process(path, "conn.execute('SELECT 1 FROM municipalities').fetchall()")
    first.add_municipality("Laholm")
    seen = _in_another_process(path, "print(sorted(r[0] for r in conn.execute('SELECT name FROM municipalities')))")
    first.close()
    assert seen.strip() == "['Halmstad', 'Laholm']"
