"""The follow-up pages: the region's figures with twelve-month charts (admins), the due lists (admins, nurses).

Figures and due lists are :mod:`server.followup`'s, whose definitions are
:mod:`schema.followup`'s: nothing is computed here but where a chart's points
go. Charts are SVG drawn on the server (no script, no CDN): a month without
data is a gap in the line, never a zero, and the named-doctor chart carries the
region's 80 % target as a line. The figures name no patient; the due lists do,
so each showing is audited as a read, and a nurse or a doctor sees the patients
of her scope (doctors mostly use ``hemsync due`` on the laptop, offline).
"""

import dataclasses

from flask import Blueprint, flash, g, request

from schema.errors import HemsyncError
from schema.followup.calendar import Month, today
from schema.followup.due import LISTS
from schema.followup.figures import FIGURES, NAMED_DOCTOR_TARGET, SHARES

from .. import followup, web
from .session import WEB_DEVICE, page, show_errors, signed_in, store

__all__ = ["blueprint", "CHARTS", "trend_chart"]

blueprint = Blueprint("followup", __name__, url_prefix="/followup")
web.csrf.protect(blueprint)
show_errors(blueprint)

#: Months a trend shows, the chosen month last.
TREND_MONTHS = 12
#: The charts of the figures page: (figure key, title, how to read its value, percent?, target).
CHARTS = (
    ("named_doctor_share_sabo", "Named doctor at SÄBO", lambda v: v, True, NAMED_DOCTOR_TARGET),
    ("readmissions_30d", "Readmitted within 30 days", lambda v: v["all"], True, None),
    ("continuity_upc", "Continuity (UPC)", lambda v: v, True, None),
    ("acute_visits", "Acute visits", lambda v: v, False, None),
    ("direct_admissions", "Direct admissions", lambda v: v, False, None),
)
WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 480, 190, 44, 28, 12, 34


@dataclasses.dataclass
class Chart:
    """Where an SVG trend's parts go: segments of the line, points, axis labels, the target line."""

    key: str
    title: str
    segments: list
    points: list
    ticks: list
    labels: list
    target_y: float | None
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT


def trend_chart(key, title, reports, read, percent, target=None):
    """The chart of one figure over ``reports`` (oldest first); months without a value are gaps."""
    values = [read(r[key]["value"]) if r[key]["value"] is not None else None for r in reports]
    top = 1.0 if percent else max([v for v in values if v is not None] + [1])
    step = (WIDTH - LEFT - RIGHT) / max(len(reports) - 1, 1)

    def y(value):
        return round(TOP + (HEIGHT - TOP - BOTTOM) * (1 - value / top), 1)

    points, segments, run = [], [], []
    for i, (report, value) in enumerate(zip(reports, values)):
        x = round(LEFT + i * step, 1)
        shown = (f"{value * 100:.0f} %" if percent else f"{value:g}") if value is not None else None
        points.append({"x": x, "y": y(value) if value is not None else HEIGHT - BOTTOM, "period": report["period"],
                       "shown": shown})
        if value is None:
            if run:
                segments.append(run)
            run = []
        else:
            run.append(f"{x},{y(value)}")
    if run:
        segments.append(run)
    ticks = [{"y": y(top * share), "text": f"{top * share * 100:.0f} %" if percent else f"{top * share:g}"}
             for share in (0, 0.5, 1)]
    labels = [{"x": p["x"], "text": p["period"][2:]} for p in points]
    return Chart(key, title, [" ".join(s) for s in segments], points, ticks, labels,
                 y(target) if target is not None else None)


def shown_value(key, value):
    """A figure's value as lines of text: shares in percent, a value in parts part by part; None: no data."""
    if value is None:
        return None
    if isinstance(value, dict):
        return [f"{name}: {_part(key, part)}" for name, part in value.items()]
    return [_part(key, value)]


def _part(key, part):
    if part is None:
        return web.i18n.gettext("no data")
    if isinstance(part, dict):  # minutes to on site: median and 90th percentile
        return ", ".join(f"{name} {number:g}" for name, number in part.items())
    return f"{part * 100:.1f} %" if key in SHARES else f"{part:g}"


@blueprint.get("/")
@signed_in("admin")
def figures():
    """A month's figures for the region or a municipality, with the counts behind them and twelve-month trends."""
    month = request.args.get("month", "").strip() or today().replace(day=1).isoformat()[:7]
    municipality = request.args.get("municipality", "").strip() or None
    try:
        reports = followup.report(store(), month, municipality, TREND_MONTHS)
    except HemsyncError as exc:
        flash(exc.message, "error")
        month, municipality = today().isoformat()[:7], None
        reports = followup.report(store(), month, None, TREND_MONTHS)
    charts = [trend_chart(key, web.i18n.gettext(title), reports, read, percent, target)
              for key, title, read, percent, target in CHARTS]
    shown = [{"key": key, **reports[-1][key], "lines": shown_value(key, reports[-1][key]["value"])} for key in FIGURES]
    return page("followup.html", report=reports[-1], figures=shown, charts=charts, month=month,
                municipality=municipality or "", municipalities=store().municipalities(),
                previous=Month.parse(month).shifted(-1).key, following=Month.parse(month).shifted(1).key)


@blueprint.get("/due")
@signed_in("admin", "nurse", "doctor")
def due():
    """The due lists: every patient for an admin, those of her scope for a nurse or doctor (audited as a read)."""
    municipality = request.args.get("municipality", "").strip() or None
    try:
        lists = followup.due(store(), g.user, today(), f"GET {request.path}", device=WEB_DEVICE,
                             municipality=municipality)
    except HemsyncError as exc:
        flash(exc.message, "error")
        lists = followup.due(store(), g.user, today(), f"GET {request.path}", device=WEB_DEVICE)
    return page("followup_due.html", lists=[(name, lists[name]) for name in LISTS], municipality=municipality or "")
