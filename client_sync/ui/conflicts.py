"""The open conflicts of the records on this laptop, side by side, each resolved with a click.

Resolving is what ``hemsync resolve`` does (:meth:`client_sync.replica.Replica.resolve`):
a write of the kept value that names the conflict, so the merge decides whether it may close it (a signed visit's
late text, for one, is closed only by the signer keeping the signed value).
"""

from flask import flash, redirect, request, url_for

from schema.clock import Hlc

from server import web

from .context import REFUSALS, blueprint, page, refused, replica

__all__ = []


def _side(value):
    """One competing value as the page shows it: the value, who wrote it and when."""
    return {"value": value["value"], "by": value.get("by"), "at": Hlc.parse(value["hlc"]).time.isoformat()}


@blueprint.get("/conflicts")
def conflicts():
    """Every open conflict with its competing values side by side and the patient it is about."""
    found = replica().conflicts()  # logs each record it shows: a write, so not inside a snapshot
    rows = []
    for conflict in found:
        record = replica().local(conflict["record_type"], conflict["record_id"])
        patient_ids = record.patient_ids if record else []
        patient = replica().local("patient", patient_ids[0]) if patient_ids else None
        rows.append({**conflict, "patient": patient.fields if patient else {},
                     "sides": [_side(v) for v in conflict["values"]]})
    return page("laptop_conflicts.html", conflicts=rows)


@blueprint.post("/conflicts/<conflict_id>/keep")
def keep(conflict_id):
    """Keep one of the competing values: the field takes it and the conflict closes."""
    try:
        conflict = replica().find_conflict(conflict_id)
        replica().resolve(conflict["id"], conflict["values"][int(request.form.get("choice", ""))]["value"])
    except (ValueError, IndexError):
        flash(web.i18n.gettext("Choose one of the values shown."), "error")
    except REFUSALS as exc:
        refused("The conflict was not resolved: %(why)s", exc)
    else:
        flash(web.i18n.gettext("Resolved on this laptop; it is sent at the next sync."), "ok")
    return redirect(url_for("ui.conflicts"))
