"""Run-scoped pricing: asks the market-data and FX ports, returns checked price tables.

One `Pricing` serves one run of `SnapshotJob`. The job hands it a batch's portfolios for a day,
or for every day of a backfill range, and gets back `PriceTable` values, ready for the
calculator, or a `GaveUp` saying which call failed for good and after how many attempts. Every
request waits for the rate limit, if any, and goes through the retrying call the job injects
(so this module does not import the job).

For a day, each ticker's close and each FX pair's rate is asked for once per run: the run's
batches share the day's table, and a batch asks, in one call, only for what no other batch
asked for or is asking for; what another batch is fetching is awaited, not fetched again, so
the requests are the unique tickers whatever the concurrency, and every portfolio of a run is
valued at the same prices. (When the batch that fetched a ticker gave up, a batch that waited
for it asks for it itself.) For a range, when the
market data offers `PriceHistory`, the closes (and, with `FxRateHistory`, the rates) are
fetched once for the whole range: the latest value on or before its first day, then the
range's values.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol, TypeVar

from portfolio_snapshots._calculator import DEFAULT_MAX_PRICE_AGE, PriceTable
from portfolio_snapshots._dated import DatedValues
from portfolio_snapshots._domain import QUOTE_MINOR_UNITS
from portfolio_snapshots._fx import pairs_with_inverses
from portfolio_snapshots._parsing import currency_problem, ticker_problem
from portfolio_snapshots._ports import FxRateHistory, PriceHistory
from portfolio_snapshots._retry import Attempted, GaveUp, Outcome, RetryPolicy

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import (
        AsyncIterator,
        Awaitable,
        Callable,
        Collection,
        Iterable,
        Sequence,
    )

    from portfolio_snapshots._domain import FxQuote, Portfolio, PriceQuote
    from portfolio_snapshots._ports import FxRates, MarketData
    from portfolio_snapshots._ratelimit import TokenBucket

T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")

_Pair = tuple[str, str]
_DEFAULT_POLICY = RetryPolicy()


class RetryingCall(Protocol):
    """Awaits one request under the run's retry policy; never raises what the request raised.

    The job's implementation counts and announces each retry for the run (`operation` names
    the request in those events).
    """

    async def __call__(self, operation: str, fn: Callable[[], Awaitable[T]], /) -> Outcome[T]:
        """Return the request's outcome: its value or its last error, and the attempts made."""
        ...


class _Day:
    """A run's price table for one date, what was asked for it so far, and what is in flight."""

    __slots__ = ("asked", "asked_pairs", "pending", "pending_pairs", "table")

    def __init__(self, table: PriceTable) -> None:
        self.table = table
        self.asked: set[str] = set()
        self.asked_pairs: set[_Pair] = set()
        #: The tickers (pairs) a batch is fetching now, each with the future of its request.
        self.pending: dict[str, asyncio.Future[None]] = {}
        self.pending_pairs: dict[_Pair, asyncio.Future[None]] = {}

    def add_quotes(self, quotes: Mapping[str, PriceQuote], asked: Iterable[str]) -> None:
        """Check and add quotes; the tickers asked for without a quote stay missing."""
        self.table.add_quotes(quotes)
        self.asked.update(quotes)
        self.asked.update(asked)

    def add_rates(self, rates: Mapping[_Pair, FxQuote], asked: Iterable[_Pair]) -> None:
        """Add rates; the pairs asked for without a rate stay missing."""
        self.table.add_rates(rates)
        self.asked_pairs.update(rates)
        self.asked_pairs.update(asked)


