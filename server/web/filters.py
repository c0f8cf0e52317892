"""Template filters: local times (:func:`schema.clock.local_text`), names for ids, ages from personnummer.

Each is a thin call into ``schema/`` or the app's directory: no rule is computed here.
"""

import datetime as dt
import zoneinfo

from schema.clock import local_text
from schema.identity import age_on

__all__ = ["install", "age"]


def age(personnummer, zone):
    """The patient's age in whole years today (local date), from the personnummer."""
    if not personnummer:
        return ""
    return age_on(personnummer, dt.datetime.now(zone).date())


def install(app, timezone, name_of):
    """Register the filters on ``app``'s templates, showing times in ``timezone``."""
    zone = zoneinfo.ZoneInfo(timezone)
    app.jinja_env.filters["local_time"] = lambda text: local_text(text, zone)
    app.jinja_env.filters["age"] = lambda pnr: age(pnr, zone)
    app.jinja_env.filters["person"] = lambda user_id: (name_of(user_id) or "") if user_id else ""
