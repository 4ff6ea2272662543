"""Type-checked, never executed: the public API as a host application uses it.

mypy (strict) checks this file with the rest of the tests; a change that breaks how users type
their code against the library fails here first.
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import TYPE_CHECKING, assert_type
from uuid import UUID

import portfolio_snapshots as ps
from portfolio_snapshots import errors, events, history
from portfolio_snapshots.adapters.ledger import LedgerPortfolioRepository
from portfolio_snapshots.adapters.memory import (
    InMemoryFxRates,
    InMemoryRunLedger,
    InMemoryRunLock,
    InMemoryTransactionSource,
)
from portfolio_snapshots.adapters.per_ticker import PerTickerMarketData
from portfolio_snapshots.testing import FakeClock, instant_retry

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Collection, Mapping, Sequence


class HostPortfolios:
    """A host's own repository, typed structurally against the port."""

    def iter_portfolios(self, as_of: dt.date) -> AsyncIterator[ps.Portfolio]:
        async def gen() -> AsyncIterator[ps.Portfolio]:
            yield ps.Portfolio(UUID(int=1), Decimal(0))

        return gen()

    async def get_portfolio(self, portfolio_id: UUID, as_of: dt.date) -> ps.Portfolio | None:
        return None


class HostPrices:
    async def get_prices(
        self, tickers: Collection[str], as_of: dt.date
    ) -> Mapping[str, ps.PriceQuote]:
        return {}


class HostSnapshots:
    async def upsert_many(
        self, snapshots: Sequence[ps.PortfolioSnapshot], *, fence: int | None = None
    ) -> None:
        return None

    async def get_snapshot(self, portfolio_id: UUID, day: dt.date) -> ps.PortfolioSnapshot | None:
        return None

    async def list_snapshots(
        self, portfolio_id: UUID, start: dt.date, end: dt.date
    ) -> Sequence[ps.PortfolioSnapshot]:
        return []

    async def existing_dates(
        self, portfolio_id: UUID, start: dt.date, end: dt.date
    ) -> frozenset[dt.date]:
        return frozenset()

    async def existing_keys(
        self, keys: Collection[tuple[UUID, dt.date]]
    ) -> frozenset[tuple[UUID, dt.date]]:
        return frozenset()


portfolios: ps.PortfolioRepository = HostPortfolios()
prices: ps.MarketData = HostPrices()
snapshots: ps.SnapshotRepository = HostSnapshots()
ledger: ps.RunLedger = InMemoryRunLedger()
lock: ps.RunLock = InMemoryRunLock()


def on_event(event: events.RunEvent) -> None:
    if isinstance(event, events.RetryScheduled):
        assert_type(event.delay, float)


job = ps.SnapshotJob(
    portfolios=portfolios,
    snapshots=snapshots,
    market_data=prices,
    retry=instant_retry(ps.RetryPolicy(max_attempts=5, timeout=10.0)),
    ledger=ledger,
    lock=lock,
    events=on_event,
    clock=FakeClock(),
    rng=random.Random(0),
    batch_size=1000,
)


async def host_code() -> None:
    report = await job.run_daily()
    assert_type(report, ps.RunReport)
    assert_type(report.as_dict(), dict[str, object])
    assert_type(report.status, ps.RunStatus)
    backfill = await job.backfill(UUID(int=1), dt.date(2026, 1, 1), dt.date(2026, 1, 31))
    for failure in backfill.failures:
        assert_type(failure.portfolio_id, UUID | None)
        assert_type(failure.attempts, int)
    snapshot = ps.value_portfolio(
        ps.Portfolio(UUID(int=2), Decimal(1), {"A": Decimal(1)}),
        {"A": ps.PriceQuote("A", Decimal(1), dt.date(2026, 1, 1))},
        dt.date(2026, 1, 1),
    )
    assert_type(snapshot.total_value, Decimal)
    assert_type(snapshot.positions[0].market_value, Decimal)
    per_ticker: ps.MarketData = PerTickerMarketData.from_current_price(lambda _ticker: Decimal(1))
    del per_ticker


async def history_code() -> None:
    """The history submodule as a host uses it: a ledger, FX rates, returns, typed errors."""
    source: history.TransactionSource = InMemoryTransactionSource(
        [
            history.Transaction(
                UUID(int=3),
                dt.date(2026, 1, 1),
                history.TransactionKind.DEPOSIT,
                amount=Decimal(100),
            )
        ]
    )
    repository: ps.PortfolioRepository = LedgerPortfolioRepository(source)
    assert isinstance(repository, history.PortfolioHistory)
    rates: history.FxRates = InMemoryFxRates(
        [history.FxQuote("EUR", "USD", Decimal("1.08"), dt.date(2026, 1, 1))]
    )
    del rates
    series = await job.backfill(UUID(int=3), dt.date(2026, 1, 1), dt.date(2026, 1, 2))
    assert_type(series.status, ps.RunStatus)
    stored = await snapshots.list_snapshots(UUID(int=3), dt.date(2026, 1, 1), dt.date(2026, 1, 2))
    try:
        assert_type(history.cumulative_time_weighted_return(stored), Decimal)
    except errors.UndefinedReturnError as caught:
        assert_type(caught.snapshot_date, dt.date | None)
    except ps.SnapshotError:
        raise


async def host_glue_code() -> None:
    """The job's calls for host glue, typed as a host's admin endpoint and start-up use them."""
    try:
        one = await job.snapshot_one(UUID(int=1), dt.date(2026, 1, 1), force=True)
        assert_type(one, ps.PortfolioSnapshot)
        assert_type(one.as_dict(), dict[str, object])
    except errors.SnapshotFailedError as failed:
        status = 503 if failed.kind == "transient" else 422  # what an endpoint answers
        assert status
        assert_type(failed.failure, ps.SnapshotFailure)
    except errors.RunAlreadyRunningError as busy:
        assert_type(busy.key, str)
    assert_type(job.forced_key("daily:2026-01-01", "request-1"), str)
    missed = await job.catch_up(max_days=3)
    assert_type(missed, list[ps.RunReport])
    for failure in missed[0].failures if missed else ():
        assert failure.kind in {"invalid_input", "missing_data", "transient", "not_found", "error"}
    provider: ps.MarketData = PerTickerMarketData.from_provider(
        lambda _ticker, _start, _end: {dt.date(2026, 1, 1): Decimal(1)}, allow_float=False
    )
    del provider
