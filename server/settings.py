"""The server's settings: one table, read from ``HEMSYNC_*`` environment variables.

Every setting is declared once here with its default and its help; the README's
"Settings" section documents each of them (a test keeps the two in step).
"""

import dataclasses
import datetime as dt
import importlib.metadata
import os

from schema.dispatch import DispatchSettings

__all__ = ["Setting", "SETTINGS", "SERVER_VERSION", "load", "setting_name", "dispatch_settings"]

try:
    SERVER_VERSION = importlib.metadata.version("hemsync")
except importlib.metadata.PackageNotFoundError:  # a source tree that was never installed
    SERVER_VERSION = "0.0.0"


def _time(text):
    return dt.time.fromisoformat(text)


def _weekdays(text):
    return tuple(int(day) for day in str(text).split(","))


@dataclasses.dataclass(frozen=True)
class Setting:
    """One setting: its environment name, default, help, and how to read its text."""

    name: str
    default: object
    help: str
    parse: object = str


SETTINGS = (
    Setting("HEMSYNC_DB", "var/hemsync.db", "Path of the server's SQLite database file (when HEMSYNC_DATABASE_URL "
            "is empty)."),
    Setting("HEMSYNC_DATABASE_URL", "",
            "A PostgreSQL database (`postgresql://user@host:5432/name`) to keep everything in instead of the "
            "SQLite file: for several server processes. Overrides HEMSYNC_DB."),
    Setting("HEMSYNC_FHIR_EXPORT_DIR", "var/fhir-export",
            "Directory where FHIR Bulk Data exports (`$export`) write their NDJSON files, one directory per "
            "export, readable by the server only; each export is deleted with `DELETE` of its status URL."),
    Setting("HEMSYNC_MAX_CLOCK_AHEAD", 120,
            "Seconds a pushed change's HLC may be ahead of the server's clock before it is re-stamped.",
            int),
    Setting("HEMSYNC_MAX_BODY_BYTES", 16 * 1024 * 1024,
            "Largest request body in bytes, counted after brotli or gzip decompression (413 above it).", int),
    Setting("HEMSYNC_MAX_BATCH", 500, "Most changes one push may carry (400 invalid_batch above it).", int),
    Setting("HEMSYNC_MAX_RECORD_BYTES", 2 * 1024 * 1024,
            "Largest stored state of one record in bytes, history included; a change that would grow a record "
            "past it is rejected (record_too_large).", int),
    Setting("HEMSYNC_PAGE_BYTES", 8 * 1024 * 1024,
            "Most characters of record states (stored JSON) one pull page ships; at least one record, so a page "
            "always moves on.",
            int),
    # 2,000 rather than 500 (make bench): a page's fixed costs (its transaction and fsync on the laptop, the
    # scope, holdings and one audit entry per patient on the server) are paid a quarter as often.
    Setting("HEMSYNC_PAGE_SIZE", 2000, "Most records one pull page ships; also the largest `limit` a client may ask.",
            int),
    Setting("HEMSYNC_MIN_CLIENT_VERSION", "0.1.0",
            "Oldest client version (X-Hemsync-Client) the server accepts; older ones get 426 client_too_old."),
    Setting("HEMSYNC_PLANNED_DAYS", 7, "Working days within which a planned visit request is due.", int),
    Setting("HEMSYNC_TIMEZONE", "Europe/Stockholm", "Time zone of working hours and deadlines."),
    Setting("HEMSYNC_WORKDAY_START", "08:00", "Start of working hours (HH:MM, local time).", _time),
    Setting("HEMSYNC_WORKDAY_END", "16:00", "End of working hours and the urgent deadline (HH:MM, local time).",
            _time),
    Setting("HEMSYNC_WORKING_WEEKDAYS", "0,1,2,3,4", "Working weekdays, 0 = Monday (holidays are excluded).",
            _weekdays),
    Setting("HEMSYNC_RISK_STEP_MINUTES", 30, "Minutes each risk flag brings a request's effective deadline forward.",
            int),
    Setting("HEMSYNC_ESCALATE_BEFORE_MINUTES", 30,
            "Minutes before its effective deadline an unaccepted request is escalated.", int),
    Setting("HEMSYNC_ON_DUTY_MINUTES", 120,
            "Minutes since a doctor's last sync within which the dispatcher's board counts them on duty.", int),
    Setting("HEMSYNC_ESCALATION_INTERVAL", 60,
            "Seconds between runs of the escalation job that `serve` starts (0: this process runs no jobs).", int),
    Setting("HEMSYNC_TLS_CERTFILE", "",
            "PEM certificate (chain) `serve` speaks HTTPS with (with HEMSYNC_TLS_KEYFILE); empty: plain HTTP."),
    Setting("HEMSYNC_TLS_KEYFILE", "", "PEM private key of HEMSYNC_TLS_CERTFILE (readable by the server only)."),
    Setting("HEMSYNC_PROXY_HOPS", 0,
            "Reverse proxies in front of the server whose X-Forwarded-For is trusted for the client address "
            "(1 behind one nginx; 0: the peer address).", int),
    Setting("HEMSYNC_WRITE_WAIT_SECONDS", 5.0,
            "Seconds a request waits for the database's one writer before it is answered 503 server_busy "
            "with Retry-After; reads never wait for it.", float),
    Setting("HEMSYNC_THREADS", 32,
            "Worker threads of one server process: requests handled at once (`serve --threads` overrides it).",
            int),
    Setting("HEMSYNC_LISTEN_BACKLOG", 1024,
            "Connections the operating system holds for the server before it accepts them (the listen "
            "backlog; the kernel caps it at net.core.somaxconn). Too small and connections are dropped.", int),
    Setting("HEMSYNC_KEEPALIVE_CONNECTIONS", 1000,
            "Idle keep-alive connections one process keeps open (a region's laptops each keep one); past it the "
            "server closes connections after their answer.", int),
    Setting("HEMSYNC_CONNECTION_TIMEOUT", 60,
            "Seconds an idle keep-alive connection stays open, and a slow client may take to send a request.",
            int),
    Setting("HEMSYNC_DEVICE_RATE", 600,
            "Requests per minute one device may make (a burst of as many is allowed); past it 429 with "
            "Retry-After, so one flooding laptop cannot starve the others (0: no limit).", int),
    Setting("HEMSYNC_AUTH_FAILURES", 5,
            "Failed authentications from one client address before it is answered 429 for a while.", int),
    Setting("HEMSYNC_AUTH_LOCKOUT_SECONDS", 60,
            "Seconds a client address past HEMSYNC_AUTH_FAILURES waits (doubling while it goes on failing).", int),
    Setting("HEMSYNC_SESSION_MINUTES", 480,
            "Minutes a sign-in to the web pages lasts (one working shift), then the person signs in again.", int),
)

