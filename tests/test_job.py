import asyncio
import datetime as dt
import random
import uuid
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portfolio_snapshots import (
    InMemoryMarketData,
    InMemoryPortfolioRepository,
    InMemorySnapshotRepository,
    Portfolio,
    PortfolioNotFoundError,
    PortfolioSnapshot,
    PriceQuote,
    RetryPolicy,
    SnapshotJob,
    SnapshotRepository,
    TransientError,
    date_range,
)
from portfolio_snapshots.adapters.memory import InMemoryRunLedger
from portfolio_snapshots.errors import InvalidDateRangeError, LeaseLostError
from portfolio_snapshots.history import PortfolioDay
from portfolio_snapshots.testing import Fault, FaultySnapshotRepository

TODAY = dt.date(2026, 11, 27)
NOW = dt.datetime(2026, 11, 27, 0, 0, 5, tzinfo=dt.UTC)
PRICED = TODAY - dt.timedelta(days=6)  # within the default max_price_age of 7 days


def clock() -> dt.datetime:
    return NOW


async def no_sleep(_seconds: float) -> None:
    return None


def pid(n: int) -> uuid.UUID:
    return uuid.UUID(int=n)


def make_market(days: Sequence[dt.date], tickers: Sequence[str]) -> InMemoryMarketData:
    market = InMemoryMarketData()
    for i, day in enumerate(days):
        for j, t in enumerate(tickers):
            market.add_price(t, day, Decimal(10 + j) + Decimal(i) / 100)
    return market


def make_job(
    portfolios: InMemoryPortfolioRepository,
    market: object,
    snapshots: SnapshotRepository | None = None,
    **kwargs: object,
) -> SnapshotJob:
    return SnapshotJob(
        portfolios=portfolios,
        snapshots=snapshots if snapshots is not None else InMemorySnapshotRepository(),
        market_data=market,  # type: ignore[arg-type]
        clock=clock,
        sleep=no_sleep,
        rng=random.Random(0),
        **kwargs,  # type: ignore[arg-type]
    )


def simple_world(n: int = 10) -> tuple[InMemoryPortfolioRepository, InMemoryMarketData]:
    portfolios = InMemoryPortfolioRepository(
        Portfolio(pid(i), Decimal(100 * i), {"AAA": Decimal(i), "BBB": Decimal("0.5")})
        for i in range(1, n + 1)
    )
    return portfolios, make_market([PRICED], ["AAA", "BBB"])


def people(n: int) -> list[Portfolio]:
    """The portfolios of `simple_world`."""
    return [
        Portfolio(pid(i), Decimal(100 * i), {"AAA": Decimal(i), "BBB": Decimal("0.5")})
        for i in range(1, n + 1)
    ]


class CountingMarket:
    """Delegates to a market and records every call, for batching assertions."""

    def __init__(self, inner: InMemoryMarketData) -> None:
        self.inner = inner
        self.calls: list[tuple[frozenset[str], dt.date]] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def get_prices(
        self, tickers: Collection[str], as_of: dt.date
    ) -> Mapping[str, PriceQuote]:
        self.calls.append((frozenset(tickers), as_of))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0)
            return await self.inner.get_prices(tickers, as_of)
        finally:
            self.in_flight -= 1


def test_run_daily_snapshot_all_portfolios() -> None:
    """A daily run stores one snapshot per active portfolio for today's UTC date."""
    portfolios, market = simple_world(10)
    snapshots = InMemorySnapshotRepository()
    report = asyncio.run(make_job(portfolios, market, snapshots).run_daily())
    assert (report.processed, report.succeeded, report.failed, report.skipped) == (10, 10, 0, 0)
    assert len(snapshots) == 10
    stored = asyncio.run(snapshots.get_snapshot(pid(3), TODAY))
    assert stored is not None
    assert stored.snapshot_date == TODAY
    assert stored.cash_balance == Decimal(300)
    # AAA and BBB were last priced 6 days ago: the latest close on or before today is used.
    assert stored.holdings_value == Decimal("35.50")  # 3*10 + 0.5*11
    assert {p.price_date for p in stored.positions} == {PRICED}
    assert report.as_dict()["succeeded"] == 10


