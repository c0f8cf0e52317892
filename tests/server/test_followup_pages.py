"""The follow-up pages: figures with server-drawn charts for admins, due lists for admins and nurses."""

import re

from schema.followup.figures import FIGURES
from server.pages.followup import trend_chart

from .test_pages import demo, sign_in  # noqa: F401 - the demo region fixture and its sign-in

REPORT = {"period": "2026-11", "municipality": None}


def _reports(values):
    return [{**REPORT, "period": f"2026-{m:02d}", "named_doctor_share_sabo": {"value": v}}
            for m, v in zip(range(1, 13), values)]


def test_an_admin_sees_every_figure_and_the_charts_drawn_as_svg(demo):
    app, store, ids = demo
    client = app.test_client()
    sign_in(client, store, ids["admin-per"])
    html = client.get("/followup/?month=2026-11&municipality=halmstad").get_data(as_text=True)
    assert "Uppföljning 2026-11, Halmstad" in html
    assert all(f'data-figure="{key}"' in html for key in FIGURES)
    assert html.count("<svg") == 5 and "cdn" not in html.lower() and "<script" not in html
    named = re.search(r'data-chart="named_doctor_share_sabo".*?</figure>', html, re.S).group(0)
    assert 'class="target"' in named


def test_a_figure_that_cannot_be_measured_says_why_in_swedish(demo):
    app, store, ids = demo
    client = app.test_client()
    sign_in(client, store, ids["admin-per"])
    html = client.get("/followup/").get_data(as_text=True)  # this month: the demo's requests, no stays
    assert "inga data (ingen utskrivning från sjukhus under månaden)" in html


def test_the_target_line_sits_at_80_percent_and_a_month_without_data_is_a_gap():
    chart = trend_chart("named_doctor_share_sabo", "x", _reports([0.5, None, 1.0] + [0.8] * 9),
                        lambda v: v, True, 0.8)
    top, bottom = chart.ticks[2]["y"], chart.ticks[0]["y"]
    assert chart.target_y == round(bottom - 0.8 * (bottom - top), 1)
    assert len(chart.segments) == 2 and chart.points[1]["shown"] is None
    assert [p["shown"] for p in chart.points[:3]] == ["50 %", None, "100 %"]


def test_the_figures_page_is_for_admins_only(demo):
    app, store, ids = demo
    for person in ("nurse-halmstad", "dispatcher-lena"):
        client = app.test_client()
        sign_in(client, store, ids[person])
        assert client.get("/followup/").status_code == 403


def test_a_nurse_sees_the_due_lists_of_her_scope_and_the_showing_is_audited(demo):
    app, store, ids = demo
    client = app.test_client()
    sign_in(client, store, ids["nurse-halmstad"])
    before = len(store.audit_log(limit=100_000))
    response = client.get("/followup/due")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Att göra-listor" in html and 'data-list="sabo_without_named_doctor"' in html
    # The demo's SÄBO residents without a named doctor: two in Halmstad, others elsewhere.
    assert "Tolvan Tolvansson" in html and "Testa Testsson" in html
    assert "Bor på SÄBO utan fast läkarkontakt" in html and "palliativ; inget brytpunktssamtal gjort" in html
    assert "Samordna Testsson" not in html and "Testperson 5" not in html  # Laholm's
    nurse = store.get_user(ids["nurse-halmstad"])
    reads = [e for e in store.audit_log(limit=100_000)[before:] if e["user_id"] == nurse["id"]]
    shown = {e["patient_id"] for e in reads if e["kind"] == "pull" and e["details"]["endpoint"] == "GET /followup/due"}
    named = {stored.state["fields"]["name"]["value"] for stored in store.get_records("patient", shown)}
    assert named == {"Tolvan Tolvansson", "Testa Testsson", "Hundra Testsson"}


def test_an_admin_sees_every_municipalitys_due_lists(demo):
    app, store, ids = demo
    client = app.test_client()
    sign_in(client, store, ids["admin-per"])
    html = client.get("/followup/due").get_data(as_text=True)
    assert "Samordna Testsson" in html and "Tolvan Tolvansson" in html


def test_a_doctor_sees_the_due_lists_of_her_municipalities(demo):
    app, store, ids = demo
    client = app.test_client()
    sign_in(client, store, ids["doctor-anna"])
    html = client.get("/followup/due").get_data(as_text=True)
    assert "Samordna Testsson" in html and "Tolvan Tolvansson" in html  # Laholm's and Halmstad's
    assert "Testperson 13" not in html  # Varberg's


def test_a_dispatcher_has_no_due_lists(demo):
    app, store, ids = demo
    client = app.test_client()
    sign_in(client, store, ids["dispatcher-lena"])
    assert client.get("/followup/due").status_code == 403


def test_a_figure_is_shown_as_percent_when_it_is_a_share_and_part_by_part_when_it_has_parts(demo):
    from server.pages.followup import shown_value

    app, _, _ = demo
    with app.app_context():
        assert shown_value("named_doctor_share_sabo", 0.8125) == ["81.2 %"]
        assert shown_value("acute_visits", 3) == ["3"]
        assert shown_value("readmissions_30d", {"all": 0.25, "visited_within_7d": None}) == [
            "all: 25.0 %", "visited_within_7d: inga data"]
        assert shown_value("minutes_to_on_site", {"acute": {"median": 95.0, "p90": 118.5}, "urgent": None}) == [
            "acute: median 95, p90 118.5", "urgent: inga data"]
        assert shown_value("outcomes", None) is None
