"""IdSet: the compact set of ids a run keeps, exact like a `set` whatever the ids."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portfolio_snapshots import (
    InMemoryMarketData,
    InMemorySnapshotRepository,
    Portfolio,
    RetryPolicy,
    SnapshotJob,
)
from portfolio_snapshots._idset import IdSet
from portfolio_snapshots.errors import InvalidInputError
from portfolio_snapshots.testing import FakeClock, instant_retry

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

TOP = (1 << 128) - 1

# Ids of every shape: random (v4), small and sequential, alike but for their first or last
# bytes (time-ordered v1 and v7 ids share long runs of bytes), and the extremes.
ID = st.one_of(
    st.integers(0, TOP),
    st.integers(0, 64),
    st.integers(0, 64).map(lambda n: n << 120),
    st.integers(0, 64).map(lambda n: (0xABCD << 112) | n),
    st.sampled_from([0, 1, TOP, TOP - 1, 1 << 127]),
)
TUNING = st.fixed_dictionaries(
    {
        "recent_limit": st.integers(1, 6),
        "first_buckets": st.sampled_from([1, 2, 4]),
        "bucket_load": st.integers(1, 3),
        "filter_bytes": st.sampled_from([1, 2, 8]),
        "prefilter": st.booleans(),
    }
)


def tiny(*, prefilter: bool = True) -> IdSet:
    """A set that packs every id at once into one table of one bucket, then 16 of them."""
    return IdSet(recent_limit=1, first_buckets=1, bucket_load=2, prefilter=prefilter)


@given(
    tuning=TUNING,
    pool=st.lists(ID, min_size=1, max_size=40),
    ops=st.lists(st.tuples(st.booleans(), st.integers(0, 39)), max_size=120),
)
def test_answers_like_a_python_set(
    tuning: dict[str, int | bool], pool: list[int], ops: list[tuple[bool, int]]
) -> None:
    """Any adds and lookups, with any tuning: `add`, `in` and `len` answer as a `set` does."""
    ids = IdSet(**tuning)  # type: ignore[arg-type]
    expected: set[int] = set()
    for adding, index in ops:
        number = pool[index % len(pool)]
        if adding:
            assert ids.add(number) is (number not in expected)
            expected.add(number)
        else:
            assert (number in ids) is (number in expected)
        assert len(ids) == len(expected)
    assert all(number in ids for number in expected)
    assert not [n for n in pool if (n in ids) is not (n in expected)]


@pytest.mark.parametrize("prefilter", [True, False])
def test_ids_are_found_after_packing_into_many_tables(prefilter: bool) -> None:
    """3,000 ids through a set that packs often: each new once, then found, others not."""
    ids = IdSet(recent_limit=7, first_buckets=2, bucket_load=3, filter_bytes=4, prefilter=prefilter)
    numbers = [n * 0x9E3779B97F4A7C15 % (1 << 128) for n in range(3000)]
    assert all(ids.add(n) for n in numbers)
    assert len(ids) == 3000
    assert not any(ids.add(n) for n in numbers)
    assert all(n in ids for n in numbers)
    assert not any(n + 1 in ids for n in numbers if n + 1 not in set(numbers))
    assert len(ids) == 3000


@pytest.mark.parametrize("prefilter", [True, False])
def test_bytes_across_two_packed_ids_are_no_id(prefilter: bool) -> None:
    """The last 8 bytes of one packed id and the first 8 of the next, read as an id: absent."""
    ids = tiny(prefilter=prefilter)
    first, second = 0x1111111111111111_2222222222222222, 0x3333333333333333_4444444444444444
    straddling = 0x2222222222222222_3333333333333333
    ids.add(first)
    ids.add(second)
    assert first in ids
    assert straddling not in ids
    assert ids.add(straddling)
    assert straddling in ids
    assert not ids.add(straddling)


def test_an_id_already_in_the_recent_ids_is_not_new() -> None:
    """Before any packing, an id added twice is new once: the plain set answers."""
    ids = IdSet()
    assert ids.add(42)
    assert not ids.add(42)
    assert 42 in ids
    assert 43 not in ids
    assert len(ids) == 1


def test_update_adds_every_id_of_the_other_set_and_leaves_it_as_it_was() -> None:
    """`update` merges a set of packed and recent ids into another; the other is unchanged."""
    first, second = IdSet(recent_limit=4, first_buckets=2), IdSet(recent_limit=4, first_buckets=2)
    for n in range(30):
        first.add(n)
    for n in range(20, 45):
        second.add(n)
    first.update(second)
    assert len(first) == 45
    assert all(n in first for n in range(45))
    assert len(second) == 25
    assert 0 not in second


@pytest.mark.parametrize("packing", [False, True], ids=["recent", "packed"])
def test_what_is_no_128_bit_id_is_not_in_the_set_and_cannot_be_added(packing: bool) -> None:
    """Negative, too large or not an int: never a member; `add` refuses the ints."""
    ids = tiny() if packing else IdSet()
    ids.add(TOP)
    assert -1 not in ids
    assert 1 << 128 not in ids
    assert "x" not in ids
    assert float(1) not in ids  # float-ok: a wrong type on purpose
    with pytest.raises(OverflowError):
        ids.add(-1)
    with pytest.raises(OverflowError):
        ids.add(1 << 128)
    assert len(ids) == 1


@pytest.mark.parametrize(
    "tuning",
    [
        {"recent_limit": 0},
        {"bucket_load": 0},
        {"first_buckets": 3},
        {"first_buckets": 0},
        {"filter_bytes": 6},
    ],
)
def test_tuning_out_of_range_is_refused(tuning: dict[str, int]) -> None:
    """A limit or load below 1, or a bucket count that is no power of two, is refused."""
    with pytest.raises(InvalidInputError):
        IdSet(**tuning)  # type: ignore[arg-type]


# --- in a run: past the plain set's limit (131,072 ids), ids are packed ----------------------

DAY = dt.date(2026, 11, 27)
RUN_SIZE = 150_000  # more than the plain set holds (131,072), so the ids get packed


def run_id(n: int) -> uuid.UUID:
    """The n-th portfolio's id: spread over the 128 bits, unlike ``UUID(int=n)``."""
    return uuid.UUID(int=n * 0x9E3779B97F4A7C15)


