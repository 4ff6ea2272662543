"""The job's calls for host glue: one portfolio-day, forced recomputes, catch-up, kinds, JSON."""

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import Collection, Mapping
from decimal import Decimal

import pytest

from portfolio_snapshots import (
    InMemoryMarketData,
    InMemoryPortfolioRepository,
    InMemorySnapshotRepository,
    Portfolio,
    PortfolioNotFoundError,
    PortfolioSnapshot,
    PositionValuation,
    PriceQuote,
    RunReport,
    RunState,
    SnapshotFailure,
    SnapshotJob,
)
from portfolio_snapshots.adapters.memory import InMemoryRunLedger, InMemoryRunLock
from portfolio_snapshots.errors import (
    InvalidDateRangeError,
    RunAlreadyRunningError,
    SnapshotFailedError,
)
from portfolio_snapshots.events import (
    BatchFinished,
    BatchStarted,
    PortfolioFailed,
    RunEvent,
)
from portfolio_snapshots.testing import (
    FakeClock,
    Fault,
    FaultySnapshotRepository,
    instant_retry,
)

NOW = dt.datetime(2026, 11, 27, 0, 0, 5, tzinfo=dt.UTC)
TODAY = NOW.date()
YESTERDAY = TODAY - dt.timedelta(days=1)
ALICE = uuid.UUID(int=1)
BOB = uuid.UUID(int=2)


class CountingMarket:
    """Delegates to an in-memory market and counts price requests."""

    def __init__(self, inner: InMemoryMarketData) -> None:
        self.inner = inner
        self.calls = 0

    async def get_prices(
        self, tickers: Collection[str], as_of: dt.date
    ) -> Mapping[str, PriceQuote]:
        self.calls += 1
        return await self.inner.get_prices(tickers, as_of)


def world(
    *,
    clock: FakeClock | None = None,
    snapshots: object = None,
    price_bob: bool = True,
    **kwargs: object,
) -> tuple[SnapshotJob, CountingMarket, InMemoryRunLedger]:
    """Alice holds AAA, priced every day; Bob holds BBB, priced unless `price_bob` is False."""
    portfolios = InMemoryPortfolioRepository(
        [
            Portfolio(ALICE, Decimal("100.00"), {"AAA": Decimal(2)}),
            Portfolio(BOB, Decimal("5.00"), {"BBB": Decimal(1)}),
        ]
    )
    market = InMemoryMarketData()
    for back in range(10):
        market.add_price("AAA", TODAY - dt.timedelta(days=back), Decimal("10.50") + back)
        if price_bob:
            market.add_price("BBB", TODAY - dt.timedelta(days=back), Decimal(3))
    counting = CountingMarket(market)
    ledger = InMemoryRunLedger()
    job = SnapshotJob(
        portfolios=portfolios,
        snapshots=snapshots or InMemorySnapshotRepository(),  # type: ignore[arg-type]
        market_data=counting,
        ledger=ledger,
        lock=InMemoryRunLock(),
        clock=clock or FakeClock(NOW),
        retry=instant_retry(),
        **kwargs,  # type: ignore[arg-type]
    )
    return job, counting, ledger


def test_snapshot_one_returns_the_stored_snapshot_of_that_day() -> None:
    """snapshot_one values one portfolio on one day and returns what it stored."""
    job, _, _ = world()
    snapshot = asyncio.run(job.snapshot_one(ALICE, YESTERDAY))
    assert snapshot.portfolio_id == ALICE
    assert snapshot.snapshot_date == YESTERDAY
    assert snapshot.total_value == Decimal("100.00") + 2 * Decimal("11.50")
    assert asyncio.run(job.snapshots.get_snapshot(ALICE, YESTERDAY)) == snapshot


def test_snapshot_one_defaults_to_today_in_utc() -> None:
    """Without a day, snapshot_one takes today's UTC date from the job's clock."""
    job, _, _ = world()
    assert asyncio.run(job.snapshot_one(ALICE)).snapshot_date == TODAY


