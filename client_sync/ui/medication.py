"""Medication on the laptop: a new drug, warned when it matches an active allergy; a dose changed.

The match is :func:`schema.allergy.matching_allergies`'s. A match does not
forbid the drug (the doctor decides) but the form comes back with the warning
and is saved only once the doctor has ticked that they saw it. Every active
allergy is shown beside the form whatever the match says. Writes are
:meth:`client_sync.replica.Replica.write`s, as ``hemsync put medication``.
"""

import uuid

from flask import flash, redirect, request, url_for

from schema.allergy import matching_allergies

from server import web

from .context import REFUSALS, blueprint, local, page, refused, replica, snapshot
from .patient import warnings_of

__all__ = ["MEDICATION_FIELDS"]

#: What the doctor types for a new drug.
MEDICATION_FIELDS = ("drug", "strength", "dose", "route", "frequency")


@blueprint.route("/patients/<patient_id>/medications/new", methods=["GET", "POST"])
def new_medication(patient_id):
    """Prescribe a drug; the form warns (and asks to be ticked) when it matches an active allergy."""
    with snapshot():
        shown = local("patient", patient_id)
        warnings = warnings_of(patient_id)
    allergies = [w.fields for w in warnings if w.fields.get("kind") == "allergy"]
    form = request.form if request.method == "POST" else {}
    matches = matching_allergies(form.get("drug", ""), allergies) if form else []
    if request.method == "POST" and (not matches or form.get("allergy_seen") == "yes"):
        fields = {name: (form.get(name) or "").strip() or None for name in MEDICATION_FIELDS}
        try:
            replica().write("medication", str(uuid.uuid4()), {"patient_id": patient_id, **fields})
        except REFUSALS as exc:
            refused("The medication was not saved: %(why)s", exc)
        else:
            flash(web.i18n.gettext("The medication is saved on this laptop; it is sent at the next sync."), "ok")
            return redirect(url_for("ui.patient", patient_id=patient_id))
    return page("laptop_medication.html", shown=[shown, *warnings], patient=shown.fields, form=form,
                allergies=allergies, matches=matches)


@blueprint.post("/patients/<patient_id>/medications/<medication_id>/dose")
def change_dose(patient_id, medication_id):
    """Change a drug's dose (the merge keeps both doses of concurrent changes as a conflict)."""
    with snapshot():
        found = local("medication", medication_id)
    if found.fields.get("patient_id") != patient_id:
        return redirect(url_for("ui.patient", patient_id=patient_id))
    dose = (request.form.get("dose") or "").strip()
    try:
        replica().write("medication", medication_id, {"dose": dose or None})
    except REFUSALS as exc:
        refused("The dose was not changed: %(why)s", exc)
    else:
        flash(web.i18n.gettext("The dose of %(drug)s is changed on this laptop; it is sent at the next sync.",
                               drug=found.fields.get("drug")), "ok")
    return redirect(url_for("ui.patient", patient_id=patient_id))
