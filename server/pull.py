"""Pull: pages of record states in a device's scope since its cursor, and purge markers.

The cursor is opaque to the laptop. Inside it are the feed position the
device has applied, the scope it was last handed (stored server-side as a
scope snapshot) and, while a newly entered part of the scope is being caught
up, that part and how far the catch-up got. Because everything about "what
the device has" travels in the cursor the laptop commits with each page, a
page lost on the way is simply served again from the older cursor: nothing is
lost, nothing is skipped.

Each page, in one transaction:

1. the scope now is compared with the scope the cursor says the device holds;
   records of the part that *left* come as purge markers;
2. records of the part that *entered* are sent whole (every record up to the
   cursor's feed position, whatever the cursor), paged;
3. then the feed: records in scope changed after the cursor, by ``seq``;
4. the device's holdings, the audit log (one entry per patient) and its last
   sync are written.
"""

import base64
import binascii
import dataclasses
import datetime as dt
import json

from . import audit, scope
from .errors import InvalidRequest
from .store import ScopeKeys

__all__ = ["Cursor", "Page", "pull"]


@dataclasses.dataclass(frozen=True)
class Cursor:
    """A position in a device's pull: feed seq, held scope, and catch-up in progress."""

    seq: int = 0
    scope: int = 0
    catching: int = 0
    after: int = 0

    def encode(self):
        """The opaque text a client sends back."""
        text = f"1.{self.seq}.{self.scope}.{self.catching}.{self.after}"
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    @classmethod
    def parse(cls, text):
        """Read a cursor; an absent one starts from the beginning. Raise InvalidRequest if unreadable."""
        if not text:
            return cls()
        try:
            decoded = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            version, *numbers = decoded.split(".")
            if version != "1" or len(numbers) != 4:
                raise ValueError(decoded)
            values = [int(n) for n in numbers]
            # A forged number beyond SQLite's INTEGER made the query raise (a 500, found by make fuzz).
            if not all(0 <= v < 2 ** 63 for v in values):
                raise ValueError(decoded)
            return cls(*values)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise InvalidRequest("this cursor is not one the server gave out: pull again without a cursor "
                                 "(a full resync)", details={"cursor": [text[:100]]}) from None


def pull(store, settings, device, user, cursor_text=None, limit_text=None):
    """Answer ``GET /v1/pull``: one page of record states and purge markers, and the next cursor."""
    page_size = settings["HEMSYNC_PAGE_SIZE"]
    limit = _limit(limit_text, page_size)
    cursor = Cursor.parse(cursor_text)
    empty = ScopeKeys(lite_types=scope.LITE_TYPES)
    with store.transaction():
        keys = scope.keys_for(store, user)
        held = _scope(store, cursor.scope, empty)
        purge = [(t, i) for t, i, p, m in store.records_in(held - keys) if not keys.covers(t, i, p, m)]
        kept = held & keys
        catching = (_scope(store, cursor.catching, empty) & keys) if cursor.catching else keys - kept
        handed = []
        next_cursor = None
        if catching:
            handed = store.records_since(cursor.after, catching, limit, upto=cursor.seq)
            if len(handed) == limit:
                next_cursor = Cursor(cursor.seq, store.save_scope(kept), store.save_scope(catching),
                                     handed[-1].seq)
            kept = kept | catching
        if next_cursor is None:
            room = limit - len(handed)
            head = store.head()
            rows = store.records_since(cursor.seq, kept, room)
            handed += rows
            position = rows[-1].seq if len(rows) == room else max(head, cursor.seq)
            next_cursor = Cursor(position, store.save_scope(kept))
            more = len(rows) == room or bool(keys - kept)
        else:
            more = True
        store.hold(device["id"], [(r.type, r.id) for r in handed])
        store.release(device["id"], purge)
        store.audit(audit.pulled(user, device, handed, cursor_text))
        store.update_device(device["id"], {"last_sync_at": _now()})
    return Page([r.wire for r in handed], [{"type": t, "id": i} for t, i in purge], next_cursor.encode(), more)


@dataclasses.dataclass(frozen=True)
class Page:
    """One pull page: the records as the JSON text they are stored as, purge markers, the cursor."""

    wires: list
    purge: list
    cursor: str
    more: bool

    def to_json(self):
        """The page's JSON text; stored record states go out as they are, never parsed again."""
        rest = json.dumps({"purge": self.purge, "cursor": self.cursor, "more": self.more}, separators=(",", ":"))
        return '{"records":[' + ",".join(self.wires) + "]," + rest[1:]



def _scope(store, scope_id, empty):
    if not scope_id:
        return empty
    found = store.get_scope(scope_id)
    if found is None:
        raise InvalidRequest("this cursor is not one the server gave out: pull again without a cursor",
                             details={"cursor": ["unknown scope"]})
    return found


def _limit(text, page_size):
    if text in (None, ""):
        return page_size
    try:
        limit = int(text)
    except ValueError:
        raise InvalidRequest(f"limit must be a whole number from 1 to {page_size}",
                             details={"limit": [text]}) from None
    if limit < 1:
        raise InvalidRequest(f"limit must be a whole number from 1 to {page_size}", details={"limit": [text]})
    return min(limit, page_size)


def _now():
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")
