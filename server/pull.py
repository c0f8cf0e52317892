"""Pull: pages of record states in a device's scope since its cursor, and purge markers.

The cursor is opaque to the laptop. Inside it are the feed position the
device has applied, the scope it was last handed (stored server-side as a
scope snapshot) and, while a newly entered part of the scope is being caught
up, that part and how far the catch-up got. Because everything about "what
the device has" travels in the cursor the laptop commits with each page, a
page lost on the way is simply served again from the older cursor: nothing is
lost, nothing is skipped.

Each page is read in one snapshot (:meth:`Store.reading`: it never waits for a push):

1. the scope now is compared with the scope the cursor says the device holds;
   records of the part that *left* come as purge markers;
2. records of the part that *entered* are sent whole (every record up to the
   cursor's feed position, whatever the cursor), paged;
3. then the feed: records in scope changed after the cursor, by ``seq``.

Then a short write transaction saves the scopes the next cursor names and writes
the device's holdings, the audit log (one entry per patient) and its last sync,
for exactly the records of the page. Every position in the next cursor comes from
the snapshot, so a record written between the read and the write is not skipped:
its ``seq`` is past the cursor, and the next page ships it.
"""

import base64
import binascii
import dataclasses
import hashlib
import hmac
import json


from schema.clock import now_text

from . import audit, scope
from .errors import InvalidRequest
from .store import ScopeKeys

__all__ = ["Cursor", "Page", "pull"]


#: Bytes of the HMAC-SHA256 a cursor carries: 128 bits cannot be guessed.
SIGNATURE_BYTES = 16


@dataclasses.dataclass(frozen=True)
class Cursor:
    """A position in a device's pull: feed seq, held scope, and catch-up in progress.

    On the wire it is signed for one device (HMAC-SHA256 with the server's
    secret): its scope ids name what the server handed that device, so a cursor
    forged, altered or taken from another device would list records of other
    municipalities as purge markers.
    """

    seq: int = 0
    scope: int = 0
    catching: int = 0
    after: int = 0

    VERSION = "2"

    def encode(self, secret, device_id):
        """The opaque text this device sends back."""
        payload = f"{self.VERSION}.{self.seq}.{self.scope}.{self.catching}.{self.after}"
        text = f"{payload}.{_signature(secret, device_id, payload)}"
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    @classmethod
    def parse(cls, text, secret, device_id):
        """Read this device's cursor; an absent one starts from the beginning.

        Raise InvalidRequest, telling the laptop to pull again without a cursor, for
        a cursor that is unreadable, altered, another device's, or unsigned (version 1,
        from before cursors were signed).
        """
        if not text:
            return cls()
        try:
            decoded = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise _refused(text, "this cursor is not one the server gave out") from None
        version, *rest = decoded.split(".")
        if version == "1":
            raise _refused(text, "this cursor is from an older server, before cursors were signed")
        if version != cls.VERSION or len(rest) != 5:
            raise _refused(text, "this cursor is not one the server gave out")
        payload, signature = decoded.rsplit(".", 1)
        if not hmac.compare_digest(signature.encode(), _signature(secret, device_id, payload).encode()):
            raise _refused(text, "this cursor was not given to this device, or it was altered")
        try:
            values = [int(n) for n in rest[:4]]
        except ValueError:
            raise _refused(text, "this cursor is not one the server gave out") from None
        # A number beyond SQLite's INTEGER made the query raise (a 500, found by make fuzz).
        if not all(0 <= v < 2 ** 63 for v in values):
            raise _refused(text, "this cursor is not one the server gave out")
        return cls(*values)


def _signature(secret, device_id, payload):
    mac = hmac.new(secret, f"{device_id}\n{payload}".encode(), hashlib.sha256).digest()[:SIGNATURE_BYTES]
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def _refused(text, why):
    return InvalidRequest(f"{why}: pull again without a cursor (a full resync)",
                          details={"cursor": [text[:100]], "resync": True})


def pull(store, settings, device, user, cursor_text=None, limit_text=None):
    """Answer ``GET /v1/pull``: one page of record states and purge markers, and the next cursor."""
    page_size = settings["HEMSYNC_PAGE_SIZE"]
    limit = _limit(limit_text, page_size)
    budget = settings["HEMSYNC_PAGE_BYTES"]
    secret = store.server_secret()
    cursor = Cursor.parse(cursor_text, secret, device["id"])
    empty = ScopeKeys(lite_types=scope.LITE_TYPES)
    with store.reading():
        handed, purge, parts, more = _read_page(store, user, cursor, limit, budget, empty)
    with store.transaction():
        seq, kept, catching, after = parts
        next_cursor = Cursor(seq, store.save_scope(kept), store.save_scope(catching) if catching else 0, after)
        store.hold(device["id"], [(r.type, r.id) for r in handed])
        store.release(device["id"], purge)
        store.audit(audit.pulled(user, device, handed, cursor_text))
        store.update_device(device["id"], {"last_sync_at": now_text()})
    return Page([r.wire for r in handed], [{"type": t, "id": i} for t, i in purge], next_cursor.encode(secret, device["id"]), more)


def _read_page(store, user, cursor, limit, budget, empty):
    """The page after ``cursor`` as one snapshot shows it: records, purge markers, the next cursor's parts.

    The parts are ``(seq, kept scope, catching scope or None, after)``: the scopes as keys, saved
    by the caller's write transaction (nothing is written here).
    """
    keys = scope.keys_for(store, user)
    held = _scope(store, cursor.scope, empty)
    purge = [(t, i) for t, i, p, m in store.records_in(held - keys) if not keys.covers(t, i, p, m)]
    kept = held & keys
    catching = (_scope(store, cursor.catching, empty) & keys) if cursor.catching else keys - kept
    handed = []
    if catching:
        fetched = store.records_since(cursor.after, catching, limit, upto=cursor.seq)
        handed = _within(fetched, budget)
        if len(fetched) == limit or len(handed) < len(fetched):
            return handed, purge, (cursor.seq, kept, catching, handed[-1].seq), True
        kept = kept | catching
    room = limit - len(handed)
    head = store.head()
    fetched = store.records_since(cursor.seq, kept, room)
    rows = _within(fetched, budget - sum(len(r.wire) for r in handed), at_least_one=not handed)
    handed += rows
    full = len(fetched) == room or len(rows) < len(fetched)
    position = (rows[-1].seq if rows else cursor.seq) if full else max(head, cursor.seq)
    return handed, purge, (position, kept, None, 0), full or bool(keys - kept)


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



def _within(rows, budget, at_least_one=True):
    """The first rows whose stored text fits in ``budget`` characters (one at least, so a page moves on)."""
    taken, used = [], 0
    for row in rows:
        used += len(row.wire)
        if used > budget and (taken or not at_least_one):
            break
        taken.append(row)
    return taken


def _scope(store, scope_id, empty):
    if not scope_id:
        return empty
    found = store.get_scope(scope_id)
    if found is None:
        raise InvalidRequest("this cursor is not one the server gave out: pull again without a cursor "
                             "(a full resync)", details={"cursor": ["unknown scope"], "resync": True})
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

