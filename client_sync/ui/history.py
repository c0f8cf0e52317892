"""The patient's history on the patient's page: everything this laptop holds about the patient, newest first.

Each record becomes one or more events: a visit (its note, who signed it and
when, its amendments), vitals with NEWS2, a medication started, each dose
change and each change of its status, a request, a warning, a direct admission,
a hospital stay, a care plan or medication review, and the patient's item of
each round. Times are the record's own (a visit's start, a measurement) or, for
what has none, the time of the write (its HLC). The page shows HISTORY_PAGE
events and "Visa fler" the next; only the records of the events shown are
written to the access log.
"""

import dataclasses
import datetime as dt

from schema.clock import Hlc
from schema.state import field_writes

from .context import live, of_patient, replica

__all__ = ["HISTORY_PAGE", "Event", "patient_history", "shown_records"]

#: Events one showing of the history lists; "Visa fler" shows as many more.
HISTORY_PAGE = 25
#: Record types shown by their own event maker (a round is found by its residents, not by a patient column).
_BY_PATIENT = ("visit", "observation", "medication", "visit_request", "warning", "admission", "hospital_stay",
               "care_plan", "medication_review")


@dataclasses.dataclass
class Event:
    """One line of the history: ``kind`` picks its template.

    ``at`` orders and is shown (an ISO time, or a date when ``day``); ``hlc``, the
    time of the write the event comes from, orders events of the same moment in
    the order they were written (two changes of a drug within a millisecond).
    """

    kind: str
    at: str
    record: object
    by: str | None = None
    fields: dict = dataclasses.field(default_factory=dict)
    day: bool = False
    hlc: str = ""


def _written_at(write):
    return Hlc.parse(write["hlc"]).time.isoformat(timespec="milliseconds")


def _medication(record):
    """A medication's start (as it was written then), each later dose and each later status, from its writes."""
    created = record.state["fields"]["patient_id"]
    started = {path: write["value"] for path in record.state["fields"] for write in field_writes(record.state, path)
               if write["version"] == created["version"]}
    events = [Event("medication_started", _written_at(created), record, created["by"], {**record.fields, **started},
                    hlc=created["hlc"])]
    for path, kind in (("dose", "dose_changed"), ("status", "medication_status")):
        for write in field_writes(record.state, path):
            if write["version"] != created["version"]:
                events.append(Event(kind, _written_at(write), record, write["by"],
                                    {**record.fields, path: write["value"]}, hlc=write["hlc"]))
    return events


def _created(record):
    return record.state["fields"]["patient_id"]


def _event(record, amendments):
    """The event of one record about the patient (not a medication's, not a round's), in a list."""
    fields, created = record.fields, _created(record)
    return [dataclasses.replace(event, hlc=created["hlc"]) for event in _made(record, fields, created, amendments)]


def _made(record, fields, created, amendments):
    if record.type == "visit":
        at = fields.get("started_at") or fields.get("signed_at") or _written_at(created)
        return [Event("visit", at, record, fields.get("doctor_id") or created["by"],
                      {**fields, "amendments": amendments.get(record.id, [])})]
    if record.type == "observation":
        return [Event("vitals", fields.get("measured_at") or _written_at(created), record,
                      fields.get("measured_by") or created["by"], fields)]
    if record.type == "visit_request":
        return [Event("request", fields.get("received_at") or _written_at(created), record,
                      fields.get("requested_by") or created["by"], fields)]
    if record.type == "hospital_stay":
        return [Event("hospital_stay", fields.get("admitted_at") or _written_at(created), record, created["by"],
                      fields)]
    if record.type in ("care_plan", "medication_review") and fields.get("date"):
        return [Event(record.type, fields["date"], record, created["by"], fields, day=True)]
    return [Event(record.type, _written_at(created), record, created["by"], fields)]


def _round_items(patient_id):
    """The patient's item of every round that has one, on the round's date."""
    events = []
    for found in live(replica().local_naming("round", patient_id)):
        fields = found.fields
        item = (fields.get("items") or {}).get(patient_id)
        if item:
            events.append(Event("round_item", fields.get("date") or "", found, fields.get("doctor_id"),
                                {**item, "facility": fields.get("facility"), "unit": fields.get("unit")}, day=True))
    return events


def patient_history(patient_id):
    """Every event of the patient's records this laptop holds, newest first (read inside a snapshot)."""
    of = of_patient
    amendments = {}
    for amendment in sorted(live(of("amendment", patient_id)), key=lambda a: _written_at(_created(a))):
        amendments.setdefault(amendment.fields.get("visit_id"), []).append(
            {**amendment.fields, "at": _written_at(_created(amendment)), "record": amendment})
    events = _round_items(patient_id)
    for record_type in _BY_PATIENT:
        for record in live(of(record_type, patient_id)):
            events += _medication(record) if record_type == "medication" else _event(record, amendments)
    return sorted(events, key=_order, reverse=True)


def _order(event):
    """When an event was, as an aware time (a day as its first moment), then the write's HLC."""
    moment = dt.datetime.fromisoformat(event.at.replace("Z", "+00:00")) if event.at else dt.datetime.min
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment, event.hlc, event.kind, event.record.id


def shown_records(events, also=()):
    """The records of ``also`` and those the shown events display, each once (amendments too): for the access log."""
    shown = {(r.type, r.id): r for r in also}
    for event in events:
        shown[(event.record.type, event.record.id)] = event.record
        for amendment in event.fields.get("amendments", ()) if event.kind == "visit" else ():
            shown[("amendment", amendment["record"].id)] = amendment["record"]
    return list(shown.values())
