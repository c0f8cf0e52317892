"""Laptops and a sequencer for merge tests, with no server and no I/O.

A :class:`Laptop` makes changes the way the real client does: on top of the
state it last saw plus its own pending changes, with its own hybrid logical
clock. :func:`sequence` merges changes in a given arrival order, as the
server does.
"""

import datetime as dt
import itertools
import uuid

from schema.change import make_change
from schema.clock import HybridClock
from schema.merge import Actor, apply_change

NOW = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.timezone.utc)
_ids = itertools.count(1)


def new_id():
    """A fresh UUID string."""
    return str(uuid.uuid4())


class Laptop:
    """One device of one user: a clock, an op counter and its own view of records."""

    def __init__(self, device_id, user_id, role, wall_ms=1_764_064_800_000):
        self.device_id, self.actor = device_id, Actor(user_id, role)
        self.wall = wall_ms
        self.clock = HybridClock(wall_ms=lambda: self.wall)
        self.op = 0
        self.views = {}

    def see(self, state):
        """Take a state from the server (a pull): later changes build on it."""
        self.views[state["id"]] = state
        for write in state["fields"].values():
            self.clock.observe(write["hlc"])

    def change(self, record_type, record_id, fields, resolves=None, tick_ms=1000, local=True):
        """Make a change on top of what this laptop sees and apply it to its own view.

        ``local=False`` skips the laptop's own check, to show what the server does
        with a change a laptop should not have sent.
        """
        self.wall += tick_ms
        self.op += 1
        view = self.views.get(record_id)
        change = make_change(record_type, record_id, fields, state=view, resolves=resolves, op=self.op,
                             change_id=f"{self.device_id}-{self.op}-{next(_ids)}", hlc=str(self.clock.now()),
                             device_id=self.device_id)
        if local:
            self.views[record_id] = apply_change(view, change, self.actor, NOW).state
        return change


def sequence(state, changes, actors, now=NOW):
    """Merge changes in this arrival order, as the server does; returns (state, outcomes)."""
    outcomes = []
    for change in changes:
        outcome = apply_change(state, change, actors[change["device_id"]], now)
        state = outcome.state
        outcomes.append(outcome)
    return state, outcomes


def interleavings(queues):
    """Every arrival order that keeps each device's own changes in op order."""
    queues = [q for q in queues if q]
    if not queues:
        yield []
        return
    for i, queue in enumerate(queues):
        rest = queues[:i] + [queue[1:]] + queues[i + 1:]
        for tail in interleavings(rest):
            yield [queue[0], *tail]


def deep_list(depth):
    """A list nested ``depth`` deep: what a poisoned change carries to break what walks it."""
    value = "v"
    for _ in range(depth):
        value = [value]
    return value
