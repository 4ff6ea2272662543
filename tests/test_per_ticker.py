import asyncio
import datetime as dt
from decimal import Decimal

import pytest

from portfolio_snapshots import MarketData, PriceQuote, TransientError
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