def test_run_daily_snapshot_handles_failures() -> None:
    """Bad portfolios are reported with a clear reason and the others are still stored."""
    portfolios, market = simple_world(5)
    portfolios.put(Portfolio(pid(100), Decimal(1), {"AAA": Decimal(1), "NOPRICE": Decimal(2)}))
    portfolios.put(Portfolio(pid(101), Decimal(1), {"AAA": Decimal(-1)}))
    portfolios.put(Portfolio(pid(102), Decimal(1), {"AAA": Decimal("NaN")}))
    portfolios.put(Portfolio(pid(103), Decimal(1), {"NEGATIVE": Decimal(1)}))
    market.add_price("NEGATIVE", TODAY, Decimal(-1))
    snapshots = InMemorySnapshotRepository()
    report = asyncio.run(make_job(portfolios, market, snapshots).run_daily())
    assert (report.processed, report.succeeded, report.failed) == (9, 5, 4)
    reasons = {f.portfolio_id: f for f in report.failures}
    assert reasons[pid(100)].error_type == "MissingPriceError"
    assert "NOPRICE" in reasons[pid(100)].message
    assert reasons[pid(101)].error_type == "InvalidPortfolioError"
    assert reasons[pid(102)].error_type == "InvalidPortfolioError"
    assert reasons[pid(103)].error_type == "InvalidPriceError"
    for failure in report.failures:
        assert str(failure.portfolio_id) in failure.message
        assert TODAY.isoformat() in failure.message
        assert failure.snapshot_date == TODAY
        assert failure.attempts == 1
        assert failure.portfolio_id is not None
        assert asyncio.run(snapshots.get_snapshot(failure.portfolio_id, TODAY)) is None
    assert len(snapshots) == 5


def test_run_daily_snapshot_empty_portfolios() -> None:
    """A run over no portfolios succeeds, stores nothing and asks for no prices."""
    market = InMemoryMarketData()
    snapshots = InMemorySnapshotRepository()
    report = asyncio.run(make_job(InMemoryPortfolioRepository(), market, snapshots).run_daily())
    assert (report.processed, report.succeeded, report.failed, report.skipped) == (0, 0, 0, 0)
    assert report.failures == ()
    assert len(snapshots) == 0
    assert market.request_count == 0


def test_run_daily_fetches_prices_once_per_batch_with_unique_tickers() -> None:
    """Each batch asks in one call for its unique tickers that no earlier batch asked for."""
    portfolios = InMemoryPortfolioRepository(
        Portfolio(pid(i), Decimal(1), {f"T{i // 10}": Decimal(1), "ALL": Decimal(2)})
        for i in range(25)
    )
    market = make_market([PRICED], ["T0", "T1", "T2", "ALL"])
    counting = CountingMarket(market)
    report = asyncio.run(make_job(portfolios, counting, batch_size=10, concurrency=1).run_daily())
    assert report.succeeded == 25
    assert counting.calls == [
        (frozenset({"T0", "ALL"}), TODAY),
        (frozenset({"T1"}), TODAY),
        (frozenset({"T2"}), TODAY),
    ]


def test_batches_that_need_no_new_price_make_no_call() -> None:
    """When every ticker was priced by an earlier batch, later batches ask for nothing."""
    portfolios, market = simple_world(25)
    counting = CountingMarket(market)
    asyncio.run(make_job(portfolios, counting, batch_size=10, concurrency=1).run_daily())
    assert counting.calls == [(frozenset({"AAA", "BBB"}), TODAY)]


def test_run_daily_bounds_concurrency() -> None:
    """No more batches than `concurrency` are in flight at once."""
    # Each portfolio holds its own ticker, so every batch makes its own price call.
    portfolios = InMemoryPortfolioRepository(
        Portfolio(pid(i), Decimal(1), {f"T{i}": Decimal(1)}) for i in range(40)
    )
    counting = CountingMarket(make_market([PRICED], [f"T{i}" for i in range(40)]))
    report = asyncio.run(make_job(portfolios, counting, batch_size=2, concurrency=3).run_daily())
    assert report.succeeded == 40
    assert 1 < counting.max_in_flight <= 3


