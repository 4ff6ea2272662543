import asyncio
import contextlib
import datetime as dt
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path

import pytest

from portfolio_snapshots import (
    InMemoryPortfolioRepository,
    InMemorySnapshotRepository,
    MarketData,
    Portfolio,
    PriceQuote,
    RunReport,
    SnapshotJob,
    SnapshotRepository,
    SqliteSnapshotStore,
    TransientError,
)
from portfolio_snapshots.adapters.per_ticker import PerTickerMarketData

DAY = dt.date(2026, 11, 27)


def test_per_ticker_adapter_bounds_concurrency_and_skips_missing() -> None:
    """At most `concurrency` requests run at once; tickers without a price are absent."""
    in_flight = 0
    peak = 0

    async def fetch(ticker: str, as_of: dt.date) -> Decimal | None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0)
        in_flight -= 1
        return None if ticker == "NONE" else Decimal(len(ticker))

    market = PerTickerMarketData(fetch, concurrency=2)
    assert isinstance(market, MarketData)
    got = asyncio.run(market.get_prices(["A", "BB", "CCC", "NONE", "EEEEE"], DAY))
    assert got == {
        "A": PriceQuote("A", Decimal(1), DAY),
        "BB": PriceQuote("BB", Decimal(2), DAY),
        "CCC": PriceQuote("CCC", Decimal(3), DAY),
        "EEEEE": PriceQuote("EEEEE", Decimal(5), DAY),
    }
    assert peak == 2


def test_per_ticker_failure_fails_the_whole_call() -> None:
    """One failing ticker fails the call, so the job retries it instead of losing a price."""

    async def fetch(ticker: str, as_of: dt.date) -> Decimal:
        if ticker == "BAD":
            raise TransientError("timeout")
        return Decimal(1)

    with pytest.raises(TransientError, match="timeout"):
        asyncio.run(PerTickerMarketData(fetch).get_prices(["A", "BAD"], DAY))


def test_current_price_source_answers_only_for_today() -> None:
    """A get_current_price function serves today's date and reports no price for the past."""

    def get_current_price(ticker: str) -> Decimal:
        return Decimal("9.99")

    market = PerTickerMarketData.from_current_price(
        get_current_price, clock=lambda: dt.datetime(2026, 11, 27, 1, tzinfo=dt.UTC)
    )
    assert asyncio.run(market.get_prices(["A"], DAY)) == {
        "A": PriceQuote("A", Decimal("9.99"), DAY)
    }
    assert asyncio.run(market.get_prices(["A"], DAY - dt.timedelta(days=1))) == {}


def count_requests() -> tuple[Counter[str], Callable[[str, dt.date], Awaitable[Decimal]]]:
    asked: Counter[str] = Counter()

    async def fetch(ticker: str, as_of: dt.date) -> Decimal:
        asked[ticker] += 1
        await asyncio.sleep(0)
        return Decimal(int(ticker[1:]) + 1)

    return asked, fetch


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_a_daily_run_asks_each_ticker_once_whatever_the_concurrency(
    store: str, tmp_path: Path
) -> None:
    """With concurrency 4 and a per-ticker provider, requests equal the unique tickers."""
    tickers = [f"T{n}" for n in range(50)]
    portfolios = InMemoryPortfolioRepository(
        Portfolio(
            uuid.UUID(int=i + 1),
            Decimal(0),
            {tickers[(i + k * 7) % 50]: Decimal(1) for k in range(5)},
        )
        for i in range(200)
    )
    asked, fetch = count_requests()

    async def run() -> RunReport:
        async with contextlib.AsyncExitStack() as stack:
            snapshots: SnapshotRepository = InMemorySnapshotRepository()
            if store == "sqlite":
                snapshots = await stack.enter_async_context(
                    await SqliteSnapshotStore.open(tmp_path / "s.sqlite3")
                )
            job = SnapshotJob(
                portfolios=portfolios,
                snapshots=snapshots,
                market_data=PerTickerMarketData(fetch, concurrency=8),
                clock=lambda: dt.datetime(2026, 11, 27, 1, tzinfo=dt.UTC),
                batch_size=10,
                concurrency=4,
            )
            return await job.run_daily(DAY)

    report = asyncio.run(run())
    assert report.succeeded == 200
    assert asked == Counter(dict.fromkeys(tickers, 1))
