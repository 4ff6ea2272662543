import asyncio
import datetime as dt
import random
import uuid
from decimal import Decimal

import pytest

from portfolio_snapshots import (
    InMemoryMarketData,
    InMemoryPortfolioRepository,
    InMemorySnapshotRepository,
    Portfolio,
    RetryPolicy,
    SnapshotJob,
    TransientError,
)
from portfolio_snapshots.testing import FakeClock, FakeSleep, instant_retry

START = dt.datetime(2025, 6, 30, 23, 59, 30, tzinfo=dt.UTC)


def test_clock_starts_at_a_fixed_aware_utc_time() -> None:
    """A default FakeClock shows the same aware UTC time until it is moved."""
    clock = FakeClock()
    first = clock()
    assert first.tzinfo is dt.UTC
    assert clock() == first


def test_advance_moves_forward() -> None:
    """`advance` moves the clock by the delta and returns the new time, across midnight."""
    clock = FakeClock(START)
    assert clock.advance(dt.timedelta(seconds=45)) == START + dt.timedelta(seconds=45)
    assert clock.today() == dt.date(2025, 7, 1)


def test_advance_refuses_to_go_back() -> None:
    """A negative delta raises ValueError; going back takes an explicit `set`."""
    clock = FakeClock(START)
    with pytest.raises(ValueError, match="forward"):
        clock.advance(dt.timedelta(seconds=-1))
    clock.set(START - dt.timedelta(days=1))
    assert clock() == START - dt.timedelta(days=1)


def test_set_converts_to_utc() -> None:
    """`set` with another zone shows the same instant in UTC."""
    clock = FakeClock(START)
    tokyo = dt.timezone(dt.timedelta(hours=9))
    clock.set(dt.datetime(2025, 7, 1, 8, 0, tzinfo=tokyo))
    assert clock() == dt.datetime(2025, 6, 30, 23, 0, tzinfo=dt.UTC)
    assert clock().tzinfo is dt.UTC
    assert clock.today() == dt.date(2025, 6, 30)


def test_naive_datetimes_are_rejected() -> None:
    """A naive datetime, at construction or in `set`, raises ValueError."""
    naive = dt.datetime(2025, 1, 1, 12, 0)  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="naive"):
        FakeClock(naive)
    clock = FakeClock(START)
    with pytest.raises(ValueError, match="naive"):
        clock.set(naive)
    assert clock() == START


def test_fake_sleep_records_and_moves_the_clock() -> None:
    """The fake sleep records every delay and moves its clock by it, negative ones by nothing."""
    clock = FakeClock(START)
    sleep = FakeSleep(clock)

    async def naps() -> None:
        await sleep(1.5)
        await sleep(0)
        await sleep(-2)
        await sleep(3600)

    asyncio.run(naps())
    assert sleep.delays == [1.5, 0, -2, 3600]
    assert clock() == START + dt.timedelta(seconds=3601.5)
    assert sleep.total == 3599.5


def test_fake_sleep_without_a_clock_only_records() -> None:
    """A FakeSleep without a clock records the delays."""
    sleep = FakeSleep()
    asyncio.run(sleep(2))
    assert sleep.delays == [2]


def test_fake_sleep_lets_other_tasks_run() -> None:
    """Each fake sleep yields to the event loop once, as a real sleep would."""
    sleep = FakeSleep()
    order: list[str] = []

    async def sleeper() -> None:
        order.append("sleeper before")
        await sleep(10)
        order.append("sleeper after")

    async def other() -> None:
        order.append("other")

    async def main() -> None:
        await asyncio.gather(sleeper(), other())

    asyncio.run(main())
    assert order == ["sleeper before", "other", "sleeper after"]


def test_instant_retry_keeps_the_schedule_but_not_the_waits() -> None:
    """`instant_retry` keeps attempts, transient errors and timeout, and waits zero seconds."""
    policy = RetryPolicy(max_attempts=5, timeout=2.0, transient=(TransientError,), jitter=1.0)
    fast = instant_retry(policy)
    assert (fast.max_attempts, fast.timeout, fast.transient) == (5, 2.0, (TransientError,))
    rng = random.Random(0)
    assert [fast.backoff(n, rng) for n in range(1, 6)] == [0.0] * 5
    assert instant_retry().max_attempts == RetryPolicy().max_attempts


def test_instant_retry_retries_without_waiting() -> None:
    """A call retried under `instant_retry` asks the sleep for zero seconds between attempts."""
    attempts: list[int] = []
    sleep = FakeSleep()

    async def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise TransientError("blip")
        return "done"

    assert asyncio.run(instant_retry().call(flaky, sleep=sleep)) == "done"
    assert len(attempts) == 3
    assert sleep.delays == [0.0, 0.0]


def test_job_takes_today_from_the_fake_clock() -> None:
    """The job's default date is the fake clock's UTC date and follows it when advanced."""
    pid = uuid.UUID(int=1)
    market = InMemoryMarketData()
    market.add_price("AAPL", dt.date(2025, 6, 30), Decimal("100.00"))
    store = InMemorySnapshotRepository()
    clock = FakeClock(START)
    job = SnapshotJob(
        portfolios=InMemoryPortfolioRepository([Portfolio(pid, Decimal(0), {"AAPL": Decimal(1)})]),
        snapshots=store,
        market_data=market,
        clock=clock,
    )
    assert asyncio.run(job.run_daily()).start == dt.date(2025, 6, 30)
    clock.advance(dt.timedelta(minutes=1))
    assert asyncio.run(job.run_daily()).start == dt.date(2025, 7, 1)
    assert [s.snapshot_date for s in store.all()] == [dt.date(2025, 6, 30), dt.date(2025, 7, 1)]
