"""The patient's page on the laptop, and recording vitals with NEWS2.

Warnings and allergies come first (active ones, the most severe first), then
the medications in use, the latest vitals with NEWS2, the open requests, the
latest signed plan, and then the patient's whole history on this laptop
(:mod:`.history`), newest first. NEWS2 is :mod:`schema.news2`'s: stored on the observation by the
merge when it is written, and scored as the vitals are typed by
``/patients/<id>/news2`` (:func:`server.web.vitals.news2_answer`), never in
JavaScript.
"""

import uuid

from flask import flash, jsonify, redirect, request, url_for

from schema.clock import now_text
from schema.records.visit_request import OPEN, GOING

from server import web

from .context import REFUSALS, blueprint, live, local, of_patient, page, refused, replica, snapshot
from .history import HISTORY_PAGE, patient_history, shown_records

__all__ = ["patient_view", "warnings_of"]

_SEVERITY = {"life_threatening": 0, "high": 1, "low": 2}
_IN_USE = ("active", "paused")


def warnings_of(patient_id):
    """The patient's active warnings as LocalRecords, allergies first, the most severe first (inside a snapshot)."""
    return sorted((w for w in live(of_patient("warning", patient_id)) if w.fields.get("active") is not False),
                  key=lambda w: (w.fields.get("kind") != "allergy", _SEVERITY.get(w.fields.get("severity"), 9)))


def patient_view(patient_id):
    """Everything the patient's page shows of the current state, as LocalRecords (read inside a snapshot)."""
    of = of_patient
    warnings = warnings_of(patient_id)
    medications = [m for m in live(of("medication", patient_id)) if m.fields.get("status") in _IN_USE]
    observations = sorted(live(of("observation", patient_id)), key=lambda o: o.fields.get("measured_at") or "")
    requests = [r for r in live(of("visit_request", patient_id))
                if r.fields.get("status") in (*OPEN, *GOING[:-1])]
    visits = live(of("visit", patient_id))
    amendments = live(of("amendment", patient_id))
    return {"warnings": warnings, "medications": medications, "latest": observations[-1:],
            "requests": requests, "plans": [v for v in visits if v.fields.get("signed_at")],
            "amendments": amendments}


@blueprint.get("/patients/<patient_id>")
def patient(patient_id):
    """The patient's page: warnings and allergies first, medications, latest vitals, open requests, plan, history.

    ``?history=N`` shows the N newest events of the history (HISTORY_PAGE more per "Visa fler").
    """
    wanted = request.args.get("history", type=int) or HISTORY_PAGE
    with snapshot():
        shown = local("patient", patient_id)
        parts = patient_view(patient_id)
        events = patient_history(patient_id)
    amendments = {}
    for amendment in parts["amendments"]:
        amendments.setdefault(amendment.fields.get("visit_id"), []).append(amendment.fields)
    latest_plan = max(parts["plans"], key=lambda v: v.fields.get("signed_at") or "", default=None)
    history = events[:max(wanted, 1)]
    records = shown_records(history, also=[
        shown, *(r for name in ("warnings", "medications", "latest", "requests") for r in parts[name]),
        *([latest_plan, *(a for a in parts["amendments"] if a.fields.get("visit_id") == latest_plan.id)]
          if latest_plan else [])])
    return page("laptop_patient.html", shown=records, patient=shown.fields,
                warnings=[w.fields for w in parts["warnings"]],
                medications=[m.fields for m in parts["medications"]],
                latest=parts["latest"][0].fields if parts["latest"] else None,
                requests=[r.fields for r in parts["requests"]],
                plan={**latest_plan.fields, "amendments": amendments.get(latest_plan.id, [])} if latest_plan else None,
                history=history, history_total=len(events), history_more=len(history) + HISTORY_PAGE)


@blueprint.get("/patients/<patient_id>/news2")
def news2(patient_id):
    """NEWS2 of vitals as they are typed, on the patient's SpO2 scale (schema.news2's score)."""
    with snapshot():
        shown = local("patient", patient_id)
    return jsonify(web.vitals.news2_answer(request.args, shown.fields.get("spo2_scale")))


@blueprint.route("/patients/<patient_id>/vitals", methods=["GET", "POST"])
def vitals(patient_id):
    """Record vitals: an observation written through the replica; the merge stores its NEWS2."""
    with snapshot():
        shown = local("patient", patient_id)
    form = request.form if request.method == "POST" else {}
    if request.method == "POST":
        values = web.vitals.typed_vitals(form)
        if values == {}:
            flash(web.i18n.gettext("Type at least one vital sign."), "error")
        elif values is not None:
            try:
                written = replica().write("observation", str(uuid.uuid4()), {
                    "patient_id": patient_id, "measured_at": now_text("seconds"), **values})
            except REFUSALS as exc:
                refused("The vitals were not saved: %(why)s", exc)
            else:
                flash(web.i18n.gettext("Vitals saved on this laptop: NEWS2 %(news2)s.",
                                       news2=_news2_text(written.fields)), "ok")
                return redirect(url_for("ui.patient", patient_id=patient_id))
    return page("laptop_vitals.html", shown=[shown], patient=shown.fields, form=form)


def _news2_text(fields):
    if fields.get("news2") is None:
        return "–"
    return str(fields["news2"]) + (" " + web.i18n.gettext("(partial)") if fields.get("news2_partial") else "")
