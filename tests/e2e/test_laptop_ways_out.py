"""The laptop's ways out of a stuck sync, against the real server: batch limits, rejected changes."""

import uuid

import pytest

from client_sync.sync import sync
from tests.live_server import start_live_server

from .conftest import Laptops, new_patient

pytestmark = pytest.mark.e2e


@pytest.fixture
def small_batches(tmp_path):
    """The real server with HEMSYNC_MAX_BATCH=50."""
    server = start_live_server(tmp_path / "server", max_batch=50)
    yield server
    server.stop()


def test_the_laptop_pushes_in_batches_no_larger_than_the_servers_limit(small_batches, tmp_path):
    made = Laptops(small_batches, tmp_path)
    anna = made("Anna")
    try:
        patient_id = new_patient(anna)
        for n in range(120):
            anna.write("observation", str(uuid.uuid4()), {
                "patient_id": patient_id, "pulse": 60 + n % 40, "measured_at": "2026-11-25T10:00:00+01:00"})
        report = sync(anna)
        assert (report.applied, report.conflicts, report.rejected, report.unsent) == (121, 0, [], 0)
        assert anna.record_count() == 121
    finally:
        anna.close()
