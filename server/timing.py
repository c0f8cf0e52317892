"""Where a request's time went, for its ``Server-Timing`` header: the app's whole time and the waits in it.

The store notes how long a request's thread waited for the writer
(:func:`waited`); the app's middleware (:class:`server.app`'s ``_ServerTiming``)
starts the tally with the request and sends it with the answer's head, as
``Server-Timing: app;dur=12.5, writer;dur=8.1``. Under load (``make load``) it
tells a push that queued for the writer from one that waited for a core.
"""

import threading
import time

__all__ = ["begin", "waited", "header"]

_local = threading.local()


def begin():
    """Start this thread's tally for a new request."""
    _local.started, _local.waits = time.perf_counter(), {}


def waited(name, seconds):
    """Add ``seconds`` of waiting for ``name`` (e.g. ``writer``) to this thread's request, if one is tallied."""
    waits = getattr(_local, "waits", None)
    if waits is not None:
        waits[name] = waits.get(name, 0.0) + seconds


def header():
    """The ``Server-Timing`` value of this thread's request so far: ``app`` first, then each wait."""
    metrics = {"app": time.perf_counter() - _local.started, **_local.waits}
    return ", ".join(f"{name};dur={seconds * 1000:.1f}" for name, seconds in metrics.items())
