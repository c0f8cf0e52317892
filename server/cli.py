"""``hemsync-server``: set up, administer and run the sync server.

A thin click group: each command calls the server's modules and prints; errors
of the library become ``click.ClickException`` here and only here.
"""

import csv
import dataclasses
import datetime as dt
import functools
import io
import json
import secrets
import sys

import click

from schema.clock import utcnow
from schema.errors import HemsyncError
from schema.roles import ROLES

from schema.followup.calendar import today
from schema.followup.due import LISTS
from schema.followup.figures import FIGURES

from . import admin, audit, auth, followup, jobs, passwords, queue, settings
from .errors import ServerError
from .seed import STAFF, demo_users, seed_demo
from .store import is_postgres_url, open_store
from .store.postgres import redacted

__all__ = ["main"]


@dataclasses.dataclass
class Context:
    """What every command shares: the database (a SQLite path or a PostgreSQL URL), its store, settings."""

    db: str
    _store: object = None

    @property
    def store(self):
        """The store on ``--db``, opened (and migrated) once."""
        if self._store is None:
            self._store = open_store(self.db, write_wait=self.settings["HEMSYNC_WRITE_WAIT_SECONDS"])
        return self._store

    @property
    def shown(self):
        """The database as messages name it (a URL without its password)."""
        return redacted(self.db)

    @property
    def settings(self):
        """The HEMSYNC_* settings, with the database from ``--db``."""
        return settings.load(overrides=self.overrides)

    @property
    def overrides(self):
        """The database settings ``--db`` names."""
        key = "HEMSYNC_DATABASE_URL" if is_postgres_url(self.db) else "HEMSYNC_DB"
        return {"HEMSYNC_DATABASE_URL": "", key: self.db}


pass_context = click.make_pass_decorator(Context)


def json_option(command):
    """Add ``--json``: print machine-readable output instead of text."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(command)


def library_errors(command):
    """Turn the server's and the schema's errors into a clean CLI error."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (HemsyncError, ServerError) as exc:
            raise click.ClickException(getattr(exc, "message", str(exc))) from exc

    return wrapper


def by_option(command):
    """Add ``--by ADMIN_ID``: the admin doing this, named in the audit log (checked: an admin)."""
    return click.option("--by", "admin_id", default=None, metavar="ADMIN_ID", envvar="HEMSYNC_ADMIN",
                        help="The user id of the admin doing this, kept in the audit log "
                             "(or set HEMSYNC_ADMIN).")(command)


