"""The nurse's pages: find a patient, the patient's page, request a visit with vitals, her requests.

Her requests show, live, each request's status, doctor and deadline and the
doctor's signed plan (with any amendments) once the visit note is signed.

NEWS2 as the vitals are typed is the server's (:func:`schema.news2.score`, via
``/news2``), and so is the "consider 112" advice
(:func:`schema.dispatch.emergency_reasons`). Patients are those of her scope
(:func:`server.scope.keys_for`); every page that shows one audits it.
"""

import uuid

from flask import Blueprint, abort, flash, g, jsonify, redirect, render_template, request, url_for

from schema.clock import now_text
from schema.records.visit_request import RETTS_COLOURS, URGENCIES

from .. import audit, scope, web
from ..web.search import matches
from .session import REFUSALS, WEB_DEVICE, audit_read, page, refused, show_errors, signed_in, store, writes

__all__ = ["blueprint"]

blueprint = Blueprint("nurse", __name__, url_prefix="/nurse")
web.csrf.protect(blueprint)
show_errors(blueprint)
#: Most patients one search shows: a longer list is a sign to type more.
SEARCH_LIMIT = 50


def _shown(patient_pairs):
    """Audit what a page showed, as a pull would be: ``(patient_id, "type/id")`` pairs."""
    audit_read(audit.shown(g.user, WEB_DEVICE, patient_pairs, f"{request.method} {request.path}"))


def _my_patients():
    return {p.id: p.view() for p in store().get_records("patient", scope.keys_for(store(), g.user).full)}


def _patient(patient_id):
    """The patient if it is in the nurse's scope, else 404 (out of scope looks like unknown)."""
    if patient_id not in scope.keys_for(store(), g.user).full:
        abort(404)
    stored = store().get_record("patient", patient_id)
    if stored is None:
        abort(404)
    return stored.view()


@blueprint.get("/patients")
@signed_in("nurse")
def patients():
    """Search the patients of her municipalities by name or personnummer."""
    query = request.args.get("q", "").strip()
    found = []
    if query:
        found = sorted((p for p in _my_patients().values() if not p.get("entered_in_error")
                        and matches(query, p.get("name"), personnummer=p.get("personnummer"))),
                       key=lambda p: (p.get("name") or "", p["id"]))[:SEARCH_LIMIT]
        _shown([(p["id"], f"patient/{p['id']}") for p in found])
    return page("patients.html", query=query, patients=found)


def _requests(patient_ids, mine=False):
    """Visit requests of these patients (only hers with ``mine``), newest first, with name and signed plans."""
    rows = []
    names = {}
    for stored in store().records_of_patients("visit_request", patient_ids):
        row = stored.view()
        if mine and row.get("requested_by") != g.user["id"]:
            continue
        rows.append(row)
    shown_patients = {r["patient_id"] for r in rows}
    for stored in store().get_records("patient", shown_patients):
        names[stored.id] = stored.view().get("name")
    plans = _signed_plans(shown_patients)
    for row in rows:
        row["patient_name"] = names.get(row["patient_id"], "")
        row["plans"] = plans.get(row["id"], [])
    return sorted(rows, key=lambda r: r.get("received_at") or "", reverse=True)


def _signed_plans(patient_ids):
    """The signed visits (with their amendments) of these patients, by the request they answer.

    Only signed visits: a note still being written is the doctor's draft, not a
    plan a nurse should act on. A visit entered in error is left out.
    """
    amendments = {}
    for stored in store().records_of_patients("amendment", patient_ids):
        amendment = stored.view()
        if not amendment.get("entered_in_error"):
            amendments.setdefault(amendment["visit_id"], []).append(amendment)
    plans = {}
    for stored in store().records_of_patients("visit", patient_ids):
        visit = stored.view()
        if visit.get("signed_at") and visit.get("request_id") and not visit.get("entered_in_error"):
            visit["amendments"] = amendments.get(visit["id"], [])
            plans.setdefault(visit["request_id"], []).append(visit)
    return plans


def _request_reads(requests):
    """What showing these requests reads: each request, its signed visits and their amendments."""
    for row in requests:
        yield row["patient_id"], f"visit_request/{row['id']}"
        for visit in row["plans"]:
            yield row["patient_id"], f"visit/{visit['id']}"
            yield from ((row["patient_id"], f"amendment/{a['id']}") for a in visit["amendments"])


@blueprint.get("/patients/<patient_id>")
@signed_in("nurse")
def patient(patient_id):
    """One patient: who, where, the named doctor, and the visit requests."""
    shown = _patient(patient_id)
    requests = _requests([patient_id])
    _shown([(patient_id, f"patient/{patient_id}"), *_request_reads(requests)])
    return page("patient.html", patient=shown, requests=requests)


@blueprint.get("/patients/<patient_id>/news2")
@signed_in("nurse")
def news2(patient_id):
    """NEWS2 of vitals as they are typed, on the patient's SpO2 scale, and whether to consider 112."""
    patient = _patient(patient_id)
    return jsonify(web.vitals.news2_answer(request.args, patient.get("spo2_scale")))


@blueprint.route("/patients/<patient_id>/request", methods=["GET", "POST"])
@signed_in("nurse")
def new_request(patient_id):
    """The visit request form with vitals; sent, the observation and the request go through the merge."""
    patient = _patient(patient_id)
    _shown([(patient_id, f"patient/{patient_id}")])
    form = request.form if request.method == "POST" else {}
    if request.method == "POST":
        vitals = web.vitals.typed_vitals(form)
        if vitals is not None:
            try:
                request_id = _send(patient_id, form, vitals)
            except REFUSALS as exc:
                refused("The request was not sent: %(why)s", exc)
            else:
                flash(web.i18n.gettext("The request was sent."), "ok")
                return redirect(url_for("nurse.my_requests", sent=request_id))
    return page("request_new.html", patient=patient, form=form, urgencies=URGENCIES, retts_colours=RETTS_COLOURS)


def _send(patient_id, form, vitals):
    """Write the observation (if any vitals) and the request in one transaction; return the request's id."""
    db = store()
    with db.transaction():
        applier = writes()
        observation_id = None
        if vitals:
            observation_id = str(uuid.uuid4())
            applier.write("observation", observation_id, {"patient_id": patient_id, "measured_at": now_text(),
                                                          **vitals})
        request_id = str(uuid.uuid4())
        applier.write("visit_request", request_id, {
            "patient_id": patient_id, "reason": form.get("reason", "").strip(), "urgency": form.get("urgency"),
            "retts_colour": form.get("retts_colour") or None, "callback_phone": form.get("callback_phone") or None,
            "observation_id": observation_id})
        applier.finish()
    return request_id


@blueprint.get("/requests")
@signed_in("nurse")
def my_requests():
    """Her requests with status, doctor and deadline; ``?part=table`` is the live part the page polls."""
    keys = scope.keys_for(store(), g.user)
    requests = _requests(keys.full, mine=True)
    _shown(list(_request_reads(requests)))
    if request.args.get("part") == "table":
        return render_template("_requests_table.html", requests=requests)
    return page("my_requests.html", requests=requests)
