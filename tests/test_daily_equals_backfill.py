"""The daily run and a backfill give the same snapshot for the same day (issue 11).

Whatever the ledger (trades, cash, splits, income, fees) and whatever the calendar of closes
(with gaps, split days without a close), the snapshot the 00:00 UTC run stores for a day is
the one a backfill ending on that day stores for it: value, positions, flows and books.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING

from hypothesis import event, given
from hypothesis import strategies as st

from portfolio_snapshots import (
    InMemoryMarketData,
    InMemorySnapshotRepository,
    MissingDataPolicy,
    PortfolioSnapshot,
    SnapshotJob,
)
from portfolio_snapshots.adapters.ledger import LedgerPortfolioRepository
from portfolio_snapshots.adapters.memory import InMemoryTransactionSource
from portfolio_snapshots.errors import PortfolioNotFoundError
from portfolio_snapshots.testing.strategies import LEDGER_START, ledgers

if TYPE_CHECKING:
    from portfolio_snapshots.history import Transaction

PID = uuid.UUID("00000000-0000-4000-8000-0000000000d1")
DAYS = 30
TICKERS = ("AAA", "BBB", "CCC")


@st.composite
def calendars(draw: st.DrawFn) -> InMemoryMarketData:
    """Closes of the ledger's tickers on a drawn subset of days (gaps, a first close late)."""
    market = InMemoryMarketData()
    for ticker in TICKERS:
        days = draw(st.sets(st.integers(0, DAYS - 1), min_size=1, max_size=DAYS))
        for offset in days:
            cents = draw(st.integers(0, 50_000))  # a zero close is a price too
            market.add_price(ticker, LEDGER_START + dt.timedelta(days=offset), Decimal(cents) / 100)
    return market


def _job(ledger: list[Transaction], market: InMemoryMarketData, today: dt.date) -> SnapshotJob:
    source = InMemoryTransactionSource(ledger, currencies={PID: "USD"})
    return SnapshotJob(
        portfolios=LedgerPortfolioRepository(source),
        snapshots=InMemorySnapshotRepository(),
        market_data=market,
        clock=lambda: dt.datetime.combine(today, dt.time(23), tzinfo=dt.UTC),
        missing_data=MissingDataPolicy.CARRY_FORWARD,
        max_price_age=dt.timedelta(days=3),
    )


def _stored(job: SnapshotJob, day: dt.date) -> PortfolioSnapshot | None:
    return asyncio.run(job.snapshots.get_snapshot(PID, day))


@given(
    ledger=ledgers(portfolio_id=PID, max_days=DAYS),
    market=calendars(),
    offset=st.integers(0, DAYS - 1),
)
def test_the_daily_run_and_a_backfill_store_the_same_snapshot_for_a_day(
    ledger: list[Transaction], market: InMemoryMarketData, offset: int
) -> None:
    """`run_daily(day)` and `backfill(..., start, day)` store equal snapshots for `day`."""
    day = LEDGER_START + dt.timedelta(days=offset)
    daily = _job(ledger, market, day)
    daily_report = asyncio.run(daily.run_daily(day))
    backfill = _job(ledger, market, day)
    try:
        backfill_report = asyncio.run(backfill.backfill(PID, LEDGER_START, day))
    except PortfolioNotFoundError:  # no transaction yet on that day: nothing to value
        assert (_stored(daily, day), daily_report.processed) == (None, 0)
        return
    from_daily, from_backfill = _stored(daily, day), _stored(backfill, day)
    event("stored" if from_daily is not None else "not stored")
    assert from_daily == from_backfill
    # and both say why when there is none: the same failure for the day, or no portfolio yet
    failed_daily = {f.error_type for f in daily_report.failures}
    failed_backfill = {f.error_type for f in backfill_report.failures if f.snapshot_date == day}
    assert failed_daily == failed_backfill
