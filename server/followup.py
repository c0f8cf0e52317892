"""The follow-up on the server: the figures and due lists of :mod:`schema.followup` over the store.

The definitions live in ``schema.followup``; this module reads what they need
from the store (one indexed range per record type, :meth:`Store.records_of_type`),
limits due lists to what the viewer's scope holds, and audits every showing of
a due list as a read (one ``pull`` entry per patient shown). Figures carry no
patient identities and are not audited.
"""

import contextlib
import gc
import json

from schema.errors import Forbidden, InvalidRecord
from schema.followup.calendar import Month
from schema.followup.due import LISTS, due_lists
from schema.followup.due import TYPES as DUE_TYPES
from schema.followup.figures import TYPES as FIGURE_TYPES
from schema.followup.figures import figures
from schema.followup.snapshot import TYPES, VALUE_FIELDS, Snapshot
from schema.references import canonical_municipality
from schema.wire import decode_state

from . import audit, scope

__all__ = ["snapshot", "report", "due", "parse_month"]


def snapshot(store, types=TYPES):
    """A :class:`Snapshot` of the records of ``types`` (default: all the follow-up reads), in one read transaction.

    Types the follow-up reads as values alone come from :meth:`Store.field_values`
    (the database's JSON functions, no decoding in Python); patients, requests
    and admissions, whose past or step times count, are decoded whole.
    """
    taken = Snapshot()
    with store.reading(), _collector_paused():
        for record_type in types:
            if record_type in VALUE_FIELDS:
                for record in store.field_values(record_type, VALUE_FIELDS[record_type]):
                    taken.add_values(record_type, record)
            else:
                for stored in store.records_of_type(record_type):
                    taken.add(decode_state(json.loads(stored.wire), changes=False))
    return taken


@contextlib.contextmanager
def _collector_paused():
    """Pause Python's cycle collector while a snapshot is built and the figures computed over it.

    A year of a region is some hundred thousand small objects that all stay
    alive until the snapshot goes: each collection pass would walk every one of
    them again and find nothing to free (it tripled the time of a region's
    read). Reference counting still frees everything as usual meanwhile.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def parse_month(text):
    """A :class:`Month` from ``YYYY-MM``; InvalidRecord with what to write otherwise."""
    try:
        return Month.parse(text)
    except ValueError as exc:
        raise InvalidRecord(str(exc), details={"month": [str(exc)]}) from None


def report(store, month, municipality=None, months=1, taken=None):
    """The figures of ``month`` (``YYYY-MM``) and the ``months - 1`` before it, oldest first.

    ``municipality`` is matched ignoring case against the region's list (None:
    the whole region); ``taken`` is a snapshot already read (a page drawing
    several charts reads the store once).
    """
    last = parse_month(month)
    if municipality is not None:
        municipality = canonical_municipality(municipality, store.municipalities())
    taken = taken or snapshot(store, FIGURE_TYPES)
    with _collector_paused():
        return [figures(taken, last.shifted(i - months + 1), municipality) for i in range(months)]


def due(store, user, today, via, device=None, municipality=None, taken=None):
    """The due lists on ``today`` (a local date) as ``user`` may see them, audited as a read.

    A doctor or a nurse sees the patients of her scope; an admin every
    patient (the follow-up is hers to read, DOMAIN.md "The people's screens");
    a dispatcher none. ``via`` names the command or page in the audit entry.
    """
    if user["role"] == "admin":
        allowed = None
    elif user["role"] in ("doctor", "nurse"):
        allowed = set(scope.keys_for(store, user).full)
    else:
        raise Forbidden(f"a {user['role']} does not see the due lists: they are for admins, doctors and nurses",
                        details={"role": [user["role"]]})
    lists = due_lists(taken or snapshot(store, DUE_TYPES), today, allowed)
    if municipality is not None:
        municipality = canonical_municipality(municipality, store.municipalities())
        lists = {name: [e for e in entries if (e["municipality"] or "").casefold() == municipality.casefold()]
                 for name, entries in lists.items()}
    store.audit(audit.shown(user, device, [(e["patient_id"], f"patient/{e['patient_id']}")
                                           for name in LISTS for e in lists[name]], via))
    return lists

