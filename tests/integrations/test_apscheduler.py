"""The daily run on a real APScheduler 3.x AsyncIOScheduler, in a far-off local time zone."""

import asyncio
import contextlib
import datetime as dt
import os
import time
import uuid
from collections.abc import AsyncIterator, Collection, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import tzlocal
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from portfolio_snapshots import (
    InMemoryMarketData,
    InMemoryPortfolioRepository,
    Portfolio,
    PriceQuote,
    RunLedger,
    RunLock,
    RunReport,
    SnapshotJob,
    SnapshotRepository,
    SqliteSnapshotStore,
    utc_now,
)
from portfolio_snapshots.adapters.memory import (
    InMemoryRunLedger,
    InMemoryRunLock,
    InMemorySnapshotRepository,
)
from portfolio_snapshots.adapters.sqlalchemy import SqlAlchemySnapshotStore
from portfolio_snapshots.integrations.apscheduler import (
    JOB_ID,
    DailySnapshots,
    next_fire_time,
    schedule_daily_snapshots,
)
from portfolio_snapshots.testing import FakeClock
from storage.pg_server import fresh_schema

FAR_OFF = "Pacific/Kiritimati"  # UTC+14: its date is ahead of UTC's most of the day
NOW = dt.datetime(2026, 11, 27, 0, 0, 3, tzinfo=dt.UTC)  # the job's clock: just after 00:00
CLOSED = dt.date(2026, 11, 26)  # the day that just closed
PORTFOLIOS = [uuid.UUID(int=i) for i in range(1, 6)]


@pytest.fixture(autouse=True)
def far_off_local_zone() -> Iterator[str]:
    """Run every test with the process's local time zone set to UTC+14, restored afterwards."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = FAR_OFF
    time.tzset()
    tzlocal.reload_localzone()
    try:
        yield FAR_OFF
    finally:
        if before is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = before
        time.tzset()
        tzlocal.reload_localzone()


class GatedMarket:
    """Prices from an in-memory market, each request waiting for `gate` to open."""

    def __init__(self, inner: InMemoryMarketData) -> None:
        self.inner = inner
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()
        self.calls = 0

    async def get_prices(
        self, tickers: Collection[str], as_of: dt.date
    ) -> Mapping[str, PriceQuote]:
        self.calls += 1
        self.waiting.set()
        await self.gate.wait()
        return await self.inner.get_prices(tickers, as_of)


def make_market() -> InMemoryMarketData:
    market = InMemoryMarketData()
    market.add_price("AAA", CLOSED, Decimal("12.34"))
    return market


def make_job(
    store: SnapshotRepository,
    ledger: RunLedger,
    lock: RunLock,
    market: object,
    owner: str = "replica-a",
) -> SnapshotJob:
    return SnapshotJob(
        portfolios=InMemoryPortfolioRepository(
            Portfolio(pid, Decimal(100), {"AAA": Decimal(2)}) for pid in PORTFOLIOS
        ),
        snapshots=store,
        market_data=market,  # type: ignore[arg-type]
        ledger=ledger,
        lock=lock,
        clock=FakeClock(NOW),
        owner=owner,
    )


def memory_job(market: object | None = None) -> SnapshotJob:
    store = InMemorySnapshotRepository()
    return make_job(store, InMemoryRunLedger(), InMemoryRunLock(), market or make_market())


@contextlib.asynccontextmanager
async def started(scheduler: Any, *, paused: bool = False) -> AsyncIterator[Any]:
    """Start `scheduler`; shut it down on exit, also when the test fails."""
    scheduler.start(paused=paused)
    try:
        yield scheduler
    finally:
        scheduler.shutdown(wait=False)
        await asyncio.sleep(0)  # the shutdown is scheduled on the loop: let it run


def outcomes(scheduler: Any) -> asyncio.Queue[object]:
    """A queue receiving each run's report (or error, or a missed-fire note)."""
    queue: asyncio.Queue[object] = asyncio.Queue()

    def listener(event: Any) -> None:
        if event.code == EVENT_JOB_EXECUTED:
            queue.put_nowait(event.retval)
        elif event.code == EVENT_JOB_ERROR:
            queue.put_nowait(event.exception)
        else:
            queue.put_nowait(f"missed {event.scheduled_run_time}")

    scheduler.add_listener(listener, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED)
    return queue


async def next_report(queue: asyncio.Queue[object]) -> RunReport:
    outcome = await asyncio.wait_for(queue.get(), timeout=60)  # a safety net, not a measure
    assert isinstance(outcome, RunReport), outcome
    return outcome


def is_utc_midnight(moment: dt.datetime) -> bool:
    utc = moment.astimezone(dt.UTC)
    return moment.utcoffset() is not None and (utc.hour, utc.minute, utc.second) == (0, 0, 0)