class Pricing:
    """Asks the market-data and FX ports for one run, and returns checked price tables.

    Args:
        market_data: Where closes come from; with `PriceHistory`, ranges are fetched at once.
        fx_rates: Where FX rates come from (None: a conversion is a `CurrencyMismatchError`);
            with `FxRateHistory`, a range's rates are fetched at once.
        call: Makes each request under the run's retry policy.
        rate_limit: A `TokenBucket` each attempt of each request waits for (None: no limit).
        max_price_age: How old a close or rate may be (None: any age).
        carry_forward: Use closes and rates older than `max_price_age`, marked ``stale``,
            instead of counting them as missing.
        is_transient: Tells a transient error from one that will not pass (the retry
            policy's test; the default policy's by default). A request that fails for good
            with an error that is not transient is split, to find the tickers (or pairs) it
            fails on; only the portfolios that hold those fail.
    """

    __slots__ = (
        "_call",
        "_carry",
        "_days",
        "_fx",
        "_history",
        "_limit",
        "_market",
        "_max_age",
        "_transient",
    )

    def __init__(
        self,
        market_data: MarketData,
        fx_rates: FxRates | None,
        *,
        call: RetryingCall,
        rate_limit: TokenBucket | None = None,
        max_price_age: dt.timedelta | None = DEFAULT_MAX_PRICE_AGE,
        carry_forward: bool = False,
        is_transient: Callable[[BaseException], bool] = _DEFAULT_POLICY.is_transient,
    ) -> None:
        self._market = market_data
        self._history = market_data if isinstance(market_data, PriceHistory) else None
        self._fx = fx_rates
        self._call = call
        self._limit = rate_limit
        self._max_age = max_price_age
        self._carry = carry_forward
        self._transient = is_transient
        self._days: dict[dt.date, _Day] = {}

    async def for_day(self, portfolios: Sequence[Portfolio], day: dt.date) -> PriceTable | GaveUp:
        """Return the run's table for `day`, completed for these portfolios.

        Asks, in one call each, for the closes of the portfolios' tickers that no earlier call
        of this run asked for on `day`, then for the FX rates their conversions need.

        Args:
            portfolios: Portfolios as of the end of `day`.
            day: The date to price.

        Returns:
            The day's table (shared with the run's other batches of `day`), or `GaveUp` with
            the error of the request that failed for good, or of a malformed answer.
        """
        state = self._days.get(day)
        if state is None:
            state = self._days[day] = _Day(self._table({}, day, None if self._fx is None else {}))
        # Zero quantities need no price, but leaving them in costs less than filtering them.
        tickers: set[str] = set().union(*[p.holdings for p in portfolios])
        return await self._complete(state, tickers, portfolios, fetch_prices=True)

    async def for_range(
        self, by_day: Mapping[dt.date, Sequence[Portfolio]]
    ) -> AsyncIterator[tuple[dt.date, PriceTable | GaveUp]]:
        """Yield the table for each day of `by_day`, in date order.

        With `PriceHistory` and more than one day, the closes are fetched once for the whole
        range (and, with `FxRateHistory`, the rates; an FX source without history is asked
        for each day's rates); otherwise each day is priced like `for_day`.

        Args:
            by_day: The portfolios to value on each date, as of the end of that date.

        Yields:
            Each date with its table, or with `GaveUp` when the date cannot be priced (a
            failed range request fails every date).
        """
        days = sorted(by_day)
        history = self._history
        if history is None or len(days) <= 1:
            for day in days:
                yield day, await self.for_day(by_day[day], day)
            return
        first, last = days[0], days[-1]
        # Unchanged days share one Portfolio value: look at each distinct one once.
        everyone = list({id(p): p for ps in by_day.values() for p in ps}.values())
        tickers = {t for p in everyone for t, q in p.holdings.items() if q}
        fetched = await self._fetch_range(history, everyone, tickers, first, last)
        if isinstance(fetched, GaveUp):
            # A request that will not pass may fail on a few tickers only: price day by day,
            # where failing requests are split to find them. A transient failure that
            # outlasted the retries fails the range.
            for day in days:
                yield (
                    day,
                    (
                        fetched
                        if self._transient(fetched.error)
                        else await self.for_day(by_day[day], day)
                    ),
                )
            return
        prices, rates, pairs = fetched
        fx = self._fx
        for day in days:
            quotes = prices.latest_of_each(day)
            if rates is None and pairs and fx is not None:
                state = _Day(self._table(quotes, day, {}))
                yield (
                    day,
                    await self._complete(state, quotes.keys(), by_day[day], fetch_prices=False),
                )
            else:
                yield (
                    day,
                    self._table(quotes, day, None if rates is None else rates.latest_of_each(day)),
                )

    def _table(
        self, quotes: Mapping[str, PriceQuote], day: dt.date, rates: Mapping[_Pair, FxQuote] | None
    ) -> PriceTable:
        return PriceTable(
            quotes, day, max_price_age=self._max_age, carry_forward=self._carry, fx_rates=rates
        )

    async def _complete(
        self,
        state: _Day,
        tickers: Collection[str],
        portfolios: Sequence[Portfolio],
        *,
        fetch_prices: bool,
    ) -> PriceTable | GaveUp:
        """Ask for the closes of `tickers` (if `fetch_prices`), then for the rates `state` lacks.

        What the run asked for already is not asked again, and what another batch is asking
        for is awaited.
        """
        attempts = [1]  # of the latest request, for an answer that turns out malformed
        try:
            if fetch_prices:
                gave_up = await _once_each(
                    state.asked,
                    state.pending,
                    tickers,
                    lambda needed: self._fetch_closes(state, needed, attempts),
                )
                if gave_up is not None:
                    return gave_up
            if self._fx is not None:
                bases = {p.currency for p in portfolios}
                pairs = {(q, b) for q in state.table.currencies(tickers) for b in bases if q != b}
                pairs |= _cash_pairs(portfolios)
                gave_up = await _once_each(
                    state.asked_pairs,
                    state.pending_pairs,
                    pairs_with_inverses(pairs),
                    lambda wanted: self._fetch_rates(state, wanted, attempts),
                )
                if gave_up is not None:
                    return gave_up
        except Exception as error:  # noqa: BLE001 - fails these portfolios only
            return GaveUp(error, attempts[0])
        return state.table

    async def _fetch_closes(
        self, state: _Day, needed: list[str], attempts: list[int]
    ) -> GaveUp | None:
        """Ask for `needed` closes into `state`; `attempts` gets the last request's attempts."""
        day = state.table.day
        needed = list(self._refuse_invalid(state, needed))
        if not needed:
            return None
        got = await self._isolating(
            "get_prices", needed, lambda some: self._market.get_prices(some, day)
        )
        if isinstance(got, GaveUp):
            return got
        found, refused, attempts[0] = got
        for ticker, error in refused.items():
            state.table.refuse(ticker, _failed_request(error), "request", None)
        state.add_quotes(found, asked=needed)
        return None

    async def _fetch_rates(
        self, state: _Day, wanted: list[_Pair], attempts: list[int]
    ) -> GaveUp | None:
        """Ask for `wanted` rates into `state`; `attempts` gets the last request's attempts."""
        fx = self._fx
        if fx is None:  # pragma: no cover - only called with an FX source
            return None
        day = state.table.day
        rates = await self._isolating("get_rates", wanted, lambda some: fx.get_rates(some, day))
        if isinstance(rates, GaveUp):
            return rates
        # a pair whose request fails on its own has no rate: MissingFxRateError
        found_rates, _refused, attempts[0] = rates
        state.add_rates(found_rates, asked=wanted)
        return None

    @staticmethod
    def _refuse_invalid(state: _Day, needed: Collection[str]) -> Collection[str]:
        """Keep malformed tickers out of requests; they fail the portfolios that hold them."""
        invalid = [t for t in needed if ticker_problem(t) is not None]
        if not invalid:
            return needed
        for ticker in invalid:
            state.table.refuse(ticker, str(ticker_problem(ticker)), "ticker", ticker)
        refused = set(invalid)
        state.asked.update(refused)
        return [t for t in needed if t not in refused]

    async def _isolating(
        self,
        operation: str,
        keys: list[K],
        request: Callable[[list[K]], Awaitable[Mapping[K, V]]],
    ) -> tuple[Mapping[K, V], dict[K, Exception], int] | GaveUp:
        """Request `keys`; when that fails for good, and not transiently, split to find why.

        Returns:
            The values found, the error of each key whose request failed on its own, and the
            attempts of the last request; or `GaveUp` when the whole request failed with a
            transient error that outlasted the retries.
        """
        got = await self._ask(operation, lambda: request(keys))
        if not isinstance(got, GaveUp):
            return got.value, {}, got.attempts
        if self._transient(got.error):
            return got
        if len(keys) == 1:
            return {}, {keys[0]: got.error}, got.attempts
        found: dict[K, V] = {}
        refused: dict[K, Exception] = {}
        attempts = got.attempts
        middle = len(keys) // 2
        for part in (keys[:middle], keys[middle:]):
            half = await self._isolating(operation, part, request)
            if isinstance(half, GaveUp):
                return half
            found.update(half[0])
            refused.update(half[1])
            attempts = half[2]
        return found, refused, attempts

    async def _fetch_range(
        self,
        history: PriceHistory,
        everyone: Sequence[Portfolio],
        tickers: set[str],
        first: dt.date,
        last: dt.date,
    ) -> (
        tuple[DatedValues[str, PriceQuote], DatedValues[_Pair, FxQuote] | None, frozenset[_Pair]]
        | GaveUp
    ):
        """Fetch the range's closes, and its rates when the FX source offers history.

        Returns:
            The dated closes, the dated rates (None: no FX history, or no conversion), and
            the conversions the closes may need; or `GaveUp`.
        """
        market = self._market
        prices = await self._dated(
            ("get_prices", lambda: market.get_prices(tickers, first)),
            ("get_price_history", lambda: history.get_price_history(tickers, first, last)),
        )
        if isinstance(prices, GaveUp):
            return prices
        try:
            pairs = _fx_pairs(prices.value.last_values(), everyone)
        except Exception as error:  # noqa: BLE001 - fails this batch's portfolio-days only
            return GaveUp(error, prices.attempts)
        fx = self._fx
        if fx is None or not pairs or not isinstance(fx, FxRateHistory):
            return prices.value, None, pairs
        wanted = pairs_with_inverses(pairs)
        rates = await self._dated(
            ("get_rates", lambda: fx.get_rates(wanted, first)),
            ("get_rate_history", lambda: fx.get_rate_history(wanted, first, last)),
        )
        if isinstance(rates, GaveUp):
            return rates
        return prices.value, rates.value, pairs

    async def _dated(
        self,
        seed: tuple[str, Callable[[], Awaitable[Mapping[K, V]]]],
        history: tuple[str, Callable[[], Awaitable[Mapping[K, Sequence[V]]]]],
    ) -> Outcome[DatedValues[K, V]]:
        """Dated values from the latest value on or before a range (`seed`) and its `history`.

        The outcome's attempts are those of the history request.
        """
        before = await self._ask(*seed)
        if isinstance(before, GaveUp):
            return before
        during = await self._ask(*history)
        if isinstance(during, GaveUp):
            return during
        try:
            series = _dated(before.value, during.value)
        except Exception as error:  # noqa: BLE001 - a malformed answer fails its batch only
            return GaveUp(error, during.attempts)
        return Attempted(series, during.attempts)

    async def _ask(self, operation: str, fn: Callable[[], Awaitable[T]]) -> Outcome[T]:
        """Make one request through the retrying call; each attempt waits for the rate limit."""
        limit = self._limit
        if limit is None:
            return await self._call(operation, fn)

        async def limited() -> T:
            await limit.acquire()
            return await fn()

        return await self._call(operation, limited)


