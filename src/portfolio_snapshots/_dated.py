"""`DatedValues`: values per key, each with a date, looked up on or before a date.

The one structure behind price histories, FX rate histories, portfolio versions and the
series a backfill prices from.
"""

from __future__ import annotations

import bisect
import operator
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Iterator, Sequence

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

    def put_series(self, key: K, days: Sequence[dt.date], values: Sequence[V]) -> None:
        """Record `values[i]` for `key` on `days[i]`, as `put` does one by one.

        Days in increasing order (a history answer, the usual case) are appended in one step
        from the first one after the key's last date; the ones before it, or days in any
        other order, go through `put`.
        """
        if not all(map(operator.lt, days, days[1:])):
            for day, value in zip(days, values, strict=True):
                self.put(key, day, value)
            return
        dates = self._dates.get(key)
        start = 0 if not dates else bisect.bisect_right(days, dates[-1])
        for i in range(start):  # on or before the key's last date: an overlap with a seed
            self.put(key, days[i], values[i])
        if start == len(days):
            return
        if dates is None:
            self._dates[key] = list(days)
            self._values[key] = list(values)
        else:
            dates.extend(days[start:])
            self._values[key].extend(values[start:])

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
        for (key, dates), values in zip(self._dates.items(), self._values.values(), strict=True):
            i = bisect.bisect_right(dates, as_of)
            if i:
                found[key] = values[i - 1]
        return found

    def latest_of_all(self, as_of: dt.date) -> Iterator[V]:
        """Yield, for every key that has one, its value dated on or before `as_of`.

        Keys added while iterating are not visited; the usual key, whose newest value is in
        force, costs a comparison.
        """
        # Both dicts gain their keys together (`put`), so they are in the same order: no key
        # is hashed again. Two lists, not a list of pairs: a run over a million keys then
        # leaves no million objects for the garbage collector to walk.
        all_dates, all_values = list(self._dates.values()), list(self._values.values())
        for dates, values in zip(all_dates, all_values, strict=True):
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