def test_run_daily_defaults_to_the_utc_date_of_the_clock() -> None:
    """At 23:30 in New York on the 26th it is already the 27th in UTC: that date is used."""
    portfolios, market = simple_world(1)
    snapshots = InMemorySnapshotRepository()
    new_york = dt.timezone(dt.timedelta(hours=-5))
    job = SnapshotJob(
        portfolios=portfolios,
        snapshots=snapshots,
        market_data=market,
        clock=lambda: dt.datetime(2026, 11, 26, 23, 30, tzinfo=new_york),
    )
    report = asyncio.run(job.run_daily())
    assert report.start == dt.date(2026, 11, 27)
    assert asyncio.run(snapshots.get_snapshot(pid(1), dt.date(2026, 11, 27))) is not None


def test_naive_clock_is_refused() -> None:
    """A clock returning a naive datetime is a configuration error, not a silent local date."""
    portfolios, market = simple_world(1)
    job = SnapshotJob(
        portfolios=portfolios,
        snapshots=InMemorySnapshotRepository(),
        market_data=market,
        clock=lambda: dt.datetime(2026, 11, 27, 12),  # noqa: DTZ001 - the point of the test
    )
    with pytest.raises(ValueError, match="aware"):
        asyncio.run(job.run_daily())


def test_run_daily_for_a_future_date_is_refused() -> None:
    """Asking for tomorrow raises InvalidDateRangeError."""
    portfolios, market = simple_world(1)
    with pytest.raises(InvalidDateRangeError, match="future"):
        asyncio.run(make_job(portfolios, market).run_daily(TODAY + dt.timedelta(days=1)))


def test_backfill_snapshots_date_range() -> None:
    """A backfill stores one snapshot per calendar day, each valued with that day's data."""
    start = TODAY - dt.timedelta(days=9)
    days = date_range(start, TODAY)
    portfolios = InMemoryPortfolioRepository()
    portfolios.put(Portfolio(pid(1), Decimal(50), {"AAA": Decimal(1)}), since=start)
    portfolios.put(
        Portfolio(pid(1), Decimal(0), {"AAA": Decimal(2)}), since=start + dt.timedelta(days=5)
    )
    market = make_market(days, ["AAA"])
    snapshots = InMemorySnapshotRepository()
    report = asyncio.run(make_job(portfolios, market, snapshots).backfill(pid(1), start, TODAY))
    assert (report.processed, report.succeeded, report.failed) == (10, 10, 0)
    stored = asyncio.run(snapshots.list_snapshots(pid(1), start, TODAY))
    assert [s.snapshot_date for s in stored] == days
    assert stored[0].total_value == Decimal("60.00")  # 50 cash + 1 * 10.00
    assert stored[4].total_value == Decimal("60.04")  # 50 cash + 1 * 10.04
    assert stored[5].total_value == Decimal("20.10")  # holdings of day 5: 2 * 10.05
    assert all(s.positions[0].price_date == s.snapshot_date for s in stored)


def test_backfill_snapshots_single_day() -> None:
    """A backfill whose start equals its end stores exactly that day."""
    portfolios, market = simple_world(2)
    snapshots = InMemorySnapshotRepository()
    day = TODAY - dt.timedelta(days=3)
    report = asyncio.run(make_job(portfolios, market, snapshots).backfill(pid(2), day, day))
    assert (report.processed, report.succeeded, report.start, report.end) == (1, 1, day, day)
    assert [s.snapshot_date for s in snapshots.all()] == [day]


def test_backfill_only_missing_computes_only_missing_dates() -> None:
    """With only_missing, stored days are skipped and left untouched."""
    portfolios, market = simple_world(1)
    snapshots = InMemorySnapshotRepository()
    start = TODAY - dt.timedelta(days=4)
    job = make_job(portfolios, market, snapshots)
    asyncio.run(job.backfill(pid(1), start + dt.timedelta(days=1), start + dt.timedelta(days=2)))
    counting = CountingMarket(market)
    job = make_job(portfolios, counting, snapshots)
    report = asyncio.run(job.backfill(pid(1), start, TODAY, only_missing=True))
    assert (report.processed, report.skipped) == (3, 2)
    assert sorted(d for _, d in counting.calls) == [start, start + dt.timedelta(days=3), TODAY]
    assert len(snapshots) == 5


def test_backfill_skips_days_before_the_portfolio_existed() -> None:
    """Days on which the repository reports no portfolio are counted as skipped."""
    portfolios = InMemoryPortfolioRepository()
    opened = TODAY - dt.timedelta(days=2)
    portfolios.put(Portfolio(pid(1), Decimal(10)), since=opened)
    snapshots = InMemorySnapshotRepository()
    job = make_job(portfolios, InMemoryMarketData(), snapshots)
    report = asyncio.run(job.backfill(pid(1), TODAY - dt.timedelta(days=5), TODAY))
    assert (report.succeeded, report.skipped) == (3, 3)