def test_snapshot_one_raises_the_days_failure_with_its_kind() -> None:
    """A day that cannot be valued raises SnapshotFailedError naming the error and its kind."""
    job, _, _ = world(price_bob=False)
    with pytest.raises(SnapshotFailedError) as caught:
        asyncio.run(job.snapshot_one(BOB, YESTERDAY))
    error = caught.value
    assert (error.kind, error.error_type) == ("missing_data", "MissingPriceError")
    assert (error.portfolio_id, error.snapshot_date) == (BOB, YESTERDAY)
    assert "'BBB'" in str(error)
    assert error.failure.kind == "missing_data"


def test_a_store_that_stays_down_fails_the_day_as_transient() -> None:
    """A write that fails on every retry is reported with kind transient (a 503, not a 422)."""
    store = FaultySnapshotRepository(
        InMemorySnapshotRepository(), Fault(fail_rate=1.0, methods=frozenset({"upsert_many"}))
    )
    job, _, _ = world(snapshots=store)
    with pytest.raises(SnapshotFailedError) as caught:
        asyncio.run(job.snapshot_one(ALICE, YESTERDAY))
    assert caught.value.kind == "transient"
    assert caught.value.attempts > 1


def test_snapshot_one_of_a_day_already_done_reads_it_back_without_pricing() -> None:
    """A repeated call finds the key succeeded and returns the stored snapshot, unrecomputed."""
    job, market, _ = world()
    first = asyncio.run(job.snapshot_one(ALICE, YESTERDAY))
    calls = market.calls
    assert asyncio.run(job.snapshot_one(ALICE, YESTERDAY)) == first
    assert market.calls == calls


def test_force_recomputes_a_succeeded_day_and_the_same_id_is_idempotent() -> None:
    """force=True recomputes under a key of its own; repeating its recompute_id does not redo it."""
    job, market, ledger = world()
    asyncio.run(job.snapshot_one(ALICE, YESTERDAY))
    market.inner.add_price("AAA", YESTERDAY, Decimal("20.00"))  # a corrected close
    calls = market.calls
    fixed = asyncio.run(job.snapshot_one(ALICE, YESTERDAY, force=True, recompute_id="req-1"))
    assert fixed.total_value == Decimal("140.00")
    assert market.calls == calls + 1
    assert (
        asyncio.run(job.snapshot_one(ALICE, YESTERDAY, force=True, recompute_id="req-1")) == fixed
    )
    assert market.calls == calls + 1
    key = f"backfill:{ALICE}:{YESTERDAY}:{YESTERDAY}:force:req-1"
    record = asyncio.run(ledger.get(key))
    assert record is not None
    assert record.state is RunState.SUCCEEDED


def test_forced_key_without_an_id_is_new_at_every_clock_tick() -> None:
    """The default recompute id is the job clock's time: two forced recomputes get two keys."""
    clock = FakeClock(NOW)
    job, _, _ = world(clock=clock)
    first = job.forced_key("daily:2026-11-26")
    clock.advance(dt.timedelta(seconds=1))
    second = job.forced_key("daily:2026-11-26")
    assert first.startswith("daily:2026-11-26:force:")
    assert first != second
    assert job.forced_key("daily:2026-11-26", "abc") == "daily:2026-11-26:force:abc"


def test_snapshot_one_refuses_while_another_holder_runs_the_key() -> None:
    """When another owner holds the day's lease, snapshot_one raises RunAlreadyRunningError."""
    job, _, _ = world()
    assert job.lock is not None
    key = f"backfill:{ALICE}:{YESTERDAY}:{YESTERDAY}"
    asyncio.run(job.lock.acquire(key, "someone-else", dt.timedelta(minutes=5), NOW))
    with pytest.raises(RunAlreadyRunningError) as caught:
        asyncio.run(job.snapshot_one(ALICE, YESTERDAY))
    assert caught.value.key == key


def test_snapshot_one_of_an_unknown_portfolio_raises_not_found() -> None:
    """An id the repository does not know raises PortfolioNotFoundError before any work."""
    job, market, _ = world()
    with pytest.raises(PortfolioNotFoundError):
        asyncio.run(job.snapshot_one(uuid.UUID(int=404), YESTERDAY))
    assert market.calls == 0


