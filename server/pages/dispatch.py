"""The dispatcher's pages: the live queue with the reasons, suggestions beside each request, assign, cancel.

Beside the queue, who is on duty and how loaded (:func:`schema.dispatch.doctors_on_duty`,
from the doctors' last syncs and the open requests).

The order, deadlines, flags and suggestions are :mod:`schema.dispatch`'s (via
:mod:`server.queue`). The board's table is a partial the page fetches again
every 2 s (docs/web.md "Live"), so a laptop's push, another dispatcher's
assignment or the escalation job shows within 5 s without a reload.
"""

import datetime as dt

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, url_for

from schema.clock import utcnow
from schema.dispatch import accepted_load, doctors_on_duty, queue_entries, suggest_doctors

from .. import audit, queue, web
from ..settings import dispatch_settings
from ..web.search import matches
from .session import REFUSALS, WEB_DEVICE, audit_read, page, refused, show_errors, signed_in, store, writes

__all__ = ["blueprint"]

blueprint = Blueprint("dispatch", __name__, url_prefix="/dispatch")
web.csrf.protect(blueprint)
show_errors(blueprint)
#: Escalations shown in the banner: the newest few.
BANNER_ESCALATIONS = 5
#: Queue entries one board shows: the top of the queue; a search finds the others. A board of a whole
#: region (thousands of open requests) would be megabytes every 2 s and nobody's reading.
BOARD_ROWS = 100


def board(query="", municipality=""):
    """The board: the first :data:`BOARD_ROWS` queue entries (of those the search names) with patient,
    request and suggestions; the newest escalations; the doctors on duty. Only what is shown is audited.

    Positions stay those of the whole queue, so a searched entry still says where it stands.
    """
    db = store()
    settings = current_app.config["HEMSYNC"]
    rules = dispatch_settings(settings)
    now = utcnow()
    view = queue.open_view(db)
    everything = queue_entries(view.requests, view.patients, view.observations, now, rules,
                               municipality=municipality or None)
    found = [entry for entry in everything if not query or _names(entry, view, query)]
    # Only the shown entries become page data: a region's queue is thousands long.
    entries = [queue.feed_entry(entry, view) for entry in found[:BOARD_ROWS]]
    doctors = [user for user in db.users() if user["role"] == "doctor"]
    load = accepted_load(view.requests.values())
    for entry in entries:
        req = view.requests[entry["request_id"]]
        patient = view.patients.get(req["patient_id"], {})
        entry.update(patient=patient, request=req, suggestions=suggest_doctors(req, patient, doctors, load))
    escalations = [e for e in db.escalations(limit=BANNER_ESCALATIONS) if e["request_id"] in view.requests]
    for escalation in escalations:
        patient = view.patients.get(escalation["patient_id"], {})
        escalation["patient_name"] = patient.get("name", "")
    on_duty = doctors_on_duty(doctors, list(view.requests.values()), _last_syncs(db), now, rules)
    audit_read(audit.office_read(g.user, WEB_DEVICE, entries + escalations, f"GET {request.path}"))
    return {"entries": entries, "escalations": escalations, "doctors": on_duty,
            "on_duty_minutes": settings["HEMSYNC_ON_DUTY_MINUTES"], "found": len(found), "open": len(everything),
            "query": query, "municipality": municipality, "municipalities": db.municipalities()}


def _names(entry, view, query):
    """Whether the search names this entry: the patient (name, personnummer) or the request's reason."""
    patient = view.patients.get(entry.patient_id, {})
    return matches(query, patient.get("name"), view.requests[entry.request_id].get("reason"),
                   personnummer=patient.get("personnummer"))


def _last_syncs(db):
    """Each user's latest sync over their devices that are not revoked, as aware datetimes."""
    latest = {}
    for device in db.devices():
        if device.get("revoked_at") or not device.get("last_sync_at"):
            continue
        at = dt.datetime.fromisoformat(device["last_sync_at"].replace("Z", "+00:00"))
        if device["user_id"] not in latest or at > latest[device["user_id"]]:
            latest[device["user_id"]] = at
    return latest


@blueprint.get("/queue")
@signed_in("dispatcher")
def queue_page():
    """The region's open requests in dispatch order; ``?part=board`` is the live part the page polls."""
    shown = board(request.args.get("q", "").strip(), request.args.get("municipality", "").strip())
    if request.args.get("part") == "board":
        return render_template("_board.html", **shown)
    return page("queue.html", **shown)


def _change(request_id, fields, done):
    try:
        with store().transaction():
            applier = writes()
            applier.write("visit_request", request_id, fields)
            applier.finish()
    except REFUSALS as exc:
        refused("Not saved: %(why)s", exc)
    else:
        flash(done, "ok")
    return redirect(url_for("dispatch.queue_page"))


@blueprint.post("/requests/<request_id>/assign")
@signed_in("dispatcher")
def assign(request_id):
    """Assign the request to a doctor (a suggested one, or any doctor by choice)."""
    doctor_id = request.form.get("doctor_id", "")
    doctor = store().get_user(doctor_id)
    if doctor is None or doctor["role"] != "doctor":
        flash(web.i18n.gettext("Choose a doctor."), "error")
        return redirect(url_for("dispatch.queue_page"))
    return _change(request_id, {"status": "assigned", "assigned_doctor_id": doctor_id},
                   web.i18n.gettext("Assigned to %(name)s.", name=doctor["name"]))


@blueprint.post("/requests/<request_id>/override")
@signed_in("dispatcher")
def override(request_id):
    """Put the request at a place in the queue chosen by hand, with the reason."""
    reason = request.form.get("reason", "").strip()
    try:
        place = int(request.form.get("priority", ""))
    except ValueError:
        place = None
    if not reason or place is None:
        flash(web.i18n.gettext("An override needs a priority and a reason."), "error")
        return redirect(url_for("dispatch.queue_page"))
    return _change(request_id, {"priority_override": place, "priority_override_reason": reason},
                   web.i18n.gettext("Priority changed."))


@blueprint.post("/requests/<request_id>/cancel")
@signed_in("dispatcher")
def cancel(request_id):
    """Cancel the request, with the reason."""
    reason = request.form.get("reason", "").strip()
    if not reason:
        flash(web.i18n.gettext("Say why the request is cancelled."), "error")
        return redirect(url_for("dispatch.queue_page"))
    return _change(request_id, {"status": "cancelled", "cancel_reason": reason},
                   web.i18n.gettext("The request was cancelled."))