def emit(as_json, data, text):
    """Print ``data`` as JSON, or ``text`` for people."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False) if as_json else text)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", envvar=["HEMSYNC_DATABASE_URL", "HEMSYNC_DB"], default="var/hemsync.db", show_default=True,
              metavar="PATH|URL",
              help="SQLite database file, or a postgresql:// URL "
                   "(env HEMSYNC_DATABASE_URL, then HEMSYNC_DB).")
@click.pass_context
def main(ctx, db):
    """The hemsync sync server: laptops push and pull through it.

    \b
    Example:
        hemsync-server --db var/hemsync.db init
        hemsync-server add-user --name "Anna Berg" --role doctor --municipality Halmstad
        hemsync-server enroll --user USER_ID --label "Anna's laptop"
        hemsync-server serve --port 5000
    """
    ctx.obj = Context(db)


@main.command()
@json_option
@pass_context
@library_errors
def init(ctx, as_json):
    """Create the database, or upgrade an older one to the current schema.

    \b
    Example:
        hemsync-server --db var/hemsync.db init
        hemsync-server --db postgresql://hemsync@db.example:5432/hemsync init
    """
    ctx.store.migrate()
    emit(as_json, {"db": ctx.shown}, f"database ready: {ctx.shown}")


@main.command()
@click.argument("path", type=click.Path(dir_okay=False))
@json_option
@pass_context
@library_errors
def backup(ctx, path, as_json):
    """Copy the SQLite database to PATH while the server runs (SQLite's online backup API).

    PATH must not exist yet. A PostgreSQL database is backed up with its own tools (docs/deploy.md).

    \b
    Example:
        hemsync-server --db var/hemsync.db backup /backups/hemsync-$(date +%F).db
    """
    ctx.store.backup(path)
    emit(as_json, {"db": ctx.shown, "backup": path}, f"backed up {ctx.shown} to {path}")


@main.command("copy-to")
@click.argument("url")
@json_option
@pass_context
@library_errors
def copy_to(ctx, url, as_json):
    """Move everything from the SQLite database to an empty PostgreSQL one, and verify the copy.

    Stop the server first. Records keep their feed numbers (laptops' cursors stay valid),
    the audit log and the escalation feed their ids; each table's rows are counted and
    digested on both sides, and any difference undoes the copy.

    \b
    Example:
        createdb hemsync
        hemsync-server --db var/hemsync.db copy-to postgresql://hemsync@db.example/hemsync
    """
    from .store.copy import copy_store

    if is_postgres_url(ctx.db) or not is_postgres_url(url):
        raise click.ClickException("copy-to moves a SQLite --db into a postgresql:// URL")
    target = open_store(url)
    try:
        digests = copy_store(ctx.store, target)
    finally:
        target.close()
    rows = {table: count for table, (count, _) in digests.items()}
    emit(as_json, {"db": ctx.shown, "to": redacted(url), "tables": {t: {"rows": c, "sha256": d}
                                                                     for t, (c, d) in digests.items()}},
         f"copied {ctx.shown} to {redacted(url)}, verified: "
         + ", ".join(f"{table} {count}" for table, count in rows.items()))


@main.command("add-municipality")
@click.argument("name")
@by_option
@json_option
@pass_context
@library_errors
def add_municipality(ctx, name, admin_id, as_json):
    """Add a municipality to the region's list, spelled as the region writes it.

    Patients, rounds and users name municipalities of this list only (case is
    ignored when matching). Adding a known name again changes nothing.

    \b
    Example:
        hemsync-server add-municipality Halmstad --by ADMIN_ID
    """
    by = auth.acting_admin(ctx.store, admin_id, "add a municipality")
    with ctx.store.transaction():
        name, added = auth.add_municipality(ctx.store, name)
        if added:
            ctx.store.audit([audit.admin("add_municipality", {"name": name}, user=by)])
    emit(as_json, {"name": name, "added": added},
         f"added municipality {name}" if added else f"{name} is on the list already")


@main.command()
@json_option
@pass_context
@library_errors
def municipalities(ctx, as_json):
    """The region's municipalities, one a line.

    \b
    Example:
        hemsync-server municipalities
    """
    names = ctx.store.municipalities()
    emit(as_json, {"municipalities": names}, "\n".join(names) or "no municipalities yet: add-municipality NAME")


@main.command("set-password")
@click.option("--user", "user_id", required=True, metavar="USER_ID", help="The person whose password is set.")
@by_option
@json_option
@pass_context
@library_errors
def set_password(ctx, user_id, admin_id, as_json):
    """Set or reset a person's password for the web pages (--by an admin; audited, never shown).

    The password is read from a hidden prompt (asked twice), or from the first
    line of stdin when that is not a terminal, so it never lands in shell
    history. A reset ends the person's open sessions.

    \b
    Example:
        hemsync-server set-password --user USER_ID --by ADMIN_ID
    """
    by = auth.acting_admin(ctx.store, admin_id, "set a password")
    if sys.stdin.isatty():
        password = click.prompt("new password (not shown)", hide_input=True, confirmation_prompt=True, err=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    user = passwords.set_password(ctx.store, user_id, password, by)
    emit(as_json, {"user": user["id"], "name": user["name"]}, f"password set for {user['name']} ({user['id']})")


@main.command("add-user")
@click.option("--name", required=True, help="The person's name.")
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option("--municipality", "municipalities", multiple=True, help="A municipality (repeat for more).")
@click.option("--hsa-id", default=None, help="The person's HSA-id, e.g. SE2321000131-E000000000001.")
@by_option
@json_option
@pass_context
@library_errors
def add_user(ctx, name, role, municipalities, hsa_id, admin_id, as_json):
    """Add a user and print the user's id (--by an admin; the first admin of a new database needs none).

    \b
    Example:
        hemsync-server add-user --name "Per Nyström" --role admin      # the first admin
        hemsync-server add-user --name "Maria Ek" --role nurse --municipality Halmstad --by ADMIN_ID
    """
    first_admin = admin_id is None and role == "admin" and not any(u["role"] == "admin" for u in ctx.store.users())
    by = None if first_admin else auth.acting_admin(ctx.store, admin_id, "add a user")
    with ctx.store.transaction():
        user = auth.add_user(ctx.store, name, role, municipalities, hsa_id=hsa_id)
        ctx.store.audit([audit.admin("add_user", {"added": user["id"], "role": role, "first_admin": first_admin},
                                     user=by or user)])
    emit(as_json, user, user["id"])


@main.command()
@click.option("--user", "user_id", required=True, help="The id of the user the device belongs to.")
@click.option("--label", default=None, help="A name for the device, e.g. \"Anna's laptop\".")
@by_option
@json_option
@pass_context
@library_errors
def enroll(ctx, user_id, label, admin_id, as_json):
    """Enroll a device for a user; print its id and token (shown once, never again).

    \b
    Example:
        hemsync-server enroll --user 3f2c... --label "Anna's laptop" --by ADMIN_ID
    """
    by = auth.acting_admin(ctx.store, admin_id, "enroll a device")
    with ctx.store.transaction():
        device, token = auth.enroll(ctx.store, user_id, label)
        ctx.store.audit([audit.admin("enroll", {"for_user": user_id, "label": device["label"]}, user=by,
                                     device_id=device["id"])])
    emit(as_json, {"device_id": device["id"], "token": token, "label": device["label"]},
         f"device {device['id']}\ntoken  {token}\n(the token is shown once: give it to the device now)")


@main.command("add-client")
@click.option("--name", required=True, help="The client's name, e.g. the journal system's.")
@click.option("--municipality", "municipalities", multiple=True, required=True,
              help="A municipality whose patients it reads (repeat for more).")
@by_option
@json_option
@pass_context
@library_errors
def add_client(ctx, name, municipalities, admin_id, as_json):
    """Enroll an integration client reading FHIR; print its bearer token (shown once, never again).

    The client (a journal system, the region's data platform) reads the patients
    of its municipalities at /fhir/r4/ (docs/fhir.md); each read is in the audit
    log. Revoke it like a device, with its device id.

    \b
    Example:
        hemsync-server add-client --name "Region Halland journal" --municipality Halmstad --by ADMIN_ID --json
    """
    by = auth.acting_admin(ctx.store, admin_id, "add an integration client")
    with ctx.store.transaction():
        user, device, token = auth.add_client(ctx.store, name, municipalities)
        ctx.store.audit([audit.admin("add_client", {"added": user["id"], "municipalities": user["municipalities"]},
                                     user=by, device_id=device["id"])])
    emit(as_json, {"client_id": user["id"], "device_id": device["id"], "name": user["name"],
                   "municipalities": user["municipalities"], "token": token},
         f"client {user['id']} ({', '.join(user['municipalities'])})\ndevice {device['id']}\ntoken  {token}\n"
         "(the token is shown once: give it to the client's system now)")


@main.command()
@click.option("--device", "device_id", required=True, help="The id of the device to revoke.")
@by_option
@json_option
@pass_context
@library_errors
def revoke(ctx, device_id, admin_id, as_json):
    """Revoke a lost or retired device: it is told to wipe its replica and gets nothing more.

    \b
    Example:
        hemsync-server revoke --device 9b1e... --by ADMIN_ID
    """
    by = auth.acting_admin(ctx.store, admin_id, "revoke a device")
    with ctx.store.transaction():
        device = auth.revoke(ctx.store, device_id)
        ctx.store.audit([audit.admin("revoke", {"for_user": device["user_id"]}, user=by, device_id=device_id)])
    emit(as_json, {"device_id": device_id, "revoked_at": device["revoked_at"]},
         f"device {device_id} revoked at {device['revoked_at']}")


@main.command()
@json_option
@pass_context
@library_errors
def devices(ctx, as_json):
    """Device health: each device's user, last sync, changes waiting, rejected, clock offset.

    \b
    Example:
        hemsync-server devices --json
    """
    rows = auth.device_health(ctx.store)
    lines = [f"{'device':36}  {'user':20} {'role':10} {'last sync':24} {'waiting':>7} {'rejected':>8} "
             f"{'clock ahead':>11}  status"]
    for d in rows:
        ahead = "" if d["clock_offset_ms"] is None else f"{d['clock_offset_ms'] / 1000:.0f} s"
        status = ("REVOKED" if d["revoked_at"] else "CLOCK FLAGGED" if d["clock_flagged_at"]
                  else f"{d['op_gaps']} CHANGES MISSING" if d.get("op_gaps") else "ok")
        lines.append(f"{d['id']:36}  {d['user_name'][:20]:20} {d['user_role']:10} {d['last_sync_at'] or '-':24} "
                     f"{d['pending'] if d['pending'] is not None else '-':>7} {d['rejected_count'] or 0:>8} "
                     f"{ahead:>11}  {status}")
    emit(as_json, rows, "\n".join(lines))


@main.command("audit")
@click.option("--patient", "patient_id", default=None, help="Only this patient's entries.")
@click.option("--after", default=0, type=int, help="Only entries after this id.")
@click.option("--limit", default=100, type=int, show_default=True)
@by_option
@json_option
@pass_context
@library_errors
def audit_log(ctx, patient_id, after, limit, admin_id, as_json):
    """The audit log: records handed out, changes accepted, merge decisions, openings on laptops (audited).

    \b
    Example:
        hemsync-server audit --patient 5c7a... --limit 20 --by ADMIN_ID
    """
    by = auth.acting_admin(ctx.store, admin_id, "read the audit log")
    entries = ctx.store.audit_log(patient_id=patient_id, after=after, limit=limit)
    ctx.store.audit(audit.audit_log_read(by, None, entries, "hemsync-server audit", patient_id))
    lines = [f"{e['id']:>6} {e['at']} {e['kind']:9} user={e['user_id']} device={e['device_id']} "
             f"patient={e['patient_id']} {json.dumps(e['details'], ensure_ascii=False)[:120]}" for e in entries]
    emit(as_json, entries, "\n".join(lines) or "no entries")


@main.command()
@click.option("--after", default=0, type=int, help="Only entries after this id.")
@click.option("--limit", default=100, type=int, show_default=True)
@by_option
@json_option
@pass_context
@library_errors
def quarantine(ctx, after, limit, admin_id, as_json):
    """Rejected changes, with the device, the user and the reason (they hold clinical text: audited).

    \b
    Example:
        hemsync-server quarantine --json --by ADMIN_ID
    """
    by = auth.acting_admin(ctx.store, admin_id, "read the quarantine")
    entries = ctx.store.quarantined(after=after, limit=limit)
    ctx.store.audit(audit.quarantine_read(by, None, entries, "hemsync-server quarantine"))
    lines = [f"{e['id']:>6} {e['at']} {e['code']:20} {e['record_type']}/{e['record_id']} device={e['device_id']}: "
             f"{e['message']}" for e in entries]
    emit(as_json, entries, "\n".join(lines) or "quarantine is empty")


@main.command("queue")
@click.option("--municipality", default=None, help="Only this municipality's requests.")
@json_option
@pass_context
@library_errors
def queue_command(ctx, municipality, as_json):
    """The open visit requests in dispatch order, each with why it is there (audited as a read).

    \b
    Example:
        hemsync-server queue --municipality Halmstad
    """
    entries = queue.queue(ctx.store, ctx.settings, utcnow(), municipality=municipality)
    _audit_read(ctx, entries, "hemsync-server queue")
    lines = []
    for e in entries:
        advice = f"  ** {e['advice']} **" if e["advice"] else ""
        on_call = "  [out of hours: on call]" if e["out_of_hours"] else ""
        lines.append(f"{e['position']:>3}. {e['urgency']:<8} {e['status']:<9} {e['municipality'] or '-':<12} "
                     f"request {e['request_id']}{advice}{on_call}\n     {e['why']}")
    empty = "no open requests" + (f" in {municipality}" if municipality else "")
    emit(as_json, entries, "\n".join(lines) or empty)


@main.command("escalations")
@click.option("--after", default=None, type=int, help="Only entries after this id, oldest first.")
@click.option("--limit", default=100, type=int, show_default=True)
@click.option("--municipality", default=None, help="Only this municipality's entries.")
@json_option
@pass_context
@library_errors
def escalations_command(ctx, after, limit, municipality, as_json):
    """The escalation feed, newest first: requests near their deadline, acute ones out of hours.

    \b
    Example:
        hemsync-server escalations --limit 20
    """
    entries = ctx.store.escalations(after=after, limit=limit, municipality=municipality)
    _audit_read(ctx, entries, "hemsync-server escalations")
    emit(as_json, entries, "\n".join(_escalation_line(e) for e in entries) or "no escalations")


@main.command()
@json_option
@pass_context
@library_errors
def escalate(ctx, as_json):
    """Run the escalation job once, now (what `serve` runs every HEMSYNC_ESCALATION_INTERVAL seconds).

    \b
    Example:
        hemsync-server escalate --json
    """
    added = jobs.escalate_due(ctx.store, utcnow(), ctx.settings)
    emit(as_json, added, "\n".join(_escalation_line(e) for e in added) or "nothing to escalate")


def _escalation_line(entry):
    return (f"{entry['id']:>6} {entry['at']} {entry['kind']:<12} {entry['municipality'] or '-':<12} "
            f"request {entry['request_id']}\n       {entry['details'].get('why', '')}")


def _audit_read(ctx, entries, command):
    ctx.store.audit(audit.office_read(None, None, entries, command))


@main.command("report")
@click.option("--month", required=True, metavar="YYYY-MM", help="The calendar month (Swedish local time).")
@click.option("--months", default=1, show_default=True, type=click.IntRange(1, 120),
              help="Also the months before it: a trend, oldest first.")
@click.option("--municipality", default=None, help="Only this municipality (default: the whole region).")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV: period, municipality, figure, measure, value.")
@json_option
@pass_context
@library_errors
def report_command(ctx, month, months, municipality, as_csv, as_json):
    """The region's follow-up figures of a month, with the counts each was computed from (no patient named).

    \b
    Example:
        hemsync-server report --month 2026-11 --municipality Halmstad --json
    """
    reports = followup.report(ctx.store, month, municipality, months)
    if as_csv:
        click.echo(_report_csv(reports), nl=False)
        return
    emit(as_json, reports[0] if months == 1 else reports, "\n\n".join(_report_text(r) for r in reports))


@main.command("due")
@click.option("--as", "user_id", required=True, metavar="USER_ID",
              help="Whose due lists: an admin sees every patient, a doctor or nurse the patients of her scope "
                   "(the showing is audited in her name).")
@click.option("--list", "only", default=None, type=click.Choice(LISTS), help="Only this list.")
@click.option("--municipality", default=None, help="Only this municipality's patients.")
@click.option("--date", "day", default=None, metavar="YYYY-MM-DD", help="Due on this day (default: today).")
@json_option
@pass_context
@library_errors
def due_command(ctx, user_id, only, municipality, day, as_json):
    """The due lists: medication reviews, named doctors, conversations, discharges (audited as a read).

    \b
    Example:
        hemsync-server due --as USER_ID --list medication_review_due
    """
    user = ctx.store.get_user(user_id)
    if user is None:
        raise click.ClickException(f"no user {user_id}: see `hemsync-server devices` for the users' ids")
    try:
        on = dt.date.fromisoformat(day) if day else today()
    except ValueError:
        raise click.ClickException(f"--date {day!r} is not a date like 2026-11-25") from None
    lists = followup.due(ctx.store, user, on, "hemsync-server due", municipality=municipality)
    if only:
        lists = {only: lists[only]}
    lines = []
    for name, entries in lists.items():
        lines.append(f"{name} ({len(entries)})")
        lines.extend(f"  {e['name'] or '-'} ({e['patient_id']}), {e['municipality'] or '-'}: {e['why']}"
                     for e in entries)
    emit(as_json, {"date": on.isoformat(), **lists}, "\n".join(lines))


def _report_text(report):
    lines = [f"follow-up {report['period']}, {report['municipality'] or 'the whole region'}"]
    for key in FIGURES:
        figure = report[key]
        counts = ", ".join(f"{k}={v}" for k, v in figure["counts"].items())
        shown = (f"no data ({figure['reason']})" if figure["value"] is None
                 else json.dumps(_rounded(figure["value"]), ensure_ascii=False))
        target = f" (target {figure['target']:.2f})" if "target" in figure else ""
        lines.append(f"  {key}: {shown}{target}" + (f"  [{counts}]" if counts else ""))
    return "\n".join(lines)


def _rounded(value):
    """Shares and rates to three decimals, for people (JSON and CSV keep every digit)."""
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def _report_csv(reports):
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["period", "municipality", "figure", "measure", "value"])
    for report in reports:
        for key in FIGURES:
            figure = report[key]
            for measure, value in _flat({"value": figure["value"], "counts": figure["counts"],
                                         **{k: v for k, v in figure.items() if k in ("reason", "target")}}):
                writer.writerow([report["period"], report["municipality"] or "", key, measure,
                                 "" if value is None else value])
    return out.getvalue()


def _flat(value, prefix=""):
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _flat(inner, f"{prefix}.{key}" if prefix else key)
    else:
        yield prefix, value


@main.command("seed-demo")
@json_option
@pass_context
@library_errors
def seed_demo_command(ctx, as_json):
    """Create the demo region of Halland (safe to run twice: nothing is doubled).

    \b
    Example:
        hemsync-server --db var/demo.db seed-demo
    """
    summary = seed_demo(ctx.store, ctx.settings)
    lines = [f"{u['role']:10} {u['name']:15} {u['id']}  {', '.join(u['municipalities'])}" for u in summary["users"]]
    emit(as_json, summary, "demo region ready; users:\n" + "\n".join(lines))


@main.command("correct-personnummer")
@click.option("--patient", "patient_id", required=True, help="The patient's record id.")
@click.option("--personnummer", required=True, help="The correct personnummer.")
@click.option("--reason", required=True, help="Why it is corrected (kept in the audit log).")
@by_option
@json_option
@pass_context
@library_errors
def correct_personnummer(ctx, patient_id, personnummer, reason, admin_id, as_json):
    """Correct a patient's personnummer (never a sync merge); every device gets the corrected record.

    \b
    Example:
        hemsync-server correct-personnummer --patient 5c7a... --personnummer 19121212-1212 \\
            --reason "typo at registration" --by ADMIN_USER_ID
    """
    state = admin.correct_personnummer(ctx.store, ctx.settings, patient_id, personnummer, reason, admin_id)
    value = state["fields"]["personnummer"]["value"]
    emit(as_json, {"patient_id": patient_id, "personnummer": value}, f"patient {patient_id}: personnummer {value}")


@main.command()
@click.option("--all", "show_all", is_flag=True, help="Resolved duplicates too.")
@by_option
@json_option
@pass_context
@library_errors
def duplicates(ctx, show_all, admin_id, as_json):
    """Patients that share a personnummer, for an admin to merge (the read is audited).

    Only admins see whose records they are; the patients' own records carry a
    notice that a possible duplicate is under review.

    \b
    Example:
        hemsync-server duplicates --by ADMIN_ID
    """
    by = auth.acting_admin(ctx.store, admin_id, "read the duplicate patients")
    found = ctx.store.duplicates(status=None if show_all else "open")
    ctx.store.audit(audit.duplicates_read(by, None, found, "hemsync-server duplicates"))
    lines = [f"{c['id']} {c['status']:8} personnummer {c['values'][0]['value']}: "
             + ", ".join(f"patient {v['patient_id']} (by {v['by']}, device {v['device_id']})" for v in c["values"])
             for c in found]
    emit(as_json, found, "\n".join(lines) or "no duplicate patients")


@main.command("merge-patients")
@click.option("--keep", "kept_id", required=True, help="The patient record to keep.")
@click.option("--duplicate", "duplicate_id", required=True, help="The duplicate record, merged into the kept one.")
@click.option("--reason", required=True, help="Why they are the same person (kept in the audit log).")
@by_option
@json_option
@pass_context
@library_errors
def merge_patients(ctx, kept_id, duplicate_id, reason, admin_id, as_json):
    """Merge two patient records flagged as duplicates (same personnummer, created apart).

    The duplicate's records move to the kept patient; the duplicate is marked
    entered in error, never deleted; the duplicate-patient conflict is resolved.

    \b
    Example:
        hemsync-server merge-patients --keep 5c7a... --duplicate 9e01... \\
            --reason "same person, registered twice offline" --by ADMIN_USER_ID
    """
    result = admin.merge_patients(ctx.store, ctx.settings, kept_id, duplicate_id, reason, admin_id)
    emit(as_json, result, f"patient {duplicate_id} merged into {kept_id}: {result['moved']} record(s) moved, "
                          f"conflict {result['conflict']} resolved")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5000, show_default=True, type=int, help="Port to listen on.")
@click.option("--threads", default=None, type=int, help="Worker threads (default HEMSYNC_THREADS).")
@click.option("--certfile", default=None, type=click.Path(dir_okay=False),
              help="PEM certificate (chain): serve HTTPS (env HEMSYNC_TLS_CERTFILE).")
@click.option("--keyfile", default=None, type=click.Path(dir_okay=False),
              help="PEM private key of --certfile (env HEMSYNC_TLS_KEYFILE).")
@click.option("--demo", is_flag=True,
              help="Seed the demo region into an empty database and print fresh demo device tokens first.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Server processes on the one port (more than 1 needs a PostgreSQL --db).")
@click.option("--reuse-port", is_flag=True, hidden=True, help="Share the port with other processes (--workers).")
@pass_context
@library_errors
def serve(ctx, host, port, threads, certfile, keyfile, demo, workers, reuse_port):
    """Serve the sync server with cheroot (HTTPS with --certfile/--keyfile), and run its jobs.

    The escalation job runs every HEMSYNC_ESCALATION_INTERVAL seconds (0: not in this process).
    Without a certificate it speaks plain HTTP: put a TLS proxy in front (docs/deploy.md).

    \b
    Example:
        hemsync-server --db var/hemsync.db serve --host 0.0.0.0 --port 5443 \\
            --certfile /etc/hemsync/tls.crt --keyfile /etc/hemsync/tls.key
        hemsync-server serve --demo     # what `make run` does
        hemsync-server --db postgresql://hemsync@db.example/hemsync serve --workers 4 --port 5000
    """
    from . import create_app
    from .wsgi import make_server

    threads = threads or ctx.settings["HEMSYNC_THREADS"]
    if workers > 1:
        _serve_workers(ctx, host, port, threads, certfile, keyfile, demo, workers)
        return

    certfile = certfile or ctx.settings["HEMSYNC_TLS_CERTFILE"] or None
    keyfile = keyfile or ctx.settings["HEMSYNC_TLS_KEYFILE"] or None
    app = create_app({**ctx.overrides, "STORE": ctx.store})
    # Built first: a certificate that does not load stops `serve` before anything is seeded or enrolled.
    server = make_server(app, host=host, port=port, threads=threads, certfile=certfile, keyfile=keyfile,
                         reuse_port=reuse_port)
    scheme = "https" if server.ssl_adapter else "http"
    if demo:
        _demo_start(ctx, f"{scheme}://{host}:{port}")
    scheduler = jobs.scheduler(ctx.store, app.config["HEMSYNC"])
    scheduler.start()
    interval = app.config["HEMSYNC"]["HEMSYNC_ESCALATION_INTERVAL"]
    click.echo(f"hemsync-server: serving {ctx.shown} on {scheme}://{host}:{port} (cheroot, {threads} threads); "
               + (f"escalation job every {interval} s" if interval > 0 else "no jobs in this process"))
    try:
        server.safe_start()
    finally:
        scheduler.shutdown(wait=False)


def _serve_workers(ctx, host, port, threads, certfile, keyfile, demo, workers):
    """``serve --workers N``: N processes on one port, supervised (server.workers)."""
    from . import workers as supervisor

    if not is_postgres_url(ctx.db):
        raise click.ClickException(
            f"--workers {workers} needs PostgreSQL: several processes cannot share the SQLite file {ctx.db} "
            "safely and fast. Set HEMSYNC_DATABASE_URL=postgresql://... (docs/deploy.md), or serve one process")
    if port == 0:
        raise click.ClickException("--workers needs a fixed --port: every process listens on the same one")
    if demo:
        scheme = "https" if certfile or ctx.settings["HEMSYNC_TLS_CERTFILE"] else "http"
        _demo_start(ctx, f"{scheme}://{host}:{port}")
    ctx.store.close()  # each process opens its own pool
    args = ["--host", host, "--port", str(port), "--threads", str(threads)]
    args += ["--certfile", certfile] if certfile else []
    args += ["--keyfile", keyfile] if keyfile else []
    supervisor.supervise(ctx.db, args, workers, echo=click.echo)


def _demo_start(ctx, server):
    """Seed an empty database and enroll fresh demo devices: earlier tokens cannot be shown again."""
    if not ctx.store.users():
        click.echo("seeding the demo region of Halland ...")
        seed_demo(ctx.store, ctx.settings)
    ids = demo_users()
    shown = ("doctor-anna", "nurse-halmstad", "dispatcher-lena", "admin-per")
    click.echo("\ndemo devices (new tokens on every start):")
    for key in shown:
        user = ctx.store.get_user(ids[key])
        if user is None:
            continue
        _, token = auth.enroll(ctx.store, user["id"], f"demo {key} (make run)")
        role = next(role for k, _, role, *_ in STAFF if k == key)
        click.echo(f"  {role:10} {user['name']:12} {', '.join(user['municipalities']) or '-':28} token {token}")
    click.echo(f"\nthe demo admin's user id, for --by: {ids['admin-per']}")
    admin = ctx.store.get_user(ids["admin-per"])
    click.echo(f"\nthe people's pages at {server}/ (sign in with the HSA-id; new passwords on every start):")
    for key in ("nurse-halmstad", "dispatcher-lena", "admin-per"):
        user = ctx.store.get_user(ids[key])
        password = secrets.token_urlsafe(12)
        passwords.set_password(ctx.store, user["id"], password, admin)
        click.echo(f"  {user['role']:10} {user['name']:12} HSA-id {user['hsa_id']}  password {password}")
    click.echo(f"\nnext, in another terminal (paste a token from above when asked for it):\n"
               f"  .venv/bin/hemsync login --server {server}\n  .venv/bin/hemsync sync\n  curl {server}/healthz\n")