def test_the_next_fire_is_midnight_utc_whatever_the_local_zone() -> None:
    """In a UTC+14 process the job still fires at 00:00 UTC, the next one within a day."""

    async def scenario() -> None:
        scheduler = AsyncIOScheduler()
        assert str(scheduler.timezone) == FAR_OFF
        schedule_daily_snapshots(scheduler, memory_job(), misfire_grace=dt.timedelta(seconds=1))
        async with started(scheduler, paused=True):
            job = scheduler.get_job(JOB_ID)
            assert job is not None
            assert is_utc_midnight(job.next_run_time)
            now = utc_now()
            following = job.trigger.get_next_fire_time(None, now)
            assert is_utc_midnight(following)
            assert now < following <= now + dt.timedelta(days=1)
            assert (job.coalesce, job.max_instances, job.misfire_grace_time) == (True, 1, 1)

    asyncio.run(scenario())


def test_a_fired_run_snapshots_the_day_that_just_closed() -> None:
    """A run fired just after 00:00 UTC values the previous UTC day for every portfolio."""

    async def scenario() -> None:
        scheduler = AsyncIOScheduler()
        job = memory_job()
        queue = outcomes(scheduler)
        schedule_daily_snapshots(scheduler, job)
        async with started(scheduler):
            report = await next_report(queue)
        assert (report.start, report.end, report.key) == (CLOSED, CLOSED, f"daily:{CLOSED}")
        assert report.succeeded == len(PORTFOLIOS)
        stored = await job.snapshots.existing_keys([(p, CLOSED) for p in PORTFOLIOS])
        assert len(stored) == len(PORTFOLIOS)

    asyncio.run(scenario())


def test_days_back_is_the_day_a_run_takes() -> None:
    """days_back=0 values the run's own UTC date; 1, the default, the day before."""
    job = memory_job()
    assert DailySnapshots(job).day() == CLOSED
    assert DailySnapshots(job, days_back=0).day() == NOW.date()
    with pytest.raises(ValueError, match="days_back"):
        DailySnapshots(job, days_back=-1)


def test_a_start_within_the_grace_runs_the_missed_fire_at_once() -> None:
    """Started any time within the grace of the last 00:00 UTC, the missed run happens now."""

    async def scenario() -> None:
        scheduler = AsyncIOScheduler()
        queue = outcomes(scheduler)
        late_start = utc_now()  # the real wall clock: whatever time of day the test runs
        schedule_daily_snapshots(
            scheduler, memory_job(), misfire_grace=dt.timedelta(days=1), now=lambda: late_start
        )
        scheduled = scheduler.get_job(JOB_ID)
        assert scheduled is not None
        assert is_utc_midnight(scheduled.next_run_time)
        assert scheduled.next_run_time <= late_start
        async with started(scheduler):
            report = await next_report(queue)
        assert report.status == "completed"

    asyncio.run(scenario())


def test_a_start_after_the_grace_waits_for_the_next_midnight() -> None:
    """A start later than the grace after 00:00 UTC leaves the missed day to the catch-up."""

    async def scenario() -> None:
        scheduler = AsyncIOScheduler()
        midnight = dt.datetime.combine(utc_now().date(), dt.time(0), tzinfo=dt.UTC)
        schedule_daily_snapshots(
            scheduler,
            memory_job(),
            misfire_grace=dt.timedelta(hours=1),
            now=lambda: midnight + dt.timedelta(hours=2),
        )
        async with started(scheduler, paused=True):
            scheduled = scheduler.get_job(JOB_ID)
            assert scheduled is not None
            next_fire = scheduled.next_run_time
        assert is_utc_midnight(next_fire)
        assert next_fire > utc_now()

    asyncio.run(scenario())


def test_the_grace_is_at_most_a_day_and_catch_up_needs_a_ledger() -> None:
    """Settings that would run the wrong day or cannot work are refused at once."""
    scheduler = AsyncIOScheduler()
    with pytest.raises(ValueError, match="misfire_grace"):
        schedule_daily_snapshots(scheduler, memory_job(), misfire_grace=dt.timedelta(days=2))
    job = memory_job()
    job.ledger = None
    with pytest.raises(ValueError, match="ledger"):
        schedule_daily_snapshots(scheduler, job, catch_up_days=3)


def test_catch_up_at_start_runs_each_missed_day_once() -> None:
    """With catch_up_days, the days missed while down run at start, beside the missed fire."""

    async def scenario() -> None:
        scheduler = AsyncIOScheduler()
        market = make_market()
        for back in (2, 3):
            market.add_price("AAA", CLOSED - dt.timedelta(days=back), Decimal(12))
        job = memory_job(market)
        await job.run_daily(CLOSED - dt.timedelta(days=3))  # the last run before the downtime
        queue = outcomes(scheduler)
        schedule_daily_snapshots(scheduler, job, catch_up_days=7)
        async with started(scheduler):
            first, second = await queue.get(), await queue.get()
        catch_up = first if isinstance(first, list) else second
        assert isinstance(catch_up, list)
        days = [r.start for r in catch_up if isinstance(r, RunReport)]
        assert days == [CLOSED - dt.timedelta(days=2), CLOSED - dt.timedelta(days=1), CLOSED]
        for day in days:
            record = await job.ledger.get(f"daily:{day}")  # type: ignore[union-attr]
            assert record is not None
            assert record.attempts == 1  # the missed fire and the catch-up shared the key

    asyncio.run(scenario())


