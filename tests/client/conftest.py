"""Fixtures of the laptop-client tests: real replica files in a temporary directory, a fake server."""

import pytest
from click.testing import CliRunner

from client_sync.cli import cli
from client_sync.http import SyncClient
from client_sync.replica import Replica

from .fake_server import FakeServer

PERSONNUMMER = "19121212-1212"  # Skatteverket's published test personnummer ("Tolvan Tolvansson")


@pytest.fixture
def server():
    """A fake sync server with a doctor, a second doctor, a nurse and a dispatcher."""
    fake = FakeServer()
    for name, role in (("Dr Anna", "doctor"), ("Dr Bo", "doctor"), ("Nurse Cia", "nurse"),
                       ("Disp Dan", "dispatcher")):
        fake.add_user(name, role)
    return fake


def laptop(server, tmp_path, user_id, name):
    """A replica file logged in to the fake server as ``user_id``, and its client."""
    device_id, token = server.enroll(user_id)
    replica = Replica(tmp_path / f"{name}.db")
    replica.login("http://127.0.0.1:5000", token, server.handshake_for(token))
    client = SyncClient("http://127.0.0.1:5000", token, session=server, sleep=lambda s: None)
    return replica, client


@pytest.fixture
def doctor(server, tmp_path):
    """Dr Anna's laptop: (replica, client)."""
    replica, client = laptop(server, tmp_path, "u-dr-anna", "anna")
    yield replica, client
    replica.close()


@pytest.fixture
def other_doctor(server, tmp_path):
    """Dr Bo's laptop: (replica, client)."""
    replica, client = laptop(server, tmp_path, "u-dr-bo", "bo")
    yield replica, client
    replica.close()


@pytest.fixture
def nurse(server, tmp_path):
    """Nurse Cia's laptop: (replica, client)."""
    replica, client = laptop(server, tmp_path, "u-nurse-cia", "cia")
    yield replica, client
    replica.close()


@pytest.fixture
def runner():
    """A click CliRunner."""
    return CliRunner()


@pytest.fixture
def online(server, monkeypatch):
    """Route every SyncClient the CLI makes to the fake server."""
    original = SyncClient.__init__

    def through_fake(self, base_url, token, session=None, **options):
        original(self, base_url, token, session=server, sleep=lambda s: None, **options)

    monkeypatch.setattr(SyncClient, "__init__", through_fake)
    return server


@pytest.fixture
def hemsync(runner, tmp_path, online):
    """Run `hemsync --replica <tmp>/laptop.db ARGS...` (``input``: its stdin); fail on a non-zero exit unless told."""

    def run(*args, ok=True, input=None):
        result = runner.invoke(cli, ["--replica", str(tmp_path / "laptop.db"), *args], input=input,
                               catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    return run
