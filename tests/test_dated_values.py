"""DatedValues: the dated series behind price histories and portfolio versions.

Its bulk paths (`put_series`, `latest_of_all`, `latest_of_each`) must answer exactly as the
one-by-one ones (`put`, `latest`) do, whatever order the dates come in.
"""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from portfolio_snapshots._dated import DatedValues

_DAY0 = dt.date(2026, 1, 1)
_days = st.integers(min_value=0, max_value=40).map(lambda n: _DAY0 + dt.timedelta(days=n))
_keys = st.sampled_from(["A", "B", "C"])
# (key, day, value) puts, then per key a series of (day, value), then dates to look up.
_puts = st.lists(st.tuples(_keys, _days, st.integers()), max_size=30)
_series = st.lists(
    st.tuples(_keys, st.lists(st.tuples(_days, st.integers()), max_size=12)), max_size=4
)


def _with_puts(puts: list[tuple[str, dt.date, int]]) -> DatedValues[str, int]:
    values: DatedValues[str, int] = DatedValues()
    for key, day, value in puts:
        values.put(key, day, value)
    return values


def _one_by_one(
    puts: list[tuple[str, dt.date, int]], series: list[tuple[str, list[tuple[dt.date, int]]]]
) -> DatedValues[str, int]:
    values = _with_puts(puts)
    for key, entries in series:
        for day, value in entries:
            values.put(key, day, value)
    return values


def _in_bulk(
    puts: list[tuple[str, dt.date, int]], series: list[tuple[str, list[tuple[dt.date, int]]]]
) -> DatedValues[str, int]:
    values = _with_puts(puts)
    for key, entries in series:
        values.put_series(key, [day for day, _ in entries], [value for _, value in entries])
    return values


@given(_puts, _series, st.lists(_days, min_size=1, max_size=5))
def test_put_series_answers_as_put_one_by_one(
    puts: list[tuple[str, dt.date, int]],
    series: list[tuple[str, list[tuple[dt.date, int]]]],
    lookups: list[dt.date],
) -> None:
    """Any series, in any order, after any puts, reads back as the same puts one by one would."""
    expected, got = _one_by_one(puts, series), _in_bulk(puts, series)
    for day in lookups:
        for key in ("A", "B", "C"):
            assert got.latest(key, day) == expected.latest(key, day)
            assert got.between(key, _DAY0, day) == expected.between(key, _DAY0, day)
        assert got.latest_of_each(day) == expected.latest_of_each(day)
    assert got.last_values() == expected.last_values()


@given(_puts, st.lists(_days, min_size=1, max_size=5))
def test_latest_of_all_yields_each_keys_latest_value_in_key_order(
    puts: list[tuple[str, dt.date, int]], lookups: list[dt.date]
) -> None:
    """`latest_of_all` yields what `latest` answers for each key, in the keys' order."""
    values = _with_puts(puts)
    for day in lookups:
        keys = list(values.keys())  # DatedValues is no mapping: it has no __iter__
        expected = [found for key in keys if (found := values.latest(key, day)) is not None]
        assert list(values.latest_of_all(day)) == expected


def test_a_series_of_increasing_days_after_the_last_is_appended_in_one_step() -> None:
    """Days after the key's last one are appended behind the values already there."""
    values: DatedValues[str, str] = DatedValues()
    values.put("A", _DAY0, "seed")
    days = [_DAY0 + dt.timedelta(days=n) for n in (1, 2, 5)]
    values.put_series("A", days, ["one", "two", "five"])
    assert values.between("A", _DAY0, days[-1]) == ["seed", "one", "two", "five"]
    assert values.latest("A", _DAY0 + dt.timedelta(days=4)) == "two"


def test_a_repeated_day_in_a_series_keeps_the_last_value_as_put_does() -> None:
    """A day given twice in one series keeps its later value."""
    values: DatedValues[str, str] = DatedValues()
    values.put_series("A", [_DAY0, _DAY0], ["first", "second"])
    assert values.between("A", _DAY0, _DAY0) == ["second"]


def test_an_empty_series_changes_nothing() -> None:
    """An empty series adds no key and no value."""
    values: DatedValues[str, str] = DatedValues()
    values.put("A", _DAY0, "seed")
    values.put_series("A", [], [])
    values.put_series("B", [], [])
    assert values.last_values() == ["seed"]
    assert len(values) == 1


def test_a_series_overlapping_the_keys_last_date_replaces_it_and_appends_the_rest() -> None:
    """A series starting on the key's last date replaces that value and appends the rest."""
    values: DatedValues[str, str] = DatedValues()
    values.put("A", _DAY0, "seed")  # a seed request answers the range's first day
    days = [_DAY0 + dt.timedelta(days=n) for n in (0, 1, 2)]
    values.put_series("A", days, ["first", "second", "third"])
    assert values.between("A", _DAY0, days[-1]) == ["first", "second", "third"]
