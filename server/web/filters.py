"""Template filters: one local-time filter, names for ids, ages from personnummer.

Each is a thin call into ``schema/`` or the app's directory: no rule is computed here.
"""

import datetime as dt
import zoneinfo

from schema.identity import age_on

__all__ = ["install", "local_time", "age"]


def local_time(text, zone):
    """An ISO 8601 UTC time as ``2026-12-01 14:05`` in ``zone``; empty for none."""
    if not text:
        return ""
    moment = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def age(personnummer, zone):
    """The patient's age in whole years today (local date), from the personnummer."""
    if not personnummer:
        return ""
    return age_on(personnummer, dt.datetime.now(zone).date())


def install(app, timezone, name_of):
    """Register the filters on ``app``'s templates, showing times in ``timezone``."""
    zone = zoneinfo.ZoneInfo(timezone)
    app.jinja_env.filters["local_time"] = lambda text: local_time(text, zone)
    app.jinja_env.filters["age"] = lambda pnr: age(pnr, zone)
    app.jinja_env.filters["person"] = lambda user_id: (name_of(user_id) or "") if user_id else ""
