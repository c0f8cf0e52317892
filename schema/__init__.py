"""The contract shared by the sync server and the laptop: record types, validation, merge.

No Flask and no HTTP here: both sides import this package and compute the
same thing from the same rules.
"""

from . import records
from .clock import HybridClock, Hlc, stamp_incoming
from .errors import HemsyncError
from .merge import Actor, Outcome, apply_change, view
from .state import new_state

__all__ = [
    "records",
    "HybridClock",
    "Hlc",
    "stamp_incoming",
    "HemsyncError",
    "Actor",
    "Outcome",
    "apply_change",
    "view",
    "new_state",
]
