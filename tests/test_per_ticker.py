import asyncio
import contextlib
import datetime as dt
import threading
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
    PriceHistory,
    PriceQuote,
    RunReport,
    SnapshotJob,
    SnapshotRepository,
    SqliteSnapshotStore,
    TransientError,
)
from portfolio_snapshots.adapters.per_ticker import PerTickerMarketData
from portfolio_snapshots.errors import InvalidPriceError

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


def test_sync_sources_run_in_threads_so_their_requests_overlap() -> None:
    """A sync get_current_price runs in worker threads: two requests are in flight at once."""
    both_in_flight = threading.Barrier(2, timeout=30)  # broken (an error) if calls serialize
    loop_thread = threading.get_ident()
    threads: set[int] = set()

    def get_current_price(ticker: str) -> Decimal:
        threads.add(threading.get_ident())
        both_in_flight.wait()
        return Decimal("1.25")

    market = PerTickerMarketData.from_current_price(
        get_current_price, clock=lambda: dt.datetime(2026, 11, 27, 1, tzinfo=dt.UTC), concurrency=2
    )
    got = asyncio.run(market.get_prices(["A", "B"], DAY))
    assert set(got) == {"A", "B"}
    assert loop_thread not in threads


def test_a_float_price_is_refused_with_a_message_that_says_float() -> None:
    """A source returning a float fails the call with InvalidPriceError naming the float."""
    market = PerTickerMarketData.from_current_price(
        lambda _ticker: 190.12, clock=lambda: dt.datetime(2026, 11, 27, 1, tzinfo=dt.UTC)
    )
    with pytest.raises(InvalidPriceError, match="float") as caught:
        asyncio.run(market.get_prices(["AAPL"], DAY))
    assert (caught.value.ticker, caught.value.value) == ("AAPL", 190.12)


def test_a_float_price_is_converted_through_its_repr_when_allowed() -> None:
    """allow_float=True turns 190.12 into Decimal('190.12'), not its binary expansion."""
    market = PerTickerMarketData.from_current_price(
        lambda _ticker: 190.12,
        clock=lambda: dt.datetime(2026, 11, 27, 1, tzinfo=dt.UTC),
        allow_float=True,
    )
    assert asyncio.run(market.get_prices(["AAPL"], DAY))["AAPL"].price == Decimal("190.12")


class Provider:
    """A provider with get_history (sync, floats) and get_current_price, recording calls."""

    def __init__(self) -> None:
        self.history_calls: list[tuple[str, dt.date, dt.date]] = []

    def get_history(self, ticker: str, start: dt.date, end: dt.date) -> dict[dt.date, str]:
        self.history_calls.append((ticker, start, end))
        closes = {  # Friday's close, then a weekend
            dt.date(2026, 11, 20): "99.50",
            dt.date(2026, 11, 26): "101.00",
            dt.date(2026, 11, 27): "102.25",
        }
        return {day: price for day, price in closes.items() if start <= day <= end}

    async def get_current_price(self, ticker: str) -> Decimal | None:
        return Decimal("103.00") if ticker == "LIVE" else None


def test_provider_history_gives_the_latest_close_on_or_before_the_date() -> None:
    """A past date gets the latest close within the lookback, dated as the provider dates it."""
    provider = Provider()
    market = PerTickerMarketData.from_provider(
        provider.get_history,
        provider.get_current_price,
        clock=lambda: dt.datetime(2026, 11, 28, 1, tzinfo=dt.UTC),
    )
    sunday = dt.date(2026, 11, 22)
    assert asyncio.run(market.get_prices(["X"], sunday)) == {
        "X": PriceQuote("X", Decimal("99.50"), dt.date(2026, 11, 20))
    }
    assert provider.history_calls == [("X", sunday - dt.timedelta(days=7), sunday)]
    assert asyncio.run(market.get_prices(["X"], dt.date(2026, 11, 10))) == {}


def test_provider_current_price_serves_today_and_history_fills_in() -> None:
    """Today's date uses get_current_price when it answers, and the history when it does not."""
    provider = Provider()
    market = PerTickerMarketData.from_provider(
        provider.get_history,
        provider.get_current_price,
        clock=lambda: dt.datetime(2026, 11, 27, 18, tzinfo=dt.UTC),
    )
    got = asyncio.run(market.get_prices(["LIVE", "X"], DAY))
    assert got["LIVE"] == PriceQuote("LIVE", Decimal("103.00"), DAY)
    assert got["X"] == PriceQuote("X", Decimal("102.25"), DAY)


def test_provider_market_data_offers_price_history_for_backfills() -> None:
    """The adapter is a PriceHistory: one get_history call per ticker for a whole range."""
    provider = Provider()
    market = PerTickerMarketData.from_provider(provider.get_history)
    assert isinstance(market, PriceHistory)
    start, end = dt.date(2026, 11, 20), dt.date(2026, 11, 27)
    history = asyncio.run(market.get_price_history(["X", "Y"], start, end))
    assert [q.as_of for q in history["X"]] == [start, dt.date(2026, 11, 26), end]
    assert sorted(provider.history_calls) == [("X", start, end), ("Y", start, end)]
    assert not isinstance(PerTickerMarketData.from_current_price(lambda _t: None), PriceHistory)


def test_provider_history_floats_and_datetimes_are_refused_by_name() -> None:
    """A float close needs allow_float; a datetime instead of a date is refused as ambiguous."""

    def floats(ticker: str, start: dt.date, end: dt.date) -> list[tuple[dt.date, float]]:
        return [(end, 10.1)]

    def stamped(ticker: str, start: dt.date, end: dt.date) -> dict[dt.datetime, str]:
        return {dt.datetime(2026, 11, 27, 21, tzinfo=dt.UTC): "10.10"}

    with pytest.raises(InvalidPriceError, match="float"):
        asyncio.run(PerTickerMarketData.from_provider(floats).get_prices(["X"], DAY))
    allowed = PerTickerMarketData.from_provider(floats, allow_float=True)
    assert asyncio.run(allowed.get_prices(["X"], DAY))["X"].price == Decimal("10.1")
    with pytest.raises(InvalidPriceError, match="datetime") as caught:
        asyncio.run(PerTickerMarketData.from_provider(stamped).get_prices(["X"], DAY))  # type: ignore[arg-type]
    assert caught.value.field == "as_of"


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
