"""Unit tests of the run-scoped pricing component, with a retrying call as the job injects it."""

import asyncio
import datetime as dt
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from decimal import Decimal
from typing import TypeVar

import pytest

from portfolio_snapshots import (
    InMemoryMarketData,
    MissingPriceError,
    Portfolio,
    PriceQuote,
    RetryPolicy,
    TokenBucket,
    TransientError,
)
from portfolio_snapshots._calculator import PriceTable
from portfolio_snapshots._pricing import Pricing
from portfolio_snapshots._retry import Attempted, GaveUp, Outcome, attempt
from portfolio_snapshots.adapters.memory import InMemoryFxRates
from portfolio_snapshots.errors import CurrencyMismatchError
from portfolio_snapshots.history import FxQuote
from portfolio_snapshots.testing import FakeClock, FakeSleep

T = TypeVar("T")
DAY = dt.date(2026, 11, 27)
DAYS = [DAY - dt.timedelta(days=n) for n in (3, 2, 1, 0)]


def pid(n: int) -> uuid.UUID:
    return uuid.UUID(int=n)


def holding(n: int, *tickers: str, currency: str = "USD") -> Portfolio:
    return Portfolio(pid(n), Decimal(0), dict.fromkeys(tickers, Decimal(1)), currency)


class Calls:
    """A retrying call as the job injects it: `attempt` under a policy, with a record."""

    def __init__(self, max_attempts: int = 3) -> None:
        self.policy = RetryPolicy(max_attempts=max_attempts, initial_delay=0, jitter=0)
        self.operations: list[str] = []
        self.retries: list[tuple[str, int]] = []

    async def __call__(self, operation: str, fn: Callable[[], Awaitable[T]], /) -> Outcome[T]:
        self.operations.append(operation)

        def on_retry(failed: int, _delay: float, _error: BaseException, /) -> None:
            self.retries.append((operation, failed))

        return await attempt(
            self.policy, fn, sleep=FakeSleep(), rng=random.Random(0), on_retry=on_retry
        )


class DayPrices:
    """A `MarketData` without `PriceHistory`: records each request's tickers, may fail first."""

    def __init__(self, inner: InMemoryMarketData, failures: int = 0, answer: object = None) -> None:
        self.inner = inner
        self.failures = failures
        self.answer = answer
        self.asked: list[frozenset[str]] = []

    async def get_prices(
        self, tickers: Collection[str], as_of: dt.date
    ) -> Mapping[str, PriceQuote]:
        self.asked.append(frozenset(tickers))
        if len(self.asked) <= self.failures:
            raise TransientError("provider busy")
        if self.answer is not None:
            return self.answer  # type: ignore[return-value]
        return await self.inner.get_prices(tickers, as_of)


class DayRates:
    """An `FxRates` without `FxRateHistory`."""

    def __init__(self, inner: InMemoryFxRates) -> None:
        self.inner = inner

    async def get_rates(
        self, pairs: Collection[tuple[str, str]], as_of: dt.date
    ) -> Mapping[tuple[str, str], FxQuote]:
        return await self.inner.get_rates(pairs, as_of)


class FailingHistory(InMemoryMarketData):
    """Price history that always fails transiently."""

    async def get_price_history(
        self, tickers: Collection[str], start: dt.date, end: dt.date
    ) -> dict[str, list[PriceQuote]]:
        raise TransientError("history down")


class CountingBucket(TokenBucket):
    """A token bucket that counts the tokens taken."""

    def __init__(self) -> None:
        clock = FakeClock()
        super().__init__(1000.0, burst=1000, clock=clock, sleep=FakeSleep(clock))
        self.taken = 0

    async def acquire(self) -> None:
        self.taken += 1
        await super().acquire()


def market(
    *tickers: str, days: Sequence[dt.date] = (DAY,), currency: str = "USD"
) -> InMemoryMarketData:
    prices = InMemoryMarketData()
    for i, day in enumerate(days):
        for j, ticker in enumerate(tickers):
            prices.add_price(ticker, day, Decimal(10 + j) + Decimal(i) / 100, currency)
    return prices


def table(priced: PriceTable | GaveUp) -> PriceTable:
    assert isinstance(priced, PriceTable), priced
    return priced


async def collect(
    items: AsyncIterator[tuple[dt.date, PriceTable | GaveUp]],
) -> list[tuple[dt.date, PriceTable | GaveUp]]:
    return [item async for item in items]


