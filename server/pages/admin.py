"""The admin's pages: users, devices (health, revoke), quarantine, duplicate patients (merge), the audit log.

Each read an admin makes is audited as the CLI's and the API's are (``admin_read``);
revoking a device and merging duplicates are the CLI's acts (:mod:`server.auth`,
:mod:`server.admin`), audited as they are there.
"""

import uuid

from flask import Blueprint, current_app, flash, g, redirect, request, url_for

from schema.identity import normalize_personnummer

from .. import admin, audit, auth, web
from ..errors import NotFound
from .session import REFUSALS, WEB_DEVICE, page, refused, show_errors, signed_in, store

__all__ = ["blueprint"]

blueprint = Blueprint("admin", __name__, url_prefix="/admin")
web.csrf.protect(blueprint)
show_errors(blueprint)
#: Most audit entries one page of the log shows.
AUDIT_PAGE = 200


@blueprint.get("/users")
@signed_in("admin")
def users():
    """Everyone who works in the region, with role, municipalities, HSA-id and whether a password is set."""
    people = [{**user, "has_password": store().password_hash(user["id"]) is not None} for user in store().users()]
    return page("admin_users.html", users=people)


@blueprint.get("/devices")
@signed_in("admin")
def devices():
    """Device health: last sync, changes waiting, rejected, clock offset; revoke."""
    return page("admin_devices.html", devices=auth.device_health(store()))


@blueprint.post("/devices/<device_id>/revoke")
@signed_in("admin")
def revoke(device_id):
    """Revoke a device: it is told to wipe its replica."""
    try:
        with store().transaction():
            device = auth.revoke(store(), device_id)
            store().audit([audit.admin("revoke", {"for_user": device["user_id"], "via": "web"}, user=g.user,
                                        device_id=device_id)])
    except NotFound:
        flash(web.i18n.gettext("No such device."), "error")
    else:
        flash(web.i18n.gettext("The device was revoked."), "ok")
    return redirect(url_for("admin.devices"))


@blueprint.get("/quarantine")
@signed_in("admin")
def quarantine():
    """Rejected changes with their reasons (audited: they hold clinical text)."""
    entries = store().quarantined(limit=AUDIT_PAGE)
    store().audit(audit.quarantine_read(g.user, WEB_DEVICE, entries, f"GET {request.path}"))
    return page("admin_quarantine.html", entries=entries)


@blueprint.get("/duplicates")
@signed_in("admin")
def duplicates():
    """Open duplicate-patient conflicts: the records sharing a personnummer, each with its identity; merge."""
    conflicts = store().duplicates(status="open")
    identities = {}
    for stored in store().get_records("patient", {p for c in conflicts for p in c["patients"]}):
        # An admin sees the duplicates' identities only (DOMAIN.md's role table), not their clinical records.
        identities[stored.id] = {k: stored.view().get(k) for k in ("name", "municipality")}
    store().audit(audit.duplicates_read(g.user, WEB_DEVICE, conflicts, f"GET {request.path}"))
    return page("admin_duplicates.html", conflicts=conflicts, identities=identities)


@blueprint.post("/duplicates/merge")
@signed_in("admin")
def merge():
    """Merge the duplicate record into the one kept, with the reason: ``hemsync-server merge-patients``'s act."""
    try:
        result = admin.merge_patients(store(), current_app.config["HEMSYNC"], request.form.get("keep", ""),
                                      request.form.get("duplicate", ""),
                                      request.form.get("reason", ""), g.user["id"])
    except REFUSALS as exc:
        refused("Not merged: %(why)s", exc)
    else:
        flash(web.i18n.gettext("Merged: %(moved)s record(s) moved to the kept patient.", moved=result["moved"]), "ok")
    return redirect(url_for("admin.duplicates"))


@blueprint.get("/audit")
@signed_in("admin")
def audit_log():
    """The audit log, newest first, searchable by patient (personnummer or id) and by person."""
    patient = request.args.get("patient", "").strip()
    user_id = request.args.get("user_id", "").strip() or None
    try:
        patient_ids = _patients_named_by(patient) if patient else [None]
    except REFUSALS as exc:
        refused("Not searched: %(why)s", exc)
        patient_ids = []
    # A personnummer may name two records (duplicates not yet merged): their entries, newest first.
    entries = sorted((e for patient_id in patient_ids
                      for e in store().recent_audit(patient_id=patient_id, user_id=user_id, limit=AUDIT_PAGE)),
                     key=lambda e: e["id"], reverse=True)[:AUDIT_PAGE]
    store().audit(audit.audit_log_read(g.user, WEB_DEVICE, entries, f"GET {request.path}", patient or None))
    people = sorted(store().users(), key=lambda user: user["name"])
    return page("admin_audit.html", entries=entries, patient=patient, user_id=user_id or "", people=people,
                page_size=AUDIT_PAGE)


def _patients_named_by(text):
    """The patient ids a search names: a record id as it is, a personnummer as the records that carry it."""
    try:
        return [str(uuid.UUID(text))]
    except ValueError:
        return [stored.id for stored in store().patients_with_personnummer(normalize_personnummer(text))]
