"""Time helpers shared by the job and the adapters: the default UTC clock and date ranges."""

from __future__ import annotations

import datetime as dt


def utc_now() -> dt.datetime:
    """Return the current time as an aware UTC datetime: the default clock everywhere."""
    return dt.datetime.now(dt.UTC)


def date_range(start: dt.date, end: dt.date) -> list[dt.date]:
    """Return every calendar date from `start` to `end` inclusive (empty if start > end)."""
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
