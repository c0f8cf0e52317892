"""How the CLI shows what it prints to a person: names instead of ids, local times, ids short enough to type.

One place for every human (non ``--json``) output of ``hemsync``: a person by
the staff directory's name, a patient by name with the short id the next
command takes (every command accepts an id's unique start), a time in the
region's zone as the pages show it (:func:`schema.clock.local_text`). The
record an output is about keeps its whole id (:meth:`Display.record`,
``whole``): a script, a ``--data`` JSON and the server's admin commands take
only whole ids; what it refers to is shown by name and short id. Which
field names a person, a patient, a record or a time is the record type's own
declaration (``schema/``), never a list kept here. ``--json`` output does not
come through here: it stays exactly what the replica holds.
"""

import json
import zoneinfo

from schema import records
from schema.clock import Hlc, local_text
from schema.validation import IsoDateTime

__all__ = ["Display", "SHORT"]

#: The characters of an id the CLI prints: unique within a replica in practice, and typed back as they are
#: (a start matching several ids is refused by name, `Replica.full_id`).
SHORT = 8


class Display:
    """Texts for a person, from the replica's staff directory, patients and the region's time zone."""

    def __init__(self, replica):
        self.replica = replica
        self.zone = zoneinfo.ZoneInfo(replica.dispatch_settings().timezone)
        self._patients = {}

    @staticmethod
    def short(record_id):
        """The start of an id that the next command takes in its place."""
        return str(record_id)[:SHORT]

    def person(self, user_id):
        """A person's name from the staff directory (the id when the laptop does not know them), ``-`` for none."""
        return self.replica.staff_name(user_id) if user_id else "-"

    def patient(self, patient_id):
        """``Tolvan Tolvansson (5d1e0a2b)``: the name this laptop holds and the short id to type."""
        return f"{self.patient_name(patient_id)} ({self.short(patient_id)})" if patient_id else "-"

    def patient_name(self, patient_id):
        """The patient's name as this laptop holds it (``unknown patient`` when it holds none)."""
        if patient_id not in self._patients:
            found = self.replica.local("patient", patient_id)
            self._patients[patient_id] = (found.fields.get("name") if found else None) or "unknown patient"
        return self._patients[patient_id]

    def time(self, text):
        """An ISO 8601 time (or an aware datetime) in the region's zone, ``2026-12-06 09:40``; ``-`` for none."""
        return local_text(text, self.zone) or "-"

    def hlc(self, hlc):
        """When a change was made (its hybrid logical clock), in the region's zone."""
        return self.time(Hlc.parse(hlc).time)

    def record(self, record_type, record_id, fields=None, *, whole=False):
        """``visit 2b1c3d4e of Tolvan Tolvansson (5d1e0a2b)``: the type, the short id, and whose it is.

        ``fields``: the record's (or a change's) fields, when the caller has them;
        ``whole``: the record is what the output is about, so its own id is given
        whole (the handle a script, a ``--data`` JSON or the server's admin takes).
        """
        rtype = records.get(record_type)
        text = f"{record_type} {record_id if whole else self.short(record_id)}"
        if rtype.patient_field == "id":
            return f"{text} {self.patient_name(record_id)}"
        if rtype.patient_field is None:  # a round: one patient per item
            return text
        patient_id = (fields or {}).get(rtype.patient_field)
        if patient_id is None:  # an edit names only what it changes
            found = self.replica.local(record_type, record_id)
            patient_id = found.fields.get(rtype.patient_field) if found else None
        return f"{text} of {self.patient(patient_id)}" if patient_id else text

    def value(self, record_type, field, value, limit=200):
        """A field's value as a person reads it: names for people and patients, short ids, local times."""
        if value is None:
            return "-"
        rtype = records.get(record_type)
        name = field.split(".", 1)[0]
        spec = rtype.fields.get(name)
        if name == rtype.patient_field and rtype.patient_field != "id":
            return self.patient(value)
        if spec is not None and (spec.stamped or (spec.ref is not None and spec.ref.kind == "person")):
            return self.person(value)
        if spec is not None and spec.ref is not None and spec.ref.kind == "record":
            return f"{spec.ref.record_type} {self.short(value)}"
        if isinstance(rtype.schema._declared_fields.get(name), IsoDateTime):
            return self.time(value)
        if name in rtype.nested and isinstance(value, dict):  # a round's items, one per resident
            return "; ".join(f"{self.patient(key)}: {self.nested(item)}" for key, item in value.items())
        if isinstance(value, list):
            return "; ".join(self.nested(item) for item in value)
        return shorten(value, limit)

    def nested(self, item):
        """A nested item as ``status accepted at 2026-12-06 09:40 by Dr Anna``: who by name, when in local time."""
        if not isinstance(item, dict):
            return shorten(item, 80)
        shown = []
        for key, value in item.items():
            if value is None:
                continue
            if key == "by" or key.endswith("_by"):  # a nested entry's who and when, as the merge's views name them
                value = self.person(value)
            elif key == "at" or key.endswith("_at"):
                value = self.time(value)
            shown.append(f"{key} {shorten(value, 80)}")
        return " ".join(shown)


def shorten(value, limit=40):
    """A value as one line of at most ``limit`` characters (JSON for what is not text)."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"
