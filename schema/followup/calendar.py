"""The follow-up's calendar: Swedish local dates and months, daylight saving included.

The region counts per calendar month in Swedish local time (DOMAIN.md "Follow-up
the region asks for"): a month runs from 00:00 Europe/Stockholm on its first day
to 00:00 on the next month's first day, whatever the UTC offset is on either side.
Every figure and due list places its times with these functions, so a visit at
23:30 UTC on the last of October counts in November, as it does on the wall.
"""

import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

__all__ = ["ZONE", "Month", "local_date", "parse_time", "add_months", "today"]

#: The region's time zone: month boundaries and dates of times are taken here.
ZONE = ZoneInfo("Europe/Stockholm")


def parse_time(value):
    """An ISO 8601 time with offset as an aware datetime; None for None or anything unreadable."""
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def local_date(value, zone=ZONE):
    """The Swedish calendar date of a time (ISO text or aware datetime), or of a date given as text."""
    if isinstance(value, dt.datetime):
        return value.astimezone(zone).date()
    if isinstance(value, str) and len(value) == 10:
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            return None
    moment = parse_time(value)
    return moment.astimezone(zone).date() if moment else None


def today(zone=ZONE):
    """Today's date in Swedish local time."""
    return dt.datetime.now(dt.timezone.utc).astimezone(zone).date()


def add_months(day, months):
    """The first day of the month ``months`` after (or before) ``day``'s month."""
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


@dataclasses.dataclass(frozen=True)
class Month:
    """A calendar month of Swedish local time: its first day, and its UTC bounds for queries."""

    first: dt.date
    zone: object = ZONE

    @classmethod
    def parse(cls, text, zone=ZONE):
        """The month of ``YYYY-MM``; raise ValueError with what to write otherwise."""
        try:
            first = dt.date.fromisoformat(f"{text}-01")
        except (TypeError, ValueError):
            raise ValueError(f"{text!r} is not a month like 2026-11") from None
        if len(text) != 7:
            raise ValueError(f"{text!r} is not a month like 2026-11")
        return cls(first, zone)

    @property
    def key(self):
        """``YYYY-MM``."""
        return f"{self.first:%Y-%m}"

    @property
    def last(self):
        """The month's last calendar day."""
        return add_months(self.first, 1) - dt.timedelta(days=1)

    @property
    def start(self):
        """00:00 local time on the first day, as an aware UTC datetime."""
        return dt.datetime.combine(self.first, dt.time(), tzinfo=self.zone).astimezone(dt.timezone.utc)

    @property
    def end(self):
        """00:00 local time on the next month's first day (exclusive), as an aware UTC datetime."""
        return self.shifted(1).start

    def shifted(self, months):
        """The month ``months`` later (negative: earlier)."""
        return Month(add_months(self.first, months), self.zone)

    def holds(self, value):
        """True when a time (ISO text or aware datetime) or a date falls in this month, locally."""
        day = value if isinstance(value, dt.date) and not isinstance(value, dt.datetime) else local_date(
            value, self.zone)
        return day is not None and self.first <= day <= self.last
