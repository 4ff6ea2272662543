"""One bad portfolio never costs another: the cases of issue 10's table, as regression tests.

Each case feeds the job one kind of bad value through an adapter, among innocent portfolios,
and checks that the run completes and reports the culprit with a typed error, that every
innocent portfolio is stored, and that nothing is stored for the culprit.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from portfolio_snapshots import (
    InMemoryMarketData,
    InMemoryPortfolioRepository,
    InMemorySnapshotRepository,
    InvalidInputError,
    Portfolio,
    PortfolioSnapshot,
    PriceQuote,
    RetryPolicy,
    RunReport,
    SnapshotJob,
    SnapshotRepository,
    SqliteSnapshotStore,
)
from portfolio_snapshots.adapters.memory import InMemoryRunLedger, InMemoryRunLock
from portfolio_snapshots.events import CleanupFailed, LeaseReleased, RunEvent
from portfolio_snapshots.testing import FakeClock, instant_retry

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Collection, Mapping, Sequence
    from pathlib import Path

DAY = dt.date(2026, 11, 27)
CLOCK = FakeClock(dt.datetime(2026, 11, 28, 0, 5, tzinfo=dt.UTC))
TICKERS = ("AAA", "BBB", "CCC")


def pid(n: int) -> uuid.UUID:
    return uuid.UUID(int=n)


def innocents(n: int, start: int = 1) -> list[Portfolio]:
    return [
        Portfolio(pid(i), Decimal(100), {TICKERS[i % 3]: Decimal(i % 7 + 1)})
        for i in range(start, start + n)
    ]


def market() -> InMemoryMarketData:
    data = InMemoryMarketData()
    for j, ticker in enumerate(TICKERS):
        data.add_price(ticker, DAY, Decimal(10 + j))
    return data


class ListedPortfolios:
    """A repository that yields exactly the objects it was given, whatever they are."""

    def __init__(self, items: Sequence[object]) -> None:
        self.items = list(items)

    async def iter_portfolios(self, as_of: dt.date) -> AsyncIterator[Portfolio]:
        for item in self.items:
            yield item  # type: ignore[misc] # the point: adapters hand over anything

    async def get_portfolio(self, portfolio_id: uuid.UUID, as_of: dt.date) -> Portfolio | None:
        return next((p for p in self.items if getattr(p, "id", None) == portfolio_id), None)  # type: ignore[return-value]


def job(
    portfolios: object,
    store: SnapshotRepository,
    market_data: object | None = None,
    **kw: object,
) -> SnapshotJob:
    return SnapshotJob(
        portfolios=portfolios,  # type: ignore[arg-type]
        snapshots=store,
        market_data=market_data or market(),  # type: ignore[arg-type]
        clock=CLOCK,
        retry=instant_retry(RetryPolicy(max_attempts=3)),
        **kw,  # type: ignore[arg-type]
    )


def stored_ids(store: InMemorySnapshotRepository) -> set[uuid.UUID]:
    return {s.portfolio_id for s in store.all()}


def run(job_: SnapshotJob) -> RunReport:
    return asyncio.run(job_.run_daily(DAY))


# --- values from the portfolio repository ------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (dataclasses.replace(Portfolio(pid(5000), Decimal(1)), holdings=None), "holdings"),  # type: ignore[arg-type]
        (Portfolio(pid(5000), Decimal(1), {"AAA": Decimal(1)}, "usd"), "currency"),
        (Portfolio(pid(5000), Decimal(1), {"AAA": Decimal(1)}, ""), "currency"),
        (Portfolio(pid(5000), Decimal(1), {"AAA": Decimal(1)}, None), "currency"),  # type: ignore[arg-type]
        (Portfolio(pid(5000), Decimal(1), {"AAA": Decimal("1E+99999999")}), "quantity"),
        (Portfolio(pid(5000), Decimal(1), {"AAA": Decimal("1E+18")}), "quantity"),
        (Portfolio(pid(5000), Decimal("1E+99999999"), {"AAA": Decimal(1)}), "cash_balance"),
        (Portfolio(pid(5000), Decimal(1), {"": Decimal(1)}), "holdings"),
        (Portfolio(pid(5000), Decimal(1), {" AAA": Decimal(1)}), "holdings"),
        (Portfolio(pid(5000), Decimal(1), {"A" * 10_000: Decimal(1)}), "holdings"),
        (Portfolio(pid(5000), Decimal(1), {7: Decimal(1)}), "holdings"),  # type: ignore[dict-item]
        (Portfolio(pid(5000), Decimal(1), {7: Decimal(1), "AAA": Decimal(1)}), "holdings"),  # type: ignore[dict-item]
        (Portfolio(pid(5000), Decimal(1), {"AAA": 1.5}), "quantity"),  # type: ignore[dict-item]
    ],
    ids=[
        "holdings-none",
        "currency-lowercase",
        "currency-empty",
        "currency-none",
        "quantity-1e99999999",
        "quantity-1e18",
        "cash-1e99999999",
        "ticker-empty",
        "ticker-padded",
        "ticker-10000-chars",
        "ticker-int",
        "ticker-int-among-str",
        "quantity-float",
    ],
)
def test_a_bad_portfolio_fails_alone_and_the_run_completes(bad: Portfolio, field: str) -> None:
    """Among 1,000 portfolios one bad one is reported, typed and named; 999 are stored."""
    good = innocents(999)
    store = InMemorySnapshotRepository()
    report = run(job(ListedPortfolios([*good[:500], bad, *good[500:]]), store))
    assert (report.succeeded, report.failed) == (999, 1)
    (failure,) = report.failures
    assert (failure.portfolio_id, failure.snapshot_date) == (pid(5000), DAY)
    assert failure.error_type == "InvalidPortfolioError"
    assert field in failure.message
    assert stored_ids(store) == {p.id for p in good}


def test_a_portfolio_id_given_as_a_string_fails_alone_on_the_sqlite_store(tmp_path: Path) -> None:
    """A str id (the UUID's text) fails that portfolio only, on a real SQLite store."""
    good = innocents(499)
    bad = Portfolio(str(pid(5000)), Decimal(1), {"AAA": Decimal(1)})  # type: ignore[arg-type]

    async def scenario() -> tuple[RunReport, frozenset[tuple[uuid.UUID, dt.date]]]:
        async with await SqliteSnapshotStore.open(tmp_path / "s.sqlite3") as store:
            report = await job(ListedPortfolios([*good, bad]), store).run_daily(DAY)
            return report, await store.existing_keys([(p.id, DAY) for p in good])

    report, stored = asyncio.run(scenario())
    assert (report.succeeded, report.failed) == (499, 1)
    (failure,) = report.failures
    assert failure.portfolio_id == pid(5000)  # the UUID its text spells, for the report
    assert "id" in failure.message
    assert len(stored) == 499


def test_an_id_that_is_no_uuid_at_all_is_reported_without_one() -> None:
    """An id that spells no UUID fails with portfolio_id None; the message quotes it."""
    store = InMemorySnapshotRepository()
    bad = Portfolio(12345, Decimal(1), {"AAA": Decimal(1)})  # type: ignore[arg-type]
    report = run(job(ListedPortfolios([*innocents(3), bad]), store))
    assert (report.succeeded, report.failed) == (3, 1)
    (failure,) = report.failures
    assert failure.portfolio_id is None
    assert "12345" in failure.message


def test_something_that_is_no_portfolio_fails_alone() -> None:
    """None or a dict in the stream is reported, not valued, and not a crash."""
    store = InMemorySnapshotRepository()
    report = run(job(ListedPortfolios([*innocents(3), None, {"id": pid(9)}]), store))
    assert (report.succeeded, report.failed) == (3, 2)
    assert {f.error_type for f in report.failures} == {"InvalidPortfolioError"}


def test_the_same_portfolio_twice_in_a_stream_is_stored_once_and_reported() -> None:
    """A repeated id: the first is valued and stored, the second reported failed."""
    first = Portfolio(pid(1), Decimal(1), {"AAA": Decimal(1)})
    second = Portfolio(pid(1), Decimal(2), {"AAA": Decimal(2)})
    store = InMemorySnapshotRepository()
    report = run(job(ListedPortfolios([first, *innocents(3, start=2), second]), store))
    assert (report.succeeded, report.failed) == (4, 1)
    assert report.failures[0].portfolio_id == pid(1)
    assert "more than once" in report.failures[0].message
    kept = asyncio.run(store.get_snapshot(pid(1), DAY))
    assert kept is not None
    assert kept.cash_balance == Decimal(1)


# --- values from the market data ---------------------------------------------------------


class AnsweringMarket:
    """Answers every request from a fixed table of quote-like objects, whatever they are."""

    def __init__(self, answers: Mapping[str, object]) -> None:
        self.answers = answers

    async def get_prices(self, tickers: Collection[str], as_of: dt.date) -> Mapping[str, object]:
        return {t: self.answers[t] for t in tickers if t in self.answers}


@pytest.mark.parametrize(
    "quote",
    [
        PriceQuote("BBB", Decimal(11), dt.datetime(2026, 11, 27, tzinfo=dt.UTC)),
        PriceQuote("BBB", Decimal(11), None),  # type: ignore[arg-type]
        PriceQuote("BBB", Decimal(11), "2026-11-27"),  # type: ignore[arg-type]
        PriceQuote("BBB", 11.0, DAY),  # type: ignore[arg-type]
        PriceQuote("BBB", Decimal("1E+99"), DAY),
        PriceQuote("BBB", Decimal(11), DAY, "usd"),
        PriceQuote("BBB", Decimal(11), DAY, None),  # type: ignore[arg-type]
        None,
        Decimal(11),
    ],
    ids=[
        "as_of-datetime",
        "as_of-none",
        "as_of-str",
        "price-float",
        "price-1e99",
        "currency-lowercase",
        "currency-none",
        "quote-none",
        "quote-decimal",
    ],
)
def test_a_bad_quote_fails_only_the_portfolios_holding_its_ticker(quote: object) -> None:
    """The holders of the bad quote's ticker fail with InvalidPriceError; the rest are stored."""
    good_quotes = {
        "AAA": PriceQuote("AAA", Decimal(10), DAY),
        "CCC": PriceQuote("CCC", Decimal(12), DAY),
    }
    portfolios = innocents(999)
    holders = {p.id for p in portfolios if "BBB" in p.holdings}
    store = InMemorySnapshotRepository()
    report = run(
        job(ListedPortfolios(portfolios), store, AnsweringMarket({**good_quotes, "BBB": quote}))
    )
    assert report.failed == len(holders) > 0
    assert {f.portfolio_id for f in report.failures} == holders
    assert {f.error_type for f in report.failures} == {"InvalidPriceError"}
    assert all("BBB" in f.message for f in report.failures)
    assert stored_ids(store) == {p.id for p in portfolios} - holders


# --- the store refuses a row ----------------------------------------------------------------


class RefusingRows(SqliteSnapshotStore):
    """A real SQLite store that refuses, for good, any batch holding a poisoned portfolio."""

    poisoned: frozenset[uuid.UUID] = frozenset()
    writes = 0

    async def upsert_many(
        self, snapshots: Sequence[PortfolioSnapshot], *, fence: int | None = None
    ) -> None:
        self.writes += 1
        if any(s.portfolio_id in self.poisoned for s in snapshots):
            raise ValueError("CHECK constraint failed: a value the host's schema refuses")
        await super().upsert_many(snapshots, fence=fence)


def test_three_refused_rows_cost_no_neighbour_at_the_default_batch_size(tmp_path: Path) -> None:
    """1,000 portfolios, 3 rows the store refuses: 997 stored, 3 failed, few extra writes."""
    portfolios = innocents(1000)
    poisoned = frozenset({pid(7), pid(480), pid(901)})

    async def scenario() -> tuple[RunReport, frozenset[tuple[uuid.UUID, dt.date]], int]:
        async with await RefusingRows.open(tmp_path / "s.sqlite3") as store:
            store.poisoned = poisoned
            report = await job(ListedPortfolios(portfolios), store).run_daily(DAY)
            keys = await store.existing_keys([(p.id, DAY) for p in portfolios])
            return report, keys, store.writes

    report, stored, writes = asyncio.run(scenario())
    assert (report.succeeded, report.failed) == (997, 3)
    assert {f.portfolio_id for f in report.failures} == poisoned
    assert {f.error_type for f in report.failures} == {"ValueError"}
    assert len(stored) == 997
    # 2 batches of 500; each poisoned row costs at most 2 * log2(500) < 18 more writes
    assert writes <= 2 + 3 * 18


# --- the portfolio stream fails transiently -----------------------------------------------


class BlinkingStream(InMemoryPortfolioRepository):
    """Fails with ConnectionError once, after handing out `after` portfolios."""

    def __init__(self, portfolios: Sequence[Portfolio], after: int) -> None:
        super().__init__(portfolios)
        self.after = after
        self.opened = 0

    async def iter_portfolios(self, as_of: dt.date) -> AsyncIterator[Portfolio]:
        self.opened += 1
        handed = 0
        async for portfolio in super().iter_portfolios(as_of):
            if self.opened == 1 and handed == self.after:
                raise ConnectionError("connection reset by peer")
            handed += 1
            yield portfolio


def test_a_stream_that_fails_transiently_is_reopened_and_skips_what_it_handed_out() -> None:
    """iter_portfolios fails after 600 of 1,000: reopened, all 1,000 stored once, one retry."""
    repo = BlinkingStream(innocents(1000), after=600)
    store = InMemorySnapshotRepository()
    report = run(job(repo, store))
    assert (report.succeeded, report.failed, report.retried) == (1000, 0, 1)
    assert repo.opened == 2
    assert len(store) == 1000


# --- the lease and the ledger at the end of a run --------------------------------------------


class FailingRelease(InMemoryRunLock):
    """Fails `release` `failures` times with a transient error, then releases."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.release_calls = 0

    async def release(self, lease: object) -> None:
        self.release_calls += 1
        if self.release_calls <= self.failures:
            raise ConnectionError("lock server unreachable")
        await super().release(lease)  # type: ignore[arg-type]


@pytest.mark.parametrize(("failures", "outcome"), [(2, "released"), (10, "left_to_expire")])
def test_a_failing_release_never_replaces_the_runs_outcome(failures: int, outcome: str) -> None:
    """Release is retried; if it still fails, the run succeeded all the same and says so."""
    events: list[RunEvent] = []
    lock = FailingRelease(failures)
    store = InMemorySnapshotRepository()
    report = run(job(ListedPortfolios(innocents(5)), store, lock=lock, events=events.append))
    assert (report.status, report.succeeded, report.failed) == ("completed", 5, 0)
    assert report.lease == outcome
    (ended,) = [e for e in events if isinstance(e, LeaseReleased)]
    assert ended.released is (outcome == "released")
    assert lock.release_calls == min(failures + 1, 3)


def test_a_cancellation_during_the_release_still_frees_the_key() -> None:
    """Cancelled while releasing: the release finishes in the background; the key is free."""
    lock = InMemoryRunLock()
    gate = asyncio.Event()

    class SlowRelease(InMemoryRunLock):
        async def release(self, lease: object) -> None:
            gate.set()
            await asyncio.sleep(0.01)
            await lock.release(lease)  # type: ignore[arg-type]

        async def acquire(self, *args: object) -> object:  # type: ignore[override]
            return await lock.acquire(*args)  # type: ignore[arg-type]

    async def scenario() -> object:
        snapshot_job = job(
            ListedPortfolios(innocents(3)), InMemorySnapshotRepository(), lock=SlowRelease()
        )
        task = asyncio.create_task(snapshot_job.run_daily(DAY))
        await gate.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.05)  # the shielded release runs to its end
        return await lock.acquire(
            f"daily:{DAY.isoformat()}", "another", dt.timedelta(minutes=5), CLOCK()
        )

    assert asyncio.run(scenario()) is not None


def test_a_ledger_finish_that_fails_for_good_is_an_event_not_the_outcome() -> None:
    """The snapshots are stored; the failed finish is told by CleanupFailed, the run returns."""

    class FailingFinish(InMemoryRunLedger):
        async def finish(self, *args: object, **kwargs: object) -> None:  # type: ignore[override]
            raise ConnectionError("ledger unreachable")

    events: list[RunEvent] = []
    store = InMemorySnapshotRepository()
    report = run(
        job(ListedPortfolios(innocents(4)), store, ledger=FailingFinish(), events=events.append)
    )
    assert (report.status, report.succeeded) == ("completed", 4)
    assert [e.operation for e in events if isinstance(e, CleanupFailed)] == ["ledger_finish"]


# --- arguments typed at the door --------------------------------------------------------


MOMENT = dt.datetime(2026, 11, 27, 12, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "call",
    [
        lambda j: j.run_daily(MOMENT),
        lambda j: j.run_daily("2026-11-27"),
        lambda j: j.backfill(pid(1), MOMENT, DAY),
        lambda j: j.backfill(pid(1), DAY, MOMENT),
        lambda j: j.backfill(str(pid(1)), DAY, DAY),
        lambda j: j.backfill_all(MOMENT, DAY),
        lambda j: j.backfill_all(DAY, 20261127),
        lambda j: j.recompute_since(pid(1), MOMENT),
    ],
    ids=[
        "run_daily-datetime",
        "run_daily-str",
        "backfill-start-datetime",
        "backfill-end-datetime",
        "backfill-id-str",
        "backfill_all-start-datetime",
        "backfill_all-end-int",
        "recompute-day-datetime",
    ],
)
def test_a_datetime_or_a_non_date_argument_is_refused_with_invalid_input(call: object) -> None:
    """Dates are UTC calendar dates: a datetime, a string or a number is InvalidInputError."""
    snapshot_job = job(InMemoryPortfolioRepository(innocents(1)), InMemorySnapshotRepository())
    with pytest.raises(InvalidInputError):
        asyncio.run(call(snapshot_job))  # type: ignore[operator]


@pytest.mark.parametrize(
    ("clock", "error"),
    [(lambda: dt.datetime(2026, 11, 27, 12), ValueError), (lambda: DAY, TypeError)],  # noqa: DTZ001
    ids=["naive-datetime", "a-date"],
)
def test_a_clock_that_returns_no_aware_datetime_is_refused_clearly(
    clock: object, error: type[Exception]
) -> None:
    """The job's clock must return an aware datetime; the message says what it returned."""
    snapshot_job = SnapshotJob(
        portfolios=InMemoryPortfolioRepository(),
        snapshots=InMemorySnapshotRepository(),
        market_data=InMemoryMarketData(),
        clock=clock,  # type: ignore[arg-type]
    )
    with pytest.raises(error, match="aware datetime"):
        asyncio.run(snapshot_job.run_daily())


def test_an_id_of_a_uuid_subclass_is_a_uuid(tmp_path: Path) -> None:
    """Ids as asyncpg hands them, its own UUID subclass, are accepted and stored as UUIDs."""
    from asyncpg.pgproto import pgproto  # type: ignore[import-untyped]

    portfolios = [
        Portfolio(pgproto.UUID(str(pid(n))), Decimal(1), {"AAA": Decimal(1)}) for n in range(1, 4)
    ]

    async def scenario() -> tuple[RunReport, frozenset[tuple[uuid.UUID, dt.date]]]:
        async with await SqliteSnapshotStore.open(tmp_path / "s.sqlite3") as store:
            report = await job(ListedPortfolios(portfolios), store).run_daily(DAY)
            return report, await store.existing_keys([(pid(n), DAY) for n in range(1, 4)])

    report, stored = asyncio.run(scenario())
    assert (report.succeeded, report.failed) == (3, 0)
    assert len(stored) == 3