async def _once_each(
    asked: set[K],
    pending: dict[K, asyncio.Future[None]],
    keys: Iterable[K],
    fetch: Callable[[list[K]], Awaitable[GaveUp | None]],
) -> GaveUp | None:
    """Fetch the `keys` nobody asked for or is asking for; await those another batch fetches.

    `fetch` adds what it asked for to `asked` when it succeeds. A key whose fetch by another
    batch gave up (or was cancelled) is neither asked nor pending once that fetch ends: it is
    then fetched here.

    Returns:
        None once every key was asked for, or `GaveUp` from this batch's own fetch.
    """
    keys = keys if isinstance(keys, (set, frozenset)) else set(keys)
    while True:
        # Set operations, each one C loop: a batch's keys are thousands, mostly asked already.
        needed = list(keys.difference(asked, pending))
        waiting = {pending[k] for k in keys.intersection(pending)} if pending else set()
        if needed:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            for key in needed:
                pending[key] = done
            try:
                gave_up = await fetch(needed)
            finally:
                for key in needed:
                    del pending[key]
                done.set_result(None)
            if gave_up is not None:
                return gave_up
        if not waiting:
            return None
        await asyncio.wait(waiting)


def _dated(before: Mapping[K, V], during: Mapping[K, Sequence[V]]) -> DatedValues[K, V]:
    """Dated values per key from the latest value before a range and the range's values."""
    series: DatedValues[K, V] = DatedValues()
    for key, value in before.items():
        series.put(key, _as_of(value), value)
    for key, answered in during.items():
        values = list(answered)
        series.put_series(key, [_as_of(value) for value in values], values)
    return series


