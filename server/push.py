"""Push: a device's batch of changes, applied one by one in one transaction.

The batch is checked whole (its size, change ids that repeat within it), its
change ids and records are looked up with it (:meth:`WriteApplier.look_up`), then
each change, in arrival order, goes through the one server write path,
:class:`server.writes.WriteApplier`, which says what a change goes through; the
batch commits whole, with the server clock and the device's health. Its writes are
first sent unwaited (:meth:`server.store.Store.unwaited`: on PostgreSQL one round
trip for the batch); when anything fails there, the batch is undone and applied
again with a savepoint per change that waits, where a failing change is rejected
alone.
"""

import contextlib
import logging

from schema.clock import utcnow

from .errors import InvalidBatch
from .bodies import PushRequestSchema, load
from .store import UnwaitedFailed
from .writes import WriteApplier

log = logging.getLogger(__name__)

__all__ = ["push"]

_REQUEST = PushRequestSchema()


def push(store, settings, device, user, body, now=None):
    """Answer ``POST /v1/push``: validate the batch, merge it in one transaction, return the results."""
    batch = load(_REQUEST, body, "push body")
    changes = batch["changes"]
    if len(changes) > settings["HEMSYNC_MAX_BATCH"]:
        raise InvalidBatch(
            f"a push carries at most {settings['HEMSYNC_MAX_BATCH']} changes, this one {len(changes)}: "
            "send the outbox in smaller batches",
            details={"changes": [f"at most {settings['HEMSYNC_MAX_BATCH']}"]},
        )
    ids = [c["change_id"] for c in changes]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise InvalidBatch(f"change ids repeat within the batch: {', '.join(repeated)}",
                           details={"change_id": repeated})
    now = now or utcnow()
    try:
        return _apply(store, settings, device, user, batch, now, unwaited=True)
    except UnwaitedFailed:
        # A change failed: undone whole and done again, each change in a savepoint that waits,
        # so the failing one is rejected alone and the others apply as they would have.
        log.info("a batch of device %s is applied again change by change", device["id"], exc_info=True)
        return _apply(store, settings, device, user, batch, now, unwaited=False)


def _apply(store, settings, device, user, batch, now, unwaited):
    """Merge the batch in one transaction (its writes unwaited, where the store can); return the answer."""
    with store.transaction():
        writes = WriteApplier(store, settings, device, user, now, batched=True)
        with store.unwaited() if unwaited else contextlib.nullcontext():
            writes.look_up(batch["changes"])
            results = [writes.apply(change) for change in batch["changes"]]
            writes.finish(pending=batch["pending"], ops=writes.ops)
    return {"results": results, "server_hlc": str(writes.clock.last)}


