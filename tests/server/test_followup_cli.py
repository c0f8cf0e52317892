"""``hemsync-server report`` and ``due`` over a store holding the hand-worked test region."""

import csv
import io
import json

import pytest
from click.testing import CliRunner

from schema.followup.due import LISTS
from schema.followup.figures import FIGURES, figures
from schema.followup.snapshot import Snapshot
from server import auth
from server.cli import main
from server.store import open_store
from tests.followup_region import build


@pytest.fixture(scope="module")
def region():
    return build()


@pytest.fixture
def run(tmp_path, region):
    """``hemsync-server --db <a store with the region> ARGS`` -> (exit code, output); and the store."""
    path = str(tmp_path / "followup.db")
    store = open_store(path)
    for name in ("Halmstad", "Laholm"):
        auth.add_municipality(store, name)
    for state in region.states.values():
        store.put_record(state, f"seed-{state['id']}")
    runner = CliRunner()

    def invoke(*args):
        result = runner.invoke(main, ["--db", path, *args])
        return result.exit_code, result.output

    invoke.store = store
    return invoke


def test_the_report_prints_every_figure_as_named_with_its_counts(run, region):
    code, output = run("report", "--month", "2026-11", "--municipality", "halmstad", "--json")
    assert code == 0, output
    report = json.loads(output)
    assert list(report) == ["period", "municipality", *FIGURES]
    assert (report["period"], report["municipality"]) == ("2026-11", "Halmstad")
    assert report == figures(Snapshot.of(region.states.values()), "2026-11", "Halmstad")
    assert report["acute_visits"] == {"value": 3, "counts": {"acute_requests_on_site": 3}}


def test_the_report_says_no_data_for_an_empty_month(run):
    code, output = run("report", "--month", "2025-01")
    assert code == 0
    assert "no data (no data for the region in 2025-01)" in output
    assert ": 0" not in output


def test_the_report_as_csv_has_a_row_per_measure(run):
    code, output = run("report", "--month", "2026-11", "--municipality", "Halmstad", "--csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(output)))
    by = {(r["figure"], r["measure"]): r["value"] for r in rows}
    assert by[("acute_visits", "value")] == "3"
    assert by[("minutes_to_on_site", "value.acute.median")] == "45.0"
    assert by[("named_doctor_share_sabo", "target")] == "0.8"
    assert {r["figure"] for r in rows} == set(FIGURES)


def test_a_trend_reports_each_month_oldest_first(run):
    code, output = run("report", "--month", "2026-12", "--months", "3", "--json")
    assert code == 0
    assert [r["period"] for r in json.loads(output)] == ["2026-10", "2026-11", "2026-12"]


def test_an_unknown_month_or_municipality_is_a_clear_error(run):
    assert run("report", "--month", "2026-13")[1].startswith("Error: '2026-13' is not a month")
    code, output = run("report", "--month", "2026-11", "--municipality", "Halmstadt")
    assert code != 0 and "did you mean Halmstad" in output


def test_the_due_lists_show_the_viewers_scope_and_are_audited_as_reads(run, region):
    store = run.store
    nurse = auth.add_user(store, "Test Sköterska", "nurse", ["Laholm"])
    admin = auth.add_user(store, "Test Admin", "admin", [])
    code, output = run("due", "--as", nurse["id"], "--date", "2026-12-03", "--json")
    assert code == 0, output
    lists = json.loads(output)
    assert [e["patient_id"] for e in lists["discharge_without_follow_up"]] == [region.ids["P7"]]
    assert all(e["municipality"] == "Laholm" for name in LISTS for e in lists[name])
    read = [e for e in store.audit_log(limit=1000) if e["user_id"] == nurse["id"]]
    assert [(e["kind"], e["patient_id"], e["details"]["endpoint"]) for e in read] == [
        ("pull", region.ids["P7"], "hemsync-server due")]
    code, output = run("due", "--as", admin["id"], "--date", "2026-12-03", "--list", "discharge_without_follow_up")
    assert code == 0 and "discharge_without_follow_up (3)" in output


def test_a_dispatcher_sees_no_due_list(run):
    dispatcher = auth.add_user(run.store, "Test Samordnare", "dispatcher", ["Halmstad"])
    code, output = run("due", "--as", dispatcher["id"])
    assert code != 0 and "does not see the due lists" in output