# --- a day --------------------------------------------------------------------------------


def test_a_days_batches_share_one_table_and_ask_each_ticker_once() -> None:
    """Each batch of a day asks, in one request, only for tickers no earlier batch asked for."""
    prices = DayPrices(market("X", "Y", "Z"))
    pricing = Pricing(prices, None, call=Calls())
    first = table(asyncio.run(pricing.for_day([holding(1, "X", "Y")], DAY)))
    second = table(asyncio.run(pricing.for_day([holding(2, "Y", "Z")], DAY)))
    third = table(asyncio.run(pricing.for_day([holding(3, "X", "Z")], DAY)))
    assert prices.asked == [frozenset({"X", "Y"}), frozenset({"Z"})]
    assert first is second is third
    assert set(first.good) == {"X", "Y", "Z"}


def test_a_ticker_without_a_close_is_asked_once_and_stays_missing() -> None:
    """A ticker the market has no close for is not asked for again, and is a missing price."""
    prices = DayPrices(market("X"))
    pricing = Pricing(prices, None, call=Calls())
    asyncio.run(pricing.for_day([holding(1, "X", "NOPE")], DAY))
    priced = table(asyncio.run(pricing.for_day([holding(2, "NOPE")], DAY)))
    assert prices.asked == [frozenset({"X", "NOPE"})]
    assert isinstance(priced.error(pid(2), "NOPE"), MissingPriceError)


def test_each_day_has_its_own_table() -> None:
    """The same tickers on another date are asked for again, into another table."""
    prices = DayPrices(market("X", days=DAYS))
    pricing = Pricing(prices, None, call=Calls())
    today = table(asyncio.run(pricing.for_day([holding(1, "X")], DAY)))
    before = table(asyncio.run(pricing.for_day([holding(1, "X")], DAYS[0])))
    assert prices.asked == [frozenset({"X"})] * 2
    assert (today.good["X"][1], before.good["X"][1]) == (DAY, DAYS[0])


def test_a_request_failing_for_good_gives_up_with_its_attempts() -> None:
    """When every attempt fails, the outcome holds the last error and the attempts made."""
    prices = DayPrices(market("X"), failures=3)
    calls = Calls(max_attempts=3)
    pricing = Pricing(prices, None, call=calls)
    priced = asyncio.run(pricing.for_day([holding(1, "X")], DAY))
    assert isinstance(priced, GaveUp)
    assert isinstance(priced.error, TransientError)
    assert priced.attempts == 3
    assert calls.retries == [("get_prices", 1), ("get_prices", 2)]


def test_tickers_of_a_failed_request_are_asked_for_again() -> None:
    """A later batch asks again for the tickers whose request failed for good."""
    prices = DayPrices(market("X"), failures=1)
    pricing = Pricing(prices, None, call=Calls(max_attempts=1))
    assert isinstance(asyncio.run(pricing.for_day([holding(1, "X")], DAY)), GaveUp)
    priced = table(asyncio.run(pricing.for_day([holding(2, "X")], DAY)))
    assert prices.asked == [frozenset({"X"})] * 2
    assert priced.good["X"][0] == Decimal(10)


class SlowPrices(DayPrices):
    """`DayPrices` whose requests take a few event-loop turns, so batches overlap."""

    async def get_prices(
        self, tickers: Collection[str], as_of: dt.date
    ) -> Mapping[str, PriceQuote]:
        for _ in range(3):
            await asyncio.sleep(0)
        return await super().get_prices(tickers, as_of)


async def concurrently(pricing: Pricing, *batches: list[Portfolio]) -> list[PriceTable | GaveUp]:
    return list(await asyncio.gather(*(pricing.for_day(b, DAY) for b in batches)))


def test_batches_in_flight_await_a_ticker_another_batch_is_fetching() -> None:
    """Batches priced at once ask for each ticker once: one in flight is awaited, not re-asked."""
    prices = SlowPrices(market("X", "Y", "Z"))
    pricing = Pricing(prices, None, call=Calls())
    got = asyncio.run(
        concurrently(
            pricing,
            [holding(1, "X", "Y")],
            [holding(2, "X", "Y")],
            [holding(3, "Y", "Z")],
            [holding(4, "X", "Z")],
        )
    )
    assert sorted(t for asked in prices.asked for t in asked) == ["X", "Y", "Z"]
    tables = [table(t) for t in got]
    assert all(t is tables[0] for t in tables)
    assert set(tables[0].good) == {"X", "Y", "Z"}


