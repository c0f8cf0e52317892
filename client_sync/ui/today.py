"""Today's requests of the doctor on this laptop, and accepting and moving them on.

A request is the doctor's when it is assigned to them or they accepted it, and
open for them from ``assigned`` until ``completed`` (the request type's state
machine, :data:`schema.records.visit_request.DOCTOR_STEPS`). Accepting and
each step are one :meth:`client_sync.replica.Replica.write`, as ``hemsync
accept`` and ``hemsync progress``; the server referees acceptance when the
laptop syncs.
"""

import threading

from flask import current_app, flash, redirect, request, url_for

from schema.records.visit_request import DOCTOR_STEPS

from server import web

from .context import REFUSALS, back_to, blueprint, local, me, page, part, refused, replica, require, snapshot

__all__ = ["STEP_LABELS", "NOTICES_SHOWN", "next_step", "doctors_requests", "Notices"]

#: The button of each step (catalogue messages, translated as they come).
STEP_LABELS = {"accepted": "Accept", "en_route": "On my way", "on_site": "On site", "completed": "Visit done"}
#: The most recent notices (new assignments, escalations) the list keeps showing.
NOTICES_SHOWN = 5
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
    found = [r for r in replica().local_naming("visit_request", user_id, statuses=ON_LIST)
             if r.fields.get("status") in ON_LIST and _is_mine(r.fields, user_id)]
    return sorted(found, key=lambda r: (r.fields.get("deadline") or "9999", r.id))


class Notices:
    """What a sync brought since this launch that the doctor must notice: a new request on her list, an escalation.

    The first list of a launch is what she has seen; after that, a request that
    appears on it (assigned to her by a sync) or whose ``escalated_at`` changes
    is a notice, kept (newest first, NOTICES_SHOWN of them) as a banner above the
    list, and a desktop notification where the browser allows it.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._known = None
        self._notices = []

    def update(self, requests):
        """Take the doctor's current list (LocalRecords); return the notices to show, newest first."""
        current = {r.id: r.fields.get("escalated_at") for r in requests}
        with self._lock:
            if self._known is not None:
                for r in requests:
                    if r.id not in self._known:
                        self._notices.insert(0, {"kind": "assigned", "key": f"assigned/{r.id}", "request": r})
                    elif current[r.id] and current[r.id] != self._known[r.id]:
                        self._notices.insert(0, {"kind": "escalated", "key": f"escalated/{r.id}/{current[r.id]}",
                                                 "request": r})
                del self._notices[NOTICES_SHOWN:]
            self._known = current
            return list(self._notices)


@blueprint.get("/")
def home():
    """The pages start at today's list."""
    return redirect(url_for("ui.today"))


@blueprint.get("/today")
def today():
    """Today's assigned and accepted requests, with the patient, the reason, the deadline and the next step.

    ``?part=board`` is the live part the page polls (``static/poll.js``): the
    list and the notices, so what a background sync brings shows by itself.
    """
    with snapshot():
        requests = doctors_requests(me().get("id"))
        patients = {r.fields["patient_id"]: replica().local("patient", r.fields["patient_id"]) for r in requests}
    names = {pid: (found.fields if found else {}) for pid, found in patients.items()}
    notices = [{"kind": n["kind"], "key": n["key"], "request": n["request"].fields,
                "patient": names.get(n["request"].fields["patient_id"], {})}
               for n in current_app.extensions["hemsync.ui.notices"].update(requests)]
    rows = [{"request": r.fields, "patient": names[r.fields["patient_id"]],
             "next": next_step(r.fields.get("status")), "unsent": bool(r.pending)} for r in requests]
    shown = [*requests, *filter(None, patients.values())]
    values = {"rows": rows, "notices": notices, "step_labels": STEP_LABELS}
    if request.args.get("part") == "board":
        return part("_laptop_today_board.html", shown=shown, **values)
    return page("laptop_today.html", shown=shown, **values)


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