def test_snapshot_one_before_the_portfolio_existed_raises_not_found() -> None:
    """A day before the portfolio existed has nothing to return: PortfolioNotFoundError."""
    job, _, _ = world()
    assert isinstance(job.portfolios, InMemoryPortfolioRepository)
    late = uuid.UUID(int=3)
    job.portfolios.put(Portfolio(late, Decimal(1)), since=TODAY)
    with pytest.raises(PortfolioNotFoundError) as caught:
        asyncio.run(job.snapshot_one(late, YESTERDAY))
    assert "did not exist yet" in " ".join(caught.value.__notes__)


def test_snapshot_one_of_a_future_day_is_refused() -> None:
    """A date after today's UTC date raises InvalidDateRangeError."""
    job, _, _ = world()
    with pytest.raises(InvalidDateRangeError):
        asyncio.run(job.snapshot_one(ALICE, TODAY + dt.timedelta(days=1)))


def test_catch_up_runs_the_missed_days_after_the_last_success_oldest_first() -> None:
    """Days after the newest succeeded daily run are run, in order, under their daily keys."""
    job, _, ledger = world()
    asyncio.run(job.run_daily(TODAY - dt.timedelta(days=4)))
    assert asyncio.run(ledger.get(f"daily:{TODAY - dt.timedelta(days=4)}")) is not None
    reports = asyncio.run(job.catch_up())
    assert [r.start for r in reports] == [TODAY - dt.timedelta(days=d) for d in (3, 2, 1)]
    assert [r.key for r in reports] == [f"daily:{r.start}" for r in reports]
    assert all(r.status == "completed" for r in reports)


def test_catch_up_after_a_success_does_nothing() -> None:
    """When yesterday's daily run succeeded there is nothing to catch up."""
    job, market, _ = world()
    assert isinstance(job.portfolios, InMemoryPortfolioRepository)
    asyncio.run(job.run_daily(YESTERDAY))
    calls = market.calls
    assert asyncio.run(job.catch_up()) == []
    assert market.calls == calls


def test_catch_up_resumes_a_day_that_failed_part_of_its_portfolios() -> None:
    """A daily run that failed some portfolios is run again, redoing only those."""
    job, market, ledger = world(price_bob=False)
    asyncio.run(job.run_daily(YESTERDAY))  # BOB has no price: the run fails
    market.inner.add_price("BBB", YESTERDAY, Decimal(7))
    (report,) = asyncio.run(job.catch_up(max_days=1))
    assert (report.attempt, report.succeeded, report.skipped) == (2, 1, 1)
    record = asyncio.run(ledger.get(f"daily:{YESTERDAY}"))
    assert record is not None
    assert record.state is RunState.SUCCEEDED


def test_catch_up_looks_back_at_most_max_days() -> None:
    """With no success in the window, every day of the window and no more is run."""
    job, _, _ = world()
    reports = asyncio.run(job.catch_up(max_days=2))
    assert [r.start for r in reports] == [TODAY - dt.timedelta(days=2), YESTERDAY]


def test_catch_up_needs_a_ledger() -> None:
    """Without a ledger the job cannot know what succeeded, and says so."""
    job, _, _ = world()
    job.ledger = None
    with pytest.raises(ValueError, match="ledger"):
        asyncio.run(job.catch_up())


def test_failures_carry_a_kind_through_events_and_the_report_dict() -> None:
    """Each failure's kind is in its PortfolioFailed event and survives as_dict/from_dict."""
    events: list[RunEvent] = []
    job, _, _ = world(price_bob=False, events=events.append)
    report = asyncio.run(job.run_daily(YESTERDAY))
    (failure,) = report.failures
    assert failure.kind == "missing_data"
    assert [e.kind for e in events if isinstance(e, PortfolioFailed)] == ["missing_data"]
    assert RunReport.from_dict(report.as_dict()) == report
    assert report.as_dict()["failures"] == [failure.as_dict()]


def test_a_stored_report_without_kinds_gets_them_from_the_error_names() -> None:
    """Reports stored before kinds existed are read with the kind their error type implies."""
    job, _, _ = world(price_bob=False)
    data = asyncio.run(job.run_daily(YESTERDAY)).as_dict()
    failures = data["failures"]
    assert isinstance(failures, list)
    for failure in failures:
        del failure["kind"]
    failures.append({**failures[0], "error_type": "DatabaseUnavailableError"})
    failures.append({**failures[0], "error_type": "HostError", "attempts": 1})
    kinds = [f.kind for f in RunReport.from_dict(data).failures]
    assert kinds == ["missing_data", "transient", "error"]


