"""The laptop side of hemsync: the SQLite replica, the sync client and the `hemsync` CLI."""

from importlib.metadata import PackageNotFoundError as _NotInstalled
from importlib.metadata import version as _version

try:
    __version__ = _version("hemsync")
except _NotInstalled:  # running from a source tree that was never installed
    __version__ = "0.0.0"

from .errors import (  # noqa: E402  (the HTTP client reads __version__ above)
    ClientError,
    ClientTooOld,
    ConnectionLost,
    DeviceRevoked,
    NotLoggedIn,
    SyncBusy,
    Unauthorized,
)
from .http import SyncClient  # noqa: E402
from .replica import LocalRecord, Replica  # noqa: E402
from .sync import SyncReport, VerifyReport, sync, verify  # noqa: E402

__all__ = [
    "__version__",
    "Replica",
    "LocalRecord",
    "SyncClient",
    "sync",
    "verify",
    "SyncReport",
    "VerifyReport",
    "ClientError",
    "NotLoggedIn",
    "SyncBusy",
    "ConnectionLost",
    "Unauthorized",
    "DeviceRevoked",
    "ClientTooOld",
]
