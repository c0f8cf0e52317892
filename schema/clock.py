"""Hybrid logical clock and the skew rule.

An HLC time is (wall milliseconds, counter). It follows physical time where it
can and counts when it cannot, so a device's successive changes, and any change
made after seeing another, always carry a larger time. It is written as a
fixed-width string, ``"0001732540000000-000000"``, so that strings sort like
times and can be compared in SQL.

Last writer wins compares ``(hlc, device_id)``. A change pushed with an HLC more
than ``max_ahead`` ahead of the server's physical clock is re-stamped with the
server's HLC (see :func:`stamp_incoming`): a laptop with a wrong clock must not
win every later merge, and the server's clock never absorbs such a value.
"""

import dataclasses
import datetime as dt
import time

__all__ = ["Hlc", "HybridClock", "Stamp", "stamp_incoming", "utcnow", "now_text", "local_text", "DEFAULT_MAX_AHEAD_MS",
           "ZERO"]

DEFAULT_MAX_AHEAD_MS = 120_000


@dataclasses.dataclass(frozen=True, order=True)
class Hlc:
    """One hybrid logical time: wall milliseconds and a counter."""

    wall_ms: int
    counter: int = 0

    def __str__(self):
        return f"{self.wall_ms:016d}-{self.counter:06d}"

    @classmethod
    def parse(cls, text):
        """Read an HLC string; raise ValueError when it is not one."""
        wall, sep, counter = str(text).partition("-")
        if not (sep and wall.isdigit() and counter.isdigit() and len(wall) == 16 and len(counter) == 6):
            raise ValueError(f"not an HLC time: {text!r} (expected 16 digits, '-', 6 digits)")
        return cls(int(wall), int(counter))

    @property
    def time(self):
        """The wall time this HLC stands for, as an aware UTC datetime."""
        return dt.datetime.fromtimestamp(self.wall_ms / 1000, dt.timezone.utc)


ZERO = Hlc(0, 0)


def utcnow():
    """The wall clock's time now, aware, in UTC: the one "now" of the server and the laptop."""
    return dt.datetime.now(dt.timezone.utc)


def now_text(timespec="milliseconds"):
    """:func:`utcnow` as the ISO 8601 text stored in databases and answers."""
    return utcnow().isoformat(timespec=timespec)


def local_text(moment, zone):
    """A time (ISO 8601 text, or an aware datetime) as a person reads it, ``2026-12-01 14:05`` in ``zone``.

    The one way pages, the CLI and the queue's reasons show a time; empty for
    none. A text without an offset is taken as UTC, as everything is stored.
    """
    if not moment:
        return ""
    if not isinstance(moment, dt.datetime):
        moment = dt.datetime.fromisoformat(str(moment).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def _wall_ms():
    return time.time_ns() // 1_000_000


class HybridClock:
    """A hybrid logical clock over an injectable physical clock (milliseconds)."""

    def __init__(self, last=ZERO, wall_ms=_wall_ms):
        self.last = Hlc.parse(last) if isinstance(last, str) else last
        self.wall_ms = wall_ms

    def now(self):
        """Tick for a local event (a change made or a push merged) and return the time."""
        wall = self.wall_ms()
        if wall > self.last.wall_ms:
            self.last = Hlc(wall)
        else:
            self.last = Hlc(self.last.wall_ms, self.last.counter + 1)
        return self.last

    def observe(self, remote):
        """Move past a time seen from elsewhere, so later local times sort after it."""
        remote = Hlc.parse(remote) if isinstance(remote, str) else remote
        wall = self.wall_ms()
        top = max(wall, self.last.wall_ms, remote.wall_ms)
        if top == self.last.wall_ms == remote.wall_ms:
            counter = max(self.last.counter, remote.counter) + 1
        elif top == self.last.wall_ms:
            counter = self.last.counter + 1
        elif top == remote.wall_ms:
            counter = remote.counter + 1
        else:
            counter = 0
        self.last = Hlc(top, counter)
        return self.last


@dataclasses.dataclass(frozen=True)
class Stamp:
    """The HLC a change is merged with, and whether the server re-stamped it."""

    hlc: str
    restamped: bool
    original_hlc: str
    ahead_ms: int


def stamp_incoming(change_hlc, server_clock, max_ahead_ms=DEFAULT_MAX_AHEAD_MS):
    """Apply the clock rule to a pushed change's HLC on the server.

    A time more than ``max_ahead_ms`` ahead of the server's physical clock is
    replaced by a fresh server HLC, and the server clock does not observe it;
    any other time is observed, so the server's clock stays ahead of all it has
    accepted.
    """
    incoming = Hlc.parse(change_hlc)
    ahead = incoming.wall_ms - server_clock.wall_ms()
    if ahead > max_ahead_ms:
        return Stamp(str(server_clock.now()), True, str(incoming), ahead)
    server_clock.observe(incoming)
    return Stamp(str(incoming), False, str(incoming), max(ahead, 0))
