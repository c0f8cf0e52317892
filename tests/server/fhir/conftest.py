"""Fixtures of the FHIR tests: the demo region with every record type, and integration clients of it."""

import dataclasses

import pytest

from server import auth, create_app, settings
from server.store import open_store

from .clinic import seed_every_type


@dataclasses.dataclass
class Client:
    """An integration client calling the app through Flask's test client."""

    http: object
    token: str
    user: dict
    device: dict

    def get(self, path, headers=None, **kwargs):
        """GET ``/fhir/r4`` + path with the client's bearer token."""
        return self.http.get("/fhir/r4" + path, headers={"Authorization": f"Bearer {self.token}", **(headers or {})},
                             **kwargs)

    def delete(self, path):
        """DELETE ``/fhir/r4`` + path with the client's bearer token."""
        return self.http.delete("/fhir/r4" + path, headers={"Authorization": f"Bearer {self.token}"})

    def post(self, path, body):
        """POST a FHIR JSON body to ``/fhir/r4`` + path."""
        return self.http.post("/fhir/r4" + path, json=body, headers={"Authorization": f"Bearer {self.token}",
                                                                      "Content-Type": "application/fhir+json"})


@pytest.fixture
def clinic(tmp_path, database):
    """A store of each kind with the demo region, Halmstad's and Varberg's first patients holding every record type."""
    store = open_store(database)
    values = settings.load(overrides={"HEMSYNC_DB": str(tmp_path / "hemsync.db")})
    seed_every_type(store, values, "Halmstad", "doctor-anna")
    seed_every_type(store, values, "Varberg", "doctor-erik")
    yield store
    store.close()


@pytest.fixture
def app(clinic, tmp_path):
    """The server app on the clinic's store, exports under tmp_path."""
    return create_app({"STORE": clinic, "HEMSYNC_DB": str(tmp_path / "hemsync.db"), "TESTING": True,
                       "HEMSYNC_FHIR_EXPORT_DIR": str(tmp_path / "exports"), "HEMSYNC_DEVICE_RATE": 0})


@pytest.fixture
def enrol(app, clinic):
    """Enroll an integration client of some municipalities; return a :class:`Client`."""

    def make(name, *municipalities):
        user, device, token = auth.add_client(clinic, name, municipalities)
        return Client(app.test_client(), token, user, device)

    return make


@pytest.fixture
def halmstad(enrol):
    """The integration client of Halmstad's journal system."""
    return enrol("Halmstads journal", "Halmstad")
