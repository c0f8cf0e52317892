"""The visit note of a request: written, saved, signed, and amended once signed.

One visit per request and doctor: the page finds the doctor's visit of the
request or makes it on the first save. Saving and signing are
:meth:`client_sync.replica.Replica.write`s as ``hemsync put visit`` and
``hemsync sign`` are (the note's text and ``signed_at`` in one change, so what
is signed is what was on the screen); the visit's rules (only its doctor signs,
sealed once signed, not while a conflict is open) are the merge's. An
amendment is a record of its own, as ``hemsync amend`` makes it.
"""

import uuid

from flask import flash, redirect, request, url_for

from schema.clock import now_text
from schema.records.visit import OUTCOMES

from server import web

from .context import REFUSALS, blueprint, local, me, page, refused, replica, require, snapshot

__all__ = ["NOTE_FIELDS"]

#: What the doctor writes on the note page.
NOTE_FIELDS = ("place", "assessment", "plan", "outcome")


def _note(form):
    values = {name: (form.get(name) or "").strip() or None for name in NOTE_FIELDS}
    if values["outcome"] not in OUTCOMES:
        values["outcome"] = None
    return values


@blueprint.route("/requests/<request_id>/note", methods=["GET", "POST"])
def note(request_id):
    """The note of the doctor's visit for this request: save it, or save and sign it."""
    user_id = me().get("id")
    with snapshot():
        asked = local("visit_request", request_id)
        require(user_id in (asked.fields.get("assigned_doctor_id"), asked.fields.get("accepted_by")))
        patient = local("patient", asked.fields["patient_id"])
        visit = replica().visit_of_request(asked.id, user_id)
        amendments = [a for a in replica().local_of_patient("amendment", asked.fields["patient_id"])
                      if visit is not None and a.fields.get("visit_id") == visit.id]
    if request.method == "POST":
        fields = _note(request.form)
        if request.form.get("action") == "sign":
            fields["signed_at"] = now_text("seconds")
        if visit is None:
            fields.update(patient_id=patient.id, request_id=request_id, doctor_id=user_id, kind="home_visit",
                          started_at=now_text("seconds"))
        try:
            replica().write("visit", visit.id if visit else str(uuid.uuid4()), fields)
        except REFUSALS as exc:
            refused("The note was not saved: %(why)s", exc)
        else:
            if "signed_at" in fields:
                flash(web.i18n.gettext("The note is signed on this laptop; it is sent at the next sync."), "ok")
            else:
                flash(web.i18n.gettext("The note is saved on this laptop; it is sent at the next sync."), "ok")
            return redirect(url_for("ui.note", request_id=request_id))
    shown = [asked, patient, *([visit] if visit else []), *amendments]
    return page("laptop_note.html", shown=shown, request_fields=asked.fields, patient=patient.fields,
                visit=visit.fields if visit else {}, amendments=[a.fields for a in amendments],
                outcomes=OUTCOMES, form=request.form if request.method == "POST" else None)


@blueprint.post("/requests/<request_id>/note/amend")
def amend(request_id):
    """Add an amendment to the signed visit of this request, as `hemsync amend` does."""
    user_id = me().get("id")
    with snapshot():
        asked = local("visit_request", request_id)
        visit = replica().visit_of_request(asked.id, user_id)
    require(visit is not None)
    text = (request.form.get("text") or "").strip()
    if not text:
        flash(web.i18n.gettext("Write the amendment's text."), "error")
        return redirect(url_for("ui.note", request_id=request_id))
    try:
        replica().write("amendment", str(uuid.uuid4()),
                        {"visit_id": visit.id, "patient_id": visit.fields["patient_id"], "text": text})
    except REFUSALS as exc:
        refused("The amendment was not saved: %(why)s", exc)
    else:
        flash(web.i18n.gettext("The amendment is saved on this laptop; it is sent at the next sync."), "ok")
    return redirect(url_for("ui.note", request_id=request_id))
