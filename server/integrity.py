"""The integrity check ``hemsync verify`` needs (docs/protocol.md "Integrity check").

- :func:`digest`: per record, the SHA-256 of the canonical JSON of the record
  exactly as pull would ship it now, over the device's scope (what it holds once
  it has pulled to the head), and the digest of them all. It shows no clinical
  content, so it is not audit-logged.
- :func:`fetch`: named records in the device's scope, as pull ships them;
  anything else is listed as missing. Audit-logged like a pull page.

Both sides compute digests with :mod:`schema.wire`, so they agree byte for byte.
"""

import json

from schema import records
from schema.errors import HemsyncError
from schema.wire import record_digest, scope_digest

from . import audit, scope
from .errors import InvalidBatch
from .bodies import FetchRequestSchema, load

__all__ = ["digest", "fetch"]

_FETCH = FetchRequestSchema()


def digest(store, settings, user):
    """Answer ``GET /v1/digest``: ``{"digest", "records": {"type/id": digest}}`` of the user's scope now."""
    keys = scope.keys_for(store, user)
    digests, after, page = {}, 0, settings["HEMSYNC_PAGE_SIZE"]
    while True:
        # By feed position, page after page: a record written meanwhile moves on and is read again, newer.
        rows = store.records_since(after, keys, page)
        digests.update((f"{r.type}/{r.id}", record_digest(json.loads(r.wire))) for r in rows)
        if len(rows) < page:
            return {"digest": scope_digest(digests), "records": digests}
        after = rows[-1].seq


def fetch(store, settings, device, user, body):
    """Answer ``POST /v1/fetch``: the named records in scope as pull ships them, the rest as missing."""
    wanted = load(_FETCH, body, "fetch body")["records"]
    limit = settings["HEMSYNC_PAGE_SIZE"]
    if len(wanted) > limit:
        raise InvalidBatch(f"a fetch names at most {limit} records, this one {len(wanted)}: ask in parts",
                           details={"records": [f"at most {limit}"]})
    found, missing = [], []
    with store.reading():  # never behind a push: the write lock only for the holdings and audit rows
        keys = scope.keys_for(store, user)
        for key in dict.fromkeys(wanted):
            stored = _stored(store, key)
            if stored is None or not keys.covers(stored.type, stored.id, stored.patient_id, stored.municipality):
                missing.append(key)  # unknown and out of scope look the same: nothing leaks
            else:
                found.append(stored)
    with store.transaction():
        store.hold(device["id"], [(s.type, s.id) for s in found])
        store.audit(audit.shown(user, device, [(p, f"{s.type}/{s.id}") for s in found
                                               for p in audit.patients_of(s)], "POST /v1/fetch"))
    return {"records": [json.loads(s.wire) for s in found], "missing": missing}


def _stored(store, key):
    record_type, _, record_id = key.partition("/")
    try:
        records.get(record_type)
    except HemsyncError:
        return None
    return store.get_record(record_type, record_id) if record_id else None