async def two_replicas_fire_together(
    stores: tuple[SnapshotRepository, SnapshotRepository], *, gated: bool
) -> tuple[RunReport, RunReport]:
    """Two schedulers, each with its own job and store connection, fire the same 00:00."""
    market = GatedMarket(make_market())
    if not gated:
        market.gate.set()
    jobs = [
        make_job(store, store, store, market, owner)  # type: ignore[arg-type]
        for store, owner in zip(stores, ("replica-a", "replica-b"), strict=True)
    ]
    schedulers = [AsyncIOScheduler(), AsyncIOScheduler()]
    queue: asyncio.Queue[object] = asyncio.Queue()
    for scheduler, job in zip(schedulers, jobs, strict=True):
        scheduler.add_listener(lambda event: queue.put_nowait(event.retval), EVENT_JOB_EXECUTED)
        schedule_daily_snapshots(scheduler, job)
    async with started(schedulers[0]), started(schedulers[1]):
        first = await next_report(queue)
        market.gate.set()  # the holder of the lease may now price and write
        second = await next_report(queue)
    return first, second


def check_one_run_did_the_work(first: RunReport, second: RunReport) -> None:
    statuses = sorted([first.status, second.status])
    assert statuses[0] in {"already_running", "already_succeeded"}
    assert statuses[1] == "completed"
    done = first if first.status == "completed" else second
    assert (done.succeeded, done.attempt) == (len(PORTFOLIOS), 1)


def test_two_schedulers_over_one_sqlite_store_do_the_day_once(tmp_path: Path) -> None:
    """Replicas on one SQLite file fire together: one run stores the day, the other skips."""

    async def scenario() -> None:
        path = tmp_path / "shared.sqlite3"
        async with (
            await SqliteSnapshotStore.open(path) as a,
            await SqliteSnapshotStore.open(path) as b,
        ):
            first, second = await two_replicas_fire_together((a, b), gated=True)
            assert first.status == "already_running"  # the other held the lease, gated
            check_one_run_did_the_work(first, second)
            assert len(await a.list_snapshots(PORTFOLIOS[0], CLOSED, CLOSED)) == 1
            record = await b.get(f"daily:{CLOSED}")
            assert record is not None
            assert record.attempts == 1

    asyncio.run(scenario())


@pytest.mark.postgres
def test_two_schedulers_over_one_postgres_store_do_the_day_once(pg_dsn: str) -> None:
    """Replicas on one PostgreSQL schema fire together: the day's run key is worked once."""

    async def scenario() -> None:
        async with (
            fresh_schema(pg_dsn) as (url, connect_args),
            await SqlAlchemySnapshotStore.open(url, connect_args=connect_args) as a,
            await SqlAlchemySnapshotStore.open(url, connect_args=connect_args) as b,
        ):
            first, second = await two_replicas_fire_together((a, b), gated=False)
            check_one_run_did_the_work(first, second)
            keys = await b.existing_keys([(p, CLOSED) for p in PORTFOLIOS])
            assert len(keys) == len(PORTFOLIOS)
            record = await a.get(f"daily:{CLOSED}")
            assert record is not None
            assert record.attempts == 1

    asyncio.run(scenario())


def test_aclose_stops_a_run_in_progress_which_then_resumes_under_its_key() -> None:
    """DailySnapshots.aclose stops the fired run cleanly; the day's next run resumes it."""

    async def scenario() -> None:
        market = GatedMarket(make_market())
        store, ledger = InMemorySnapshotRepository(), InMemoryRunLedger()
        job = make_job(store, ledger, InMemoryRunLock(), market)
        scheduler = AsyncIOScheduler()
        queue = outcomes(scheduler)
        daily = schedule_daily_snapshots(scheduler, job)
        async with started(scheduler):
            await market.waiting.wait()  # the fired run reached the provider, and waits
            await daily.aclose()
            stopped = await asyncio.wait_for(queue.get(), timeout=60)
        assert stopped is None  # stopped on purpose: no error for APScheduler to log
        record = await ledger.get(f"daily:{CLOSED}")
        assert record is not None
        assert record.state.value == "running"
        market.gate.set()
        resumed = await DailySnapshots(job).run()
        assert resumed is not None
        assert (resumed.status, resumed.attempt) == ("completed", 2)

    asyncio.run(scenario())


def test_next_fire_time_is_the_coming_midnight_utc() -> None:
    """next_fire_time reads the scheduled job's next fire in UTC, None once it is gone."""

    async def scenario() -> None:
        scheduler = AsyncIOScheduler()
        schedule_daily_snapshots(scheduler, memory_job(), misfire_grace=dt.timedelta(seconds=1))
        async with started(scheduler, paused=True):
            coming = next_fire_time(scheduler)
            assert coming is not None
            assert coming.tzinfo is dt.UTC
            assert is_utc_midnight(coming)
            scheduler.remove_job(JOB_ID)
            assert next_fire_time(scheduler) is None

    asyncio.run(scenario())