def test_failure_defaults_keep_old_constructors_working() -> None:
    """A SnapshotFailure built with the five original fields has kind 'error'."""
    failure = SnapshotFailure(ALICE, TODAY, "RuntimeError", "boom", 1)
    assert failure.kind == "error"


def test_every_batch_announces_its_start_and_end_in_its_own_task() -> None:
    """Each batch emits BatchStarted then BatchFinished from the task that does its work."""
    seen: list[tuple[str, int, int | None]] = []

    def hook(event: RunEvent) -> None:
        task = asyncio.current_task()
        if isinstance(event, (BatchStarted, BatchFinished)):
            seen.append((type(event).__name__, event.portfolios, id(task)))

    job, _, _ = world(events=hook, batch_size=1, concurrency=2)
    asyncio.run(job.run_daily(YESTERDAY))
    starts = [(n, t) for kind, n, t in seen if kind == "BatchStarted"]
    ends = [(n, t) for kind, n, t in seen if kind == "BatchFinished"]
    assert len(starts) == 2
    assert sorted(starts, key=str) == sorted(ends, key=str)
    assert len({t for _, t in starts}) == 2


def test_a_backfill_is_one_batch_with_its_events() -> None:
    """A one-portfolio backfill announces one batch of one portfolio, finished without error."""
    events: list[RunEvent] = []
    job, _, _ = world(events=events.append)
    asyncio.run(job.backfill(ALICE, TODAY - dt.timedelta(days=3), YESTERDAY))
    batches = [e for e in events if isinstance(e, (BatchStarted, BatchFinished))]
    assert batches == [BatchStarted(batches[0].key, 1), BatchFinished(batches[0].key, 1, None)]


def test_snapshot_json_form_carries_decimals_as_exact_strings() -> None:
    """as_dict gives JSON-ready values: ISO dates, string ids and Decimals as exact strings."""
    snapshot = PortfolioSnapshot(
        ALICE,
        TODAY,
        "EUR",
        Decimal("0.10"),
        Decimal("1025.33"),
        Decimal("1025.43"),
        [
            PositionValuation(
                "SAP",
                Decimal("2.5"),
                Decimal("410.13"),
                YESTERDAY,
                Decimal("1025.33"),
                "USD",
                Decimal("0.9100000001"),
                stale=True,
            )
        ],
        net_contributions=Decimal(1000),
        stale=True,
    )
    data = snapshot.as_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["total_value"] == "1025.43"
    assert data["snapshot_date"] == TODAY.isoformat()
    assert data["external_flow"] is None
    positions = data["positions"]
    assert isinstance(positions, list)
    (position,) = positions
    assert position == {
        "ticker": "SAP",
        "quantity": "2.5",
        "price": "410.13",
        "price_date": YESTERDAY.isoformat(),
        "market_value": "1025.33",
        "price_currency": "USD",
        "fx_rate": "0.9100000001",
        "stale": True,
        "cost_basis": None,
        "unrealized_gain": None,
        "realized_gain": None,
        "dividends": None,
    }
    assert Decimal(str(data["cash_balance"])) == snapshot.cash_balance


class GatedMarket(CountingMarket):
    """Counts requests; each waits until `gate` is set."""

    def __init__(self, inner: InMemoryMarketData) -> None:
        super().__init__(inner)
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()

    async def get_prices(
        self, tickers: Collection[str], as_of: dt.date
    ) -> Mapping[str, PriceQuote]:
        self.waiting.set()
        await self.gate.wait()
        return await super().get_prices(tickers, as_of)


def test_one_job_runs_a_key_once_at_a_time_though_its_lock_would_let_it_in() -> None:
    """A second run of a key this job is running returns already_running, like a replica's."""
    job, counting, _ = world()
    market = GatedMarket(counting.inner)
    job.market_data = market

    async def scenario() -> tuple[RunReport, RunReport]:
        first = asyncio.create_task(job.run_daily(YESTERDAY))
        await market.waiting.wait()
        second = await job.run_daily(YESTERDAY)
        market.gate.set()
        return await first, second

    first, second = asyncio.run(scenario())
    assert (first.status, second.status) == ("completed", "already_running")
    assert first.succeeded == 2
