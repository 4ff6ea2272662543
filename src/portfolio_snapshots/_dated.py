"""`DatedValues`: values per key, each with a date, looked up on or before a date.

The one structure behind price histories, FX rate histories, portfolio versions and the
series a backfill prices from.
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Iterator

K = TypeVar("K")
V = TypeVar("V")


class DatedValues(Generic[K, V]):
    """Per key, values sorted by date; one value per key and date."""

    __slots__ = ("_dates", "_values")

    def __init__(self) -> None:
        """Start empty."""
        self._dates: dict[K, list[dt.date]] = {}
        self._values: dict[K, list[V]] = {}

    def put(self, key: K, day: dt.date, value: V) -> None:
        """Record `value` for `key` on `day`, replacing any value of that key and date."""
        dates = self._dates.setdefault(key, [])
        values = self._values.setdefault(key, [])
        if not dates or day > dates[-1]:  # the usual case: values arrive in date order
            dates.append(day)
            values.append(value)
            return
        i = bisect.bisect_left(dates, day)
        if i < len(dates) and dates[i] == day:
            values[i] = value
        else:
            dates.insert(i, day)
            values.insert(i, value)

    def latest(self, key: K, as_of: dt.date) -> V | None:
        """Return the value of `key` dated on or before `as_of`, or None."""
        dates = self._dates.get(key)
        if not dates:
            return None
        i = bisect.bisect_right(dates, as_of)
        return self._values[key][i - 1] if i else None

    def between(self, key: K, start: dt.date, end: dt.date) -> list[V]:
        """Return the values of `key` dated from `start` to `end` inclusive, by date."""
        dates = self._dates.get(key)
        if not dates:
            return []
        return self._values[key][bisect.bisect_left(dates, start) : bisect.bisect_right(dates, end)]

    def latest_of_each(self, as_of: dt.date) -> dict[K, V]:
        """Return, for every key that has one, its value dated on or before `as_of`."""
        found: dict[K, V] = {}
        for key, dates in self._dates.items():
            i = bisect.bisect_right(dates, as_of)
            if i:
                found[key] = self._values[key][i - 1]
        return found

    def latest_of_all(self, as_of: dt.date) -> Iterator[V]:
        """Yield, for every key that has one, its value dated on or before `as_of`.

        Keys added while iterating are not visited; the usual key, whose newest value is in
        force, costs a comparison.
        """
        # Both dicts gain their keys together (`put`), so they are in the same order: no key
        # is hashed again.
        for dates, values in list(zip(self._dates.values(), self._values.values(), strict=True)):
            if dates[-1] <= as_of:
                yield values[-1]
            else:
                i = bisect.bisect_right(dates, as_of)
                if i:
                    yield values[i - 1]

    def last_values(self) -> list[V]:
        """Return each key's most recent value."""
        return [values[-1] for values in self._values.values() if values]

    def keys(self) -> Iterator[K]:
        """Iterate over the keys."""
        return iter(self._dates)

    def __len__(self) -> int:
        """Return the number of keys."""
        return len(self._dates)
