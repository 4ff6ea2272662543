"""`PerTickerMarketData`: a `MarketData` over a one-ticker-at-a-time price source."""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
from typing import TYPE_CHECKING, TypeAlias

from portfolio_snapshots._domain import DEFAULT_CURRENCY, PriceQuote
from portfolio_snapshots._time import utc_now

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Collection
    from decimal import Decimal

__all__ = ["CurrentPriceFetcher", "PerTickerMarketData", "TickerPriceFetcher"]

#: Fetches one ticker's latest close on or before a date: a quote, a bare Decimal, or None.
TickerPriceFetcher: TypeAlias = "Callable[[str, dt.date], Awaitable[PriceQuote | Decimal | None]]"

#: Fetches one ticker's current price, sync or async: the ``get_current_price(ticker)`` style.
CurrentPriceFetcher: TypeAlias = (
    "Callable[[str], Awaitable[Decimal | None]] | Callable[[str], Decimal | None]"
)


class PerTickerMarketData:
    """Serves `MarketData.get_prices` by asking a per-ticker source, a few tickers at a time.

    A failure for any ticker fails the whole call with that ticker's error (the job then
    retries it under its policy when it is transient), so a batch is never valued with part
    of its prices silently missing.

    Args:
        fetch: Returns the latest close of one ticker on or before a date. A bare `Decimal`
            is taken as dated on the requested date, in `currency`.
        currency: The currency of bare Decimal prices.
        concurrency: Requests in flight at once.
    """

    def __init__(
        self,
        fetch: TickerPriceFetcher,
        *,
        currency: str = DEFAULT_CURRENCY,
        concurrency: int = 8,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self._fetch = fetch
        self._currency = currency
        self._concurrency = concurrency

    @classmethod
    def from_current_price(
        cls,
        get_current_price: CurrentPriceFetcher,
        *,
        clock: Callable[[], dt.datetime] = utc_now,
        currency: str = DEFAULT_CURRENCY,
        concurrency: int = 8,
    ) -> PerTickerMarketData:
        """Wrap a ``get_current_price(ticker)`` function, sync or async.

        A current price is only a close for today: it answers for today's UTC date (from
        `clock`) and reports no price for earlier dates, so a backfill through it fails with
        clear missing-price errors instead of valuing the past at today's prices.
        """

        async def fetch(ticker: str, as_of: dt.date) -> Decimal | None:
            if as_of < clock().astimezone(dt.UTC).date():
                return None
            result = get_current_price(ticker)
            if inspect.isawaitable(result):
                result = await result
            return result

        return cls(fetch, currency=currency, concurrency=concurrency)

    async def get_prices(self, tickers: Collection[str], as_of: dt.date) -> dict[str, PriceQuote]:
        """Return a quote for each ticker the source can price."""
        slots = asyncio.Semaphore(self._concurrency)
        found: dict[str, PriceQuote] = {}

        async def one(ticker: str) -> None:
            async with slots:
                result = await self._fetch(ticker, as_of)
            if isinstance(result, PriceQuote):
                found[ticker] = result
            elif result is not None:
                found[ticker] = PriceQuote(ticker, result, as_of, self._currency)

        try:
            async with asyncio.TaskGroup() as group:
                for ticker in tickers:
                    group.create_task(one(ticker))
        except ExceptionGroup as group_error:
            # Surface the first underlying error itself, so the retry policy can tell whether
            # it is transient; the rest stay attached as the cause.
            raise group_error.exceptions[0] from group_error
        return found