class FlakyStream:
    """`RUN_SIZE` portfolios, then the 7th again; fails once at `fail_at[k]` on the k-th open."""

    def __init__(self, fail_at: tuple[int, ...]) -> None:
        self.fail_at = fail_at
        self.opened = 0

    async def iter_portfolios(self, as_of: dt.date) -> AsyncIterator[Portfolio]:
        self.opened += 1
        fail_at = self.fail_at[self.opened - 1] if self.opened <= len(self.fail_at) else -1
        for n in [*range(1, RUN_SIZE + 1), 7]:
            if n == fail_at:
                raise ConnectionError("connection reset by peer")
            yield Portfolio(run_id(n), Decimal(n), {"AAA": Decimal(1)})

    async def get_portfolio(self, portfolio_id: uuid.UUID, as_of: dt.date) -> None:
        return None


@pytest.mark.parametrize(
    ("fail_at", "failed"),
    [((), 1), ((140_000, 145_000), 0)],
    ids=["one-pass", "reopened-twice"],
)
def test_a_run_past_the_packing_limit_hands_each_portfolio_out_once(
    fail_at: tuple[int, ...], failed: int
) -> None:
    """150,000 ids, then the 7th again: one pass fails the repeat; re-opened, all are skipped.

    The first pass packs its ids past the plain set's 131,072, so both the repeat and the
    skipping are answered by packed ids.
    """
    market = InMemoryMarketData()
    market.add_price("AAA", DAY, Decimal(10))
    store = InMemorySnapshotRepository()
    stream = FlakyStream(fail_at)
    job = SnapshotJob(
        portfolios=stream,
        snapshots=store,
        market_data=market,
        clock=FakeClock(dt.datetime(2026, 11, 28, 0, 5, tzinfo=dt.UTC)),
        retry=instant_retry(RetryPolicy(max_attempts=3)),
    )
    report = asyncio.run(job.run_daily(DAY))
    assert (report.succeeded, report.failed, report.retried) == (RUN_SIZE, failed, len(fail_at))
    assert stream.opened == len(fail_at) + 1
    assert len(store) == RUN_SIZE
    assert [f.portfolio_id for f in report.failures] == [run_id(7)] * failed
    assert all("more than once" in f.message for f in report.failures)