_BY_NAME = {s.name: s for s in SETTINGS}


def load(environ=None, overrides=None):
    """The settings as a dict of parsed values: defaults, then ``environ``, then ``overrides``.

    ``overrides`` may name a setting in full (``HEMSYNC_MAX_BATCH``) or short
    (``max_batch``), and carries parsed values (an int, not its text).
    """
    environ = os.environ if environ is None else environ
    values = {}
    for setting in SETTINGS:
        raw = environ.get(setting.name)
        if raw is None or raw == "":
            default = setting.default
            values[setting.name] = setting.parse(default) if isinstance(default, str) else default
        else:
            try:
                values[setting.name] = setting.parse(raw)
            except ValueError as exc:
                raise ValueError(f"{setting.name}={raw!r}: {exc}") from exc
    for key, value in (overrides or {}).items():
        name = setting_name(key)
        if name is None:
            raise KeyError(f"unknown setting {key!r}; known: {', '.join(sorted(_BY_NAME))}")
        values[name] = value
    return values


def setting_name(key):
    """The full name of a setting named in full or short (``max_batch``), or None if there is none."""
    name = key if key.startswith("HEMSYNC_") else "HEMSYNC_" + key.upper()
    return name if name in _BY_NAME else None


def dispatch_settings(values):
    """The DispatchSettings the merge uses when it stamps a new visit request's deadline."""
    return DispatchSettings(
        timezone=values["HEMSYNC_TIMEZONE"],
        workday_start=values["HEMSYNC_WORKDAY_START"],
        workday_end=values["HEMSYNC_WORKDAY_END"],
        working_weekdays=values["HEMSYNC_WORKING_WEEKDAYS"],
        planned_days=values["HEMSYNC_PLANNED_DAYS"],
        risk_step=dt.timedelta(minutes=values["HEMSYNC_RISK_STEP_MINUTES"]),
        escalate_before=dt.timedelta(minutes=values["HEMSYNC_ESCALATE_BEFORE_MINUTES"]),
        on_duty_window=dt.timedelta(minutes=values["HEMSYNC_ON_DUTY_MINUTES"]),
    )