def test_backfill_of_unknown_portfolio_raises_before_any_work() -> None:
    """An unknown portfolio raises PortfolioNotFoundError and nothing is fetched or stored."""
    portfolios, market = simple_world(1)
    snapshots = InMemorySnapshotRepository()
    with pytest.raises(PortfolioNotFoundError) as info:
        asyncio.run(make_job(portfolios, market, snapshots).backfill(pid(999), TODAY, TODAY))
    assert info.value.portfolio_id == pid(999)
    assert market.request_count == 0
    assert len(snapshots) == 0


@pytest.mark.parametrize(
    ("start", "end", "match"),
    [
        (TODAY, TODAY - dt.timedelta(days=1), "start is after end"),
        (TODAY, TODAY + dt.timedelta(days=1), "future"),
    ],
)
def test_backfill_rejects_invalid_ranges(start: dt.date, end: dt.date, match: str) -> None:
    """Start > end and an end in the future raise InvalidDateRangeError naming the range."""
    portfolios, market = simple_world(1)
    with pytest.raises(InvalidDateRangeError, match=match) as info:
        asyncio.run(make_job(portfolios, market).backfill(pid(1), start, end))
    assert (info.value.start, info.value.end) == (start, end)
    assert market.request_count == 0


class FlakyMarket:
    """Fails the first `failures` calls with `error`, then delegates."""

    def __init__(self, inner: InMemoryMarketData, failures: int, error: Exception) -> None:
        self.inner = inner
        self.failures = failures
        self.error = error
        self.calls = 0

    async def get_prices(
        self, tickers: Collection[str], as_of: dt.date
    ) -> Mapping[str, PriceQuote]:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return await self.inner.get_prices(tickers, as_of)


def test_transient_price_failures_are_retried() -> None:
    """Two transient failures then success: everything stored, two retries counted."""
    portfolios, market = simple_world(3)
    flaky = FlakyMarket(market, 2, TransientError("provider busy"))
    report = asyncio.run(make_job(portfolios, flaky, retry=RetryPolicy(max_attempts=3)).run_daily())
    assert (report.succeeded, report.retried, flaky.calls) == (3, 2, 3)


def test_price_call_failing_for_good_fails_only_its_batch() -> None:
    """When one batch's price call keeps failing, only that batch's portfolios fail."""
    portfolios, market = simple_world(6)
    flaky = FlakyMarket(market, 3, TransientError("provider down"))
    job = make_job(
        portfolios, flaky, retry=RetryPolicy(max_attempts=3), batch_size=3, concurrency=1
    )
    report = asyncio.run(job.run_daily())
    assert (report.succeeded, report.failed) == (3, 3)
    assert all(f.attempts == 3 and f.error_type == "TransientError" for f in report.failures)
    assert all("after 3 attempt(s)" in f.message for f in report.failures)


def test_non_transient_price_error_is_not_retried_but_split() -> None:
    """A request failing with a programming error is not retried: it is split, ticker by ticker.

    Every call fails, so the batch's request and each ticker's own request fail once each,
    and every portfolio holding them fails with MissingPriceError naming the request's error.
    """
    portfolios, market = simple_world(2)
    flaky = FlakyMarket(market, 10**6, KeyError("bug"))
    report = asyncio.run(make_job(portfolios, flaky, retry=RetryPolicy(max_attempts=5)).run_daily())
    assert (report.failed, report.retried, flaky.calls) == (2, 0, 3)  # AAA+BBB, AAA, BBB
    assert {f.error_type for f in report.failures} == {"MissingPriceError"}
    assert all("KeyError" in f.message for f in report.failures)


