"""`hemsync`: the laptop's command line (also `python -m client_sync`).

Thin: each command is a few calls into the replica or the sync and a printout;
every library error becomes a one-line message here, and nowhere else.
"""

import dataclasses
import datetime as dt
import json
import os
import pathlib
import sys
import sqlite3
import uuid

import click

from schema import records
from schema.allergy import matching_allergies
from schema.clock import now_text, utcnow
from schema.dispatch import accepted_load, queue_entries, suggest_doctors
from schema.errors import HemsyncError
from schema.followup.calendar import today
from schema.followup.due import LISTS
from schema.records.visit_request import GOING

from . import __version__
from .background import BackgroundSync, run_background
from .display import Display
from .errors import ClientError, ClientTooOld, DeviceRevoked
from .http import SyncClient
from .files import private_directory
from .replica import Replica, damaged
from .sync import sync as run_sync
from .sync import verify as run_verify

__all__ = ["cli", "main", "DEFAULT_REPLICA"]

DEFAULT_REPLICA = os.path.join("~", ".hemsync", "replica.db")
#: The steps a doctor moves an accepted request through, from the request type's state machine.
REQUEST_STEPS = GOING
SCRUB_PENDING_NOTE = ("Another program holds the replica open, so old copies of the deleted data stay in its "
                      "write-ahead log until it closes: close it (e.g. stop `hemsync run`); the next hemsync "
                      "command then finishes the wipe.")


