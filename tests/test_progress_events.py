"""`RunProgress`: the counts a run tells after each write, for progress bars and metrics."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from decimal import Decimal

from portfolio_snapshots import (
    InMemoryMarketData,
    InMemoryPortfolioRepository,
    InMemorySnapshotRepository,
    Portfolio,
    SnapshotJob,
    date_range,
)
from portfolio_snapshots.events import RunEvent, RunFinished, RunProgress

TODAY = dt.date(2026, 11, 27)
START = TODAY - dt.timedelta(days=19)


def _job(events: list[RunEvent], snapshots: InMemorySnapshotRepository) -> SnapshotJob:
    ids = [uuid.UUID(int=n) for n in (1, 2, 3)]
    portfolios = InMemoryPortfolioRepository(
        [Portfolio(i, Decimal(10), {"A": Decimal(1)}) for i in ids[:2]]
    )
    portfolios.put(Portfolio(ids[2], Decimal(5), {"NOPE": Decimal(1)}))  # never priced
    market = InMemoryMarketData()
    for day in date_range(START, TODAY):
        market.add_price("A", day, Decimal(7))
    return SnapshotJob(
        portfolios=portfolios,
        snapshots=snapshots,
        market_data=market,
        events=events.append,
        clock=lambda: dt.datetime(2026, 11, 27, 23, tzinfo=dt.UTC),
        batch_size=6,
    )


def test_progress_grows_after_each_write_and_ends_at_the_reports_counts() -> None:
    """A backfill tells its counts after every write; they only grow and end at the report's."""
    events: list[RunEvent] = []
    store = InMemorySnapshotRepository()
    report = asyncio.run(_job(events, store).backfill_all(START, TODAY))
    progress = [e for e in events if isinstance(e, RunProgress)]
    done = [p.succeeded + p.failed + p.skipped for p in progress]
    assert len(progress) >= 40 // 6  # 40 stored portfolio-days in writes of at most 6
    assert done == sorted(done)
    last = progress[-1]
    assert (last.succeeded, last.failed, last.skipped) == (
        report.succeeded,
        report.failed,
        report.skipped,
    )
    assert (report.succeeded, report.failed) == (40, 20)
    assert isinstance(events[-1], RunFinished)


def test_a_rerun_with_nothing_to_write_still_tells_its_progress() -> None:
    """A batch whose days are all stored already tells its skipped count."""
    events: list[RunEvent] = []
    store = InMemorySnapshotRepository()
    asyncio.run(_job([], store).backfill(uuid.UUID(int=1), START, TODAY))
    asyncio.run(_job(events, store).backfill(uuid.UUID(int=1), START, TODAY, only_missing=True))
    progress = [e for e in events if isinstance(e, RunProgress)]
    assert [(p.succeeded, p.failed, p.skipped) for p in progress] == [(0, 0, 20)]