def test_a_request_that_fails_on_one_ticker_fails_only_its_holders() -> None:
    """A provider that refuses one ticker for good: the portfolios without it are stored."""
    portfolios = InMemoryPortfolioRepository(
        [
            Portfolio(pid(1), Decimal(0), {"AAA": Decimal(1)}),
            Portfolio(pid(2), Decimal(0), {"AAA": Decimal(1), "BAD": Decimal(1)}),
            Portfolio(pid(3), Decimal(0), {"BBB": Decimal(2)}),
        ]
    )
    market = make_market([PRICED], ["AAA", "BBB", "BAD"])

    class RefusesBad:
        calls = 0

        async def get_prices(
            self, tickers: Collection[str], as_of: dt.date
        ) -> Mapping[str, PriceQuote]:
            RefusesBad.calls += 1
            if "BAD" in tickers:
                raise ValueError("provider has no such symbol: BAD")
            return await market.get_prices(tickers, as_of)

    report = asyncio.run(make_job(portfolios, RefusesBad()).run_daily())
    assert (report.succeeded, report.failed) == (2, 1)
    (failure,) = report.failures
    assert (failure.portfolio_id, failure.error_type) == (pid(2), "MissingPriceError")
    assert "BAD" in failure.message
    assert "ValueError" in failure.message
    assert RefusesBad.calls <= 1 + 2 * 2  # one request, then at most log2(3) levels of halves