class Group(click.Group):
    """The `hemsync` group: library errors become click errors at this one edge."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except DeviceRevoked as exc:
            wiped = exc.wiped
            if wiped is None:  # e.g. a revoked token at login: nothing here belonged to it
                raise click.ClickException(
                    "this device's token is revoked: nothing on this laptop was wiped or changed. "
                    "Ask your administrator to enrol this laptop again.") from exc
            raise click.ClickException(
                f"this laptop's access was revoked, so its patient data was wiped: deleted {wiped.records} "
                f"records and {wiped.unsent_changes} unsent changes. Contact your administrator."
                + ("" if wiped.scrubbed else f" {SCRUB_PENDING_NOTE}")) from exc
        except ClientTooOld as exc:
            raise click.ClickException(
                f"the server no longer accepts hemsync {__version__}: upgrade hemsync. "
                "Your unsent changes are kept on this laptop and go out after the upgrade.") from exc
        except (ClientError, HemsyncError) as exc:
            raise click.ClickException(str(exc)) from exc
        except sqlite3.OperationalError:
            raise
        except sqlite3.DatabaseError as exc:  # damage found after the replica opened fine
            raise click.ClickException(str(damaged(getattr(ctx.obj, "path", ""), exc))) from exc


class Context:
    """What every command shares: the replica, opened on first use."""

    def __init__(self, path):
        self.path = os.path.expanduser(path)
        self._replica = None
        self._default = path == DEFAULT_REPLICA

    @property
    def replica(self):
        """The replica, opened (and migrated) on first use."""
        if self._replica is None:
            if self._default:  # ~/.hemsync is ours: one made by an older version is tightened too
                private_directory(os.path.dirname(self.path), tighten_existing=True)
            self._replica = Replica(self.path)
        return self._replica

    def close(self):
        """Close the replica if a command opened it."""
        if self._replica is not None:
            self._replica.close()


pass_context = click.make_pass_decorator(Context)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


@click.group(cls=Group)
@click.option("--replica", "replica_path", envvar="HEMSYNC_REPLICA", default=DEFAULT_REPLICA,
              show_default=True, help="The replica file (or set HEMSYNC_REPLICA).")
@click.version_option(__version__, prog_name="hemsync")
@click.pass_context
def cli(ctx, replica_path):
    """The hemsync laptop: work offline on a local replica, sync when the network allows.

    Example: hemsync --replica ~/hemsync.db status
    """
    ctx.obj = Context(replica_path)
    ctx.call_on_close(ctx.obj.close)


def main():
    """Entry point of the `hemsync` console script."""
    cli(prog_name="hemsync")


# -- generic commands ------------------------------------------------------------


@cli.command()
@click.option("--server", "server_url", required=True, help="The sync server, e.g. https://hemsync.region.se")
@json_option
@pass_context
def login(obj, server_url, as_json):
    """Store the server and this device's token; learn who you are from the server.

    The token is asked for at a prompt that does not show it, or read from
    stdin when that is not a terminal, so it never lands in shell history.

    Example: hemsync login --server https://hemsync.region.se
    """
    replica = obj.replica
    token = _read_token()
    client = SyncClient(server_url, token)
    answer = client.handshake(replica.unsent_count(), replica.rejected_count())
    wiped = replica.login(client.base_url, token, answer)
    if wiped is not None and not wiped.scrubbed:
        click.echo(f"the previous user's data was deleted. {SCRUB_PENDING_NOTE}", err=True)
    user, device = answer["user"], answer["device"]
    _emit(as_json, {"server": client.base_url, "user": user, "device": device},
          f"logged in as {user['name']} ({user['role']}) on device {device.get('label') or device['id']}")


def _read_token():
    """The device token: from a hidden prompt at a terminal, else the first line of stdin."""
    stdin = sys.stdin
    if stdin.isatty():
        token = click.prompt("device token (not shown)", hide_input=True, err=True)
    else:
        token = stdin.readline()
    token = token.strip()
    if not token:
        raise click.UsageError("no token given: type it at the prompt, or pipe it in "
                               "(e.g. `hemsync login --server URL < token.txt`)")
    return token


@cli.command()
@click.argument("record_type")
@click.option("--data", required=True, help="The fields as a JSON object; with \"id\" to change a known record.")
@json_option
@pass_context
def put(obj, record_type, data, as_json):
    """Create a record, or change the given fields of a known one (offline too).

    Without "id" a new record gets a new id; null clears a field; round items merge item by item.

    Example: hemsync put observation --data '{"patient_id": "...", "pulse": 88, "spo2": 94}'
    """
    values = _json_object(data, "--data")
    record_id = values.pop("id", None) or str(uuid.uuid4())
    _write(obj, as_json, record_type, record_id, values)


@cli.command()
@click.argument("record_type")
@click.argument("record_id")
@json_option
@pass_context
def get(obj, record_type, record_id, as_json):
    """Show one record: its fields, open conflicts and changes not yet sent.

    RECORD_ID is the record's id or a unique start of it.

    Example: hemsync get visit 2b1c  --json
    """
    _print_record(obj.replica, obj.replica.get(record_type, obj.replica.full_id(record_type, record_id)), as_json)


@cli.command(name="list")
@click.argument("record_type")
@click.option("--where", "conditions", multiple=True, metavar="FIELD=VALUE", help="Keep records whose field equals VALUE.")
@json_option
@pass_context
def list_(obj, record_type, conditions, as_json):
    """List the records of a type, optionally only those with FIELD=VALUE.

    Example: hemsync list visit_request --where status=assigned
    """
    where = {}
    for condition in conditions:
        name, sep, value = condition.partition("=")
        if not sep:
            raise click.BadParameter(f"{condition!r}: expected FIELD=VALUE", param_hint="--where")
        where[name] = value
    found = obj.replica.list(record_type, where)
    if as_json:
        click.echo(json.dumps([_record_json(r) for r in found], indent=2, ensure_ascii=False))
        return
    display = Display(obj.replica)
    for record in found:
        fields = {k: v for k, v in record.fields.items() if k != "id" and v is not None}
        summary = ", ".join(f"{k}={display.value(record_type, k, v, 40)}" for k, v in sorted(fields.items()))
        marks = "".join(((" [conflict]" if record.open_conflicts else ""), (" [unsent]" if record.pending else "")))
        click.echo(f"{record.id}{marks}  {summary}")
    click.echo(f"{len(found)} {record_type} record(s)")


@cli.command()
@click.argument("record_type")
@click.argument("record_id")
@json_option
@pass_context
def history(obj, record_type, record_id, as_json):
    """Every value the record's fields have had, with who and when.

    RECORD_ID is the record's id or a unique start of it.

    Example: hemsync history medication 7c0d
    """
    replica = obj.replica
    rows = replica.history(record_type, replica.full_id(record_type, record_id))
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    display = Display(replica)
    for row in rows:
        click.echo(f"{display.hlc(row['hlc'])}  {row['field']} = {display.value(record_type, row['field'], row['value'], 60)}"
                   f"  by {display.person(row['by'])} ({row['why']})")


@cli.command()
@click.option("--all", "include_resolved", is_flag=True, help="Resolved conflicts too.")
@json_option
@pass_context
def conflicts(obj, include_resolved, as_json):
    """The open conflicts of the records on this laptop.

    Example: hemsync conflicts --json
    """
    found = obj.replica.conflicts(include_resolved)
    if as_json:
        click.echo(json.dumps(found, indent=2, ensure_ascii=False))
        return
    display = Display(obj.replica)
    for conflict in found:
        _print_conflict(display, conflict)
    click.echo(f"{len(found)} conflict(s)")


@cli.command()
@click.argument("conflict_id")
@click.option("--value", required=True, help="The value the field keeps, as JSON (a text needs quotes).")
@json_option
@pass_context
def resolve(obj, conflict_id, value, as_json):
    """Resolve a conflict: set its field to VALUE, naming the conflict (CONFLICT_ID: its id or a unique start).

    Example: hemsync resolve 51c2 --value '"Paracetamol 1 g x 3"'
    """
    _print_record(obj.replica, obj.replica.resolve(conflict_id, _json(value, "--value")), as_json)


@cli.command()
@click.option("--archived", is_flag=True, help="The rejected changes already fixed or discarded.")
@json_option
@pass_context
def rejected(obj, archived, as_json):
    """The local changes the server rejected, with its reasons and the way out (fix or discard).

    Example: hemsync rejected --archived
    """
    found = obj.replica.rejected(archived=archived)
    if as_json:
        click.echo(json.dumps(found, indent=2, ensure_ascii=False))
        return
    display = Display(obj.replica)
    for item in found:
        change, error = item["change"], item["error"]
        rtype = change["record_type"]
        fields = ", ".join(f"{k}={display.value(rtype, k, v, 60)}" for k, v in change["fields"].items())
        click.echo(f"{item['change_id']}: {display.record(rtype, change['record_id'], change['fields'] or None)}\n"
                   f"    {fields}\n"
                   f"    rejected at {display.time(item['rejected_at'])} ({error.get('code')}): {error.get('message')}")
        if archived:
            replaced = f" by {item['replaced_by']}" if item["replaced_by"] else ""
            click.echo(f"    {item['outcome']}{replaced} at {display.time(item['archived_at'])}")
    if found and not archived:
        click.echo("correct and resend one: hemsync fix CHANGE_ID --data '{\"field\": value}'; "
                   "give one up: hemsync discard CHANGE_ID")
    click.echo(f"{len(found)} {'archived' if archived else 'rejected'} change(s)")


@cli.command()
@click.argument("change_id")
@click.option("--data", default="{}", help="Corrected fields as a JSON object, over the rejected change's own.")
@json_option
@pass_context
def fix(obj, change_id, data, as_json):
    """Correct a rejected change and send it again: a new change of its fields with --data on top.

    It is made on top of what this laptop shows now; a rejected creation is made again.
    The rejected change is archived (`hemsync rejected --archived`).

    Example: hemsync fix d-7f3a.12.9c1e --data '{"municipality": "Halmstad"}'
    """
    record = obj.replica.fix(change_id, _json_object(data, "--data"))
    _print_record(obj.replica, record, as_json)


@cli.command()
@click.argument("change_id")
@pass_context
def discard(obj, change_id):
    """Give up a rejected change: it is archived, not deleted (`hemsync rejected --archived`).

    Example: hemsync discard d-7f3a.12.9c1e
    """
    obj.replica.discard(change_id)
    click.echo(f"discarded {change_id}: kept in the archive (hemsync rejected --archived)")


@cli.command()
@json_option
@pass_context
def sync(obj, as_json):
    """Send local changes and fetch everyone else's, now.

    Example: hemsync sync
    """
    line = ProgressLine()
    report = run_sync(obj.replica, progress=None if as_json else line)
    line.finish()
    data = report.as_dict()
    _emit(as_json, data,
          f"sent {report.applied + report.conflicts + len(report.rejected)} change(s) "
          f"({report.conflicts} with a conflict, {len(report.rejected)} rejected), "
          f"{report.access_log} access-log entries; received {report.pulled} record(s), "
          f"removed {report.purged}; {report.unsent} change(s) still waiting")
    for item in report.rejected:
        click.echo(f"rejected {item['change_id']}: {item.get('error', {}).get('message')}", err=True)


@cli.command()
@json_option
@pass_context
def status(obj, as_json):
    """Server, user, last sync, changes waiting, rejected, cursor.

    Example: hemsync status --json
    """
    replica = obj.replica
    settings = replica.settings()
    data = {
        "replica": replica.path,
        "server": settings.get("server_url"),
        "user": settings.get("user"),
        "device": settings.get("device"),
        "last_sync": (settings.get("last_sync") or {}).get("finished_at"),
        "last_sync_error": settings.get("last_sync_error"),
        "last_server_wait": settings.get("last_server_wait"),
        "last_verify": settings.get("last_verify"),
        "waiting": replica.unsent_count(),
        "rejected": replica.rejected_count(),
        "access_log_waiting": replica.access_count(),
        "records": replica.record_count(),
        "cursor": settings.get("cursor"),
        "clock_offset_ms": settings.get("clock_offset_ms"),
        "wiped_at": settings.get("wiped_at"),
        "wipe_unfinished": bool(settings.get("scrub_pending")),
        "client_version": __version__,
    }
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    user = data["user"] or {}
    display = Display(replica)
    lines = [
        f"server:      {data['server'] or '(not logged in)'}",
        f"user:        {user.get('name', '-')} ({user.get('role', '-')})",
        f"last sync:   {display.time(data['last_sync']) if data['last_sync'] else 'never'}",
        f"waiting:     {data['waiting']} change(s), {data['access_log_waiting']} access-log entries",
        f"rejected:    {data['rejected']}",
        f"records:     {data['records']}",
        f"cursor:      {data['cursor']}",
    ]
    failure = data["last_sync_error"]
    if failure:
        lines.append(f"last error:  {_failure_text(display, failure)}")
    wait = data["last_server_wait"]
    if wait:
        why = "it was busy" if wait["status"] == 503 else "this laptop asked too often"
        lines.append(f"server wait: at {display.time(wait['at'])} the server asked this laptop to wait {wait['seconds']:g} s "
                     f"({why}); it waited and tried again by itself")
    if data["clock_offset_ms"] is not None and abs(data["clock_offset_ms"]) > 60_000:
        lines.append(f"clock:       this laptop is {data['clock_offset_ms'] / 1000:+.0f} s off the server's time")
    if data["wiped_at"]:
        lines.append(f"wiped:       {display.time(data['wiped_at'])}")
    if data["wipe_unfinished"]:
        lines.append(f"wipe:        unfinished. {SCRUB_PENDING_NOTE}")
    click.echo("\n".join(lines))


@cli.command()
@json_option
@pass_context
def verify(obj, as_json):
    """Sync, then check the replica against the server's digest and repair what differs.

    Example: hemsync verify
    """
    line = ProgressLine()
    report = run_verify(obj.replica, progress=None if as_json else line)
    line.finish()
    fixed = len(report.differing) + len(report.missing) + len(report.extra)
    _emit(as_json, report.as_dict(),
          (f"{report.records} record(s) agree with the server" if report.agreed
           else f"{report.records} record(s): the replica still differs from the server; run verify again")
          + (f" (repaired {fixed})" if fixed else ""))
    if not report.agreed:
        raise SystemExit(1)


@cli.command()
@click.option("--interval", default=300, show_default=True, help="Seconds between syncs.")
@click.option("--after-change", default=10, show_default=True, help="Seconds after a local change to sync.")
@pass_context
def run(obj, interval, after_change):
    """Sync in the background while the laptop is on, and soon after each local change.

    Example: hemsync run --interval 120
    """
    click.echo(f"syncing {obj.path} every {interval} s and {after_change} s after a local change; Ctrl-C stops")
    run_background(obj.path, interval=interval, after_change=after_change, echo=click.echo)


@cli.command()
@click.option("--port", default=8765, show_default=True, help="The port on 127.0.0.1 (0: any free port).")
@click.option("--no-browser", is_flag=True, help="Only print the link; do not open the browser.")
@click.option("--sync-every", default=300, show_default=True,
              help="Seconds between background syncs (0: none; the pages' 'Sync now' still works).")
@pass_context
def ui(obj, port, no_browser, sync_every):
    """Serve the doctor's pages from this replica on 127.0.0.1, with or without the network.

    Prints a link with a secret made for this start; only a browser that opened
    it gets in (docs/laptop-pages.md). Syncs in the background meanwhile.

    Example: hemsync ui --port 8765
    """
    import webbrowser

    from .ui.listener import Listener

    obj.replica.actor()  # not logged in: say so now, not on the first page
    listener = Listener(obj.path, port)
    background = None
    if sync_every > 0:
        background = BackgroundSync(obj.path, interval=sync_every, echo=click.echo, blocking=False)
        background.start()
    click.echo(f"the doctor's pages of {obj.path} on 127.0.0.1:{listener.port}; open this link "
               f"(it holds this start's secret: do not share it), Ctrl-C stops:\n{listener.url}")
    if not no_browser:  # through an owner-only file: a URL on the browser's command line is visible to all users
        webbrowser.open(pathlib.Path(listener.launch_file(os.path.dirname(obj.path) or ".")).resolve().as_uri())
    try:
        listener.serve()
    finally:
        if background is not None:
            background.stop()


# -- domain commands --------------------------------------------------------------


@cli.command()
@click.argument("patient")
@click.option("--resp-rate", type=int, help="Respiratory rate, per minute.")
@click.option("--spo2", type=int, help="Oxygen saturation, %.")
@click.option("--o2/--air", "supplemental_o2", default=None, help="On supplemental oxygen, or on air.")
@click.option("--temperature", type=float, help="Temperature, °C.")
@click.option("--systolic-bp", type=int, help="Systolic blood pressure, mmHg.")
@click.option("--pulse", type=int, help="Pulse, per minute.")
@click.option("--consciousness", type=click.Choice(list("ACVPU")), help="ACVPU.")
@json_option
@pass_context
def vitals(obj, patient, as_json, **readings):
    """Record a patient's vitals now and print NEWS2 (scored by the same code as the server's).

    PATIENT is the patient's id or a unique start of it.

    Example: hemsync vitals 5d1e --resp-rate 22 --spo2 93 --air --temperature 38.4 --pulse 104
    """
    replica = obj.replica
    fields = {name: value for name, value in readings.items() if value is not None}
    if not fields:
        raise click.UsageError("give at least one reading, e.g. --pulse 88")
    patient_id = replica.full_id("patient", patient)
    record = replica.write("observation", str(uuid.uuid4()),
                           {"patient_id": patient_id, "measured_at": now_text("seconds"), **fields})
    shown, display = record.fields, Display(replica)
    news2 = "-" if shown.get("news2") is None else str(shown["news2"])
    news2 += " (partial: not every reading given)" if shown.get("news2_partial") else ""
    _said(replica, record, as_json, f"vitals of {display.patient_name(patient_id)} at {display.time(shown['measured_at'])}"
                                    f" by {display.person(shown.get('measured_by'))}: NEWS2 {news2}")


@cli.command()
@click.argument("patient")
@click.option("--drug", required=True, help="The drug's name.")
@click.option("--strength", help="e.g. 100 mg.")
@click.option("--dose", help="e.g. 1 x 2.")
@click.option("--route", help="e.g. oral.")
@click.option("--frequency", help="e.g. morning and evening.")
@click.option("--despite-allergy", is_flag=True, help="Prescribe although the drug matches an active allergy.")
@json_option
@pass_context
def prescribe(obj, patient, drug, strength, dose, route, frequency, despite_allergy, as_json):
    """Start a drug for a patient; refused while it matches an active allergy warning, unless told.

    PATIENT is the patient's id or a unique start of it.

    Example: hemsync prescribe 5d1e --drug Doxycyklin --strength "100 mg" --dose "1 x 1"
    """
    replica = obj.replica
    patient_id = replica.full_id("patient", patient)
    warnings = [w.fields for w in replica.local_of_patient("warning", patient_id)]
    matches = matching_allergies(drug, warnings)
    if matches and not despite_allergy:
        raise click.ClickException(
            f"{drug} matches an active allergy of {Display(replica).patient_name(patient_id)}: "
            + "; ".join(w["text"] for w in matches) + ". Check it; to prescribe it anyway add --despite-allergy")
    fields = {"patient_id": patient_id, "drug": drug, "strength": strength, "dose": dose, "route": route,
              "frequency": frequency}
    record = replica.write("medication", str(uuid.uuid4()), {k: v for k, v in fields.items() if v is not None})
    _said(replica, record, as_json, f"{drug} {strength or ''} {dose or ''}".strip()
          + f" for {Display(replica).patient_name(patient_id)}")


@cli.command()
@click.argument("medication")
@click.option("--dose", required=True, help="The new dose, e.g. 1 x 1.")
@json_option
@pass_context
def dose(obj, medication, dose, as_json):
    """Change a drug's dose (MEDICATION: its id or a unique start of it).

    Example: hemsync dose 7c0d --dose "1 x 1"
    """
    replica = obj.replica
    record = replica.write("medication", replica.full_id("medication", medication), {"dose": dose})
    _said(replica, record, as_json, f"{record.fields['drug']} for {Display(replica).patient_name(record.fields['patient_id'])}"
                                    f": dose {dose}")


@cli.command()
@click.argument("request_id")
@click.option("--place", help="Where the visit took place.")
@click.option("--assessment", help="The assessment.")
@click.option("--plan", help="The plan.")
@click.option("--outcome", type=click.Choice(records.get("visit").choices("outcome")), help="The outcome.")
@click.option("--sign", "sign_now", is_flag=True, help="Sign the note with this text (it is sealed then).")
@json_option
@pass_context
def note(obj, request_id, place, assessment, plan, outcome, sign_now, as_json):
    """Write (and with --sign, sign) your visit note of a request; made on first use (REQUEST: id or unique start).

    Example: hemsync note 9e4f --assessment "Pneumoni" --plan "Doxycyklin 7 dagar" --sign
    """
    replica = obj.replica
    request_id = replica.full_id("visit_request", request_id)
    asked, me = replica.get("visit_request", request_id), replica.actor().user_id
    visit = replica.visit_of_request(request_id, me)
    fields = {k: v for k, v in {"place": place, "assessment": assessment, "plan": plan,
                                "outcome": outcome}.items() if v is not None}
    if sign_now:
        fields["signed_at"] = now_text("seconds")
    if visit is None:
        fields.update(patient_id=asked.fields["patient_id"], request_id=request_id, doctor_id=me, kind="home_visit",
                      started_at=now_text("seconds"))
    record = replica.write("visit", visit.id if visit else str(uuid.uuid4()), fields)
    display = Display(replica)
    done = f"signed at {display.time(record.fields['signed_at'])}" if sign_now else "saved"
    _said(replica, record, as_json, f"visit note for {display.patient_name(asked.fields['patient_id'])} {done}")


@cli.command(name="round-item")
@click.argument("round_id")
@click.argument("patient")
@click.option("--note", "text", help="The doctor's note on the resident.")
@click.option("--status", type=click.Choice(("open", "done", "deferred")), help="The item's status.")
@json_option
@pass_context
def round_item(obj, round_id, patient, text, status, as_json):
    """Note a resident of a SÄBO round, and mark the item done or deferred (ids or unique starts).

    Example: hemsync round-item 3f2a 5d1e --note "Opåverkad" --status done
    """
    replica = obj.replica
    round_id, patient_id = replica.full_id("round", round_id), replica.full_id("patient", patient)
    item = {k: v for k, v in {"note": text, "status": status}.items() if v is not None}
    if not item:
        raise click.UsageError("give --note, --status or both")
    record = replica.write("round", round_id, {"items": {patient_id: item}})
    _said(replica, record, as_json, f"round at {record.fields.get('facility')}: "
                                    f"{Display(replica).patient_name(patient_id)} {status or 'noted'}")


@cli.command()
@click.argument("patient")
@click.option("--hospital", required=True, help="The hospital.")
@click.option("--ward", required=True, help="The ward that takes the patient.")
@click.option("--reason", required=True, help="Why.")
@click.option("--phone", "contact_phone", help="Where the ward reaches you.")
@click.option("--visit", "visit_id", help="The visit it comes from.")
@json_option
@pass_context
def admit(obj, patient, hospital, ward, reason, contact_phone, visit_id, as_json):
    """Propose a direct admission (direktinskrivning) of a patient (PATIENT: id or unique start).

    Example: hemsync admit 5d1e --hospital "Hallands sjukhus" --ward "Medicin 3" --reason "Sepsis?"
    """
    replica = obj.replica
    patient_id = replica.full_id("patient", patient)
    fields = {"patient_id": patient_id, "hospital": hospital, "ward": ward, "reason": reason,
              "contact_phone": contact_phone, "visit_id": replica.full_id("visit", visit_id) if visit_id else None}
    record = replica.write("admission", str(uuid.uuid4()), {k: v for k, v in fields.items() if v is not None})
    _said(replica, record, as_json, f"direct admission of {Display(replica).patient_name(patient_id)} to {ward}, "
                                    f"{hospital} proposed")


@cli.command()
@click.argument("visit_id")
@json_option
@pass_context
def sign(obj, visit_id, as_json):
    """Sign your visit: it is sealed from then on (amend it afterwards).

    Example: hemsync sign 2b1c
    """
    _write(obj, as_json, "visit", obj.replica.full_id("visit", visit_id), {"signed_at": now_text("seconds")})


@cli.command()
@click.argument("visit_id")
@click.option("--text", required=True, help="The amendment's text.")
@json_option
@pass_context
def amend(obj, visit_id, text, as_json):
    """Add an amendment to a (signed) visit.

    Example: hemsync amend 2b1c --text "Pulse re-checked: 72"
    """
    visit = obj.replica.get("visit", obj.replica.full_id("visit", visit_id))
    _write(obj, as_json, "amendment", str(uuid.uuid4()),
           {"visit_id": visit.id, "patient_id": visit.fields["patient_id"], "text": text})


@cli.command()
@click.argument("request_id")
@json_option
@pass_context
def accept(obj, request_id, as_json):
    """Accept a visit request (doctor): the first acceptance the server receives keeps it.

    Example: hemsync accept 9e4f
    """
    _write(obj, as_json, "visit_request", obj.replica.full_id("visit_request", request_id), {"status": "accepted"})


@cli.command()
@click.argument("request_id")
@click.argument("step", type=click.Choice(REQUEST_STEPS))
@json_option
@pass_context
def progress(obj, request_id, step, as_json):
    """Move your request on: en_route, on_site or completed.

    Example: hemsync progress 9e4f on_site
    """
    _write(obj, as_json, "visit_request", obj.replica.full_id("visit_request", request_id), {"status": step})


@cli.command()
@click.argument("patient_id")
@click.option("--urgency", required=True, type=click.Choice(records.get("visit_request").choices("urgency")))
@click.option("--reason", required=True, help="Why a doctor is needed.")
@click.option("--callback-phone", help="Where the doctor reaches you.")
@click.option("--retts", "retts_colour", type=click.Choice(records.get("visit_request").choices("retts_colour")),
              help="RETTS colour as assessed.")
@click.option("--observation", "observation_id", help="The observation (vitals) behind the request.")
@json_option
@pass_context
def request(obj, patient_id, urgency, reason, callback_phone, retts_colour, observation_id, as_json):
    """Ask for a doctor's visit (nurse); PATIENT_ID and --observation take an id or a unique start of it.

    Example: hemsync request 5d1e --urgency urgent --reason "Fever, confused since this morning"
    """
    replica = obj.replica
    fields = {"patient_id": replica.full_id("patient", patient_id), "urgency": urgency, "reason": reason}
    optional = {"callback_phone": callback_phone, "retts_colour": retts_colour,
                "observation_id": replica.full_id("observation", observation_id) if observation_id else None}
    fields.update({k: v for k, v in optional.items() if v is not None})
    _write(obj, as_json, "visit_request", str(uuid.uuid4()), fields)


@cli.command()
@click.argument("request_id")
@click.option("--doctor", "doctor_id", required=True, help="The doctor's user id (see the staff directory).")
@json_option
@pass_context
def assign(obj, request_id, doctor_id, as_json):
    """Assign (or re-assign) a request to a doctor (dispatcher).

    Example: hemsync assign 9e4f --doctor u-doctor-2
    """
    _write(obj, as_json, "visit_request", obj.replica.full_id("visit_request", request_id), {"assigned_doctor_id": doctor_id, "status": "assigned"})


@cli.command()
@click.argument("request_id")
@click.option("--rank", required=True, type=click.IntRange(1), help="Queue rank; 1 is first.")
@click.option("--reason", required=True, help="Why the request jumps the queue.")
@json_option
@pass_context
def override(obj, request_id, rank, reason, as_json):
    """Override a request's place in the queue, with a reason (dispatcher).

    Example: hemsync override 9e4f --rank 1 --reason "Relative on site needs to leave"
    """
    _write(obj, as_json, "visit_request", obj.replica.full_id("visit_request", request_id),
           {"priority_override": rank, "priority_override_reason": reason})


@cli.command()
@click.argument("request_id")
@click.option("--reason", required=True, help="Why the request is cancelled.")
@json_option
@pass_context
def cancel(obj, request_id, reason, as_json):
    """Cancel a request (the nurse her own, before en_route; the dispatcher any open one).

    Example: hemsync cancel 9e4f --reason "Patient admitted via 112"
    """
    _write(obj, as_json, "visit_request", obj.replica.full_id("visit_request", request_id), {"status": "cancelled", "cancel_reason": reason})


@cli.command()
@click.option("--municipality", help="Only requests for patients of this municipality.")
@json_option
@pass_context
def queue(obj, municipality, as_json):
    """The open visit requests in dispatch order, from what this laptop last synced.

    Computed by the same code as the server's queue, so it works offline; each
    entry says why it is where it is.

    Example: hemsync queue --municipality Halmstad
    """
    requests, patients, observations = obj.replica.dispatch_view()
    entries = queue_entries(requests, patients, observations, utcnow(), obj.replica.dispatch_settings(),
                            municipality=municipality)
    if as_json:
        click.echo(json.dumps([e.to_dict() for e in entries], indent=2, ensure_ascii=False))
        return
    if not entries:
        click.echo("no open requests" + (f" in {municipality}" if municipality else ""))
    display = Display(obj.replica)
    for entry in entries:
        advice = f"  ** {entry.advice} **" if entry.advice else ""
        advice += "  (out of hours: on-call service)" if entry.out_of_hours else ""
        click.echo(f"{entry.position:>3}. {entry.urgency:<8} {entry.status:<9} request {entry.request_id} "
                   f"for {display.patient(entry.patient_id)}{advice}")
        click.echo(f"     {entry.why}")


@cli.command()
@click.option("--list", "only", type=click.Choice(LISTS), help="Only this list.")
@click.option("--date", "day", metavar="YYYY-MM-DD", help="Due on this day (default: today, Swedish time).")
@json_option
@pass_context
def due(obj, only, day, as_json):
    """The due lists of the patients this laptop holds, offline: reviews, named doctors, conversations, discharges.

    The same definitions as the server's; each patient shown is logged in the access log.

    Example: hemsync due --list medication_review_due
    """
    try:
        on = dt.date.fromisoformat(day) if day else today()
    except ValueError:
        raise click.ClickException(f"--date {day!r} is not a date like 2026-11-25") from None
    lists = obj.replica.due_lists(on)
    if only:
        lists = {only: lists[only]}
    if as_json:
        click.echo(json.dumps({"date": on.isoformat(), **lists}, indent=2, ensure_ascii=False))
        return
    display = Display(obj.replica)
    for name, entries in lists.items():
        click.echo(f"{name} ({len(entries)})")
        for entry in entries:
            click.echo(f"  {entry['name'] or '-'} ({display.short(entry['patient_id'])}), "
                       f"{entry['municipality'] or '-'}: {entry['why']}")


@cli.command()
@click.argument("request_id")
@json_option
@pass_context
def suggest(obj, request_id, as_json):
    """Doctors to assign a request to: the patient's named doctor, then the municipality's, then others.

    Within each group the doctor with the fewest open accepted requests comes first.

    REQUEST_ID is the request's id or a unique start of it.

    Example: hemsync suggest 9e4f
    """
    requests, patients, _ = obj.replica.dispatch_view()
    request = requests[obj.replica.full_id("visit_request", request_id)]
    doctors = [s for s in obj.replica.staff() if s.get("role") == "doctor"]
    found = suggest_doctors(request, patients.get(request["patient_id"], {}), doctors,
                            accepted_load(requests.values()))
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(s) for s in found], indent=2, ensure_ascii=False))
        return
    if not found:
        click.echo("no doctors in the staff directory: sync first")
    for n, suggestion in enumerate(found, 1):
        click.echo(f"{n:>3}. {suggestion.name} ({suggestion.doctor_id}): {suggestion.reason}, "
                   f"{suggestion.open_accepted} open accepted")


@cli.command()
@click.argument("record_type")
@click.argument("record_id")
@click.option("--reason", required=True, help="Why the record was entered in error.")
@json_option
@pass_context
def retract(obj, record_type, record_id, reason, as_json):
    """Mark a record entered in error, with a reason (records are never deleted).

    Example: hemsync retract observation 7a2b --reason "Wrong patient"
    """
    _write(obj, as_json, record_type, obj.replica.full_id(record_type, record_id), {"entered_in_error": True, "entered_in_error_reason": reason})


# -- printing ---------------------------------------------------------------------


def _write(obj, as_json, record_type, record_id, fields):
    record = obj.replica.write(record_type, record_id, fields)
    _print_record(obj.replica, record, as_json)


def _said(replica, record, as_json, text):
    """A domain verb's answer: ``text`` with the record's id and whether it waits, or the record as JSON."""
    if as_json:
        _print_record(replica, record, as_json)
        return
    where = "not yet on the server" if record.version is None else f"server rev {record.version}, change waiting"
    click.echo(f"{text} ({record.type} {record.id}, {where})")


def _record_json(record):
    """A record for scripts: its fields plus _conflicts, _version, _pending and, when there are any, _rejected."""
    shown = {**record.fields, "_conflicts": record.open_conflicts, "_version": record.version,
             "_pending": record.pending}
    if record.rejected:
        shown["_rejected"] = record.rejected
    return shown


def _print_record(replica, record, as_json):
    if as_json:
        click.echo(json.dumps(_record_json(record), indent=2, ensure_ascii=False))
        return
    display = Display(replica)
    waiting = f", {len(record.pending)} change(s) not yet sent" if record.pending else ""
    server = f"server rev {record.version}" if record.version is not None else "not yet on the server"
    click.echo(f"{display.record(record.type, record.id, record.fields, whole=True)} ({server}{waiting})")
    for name, value in sorted(record.fields.items()):
        if name != "id" and value is not None:
            click.echo(f"  {name}: {display.value(record.type, name, value)}")
    for conflict in record.open_conflicts:
        _print_conflict(display, {**conflict, "record_type": record.type, "record_id": record.id})
    for refused in record.refused:
        click.echo(f"  ! a local change no longer fits the server's record: {refused['error']['message']}")
    for item in record.rejected:
        change_id, error = item["change_id"], item["error"]
        click.echo(f"  ! change {change_id} was rejected by the server ({error.get('code')}): "
                   f"{error.get('message')}\n"
                   f"    fix it: hemsync fix {change_id} --data '{{...}}', or: hemsync discard {change_id}")


def _print_conflict(display, conflict):
    rtype = conflict["record_type"]
    click.echo(f"conflict {conflict['id']} on {display.record(rtype, conflict['record_id'])}, "
               f"{conflict['field']} ({conflict['severity']}, {conflict['status']})")
    for value in conflict["values"]:
        click.echo(f"    {display.value(rtype, conflict['field'], value['value'], 80)}  by {display.person(value['by'])} "
                   f"at {display.hlc(value['hlc'])}")


class ProgressLine:
    """Renders a sync's progress on stderr, once it is long enough to be worth watching."""

    THRESHOLD = 50

    def __init__(self):
        self.shown = False

    def __call__(self, stage, done, total):
        if max(done, total or 0) < self.THRESHOLD:
            return
        self.shown = True
        counted = f"{done}/{total}" if total is not None else f"{done} record(s)"
        click.echo(f"\r{stage}: {counted}   ", nl=False, err=True)

    def finish(self):
        """End the progress line so the summary starts on a line of its own."""
        if self.shown:
            click.echo("", err=True)


def _failure_text(display, failure):
    """One line on the syncs failing since the last that succeeded (older replicas stored only the error)."""
    attempts, since = failure.get("attempts") or 1, failure.get("since") or failure["at"]
    return (f"{failure.get('stage', 'sync')} failed {attempts} time(s) in a row since {display.time(since)} "
            f"(last at {display.time(failure['at'])}): {failure['error']}; changes are kept, the next sync tries again")


def _emit(as_json, data, text):
    click.echo(json.dumps(data, indent=2, ensure_ascii=False) if as_json else text)


def _json(text, option):
    try:
        return json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint=option) from exc


def _json_object(text, option):
    value = _json(text, option)
    if not isinstance(value, dict):
        raise click.BadParameter("must be a JSON object", param_hint=option)
    return value



