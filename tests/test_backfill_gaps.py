"""A backfill equals single-day runs also where closes are missing or stale."""

import asyncio
import datetime as dt
import uuid
from decimal import Decimal

from hypothesis import event, given, settings
from hypothesis import strategies as st

from portfolio_snapshots import (
    InMemoryMarketData,
    InMemorySnapshotRepository,
    MissingDataPolicy,
    RunReport,
    SnapshotJob,
    date_range,
)
from portfolio_snapshots.adapters.ledger import LedgerPortfolioRepository
from portfolio_snapshots.adapters.memory import InMemoryTransactionSource
from portfolio_snapshots.history import Transaction
from portfolio_snapshots.testing.strategies import LEDGER_START as START
from portfolio_snapshots.testing.strategies import ledgers

PID = uuid.UUID(int=1)
TICKERS = ("AAA", "BBB", "CCC")
DAYS = 20
MAX_AGE = dt.timedelta(days=2)
#: The closes' calendar starts before the ledger, so the first days have a close to look back on.
CALENDAR = date_range(START - dt.timedelta(days=3), START + dt.timedelta(days=DAYS))


@st.composite
def calendars_with_gaps(draw: st.DrawFn) -> dict[str, list[dt.date]]:
    """Each ticker's trading days: the calendar less a drawn set of days, at least one gap."""
    calendars = {}
    for ticker in TICKERS:
        gaps = draw(st.sets(st.sampled_from(CALENDAR), min_size=1, max_size=len(CALENDAR)))
        calendars[ticker] = [day for day in CALENDAR if day not in gaps]
    return calendars


def _job(
    transactions: list[Transaction],
    calendars: dict[str, list[dt.date]],
    store: InMemorySnapshotRepository,
    policy: MissingDataPolicy,
) -> SnapshotJob:
    market = InMemoryMarketData()
    for j, (ticker, days) in enumerate(sorted(calendars.items())):
        for day in days:
            market.add_price(ticker, day, Decimal(20 + j) + Decimal(day.toordinal() % 7) / 4)
    return SnapshotJob(
        portfolios=LedgerPortfolioRepository(InMemoryTransactionSource(transactions)),
        snapshots=store,
        market_data=market,
        missing_data=policy,
        max_price_age=MAX_AGE,
        clock=lambda: dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
    )


def _failed_days(reports: list[RunReport]) -> set[tuple[dt.date, str]]:
    return {
        (failure.snapshot_date, failure.error_type)
        for report in reports
        for failure in report.failures
    }


@given(
    ledgers(portfolio_id=PID, max_days=DAYS),
    calendars_with_gaps(),
    st.sampled_from(MissingDataPolicy),
)
@settings(max_examples=80)
def test_a_backfill_over_gaps_equals_single_day_runs(
    transactions: list[Transaction],
    calendars: dict[str, list[dt.date]],
    policy: MissingDataPolicy,
) -> None:
    """Missing and stale closes fail (or carry forward) the same days by backfill as by day."""
    end = START + dt.timedelta(days=DAYS)
    by_backfill, by_days = InMemorySnapshotRepository(), InMemorySnapshotRepository()
    backfills = []
    if transactions:
        backfill = _job(transactions, calendars, by_backfill, policy).backfill(PID, START, end)
        backfills.append(asyncio.run(backfill))
    daily = _job(transactions, calendars, by_days, policy)
    dailies = [asyncio.run(daily.run_daily(day)) for day in date_range(START, end)]
    assert by_backfill.all() == by_days.all()
    assert _failed_days(backfills) == _failed_days(dailies)
    stale = any(snapshot.stale for snapshot in by_days.all())
    failed = bool(_failed_days(dailies))
    event(f"policy={policy.value} stale={stale} failed={failed}")