class FailingWrites(InMemorySnapshotRepository):
    """Fails every write with a given error."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    async def upsert_many(
        self, snapshots: Sequence[PortfolioSnapshot], *, fence: int | None = None
    ) -> None:
        raise self.error


def test_write_failing_for_good_reports_the_batch() -> None:
    """A store that keeps failing leaves every portfolio of the batch reported as failed."""
    portfolios, market = simple_world(4)
    store = FailingWrites(ConnectionError("db gone"))
    report = asyncio.run(
        make_job(portfolios, market, store, retry=RetryPolicy(max_attempts=2)).run_daily()
    )
    assert (report.succeeded, report.failed, report.retried) == (0, 4, 1)
    assert {f.error_type for f in report.failures} == {"ConnectionError"}


def test_a_failed_rerun_does_not_touch_stored_snapshots() -> None:
    """When prices vanish on a rerun, the snapshot stored earlier is kept as it was."""
    portfolios, market = simple_world(2)
    snapshots = InMemorySnapshotRepository()
    asyncio.run(make_job(portfolios, market, snapshots).run_daily())
    before = snapshots.all()
    report = asyncio.run(make_job(portfolios, InMemoryMarketData(), snapshots).run_daily())
    assert report.failed == 2
    assert snapshots.all() == before


def test_constructor_rejects_nonsense_sizes() -> None:
    """batch_size and concurrency below 1 are configuration errors."""
    portfolios, market = simple_world(1)
    with pytest.raises(ValueError, match="batch_size"):
        make_job(portfolios, market, batch_size=0)
    with pytest.raises(ValueError, match="concurrency"):
        make_job(portfolios, market, concurrency=0)


# --- other repositories, and ports failing for good -----------------------------------


class DayStream(InMemoryPortfolioRepository):
    """A repository offering `PortfolioDayStream`, with portfolios it cannot build on a day."""

    def __init__(
        self,
        portfolios: Sequence[Portfolio],
        broken: Mapping[uuid.UUID, dt.date],
        absent: Sequence[uuid.UUID] = (),
    ) -> None:
        super().__init__(portfolios)
        self.broken = broken
        self.absent = absent

    async def iter_portfolio_days(self, as_of: dt.date) -> AsyncIterator[PortfolioDay]:
        async for p in self.iter_portfolios(as_of):
            if self.broken.get(p.id) == as_of:
                yield PortfolioDay(p.id, as_of, error=ValueError("ledger broken"))
            else:
                yield PortfolioDay(p.id, as_of, portfolio=p)
        for portfolio_id in self.absent:
            yield PortfolioDay(portfolio_id, as_of)

    async def get_portfolio(self, portfolio_id: uuid.UUID, as_of: dt.date) -> Portfolio | None:
        # consistent with the stream: what it cannot build on a day, it cannot read either
        if self.broken.get(portfolio_id) == as_of:
            raise ValueError("ledger broken")
        return await super().get_portfolio(portfolio_id, as_of)


class FailingDay(InMemoryPortfolioRepository):
    """A repository whose reads of one date always fail transiently."""

    def __init__(self, portfolios: Sequence[Portfolio], day: dt.date) -> None:
        super().__init__(portfolios)
        self.day = day

    async def get_portfolio(self, portfolio_id: uuid.UUID, as_of: dt.date) -> Portfolio | None:
        if as_of == self.day:
            raise TransientError("replica lagging")
        return await super().get_portfolio(portfolio_id, as_of)


class FailingHistory(InMemoryPortfolioRepository):
    """A repository offering `PortfolioHistory` whose history reads always fail."""

    def portfolio_history(
        self, portfolio_id: uuid.UUID, start: dt.date, end: dt.date
    ) -> AsyncIterator[PortfolioDay]:
        raise TransientError("history unavailable")


def test_backfill_all_over_a_plain_repository_values_every_active_portfolio() -> None:
    """backfill_all over iter_portfolios stores every active portfolio on every day."""
    portfolios, market = simple_world(3)
    snapshots = InMemorySnapshotRepository()
    start = TODAY - dt.timedelta(days=2)
    report = asyncio.run(make_job(portfolios, market, snapshots).backfill_all(start, TODAY))
    assert (report.succeeded, report.failed) == (9, 0)
    assert {(s.portfolio_id, s.snapshot_date) for s in snapshots.all()} == {
        (pid(i), day) for i in (1, 2, 3) for day in date_range(start, TODAY)
    }


def test_a_daily_run_records_the_portfolios_a_day_stream_cannot_build() -> None:
    """A portfolio that cannot be built fails its day, one not yet open is skipped."""
    _, market = simple_world(3)
    stream = DayStream(people(3), broken={pid(2): TODAY}, absent=[pid(9)])
    snapshots = InMemorySnapshotRepository()
    report = asyncio.run(make_job(stream, market, snapshots).run_daily())
    assert (report.succeeded, report.failed, report.skipped) == (2, 1, 1)
    (failure,) = report.failures
    assert (failure.portfolio_id, failure.snapshot_date, failure.error_type) == (
        pid(2),
        TODAY,
        "ValueError",
    )
    assert {s.portfolio_id for s in snapshots.all()} == {pid(1), pid(3)}


def test_backfill_all_still_backfills_a_portfolio_that_cannot_be_built_on_the_last_day() -> None:
    """A portfolio broken on the last day fails that day, and its earlier days are stored."""
    _, market = simple_world(2)
    stream = DayStream(people(2), broken={pid(2): TODAY})
    snapshots = InMemorySnapshotRepository()
    start = TODAY - dt.timedelta(days=2)
    report = asyncio.run(make_job(stream, market, snapshots).backfill_all(start, TODAY))
    failed = [(f.portfolio_id, f.snapshot_date) for f in report.failures]
    assert failed == [(pid(2), TODAY)]  # once, though both the stream and the read fail
    assert (report.succeeded, report.failed) == (5, 1)
    stored = {(s.portfolio_id, s.snapshot_date) for s in snapshots.all()}
    assert {(pid(2), start), (pid(2), start + dt.timedelta(days=1))} <= stored


def test_a_resumed_run_that_cannot_read_stored_keys_fails_its_batch() -> None:
    """When existing_keys fails for good on a resumed run, its batch fails with the attempts."""
    portfolios, market = simple_world(2)
    ledger = InMemoryRunLedger()
    store = InMemorySnapshotRepository()
    first = asyncio.run(
        make_job(portfolios, InMemoryMarketData(), store, ledger=ledger).run_daily()
    )
    assert first.failed == 2
    faulty = FaultySnapshotRepository(
        store, Fault(fail_first=9, methods=frozenset({"existing_keys"}))
    )
    job = make_job(portfolios, market, faulty, ledger=ledger, retry=RetryPolicy(max_attempts=2))
    report = asyncio.run(job.run_daily())
    assert (report.attempt, report.succeeded, report.failed) == (2, 0, 2)
    assert all(f.attempts == 2 and f.error_type == "TransientError" for f in report.failures)
    assert len(store) == 0


def test_a_write_refused_for_a_lost_lease_stops_the_run() -> None:
    """A store refusing a write with LeaseLostError stops the run with that error."""
    portfolios, market = simple_world(2)
    store = FailingWrites(LeaseLostError("daily:2026-11-27", "another holder took the key"))
    with pytest.raises(LeaseLostError, match="another holder"):
        asyncio.run(make_job(portfolios, market, store).run_daily())


def test_a_backfill_that_cannot_read_stored_dates_fails_every_day() -> None:
    """With only_missing, existing_dates failing for good fails each day of the range."""
    portfolios, market = simple_world(1)
    faulty = FaultySnapshotRepository(
        InMemorySnapshotRepository(), Fault(fail_first=9, methods=frozenset({"existing_dates"}))
    )
    job = make_job(portfolios, market, faulty, retry=RetryPolicy(max_attempts=2))
    start = TODAY - dt.timedelta(days=2)
    report = asyncio.run(job.backfill(pid(1), start, TODAY, only_missing=True))
    assert (report.succeeded, report.failed) == (0, 3)
    assert [f.snapshot_date for f in report.failures] == date_range(start, TODAY)
    assert all(f.attempts == 2 and f.error_type == "TransientError" for f in report.failures)


def test_a_day_whose_portfolio_cannot_be_read_fails_alone() -> None:
    """A backfill day whose get_portfolio fails for good fails; the other days are stored."""
    _, market = simple_world(1)
    broken = TODAY - dt.timedelta(days=1)
    repo = FailingDay(people(1), broken)
    job = make_job(repo, market, retry=RetryPolicy(max_attempts=2))
    report = asyncio.run(job.backfill(pid(1), TODAY - dt.timedelta(days=2), TODAY))
    assert (report.succeeded, report.failed) == (2, 1)
    (failure,) = report.failures
    assert (failure.snapshot_date, failure.attempts, failure.error_type) == (
        broken,
        2,
        "TransientError",
    )


def test_a_history_that_cannot_be_read_fails_every_day_of_the_range() -> None:
    """A portfolio_history call failing for good fails each day of the range, with attempts."""
    _, market = simple_world(1)
    repo = FailingHistory(people(1))
    job = make_job(repo, market, retry=RetryPolicy(max_attempts=3))
    start = TODAY - dt.timedelta(days=3)
    report = asyncio.run(job.backfill(pid(1), start, TODAY))
    assert (report.succeeded, report.failed, report.retried) == (0, 4, 2)
    assert [f.snapshot_date for f in report.failures] == date_range(start, TODAY)
    assert all(f.attempts == 3 for f in report.failures)


# --- properties -------------------------------------------------------------------------

small_decimals = st.decimals(min_value=0, max_value=1000, places=3, allow_nan=False)
world = st.lists(
    st.tuples(
        small_decimals, st.dictionaries(st.sampled_from("ABCDE"), small_decimals, max_size=4)
    ),
    max_size=12,
)


def build(spec: list[tuple[Decimal, dict[str, Decimal]]]) -> InMemoryPortfolioRepository:
    return InMemoryPortfolioRepository(
        Portfolio(pid(i), cash_balance, holdings) for i, (cash_balance, holdings) in enumerate(spec)
    )


@given(world, st.integers(min_value=1, max_value=5))
def test_running_a_day_twice_equals_running_it_once(
    spec: list[tuple[Decimal, dict[str, Decimal]]], batch_size: int
) -> None:
    """Idempotency: the stored state after two identical runs equals that after one."""
    market = make_market([TODAY], list("ABCD"))  # E has no price: some portfolios fail
    once = InMemorySnapshotRepository()
    twice = InMemorySnapshotRepository()
    asyncio.run(make_job(build(spec), market, once, batch_size=batch_size).run_daily())
    job = make_job(build(spec), market, twice, batch_size=batch_size)
    first = asyncio.run(job.run_daily())
    second = asyncio.run(job.run_daily())
    assert once.all() == twice.all()
    assert (first.succeeded, first.failed) == (second.succeeded, second.failed)


@given(world, st.integers(min_value=0, max_value=4), st.integers(min_value=1, max_value=4))
def test_backfill_equals_the_union_of_single_day_runs(
    spec: list[tuple[Decimal, dict[str, Decimal]]], span: int, batch_size: int
) -> None:
    """Backfilling each portfolio over a range stores what daily runs of each date store."""
    start = TODAY - dt.timedelta(days=span)
    days = date_range(start, TODAY)
    market = make_market(days, list("ABCDE"))
    by_backfill = InMemorySnapshotRepository()
    by_days = InMemorySnapshotRepository()
    job = make_job(build(spec), market, by_backfill, batch_size=batch_size)
    for i in range(len(spec)):
        asyncio.run(job.backfill(pid(i), start, TODAY))
    daily = make_job(build(spec), market, by_days, batch_size=batch_size)
    for day in days:
        asyncio.run(daily.run_daily(day))
    assert by_backfill.all() == by_days.all()
