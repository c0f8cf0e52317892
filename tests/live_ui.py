"""The laptop's pages as their own process (`hemsync ui`, or proof/crash.py's frozen copy), for tests over real HTTP.

Usage::

    from tests.live_ui import UiProcess

    with UiProcess.hemsync_ui(replica_path) as ui:
        requests.get(ui.launch_url)          # the link `hemsync ui` printed, with this start's secret
        ui.kill()                            # SIGKILL, as a closed lid or a flat battery does

The process is another process than the test's, as the doctor's browser and
another local user's programs are; the test learns the port and the secret only
from what the process printed, as the doctor does.
"""

import os
import pathlib
import re
import queue
import signal
import socket
import subprocess
import sys
import threading
import time

__all__ = ["UiProcess"]

ROOT = pathlib.Path(__file__).resolve().parents[1]
LINK = re.compile(r"(http://127\.0\.0\.1:(\d+))/launch\?key=\S+")


class UiProcess:
    """A running pages process: its base URL, port, launch link and the lines it wrote."""

    def __init__(self, args, *, timeout=60, env=None):
        self.process = subprocess.Popen(
            [sys.executable, "-m", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
        self.lines = []
        self._read = {"stdout": queue.Queue(), "stderr": queue.Queue()}
        for name, lines in self._read.items():  # a thread per pipe: select() does not see what a reader buffered
            threading.Thread(target=_lines_of, args=(getattr(self.process, name), lines), daemon=True).start()
        found = self.wait_for(LINK, timeout, stream="stdout")
        self.launch_url, self.base, self.port = found.group(0), found.group(1), int(found.group(2))
        self._until_listening(timeout)

    def _until_listening(self, timeout):
        """Wait for the port to accept: the link is printed just before the listener binds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise AssertionError(f"the pages process never listened on {self.port}: {self.lines}") from None
                time.sleep(0.05)

    @classmethod
    def hemsync_ui(cls, replica_path, open_browser=False):
        """`hemsync ui` on the replica, on a free port, no background sync.

        ``open_browser``: it writes its owner-only launch file beside the replica
        as it does for the doctor, but the "browser" it starts is ``true`` (the
        test opens the file in its own).
        """
        quiet = [] if open_browser else ["--no-browser"]
        return cls(["client_sync", "--replica", str(replica_path), "ui", "--port", "0", *quiet, "--sync-every", "0"],
                   env={"BROWSER": "true"})

    @classmethod
    def frozen_at(cls, replica_path, statement):
        """The pages of proof/crash.py: frozen at ``statement`` of the first page write, to be killed there."""
        return cls(["proof.crash", "--replica", str(replica_path), "--at", str(statement), "ui"])

    def wait_for(self, pattern, timeout=60, stream="stderr"):
        """The first line the process writes on ``stream`` that matches ``pattern``; fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._read[stream].get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"the pages process ended: {self.process.wait()}; wrote {self.lines}")
            self.lines.append(line)
            found = re.search(pattern, line)
            if found:
                return found
        raise AssertionError(f"the pages process wrote no line matching {pattern!r} in {timeout} s: {self.lines}")

    def kill(self):
        """SIGKILL the process: no clean-up of any kind runs."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def _lines_of(pipe, lines):
    for line in pipe:
        lines.put(line)
    lines.put(None)
