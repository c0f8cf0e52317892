"""End-to-end fixtures: the real server on loopback (tests/live_server.py) and real replica files."""

import uuid

import pytest
import requests

from client_sync import __version__
from client_sync.http import SyncClient
from client_sync.replica import Replica
from proof import laptops as harness
from tests.live_server import start_live_server

PERSONNUMMER = "19121212-1212"  # Skatteverket's published test personnummer ("Tolvan Tolvansson")


@pytest.fixture
def live(tmp_path, server_database):
    """The real sync server on a free 127.0.0.1 port (on each store, in modules marked ``both_stores``)."""
    server = start_live_server(tmp_path / "server", database=server_database)
    yield server
    server.stop()


class Laptops:
    """Makes logged-in laptops (replica files) for users of the live server."""

    def __init__(self, live, tmp_path):
        self.live, self.tmp_path, self.open = live, tmp_path, []

    def __call__(self, name, role="doctor", municipalities=("Umeå",), url=None):
        """A replica logged in as a new user ``name``; ``url`` may route it through a proxy."""
        user_id = self.live.add_user(name, role, list(municipalities))
        return self.device_of(user_id, name, url)

    def device_of(self, user_id, name, url=None):
        """A new device and replica of an existing user."""
        device_id, token = self.live.enroll(user_id, name)
        replica = Replica(self.tmp_path / f"{name.replace(' ', '_')}-{device_id[:8]}.db")
        url = url or self.live.url
        replica.login(url, token, SyncClient(url, token).handshake(0, 0))
        self.open.append(replica)
        return replica


@pytest.fixture
def laptops(live, tmp_path):
    """A factory of logged-in laptops (see Laptops)."""
    made = Laptops(live, tmp_path)
    yield made
    for replica in made.open:
        replica.close()


@pytest.fixture
def admin(live):
    """GET an admin endpoint of the live server: ``admin("/v1/admin/audit")`` -> JSON."""
    _, token = live.enroll(live.add_user("Ada Admin", "admin", []))

    def get(path, **params):
        answer = requests.get(live.url + path, params=params, timeout=10, headers={
            "Authorization": f"Bearer {token}", "X-Hemsync-Client": __version__})
        answer.raise_for_status()
        return answer.json()

    return get


def new_patient(replica, name="Tolvan Tolvansson", municipality="Umeå"):
    """Create a patient on a laptop; return its id."""
    patient_id = str(uuid.uuid4())
    replica.write("patient", patient_id, {"personnummer": PERSONNUMMER, "name": name,
                                          "municipality": municipality})
    return patient_id


def server_wires(live, replica):
    """Every record state the server would hand this replica's device now (a fresh full pull)."""
    return harness.server_wires(SyncClient(replica.setting("server_url"), replica.setting("token")))


replica_wires = harness.replica_wires
