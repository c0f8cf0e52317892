"""``hemsync-server serve --workers N``: several processes on one port, on PostgreSQL only."""

import os
import signal
import subprocess
import sys
import time

import requests
from click.testing import CliRunner

from proof.server_process import free_port
from server.cli import main


def test_several_workers_on_the_sqlite_file_are_refused_with_what_to_do(tmp_path):
    result = CliRunner().invoke(main, ["--db", str(tmp_path / "h.db"), "serve", "--workers", "2", "--port", "5999"])
    assert result.exit_code == 1
    assert "--workers 2 needs PostgreSQL" in result.output and "HEMSYNC_DATABASE_URL" in result.output


def _healthy(url, seconds=20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/healthz", timeout=2).status_code == 200:
                return True
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    return False


def test_workers_share_one_port_and_a_killed_one_is_replaced(postgres_url):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "server", "--db", postgres_url, "serve", "--workers", "2", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "HEMSYNC_ESCALATION_INTERVAL": "0"})
    try:
        first = supervisor.stdout.readline()
        assert "2 processes:" in first, first
        pids = [int(p) for p in first.rsplit(":", 1)[1].split(",")]
        assert _healthy(url)
        os.kill(pids[0], signal.SIGKILL)
        while "starting another" not in (line := supervisor.stdout.readline()):
            assert line, "the supervisor ended"
        assert all(_healthy(url) for _ in range(5))
    finally:
        supervisor.send_signal(signal.SIGTERM)
        supervisor.wait(timeout=20)
    for pid in pids[1:]:
        assert not os.path.exists(f"/proc/{pid}") or "zombie" in open(f"/proc/{pid}/status").read().lower()
