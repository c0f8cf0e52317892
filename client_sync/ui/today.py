"""Today's requests of the doctor on this laptop, and accepting and moving them on.

A request is the doctor's when it is assigned to them or they accepted it, and
open for them from ``assigned`` until ``completed`` (the request type's state
machine, :data:`schema.records.visit_request.DOCTOR_STEPS`). Accepting and
each step are one :meth:`client_sync.replica.Replica.write`, as ``hemsync
accept`` and ``hemsync progress``; the server referees acceptance when the
laptop syncs.
"""

from flask import flash, redirect, request, url_for

from schema.records.visit_request import DOCTOR_STEPS

from server import web

from .context import REFUSALS, back_to, blueprint, local, me, page, refused, replica, require, snapshot

__all__ = ["STEP_LABELS", "next_step", "doctors_requests"]

#: The button of each step (catalogue messages, translated as they come).
STEP_LABELS = {"accepted": "Accept", "en_route": "On my way", "on_site": "On site", "completed": "Visit done"}
#: The statuses in which a request is on the doctor's list.
ON_LIST = ("assigned", *DOCTOR_STEPS[:-1])


def next_step(status):
    """The step the doctor takes next from ``status`` (``accepted`` from ``assigned``), or None."""
    if status == "assigned":
        return "accepted"
    if status in DOCTOR_STEPS[:-1]:
        return DOCTOR_STEPS[DOCTOR_STEPS.index(status) + 1]
    return None


def _is_mine(fields, user_id):
    return user_id in (fields.get("assigned_doctor_id"), fields.get("accepted_by"))


def doctors_requests(user_id):
    """The doctor's open requests as LocalRecords, soonest deadline first (read inside a snapshot)."""
    found = [r for r in replica().local_naming("visit_request", user_id)
             if r.fields.get("status") in ON_LIST and _is_mine(r.fields, user_id)]
    return sorted(found, key=lambda r: (r.fields.get("deadline") or "9999", r.id))


@blueprint.get("/")
def home():
    """The pages start at today's list."""
    return redirect(url_for("ui.today"))


@blueprint.get("/today")
def today():
    """Today's assigned and accepted requests, with the patient, the reason, the deadline and the next step."""
    with snapshot():
        requests = doctors_requests(me().get("id"))
        patients = {r.fields["patient_id"]: replica().local("patient", r.fields["patient_id"]) for r in requests}
    rows = [{"request": r.fields, "patient": patients[r.fields["patient_id"]].fields
             if patients[r.fields["patient_id"]] else {}, "next": next_step(r.fields.get("status")),
             "unsent": bool(r.pending)} for r in requests]
    return page("laptop_today.html", shown=[*requests, *filter(None, patients.values())], rows=rows,
                step_labels=STEP_LABELS)


@blueprint.post("/requests/<request_id>/step")
def step(request_id):
    """Take the request's next step (accept, go, arrive, complete), as the CLI's accept and progress do."""
    with snapshot():
        found = local("visit_request", request_id)
    require(_is_mine(found.fields, me().get("id")))
    target = request.form.get("step")
    require(target == next_step(found.fields.get("status")))
    try:
        replica().write("visit_request", request_id, {"status": target})
    except REFUSALS as exc:
        refused("The step was not taken: %(why)s", exc)
    else:
        flash(web.i18n.gettext("Saved on this laptop; it is sent at the next sync."), "ok")
    return redirect(back_to(url_for("ui.today")))
