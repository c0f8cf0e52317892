"""The SÄBO round on the laptop: the doctor's rounds, and the residents worked one by one.

A round (``round`` record) lists its residents as items keyed by patient; the
doctor opens each resident (warnings and allergies first, the nurse's question,
medications, latest NEWS2), writes a note and marks the item done or deferred,
then goes on to the next open resident. Each item is one
:meth:`client_sync.replica.Replica.write` of that item alone (items merge item
by item, the note keeping both texts of concurrent edits), as ``hemsync put
round`` does; the first one also marks the round in progress.
"""

from flask import abort, flash, redirect, request, url_for

from schema import records
from server import web

from .context import REFUSALS, blueprint, local, me, page, refused, replica, snapshot
from .patient import patient_view

__all__ = ["ITEM_STEPS", "next_open"]

#: What the doctor may mark an item.
ITEM_STEPS = ("done", "deferred")
#: A round's statuses (None: none set yet) in which it is on the doctor's list: a year of done rounds is not read.
NOT_DONE = (None, *(s for s in records.get("round").choices("status") if s != "done"))


def _residents(round_fields):
    """The round's items with each resident's record (LocalRecord or None), by name (read inside a snapshot)."""
    rows = []
    for patient_id, item in (round_fields.get("items") or {}).items():
        rows.append((patient_id, item or {}, replica().local("patient", patient_id)))
    return sorted(rows, key=lambda row: ((row[2].fields.get("name") if row[2] else "") or "", row[0]))


def next_open(residents, after=None):
    """The next resident after ``after`` (round the list, as ``_residents`` orders it) whose item is still open.

    None when every item is done or deferred.
    """
    order = [pid for pid, _, _ in residents]
    start = order.index(after) + 1 if after in order else 0
    return next((pid for pid, item, _ in residents[start:] + residents[:start]
                 if pid != after and item.get("status") in (None, "open")), None)


@blueprint.get("/rounds")
def rounds():
    """The doctor's rounds that are not done, with how many residents are left."""
    user_id = me().get("id")
    with snapshot():
        found = [r for r in replica().local_naming("round", user_id, statuses=NOT_DONE)
                 if r.fields.get("doctor_id") == user_id and r.fields.get("status") != "done"]
    rows = [{**r.fields, "left": sum(1 for i in (r.fields.get("items") or {}).values()
                                     if (i or {}).get("status") in (None, "open")),
             "total": len(r.fields.get("items") or {})} for r in sorted(found, key=lambda r: r.fields.get("date"))]
    return page("laptop_rounds.html", shown=found, rounds=rows)


@blueprint.get("/rounds/<round_id>")
def sabo_round(round_id):
    """One round: its residents by name, each item's question and status."""
    with snapshot():
        found = local("round", round_id)
        residents = _residents(found.fields)
    shown = [found, *(p for _, _, p in residents if p)]
    return page("laptop_round.html", shown=shown, round=found.fields,
                residents=[{"id": pid, "item": item, "name": p.fields.get("name") if p else pid}
                           for pid, item, p in residents],
                next_id=next_open(residents))


@blueprint.route("/rounds/<round_id>/residents/<patient_id>", methods=["GET", "POST"])
def resident(round_id, patient_id):
    """One resident of the round: what to know first, the question; the note and done or deferred, then the next."""
    with snapshot():
        found = local("round", round_id)
        item = (found.fields.get("items") or {}).get(patient_id)
        if item is None:
            abort(404)
        shown = local("patient", patient_id)
        parts = patient_view(patient_id)
    if request.method == "POST":
        step = request.form.get("status")
        values = {"note": (request.form.get("note") or "").strip() or None,
                  **({"status": step} if step in ITEM_STEPS else {})}
        fields = {"items": {patient_id: values}}
        if found.fields.get("status") in (None, "planned"):
            fields["status"] = "in_progress"
        try:
            written = replica().write("round", round_id, fields)
        except REFUSALS as exc:
            refused("The round item was not saved: %(why)s", exc)
        else:
            flash(web.i18n.gettext("%(name)s: saved on this laptop.", name=shown.fields.get("name")), "ok")
            with snapshot():
                following = next_open(_residents(written.fields), after=patient_id)
            if following is None:
                return redirect(url_for("ui.sabo_round", round_id=round_id))
            return redirect(url_for("ui.resident", round_id=round_id, patient_id=following))
    records = [found, shown, *(r for name in ("warnings", "medications", "latest") for r in parts[name])]
    return page("laptop_resident.html", shown=records, round=found.fields, item=item, patient=shown.fields,
                warnings=[w.fields for w in parts["warnings"]],
                medications=[m.fields for m in parts["medications"]],
                latest=parts["latest"][0].fields if parts["latest"] else None, steps=ITEM_STEPS)
