"""Push: a device's batch of changes, applied one by one in one transaction.

The batch is checked whole (its size, change ids that repeat within it), its
change ids and records are looked up with it (:meth:`WriteApplier.look_up`), then each change, in arrival order, goes through the one server write path,
:class:`server.writes.WriteApplier`, which says what a change goes through; the
batch commits whole, with the server clock and the device's health.
"""

from schema.clock import utcnow

from .errors import InvalidBatch
from .bodies import PushRequestSchema, load
from .writes import WriteApplier

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
    with store.transaction():
        writes = WriteApplier(store, settings, device, user, now, batched=True)
        writes.look_up(changes)
        results = [writes.apply(change) for change in changes]
        writes.finish(pending=batch["pending"], ops=writes.ops)
    return {"results": results, "server_hlc": str(writes.clock.last)}


