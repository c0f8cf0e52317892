"""The laptop's secrets and patient data at rest, with real processes: the token prompt, file modes, wipes."""

import os
import pathlib
import pty
import select
import sys
import time

import pytest

pytestmark = pytest.mark.e2e

ROOT = pathlib.Path(__file__).parents[2]


def _read_until(fd, wanted, timeout=20):
    """What a pseudo-terminal printed until ``wanted`` appeared (or the child closed it)."""
    seen, deadline = b"", time.monotonic() + timeout
    while wanted not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 1024)
            except OSError:  # the child is gone and closed the terminal
                break
            if not chunk:
                break
            seen += chunk
    return seen


def test_login_at_a_terminal_asks_for_the_token_without_showing_it(live, tmp_path):
    _, token = live.enroll(live.add_user("Anna", "doctor", ["Umeå"]))
    argv = [sys.executable, "-m", "client_sync", "--replica", str(tmp_path / "laptop.db"),
            "login", "--server", live.url]
    pid, terminal = pty.fork()
    if pid == 0:  # the child: its controlling terminal is the pseudo-terminal
        os.chdir(ROOT)
        os.execv(sys.executable, argv)
    try:
        prompt = _read_until(terminal, b"token")
        os.write(terminal, token.encode() + b"\n")
        rest = _read_until(terminal, b"logged in as")
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(terminal)
    assert b"device token (not shown)" in prompt
    assert b"logged in as Anna (doctor)" in rest
    assert token.encode() not in prompt + rest  # the terminal never echoed it
    assert os.waitstatus_to_exitcode(status) == 0
