"""The laptop's sync state: last sync, changes waiting, rejected changes to correct or discard; "sync now".

"Sync now" is one :func:`client_sync.sync.sync` (the CLI's `hemsync sync`),
with one quick attempt rather than the background sync's patient retries: a
doctor at the page wants to know at once whether the network is there. With no
network the changes simply wait; the page says so. A rejected change is
corrected (its text fields edited, then resent as a new change: ``hemsync
fix``) or discarded (``hemsync discard``); either way it is kept in the archive.
"""

from flask import flash, redirect, request, url_for

from server import web

from ..errors import ConnectionLost, RejectedNotFound, SyncBusy
from ..sync import client_for, sync
from .context import REFUSALS, blueprint, page, refused, replica, snapshot

__all__ = ["SYNC_NOW_RETRIES", "SYNC_NOW_TIMEOUT", "editable", "corrections"]

SYNC_NOW_RETRIES = 1
SYNC_NOW_TIMEOUT = 10


def editable(change):
    """The fields of a rejected change a person can correct in a text box: texts and numbers."""
    return {name: value for name, value in change["fields"].items()
            if isinstance(value, (str, int, float)) and not isinstance(value, bool)}


def corrections(change, form):
    """The corrected fields typed into the form, each read as the type it had (a number stays a number)."""
    found = {}
    for name, value in editable(change).items():
        text = form.get(f"field-{name}")
        if text is None:
            continue
        text = text.strip()
        found[name] = type(value)(text.replace(",", ".")) if isinstance(value, (int, float)) else text
    return found


@blueprint.get("/sync")
def sync_page():
    """Last sync, what waits to be sent, and what the server rejected (with its reason)."""
    with snapshot():
        settings = replica().settings()
        waiting = replica().unsent_count()
    rejected = replica().rejected()  # logs the patients it shows: a write, so after the read
    for item in rejected:
        item["editable"] = editable(item["change"])
    return page("laptop_sync.html", last_sync=(settings.get("last_sync") or {}).get("finished_at"),
                failure=settings.get("last_sync_error"), server=settings.get("server_url"),
                waiting=waiting, rejected=rejected)


@blueprint.post("/sync")
def sync_now():
    """Sync now: send what waits, fetch what others did."""
    opened = replica()
    try:
        report = sync(opened, client=client_for(opened, retries=SYNC_NOW_RETRIES, timeout=SYNC_NOW_TIMEOUT))
    except ConnectionLost:
        flash(web.i18n.gettext("No contact with the server: your changes wait on this laptop "
                               "and go out at the next sync."), "error")
    except SyncBusy:
        flash(web.i18n.gettext("A sync is already running: look again in a moment."), "ok")
    except REFUSALS as exc:
        refused("The sync failed: %(why)s", exc)
    else:
        flash(web.i18n.gettext("Synced: %(sent)s change(s) sent, %(rejected)s rejected, %(received)s received.",
                               sent=report.applied + report.conflicts + len(report.rejected),
                               rejected=len(report.rejected), received=report.pulled), "ok")
    return redirect(url_for("ui.sync_page"))


@blueprint.post("/rejected/<change_id>/discard")
def discard(change_id):
    """Give up a rejected change: it is archived, not deleted, as `hemsync discard` does."""
    try:
        replica().discard(change_id)
    except REFUSALS as exc:
        refused("The change was not discarded: %(why)s", exc)
    else:
        flash(web.i18n.gettext("The change is discarded and kept in the archive."), "ok")
    return redirect(url_for("ui.sync_page"))


@blueprint.post("/rejected/<change_id>/fix")
def fix(change_id):
    """Correct a rejected change and queue it again (a new change; the rejected one goes to the archive)."""
    try:
        rejected = {item["change_id"]: item for item in replica().rejected()}
        if change_id not in rejected:
            raise RejectedNotFound(f"no rejected change {change_id} waits on this laptop")
        replica().fix(change_id, corrections(rejected[change_id]["change"], request.form))
    except ValueError:
        flash(web.i18n.gettext("A number is not a number: check the values."), "error")
    except REFUSALS as exc:
        refused("The change was not corrected: %(why)s", exc)
    else:
        flash(web.i18n.gettext("Corrected on this laptop; it is sent at the next sync."), "ok")
    return redirect(url_for("ui.sync_page"))
