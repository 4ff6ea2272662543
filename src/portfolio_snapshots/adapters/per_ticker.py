"""`PerTickerMarketData`: a `MarketData` over a one-ticker-at-a-time price source.

Sources may be sync or async: a sync function runs in a worker thread (``asyncio.to_thread``),
so it never blocks the event loop and ``concurrency`` requests really are in flight at once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, TypeAlias

from portfolio_snapshots._calculator import DEFAULT_MAX_PRICE_AGE
from portfolio_snapshots._domain import DEFAULT_CURRENCY, PriceQuote
from portfolio_snapshots._errors import InvalidPriceError
from portfolio_snapshots._parsing import provider_day, provider_price
from portfolio_snapshots._time import utc_now

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

__all__ = [
    "CurrentPriceFetcher",
    "HistoryFetcher",
    "PerTickerMarketData",
    "TickerPriceFetcher",
]

#: Fetches one ticker's latest close on or before a date: a quote, a bare Decimal, or None.
TickerPriceFetcher: TypeAlias = "Callable[[str, dt.date], Awaitable[PriceQuote | Decimal | None]]"

#: A price as a source returns it: a Decimal, an int or a string (a float only when allowed).
_Price: TypeAlias = Decimal | int | str | float

#: Fetches one ticker's current price, sync or async: the ``get_current_price(ticker)`` style.
#: A float is refused unless the constructor is told ``allow_float=True``.
CurrentPriceFetcher: TypeAlias = (
    Callable[[str], Awaitable[_Price | None]] | Callable[[str], _Price | None]
)

_History: TypeAlias = Mapping[dt.date, _Price] | Iterable[tuple[dt.date, _Price]]

#: Fetches one ticker's closes from `start` to `end`, sync or async: the
#: ``get_history(ticker, start, end)`` style. It returns ``{date: price}`` or ``(date, price)``
#: pairs (prices as Decimals or strings; floats only with ``allow_float=True``).
HistoryFetcher: TypeAlias = (
    Callable[[str, dt.date, dt.date], Awaitable[_History]]
    | Callable[[str, dt.date, dt.date], _History]
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
        allow_float: bool = False,
    ) -> PerTickerMarketData:
        """Wrap a ``get_current_price(ticker)`` function, sync or async.

        A current price is only a close for today: it answers for today's UTC date (from
        `clock`) and reports no price for earlier dates, so a backfill through it fails with
        clear missing-price errors instead of valuing the past at today's prices. A sync
        function runs in a worker thread. A float price is refused with `InvalidPriceError`
        (its message says "float") unless `allow_float` converts it through its shortest repr.
        """

        async def fetch(ticker: str, as_of: dt.date) -> Decimal | None:
            if as_of < clock().astimezone(dt.UTC).date():
                return None
            price = await _call(get_current_price, ticker)
            if price is None:
                return None
            return provider_price(price, ticker=ticker, as_of=as_of, allow_float=allow_float)

        return cls(fetch, currency=currency, concurrency=concurrency)

    @classmethod
    def from_provider(
        cls,
        get_history: HistoryFetcher,
        get_current_price: CurrentPriceFetcher | None = None,
        *,
        clock: Callable[[], dt.datetime] = utc_now,
        currency: str = DEFAULT_CURRENCY,
        concurrency: int = 8,
        lookback: dt.timedelta = DEFAULT_MAX_PRICE_AGE,
        allow_float: bool = False,
    ) -> PerTickerMarketData:
        """Wrap a price provider's ``get_history`` and ``get_current_price``, sync or async.

        For a past date, the close is the latest one `get_history` returns from `lookback`
        before the date to the date, dated as the provider dates it. For today's UTC date
        (from `clock`), `get_current_price` answers when given and not None. The result also
        offers `PriceHistory`, so a backfill asks `get_history` once per ticker for its whole
        range, not once per day.

        Args:
            get_history: ``get_history(ticker, start, end)``: returns ``{date: price}`` or
                ``(date, price)`` pairs for one ticker (dates as `datetime.date`; prices as
                Decimals, ints or strings).
            get_current_price: ``get_current_price(ticker)``: returns one ticker's current
                price, or None (optional).
            clock: Says which date is today (UTC).
            currency: The currency of the provider's prices.
            concurrency: Requests in flight at once.
            lookback: How far before a date to look for its latest close (7 days by
                default, for weekends and holidays).
            allow_float: Convert float prices through their shortest repr
                (``Decimal(repr(x))``) instead of refusing them with `InvalidPriceError`.

        Returns:
            The market data, with `PriceHistory`.
        """
        if lookback < dt.timedelta(0):
            raise ValueError(f"lookback must not be negative, got {lookback}")

        async def closes(ticker: str, start: dt.date, end: dt.date) -> list[PriceQuote]:
            raw = await _call(get_history, ticker, start, end)
            quotes = []
            for pair in _pairs(raw, ticker):
                if not isinstance(pair, tuple) or len(pair) != 2:  # noqa: PLR2004 - a pair
                    raise InvalidPriceError(
                        "the history source returned an item that is not a (date, price) pair",
                        ticker=ticker,
                        value=pair,
                    )
                raw_day, raw_price = pair
                day = provider_day(raw_day, ticker=ticker)
                if start <= day <= end:
                    price = provider_price(
                        raw_price, ticker=ticker, as_of=day, allow_float=allow_float
                    )
                    quotes.append(PriceQuote(ticker, price, day, currency))
            return sorted(quotes, key=lambda q: q.as_of)

        async def fetch(ticker: str, as_of: dt.date) -> PriceQuote | Decimal | None:
            if get_current_price is not None and as_of >= clock().astimezone(dt.UTC).date():
                price = await _call(get_current_price, ticker)
                if price is not None:
                    return provider_price(
                        price, ticker=ticker, as_of=as_of, allow_float=allow_float
                    )
            found = await closes(ticker, as_of - lookback, as_of)
            return found[-1] if found else None

        return _WithHistory(fetch, closes, currency=currency, concurrency=concurrency)

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


class _WithHistory(PerTickerMarketData):
    """A `PerTickerMarketData` that also offers `PriceHistory` from a per-ticker history."""

    def __init__(
        self,
        fetch: TickerPriceFetcher,
        history: Callable[[str, dt.date, dt.date], Awaitable[list[PriceQuote]]],
        *,
        currency: str,
        concurrency: int,
    ) -> None:
        super().__init__(fetch, currency=currency, concurrency=concurrency)
        self._history = history

    async def get_price_history(
        self, tickers: Collection[str], start: dt.date, end: dt.date
    ) -> dict[str, Sequence[PriceQuote]]:
        """Return each ticker's closes from `start` to `end`, one request per ticker."""
        slots = asyncio.Semaphore(self._concurrency)
        found: dict[str, Sequence[PriceQuote]] = {}

        async def one(ticker: str) -> None:
            async with slots:
                quotes = await self._history(ticker, start, end)
            if quotes:
                found[ticker] = quotes

        try:
            async with asyncio.TaskGroup() as group:
                for ticker in tickers:
                    group.create_task(one(ticker))
        except ExceptionGroup as group_error:
            raise group_error.exceptions[0] from group_error
        return found


async def _call(fn: Callable[..., object], *args: object) -> object:
    """Call a sync or async source: an async one is awaited, a sync one runs in a thread."""
    if inspect.iscoroutinefunction(fn):
        result: object = await fn(*args)
        return result
    result = await asyncio.to_thread(fn, *args)
    if inspect.isawaitable(result):
        return await result
    return result


def _pairs(raw: object, ticker: str) -> Iterable[object]:
    """The ``(date, price)`` items of a history: a mapping's items, or the pairs given."""
    if isinstance(raw, Mapping):
        return raw.items()
    if isinstance(raw, Iterable) and not isinstance(raw, (str, bytes)):
        return raw
    raise InvalidPriceError(
        f"the history source returned {type(raw).__name__}: return {{date: price}} or "
        "(date, price) pairs",
        ticker=ticker,
        value=raw,
    )
