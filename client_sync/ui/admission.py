"""Direct admission (direktinskrivning) proposed from the laptop: the hospital, the ward and the reason.

A proposal is one :meth:`client_sync.replica.Replica.write` of an
``admission`` record, linked to the doctor's visit when made from the note;
the admission's state machine (proposed → accepted → arrived, or declined) is
the merge's, and its hospital stay is made by the server once it has arrived.
"""

import uuid

from flask import flash, redirect, request, url_for

from server import web

from .context import REFUSALS, blueprint, local, page, refused, replica, snapshot
from .patient import warnings_of

__all__ = ["ADMISSION_FIELDS"]

#: What the doctor types for a proposal.
ADMISSION_FIELDS = ("hospital", "ward", "reason", "contact_phone")


@blueprint.route("/patients/<patient_id>/admission", methods=["GET", "POST"])
def admission(patient_id):
    """Propose a direct admission of the patient (``?visit=`` links it to the doctor's visit)."""
    visit_id = request.values.get("visit") or None
    with snapshot():
        shown = local("patient", patient_id)
        warnings = warnings_of(patient_id)
        if visit_id is not None and local("visit", visit_id).fields.get("patient_id") != patient_id:
            visit_id = None
    form = request.form if request.method == "POST" else {}
    if request.method == "POST":
        fields = {name: (form.get(name) or "").strip() or None for name in ADMISSION_FIELDS}
        try:
            replica().write("admission", str(uuid.uuid4()), {"patient_id": patient_id, "visit_id": visit_id,
                                                               **fields})
        except REFUSALS as exc:
            refused("The admission was not proposed: %(why)s", exc)
        else:
            flash(web.i18n.gettext("The direct admission is proposed on this laptop; it is sent at the next sync."),
                  "ok")
            return redirect(url_for("ui.patient", patient_id=patient_id))
    return page("laptop_admission.html", shown=[shown, *warnings], patient=shown.fields,
                warnings=[w.fields for w in warnings], form=form, visit_id=visit_id)