def _as_of(value: object) -> dt.date:
    return value.as_of  # type: ignore[attr-defined, no-any-return]


def _failed_request(error: Exception) -> str:
    return f"the price request for it failed for good: {type(error).__name__}: {error}"


def _fx_pairs(quotes: Iterable[PriceQuote], portfolios: Iterable[Portfolio]) -> frozenset[_Pair]:
    """The conversions the quotes may need: each quote currency into each portfolio's.

    A quote in a minor unit (``GBp``) is converted from its major currency (``GBP``).
    """
    quoted = {QUOTE_MINOR_UNITS.get(q.currency, (q.currency, 1))[0] for q in quotes}
    bases = {p.currency for p in portfolios}
    return frozenset((q, b) for q in quoted for b in bases if q != b) | _cash_pairs(portfolios)


def _cash_pairs(portfolios: Iterable[Portfolio]) -> set[_Pair]:
    """The conversions the portfolios' cash in other currencies needs.

    Well-formed codes only: the calculator fails a portfolio holding a malformed one.
    """
    pairs: set[_Pair] = set()
    for p in portfolios:
        held = p.foreign_cash
        if held and isinstance(held, Mapping):
            pairs.update(
                (code, p.currency)
                for code in held
                if code != p.currency and currency_problem(code) is None
            )
    return pairs
