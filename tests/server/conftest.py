"""Fixtures for the server's tests: a live server per test, and laptops that talk to it over HTTP."""

import dataclasses
import uuid

import pytest
import requests

from schema.change import make_change
from schema.clock import HybridClock
from tests.live_server import start_live_server

CLIENT_VERSION = "0.1.0"


@pytest.fixture
def live_server(tmp_path, server_database):
    """The real server on a free loopback port, with a fresh database (of each store, in modules marked so)."""
    server = start_live_server(tmp_path, database=server_database)
    yield server
    server.stop()


def versions(wire):
    """The base a device sends when it edits a record it pulled: each field's version."""
    return {path: version for version, _, _, _, paths in wire["writes"] for path in paths}


class Laptop:
    """A device talking to the live server over HTTP, as the laptop client does (without a replica)."""

    def __init__(self, server, token, device_id, user_id):
        self.server, self.token, self.device_id, self.user_id = server, token, device_id, user_id
        self.clock = HybridClock()
        self.op = 0
        self.cursor = None
        self.records = {}
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {token}", "X-Hemsync-Client": CLIENT_VERSION})

    def change(self, record_type, record_id=None, base=None, hlc=None, **fields):
        """A change as the laptop records it (a new record unless ``base`` is given)."""
        self.op += 1
        return make_change(record_type, record_id or str(uuid.uuid4()), fields, state=None, base=base,
                           change_id=str(uuid.uuid4()), hlc=hlc or str(self.clock.now()), op=self.op,
                           device_id=self.device_id)

    def edit(self, record_type, record_id, **fields):
        """A change to a record this laptop pulled, on top of what it saw."""
        return self.change(record_type, record_id, base=versions(self.records[(record_type, record_id)]), **fields)

    def post(self, path, body, **kwargs):
        """POST JSON; return the response."""
        return self.session.post(self.server.url + path, json=body, **kwargs)

    def push(self, *changes, pending=0):
        """Push a batch; return the response JSON (asserting 200)."""
        response = self.post("/v1/push", {"pending": pending, "changes": list(changes)})
        assert response.status_code == 200, response.text
        return response.json()

    def pull_page(self, cursor=None, limit=None):
        """One pull page as the response JSON."""
        params = {k: v for k, v in {"cursor": cursor, "limit": limit}.items() if v is not None}
        response = self.session.get(self.server.url + "/v1/pull", params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def sync(self, limit=None):
        """Pull to the head, applying every page as the laptop does; return the pages."""
        pages = []
        while True:
            page = self.pull_page(self.cursor, limit)
            pages.append(page)
            for marker in page["purge"]:
                self.records.pop((marker["type"], marker["id"]), None)
            for record in page["records"]:
                self.records[(record["type"], record["id"])] = record
            self.cursor = page["cursor"]
            if not page["more"]:
                return pages

    def ids(self, record_type=None):
        """The ids of the records this laptop holds (of one type)."""
        return {i for t, i in self.records if record_type in (None, t)}


@dataclasses.dataclass
class Region:
    """Users and their laptops on a live server: two municipalities, every role."""

    server: object
    laptops: dict

    def __getattr__(self, name):
        try:
            return self.laptops[name]
        except KeyError:
            raise AttributeError(name) from None

    def laptop(self, name, role, municipalities):
        """Add a user with one enrolled laptop."""
        user_id = self.server.add_user(name, role, municipalities)
        device_id, token = self.server.enroll(user_id)
        self.laptops[name] = Laptop(self.server, token, device_id, user_id)
        return self.laptops[name]


@pytest.fixture
def region(live_server):
    """A doctor and a nurse of Halmstad, a nurse and a doctor of Laholm, a dispatcher and an admin."""
    region = Region(live_server, {})
    region.laptop("doctor", "doctor", ["Halmstad"])
    region.laptop("nurse", "nurse", ["Halmstad"])
    region.laptop("laholm_nurse", "nurse", ["Laholm"])
    region.laptop("laholm_doctor", "doctor", ["Laholm"])
    region.laptop("dispatcher", "dispatcher", ["Halmstad", "Laholm"])
    region.laptop("admin", "admin", [])
    return region


PERSONNUMMER = ("191212121212", "193804029829", "192012309817", "193804629834")


def new_patient(laptop, municipality="Halmstad", personnummer=PERSONNUMMER[0], **fields):
    """A change creating a patient."""
    return laptop.change("patient", personnummer=personnummer, name="Tolvan Tolvansson",
                         municipality=municipality, **fields)


def new_request(laptop, patient_id, urgency="acute", **fields):
    """A change creating a visit request."""
    return laptop.change("visit_request", patient_id=patient_id, reason="andningsbesvär", urgency=urgency, **fields)
