"""Fuzzed bad input, a short seeded run on each store: no 5xx, the one error shape, nothing half-applied."""

import pytest

from proof.fuzz import run

pytestmark = [pytest.mark.e2e, pytest.mark.both_stores]


def test_fuzzed_requests_and_malformed_batches_get_clean_answers_and_change_nothing_they_should_not(
        tmp_path, server_database):
    figures = run(requests_wanted=400, run_seed=6, workdir=tmp_path, progress=lambda *a: None,
                  database=server_database)
    assert figures["failures"] == []
    assert figures["server_errors"] == 0
    # The fuzzing reached the handlers: past the token and version checks, and answered both ways.
    assert figures["reached_handlers"] >= 0.8 * figures["requests"]
    push = figures["statuses"]["POST /v1/push"]
    assert push.get(200, 0) > 0 and push.get(400, 0) > 0
    batches = figures["statuses"]["POST /v1/push (batches)"]
    assert batches.get(200, 0) > 0 and batches.get(400, 0) > 0