def test_a_batch_awaiting_a_request_that_gave_up_asks_for_itself() -> None:
    """When the batch fetching a ticker gives up, a batch that awaited it asks for it again."""
    prices = SlowPrices(market("X"), failures=1)
    pricing = Pricing(prices, None, call=Calls(max_attempts=1))
    first, second = asyncio.run(concurrently(pricing, [holding(1, "X")], [holding(2, "X")]))
    assert isinstance(first, GaveUp)
    assert table(second).good["X"][0] == Decimal(10)
    assert prices.asked == [frozenset({"X"})] * 2


def test_fx_pairs_in_flight_are_asked_for_once() -> None:
    """Batches priced at once that need the same conversion ask for its rates once."""
    fx = InMemoryFxRates([FxQuote("EUR", "USD", Decimal("1.08"), DAY)])
    calls = Calls()
    pricing = Pricing(SlowPrices(market("SAP", currency="EUR")), fx, call=calls)
    got = asyncio.run(concurrently(pricing, [holding(1, "SAP")], [holding(2, "SAP")]))
    assert calls.operations == ["get_prices", "get_rates"]
    assert table(got[1]).rate(pid(2), "SAP", "EUR", "USD") == (Decimal("1.08"), False)


def test_a_malformed_answer_gives_up_with_the_attempts_of_its_request() -> None:
    """An answer that is not a mapping, after one retry, gives up after 2 attempts."""
    prices = DayPrices(market("X"), failures=1, answer=["not", "a", "mapping"])
    pricing = Pricing(prices, None, call=Calls(max_attempts=3))
    priced = asyncio.run(pricing.for_day([holding(1, "X")], DAY))
    assert isinstance(priced, GaveUp)
    assert isinstance(priced.error, AttributeError)
    assert priced.attempts == 2


def test_fx_rates_are_asked_once_per_pair_and_day_in_both_directions() -> None:
    """The rates a day's conversions need are asked for once, with their inverse pairs."""
    fx = InMemoryFxRates([FxQuote("EUR", "USD", Decimal("1.08"), DAY)])
    calls = Calls()
    pricing = Pricing(market("SAP", currency="EUR"), fx, call=calls)
    first = table(asyncio.run(pricing.for_day([holding(1, "SAP")], DAY)))
    second = table(asyncio.run(pricing.for_day([holding(2, "SAP")], DAY)))
    assert calls.operations == ["get_prices", "get_rates"]
    assert first is second
    assert first.rate(pid(1), "SAP", "EUR", "USD") == (Decimal("1.08"), False)
    assert fx.request_count == 1


def test_without_an_fx_source_a_conversion_is_a_currency_mismatch() -> None:
    """With no FX source no rate is asked for, and converting is a CurrencyMismatchError."""
    calls = Calls()
    pricing = Pricing(market("SAP", currency="EUR"), None, call=calls)
    priced = table(asyncio.run(pricing.for_day([holding(1, "SAP")], DAY)))
    assert calls.operations == ["get_prices"]
    with pytest.raises(CurrencyMismatchError):
        priced.rate(pid(1), "SAP", "EUR", "USD")


def test_each_attempt_waits_for_the_rate_limit() -> None:
    """A request retried once takes two tokens from the rate limit."""
    bucket = CountingBucket()
    pricing = Pricing(DayPrices(market("X"), failures=1), None, call=Calls(), rate_limit=bucket)
    table(asyncio.run(pricing.for_day([holding(1, "X")], DAY)))
    assert bucket.taken == 2


# --- a range ------------------------------------------------------------------------------


def test_a_range_with_price_history_makes_two_requests() -> None:
    """Closes for a range: the latest one before it and the range's history, then per day."""
    calls = Calls()
    prices = market("X", days=DAYS)
    pricing = Pricing(prices, None, call=calls)
    everyone = (holding(1, "X"), holding(2, "X"))
    priced = asyncio.run(collect(pricing.for_range(dict.fromkeys(reversed(DAYS), everyone))))
    assert calls.operations == ["get_prices", "get_price_history"]
    assert [day for day, _ in priced] == DAYS
    assert [table(t).good["X"][1] for _, t in priced] == DAYS


def test_a_range_with_fx_history_fetches_rates_once() -> None:
    """With FxRateHistory the range's rates come in two requests, each day at its own rate."""
    fx = InMemoryFxRates(
        FxQuote("EUR", "USD", Decimal("1.0") + Decimal(i) / 100, day) for i, day in enumerate(DAYS)
    )
    calls = Calls()
    pricing = Pricing(market("SAP", days=DAYS, currency="EUR"), fx, call=calls)
    priced = asyncio.run(collect(pricing.for_range(dict.fromkeys(DAYS, (holding(1, "SAP"),)))))
    assert calls.operations == ["get_prices", "get_price_history", "get_rates", "get_rate_history"]
    rates = [table(t).rate(pid(1), "SAP", "EUR", "USD")[0] for _, t in priced]
    assert rates == [Decimal("1.00"), Decimal("1.01"), Decimal("1.02"), Decimal("1.03")]


def test_an_fx_source_without_history_is_asked_for_each_days_rates() -> None:
    """Without FxRateHistory, the closes come at once and the rates day by day."""
    fx = DayRates(InMemoryFxRates([FxQuote("EUR", "USD", Decimal("1.08"), DAYS[0])]))
    calls = Calls()
    pricing = Pricing(market("SAP", days=DAYS, currency="EUR"), fx, call=calls)
    priced = asyncio.run(collect(pricing.for_range(dict.fromkeys(DAYS, (holding(1, "SAP"),)))))
    assert calls.operations == ["get_prices", "get_price_history"] + ["get_rates"] * len(DAYS)
    assert all(table(t).rate(pid(1), "SAP", "EUR", "USD")[0] == Decimal("1.08") for _, t in priced)


def test_a_failed_range_request_gives_up_every_day_in_date_order() -> None:
    """A range request failing for good fails each day of the range, in date order."""
    prices = FailingHistory()
    prices.add_price("X", DAYS[0], Decimal(10))
    calls = Calls(max_attempts=2)
    pricing = Pricing(prices, None, call=calls)
    priced = asyncio.run(
        collect(pricing.for_range(dict.fromkeys(reversed(DAYS), (holding(1, "X"),))))
    )
    assert [day for day, _ in priced] == DAYS
    outcomes = {id(outcome) for _, outcome in priced}
    assert len(outcomes) == 1
    failed = priced[0][1]
    assert isinstance(failed, GaveUp)
    assert (type(failed.error), failed.attempts) == (TransientError, 2)


def test_without_price_history_a_range_is_priced_day_by_day() -> None:
    """A market without PriceHistory is asked once per day of the range."""
    prices = DayPrices(market("X", days=DAYS))
    pricing = Pricing(prices, None, call=Calls())
    priced = asyncio.run(collect(pricing.for_range(dict.fromkeys(DAYS, (holding(1, "X"),)))))
    assert prices.asked == [frozenset({"X"})] * len(DAYS)
    assert [table(t).good["X"][1] for _, t in priced] == DAYS


def test_a_range_of_one_day_is_priced_like_a_day() -> None:
    """One day is asked for with get_prices alone, into the run's table for that day."""
    calls = Calls()
    pricing = Pricing(market("X"), None, call=calls)
    ((day, priced),) = asyncio.run(collect(pricing.for_range({DAY: [holding(1, "X")]})))
    assert calls.operations == ["get_prices"]
    assert table(priced) is table(asyncio.run(pricing.for_day([holding(2, "X")], day)))


# --- the outcome of a retried call --------------------------------------------------------


def test_attempt_returns_the_value_and_the_attempts_it_took() -> None:
    """A call that succeeds on its second attempt comes back as Attempted(value, 2)."""
    calls = Calls()
    tries = [0]

    async def flaky() -> str:
        tries[0] += 1
        if tries[0] == 1:
            raise TransientError("blip")
        return "ok"

    assert asyncio.run(calls("op", flaky)) == Attempted("ok", 2)
    assert calls.retries == [("op", 1)]


def test_attempt_does_not_retry_what_is_not_transient() -> None:
    """A non-transient error comes back at once as GaveUp after one attempt."""
    bug = KeyError("bug")

    async def broken() -> str:
        raise bug

    outcome = asyncio.run(Calls()("op", broken))
    assert outcome == GaveUp(bug, 1)
