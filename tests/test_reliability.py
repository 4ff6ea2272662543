import asyncio
import contextlib
import datetime as dt
import logging
import random
import uuid
from collections.abc import Collection, Mapping, Sequence
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from portfolio_snapshots import (
    InMemoryMarketData,
    InMemoryPortfolioRepository,
    InMemorySnapshotRepository,
    Portfolio,
    PortfolioSnapshot,
    PriceQuote,
    RetryPolicy,
    RunKeyConflictError,
    RunReport,
    RunState,
    SnapshotJob,
    TransientError,
)
from portfolio_snapshots.adapters.memory import InMemoryRunLedger, InMemoryRunLock
from portfolio_snapshots.errors import LeaseLostError
from portfolio_snapshots.events import (
    LeaseLost,
    LoggingEvents,
    PortfolioFailed,
    RetryScheduled,
    RunEvent,
    RunFinished,
    RunStarted,
)
from portfolio_snapshots.testing import Fault, FaultyMarketData, instant_retry

DAY = dt.date(2026, 11, 27)


class Clock:
    """A settable UTC clock."""

    def __init__(self) -> None:
        self.now = dt.datetime(2026, 11, 27, 0, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += dt.timedelta(**kwargs)


async def no_sleep(_seconds: float) -> None:
    return None


class YieldingMarket:
    """Suspends on every call, so a run has many points where it can be cancelled."""

    def __init__(self, inner: InMemoryMarketData, gate: asyncio.Event | None = None) -> None:
        self.inner = inner
        self.gate = gate
        self.calls = 0

    async def get_prices(
        self, tickers: Collection[str], as_of: dt.date
    ) -> Mapping[str, PriceQuote]:
        self.calls += 1
        await asyncio.sleep(0)
        if self.gate is not None:
            await self.gate.wait()
        return await self.inner.get_prices(tickers, as_of)


class YieldingStore(InMemorySnapshotRepository):
    """Suspends before every write (the write itself stays atomic)."""

    async def upsert_many(
        self, snapshots: Sequence[PortfolioSnapshot], *, fence: int | None = None
    ) -> None:
        await asyncio.sleep(0)
        await super().upsert_many(snapshots, fence=fence)


def world(n: int = 30) -> tuple[InMemoryPortfolioRepository, InMemoryMarketData]:
    portfolios = InMemoryPortfolioRepository(
        Portfolio(uuid.UUID(int=i + 1), Decimal(i), {"A": Decimal(i % 3), "B": Decimal("1.5")})
        for i in range(n)
    )
    market = InMemoryMarketData()
    market.add_price("A", DAY, Decimal("10.10"))
    market.add_price("B", DAY, Decimal("20.20"))
    return portfolios, market


def clean_run(n: int = 30) -> list[PortfolioSnapshot]:
    portfolios, market = world(n)
    store = InMemorySnapshotRepository()
    job = SnapshotJob(
        portfolios=portfolios, snapshots=store, market_data=market, clock=Clock(), batch_size=4
    )
    asyncio.run(job.run_daily())
    return store.all()


def coordinated_job(
    portfolios: InMemoryPortfolioRepository,
    market: object,
    store: InMemorySnapshotRepository,
    ledger: InMemoryRunLedger,
    lock: InMemoryRunLock,
    clock: Clock,
    **kwargs: object,
) -> SnapshotJob:
    return SnapshotJob(
        portfolios=portfolios,
        snapshots=store,
        market_data=market,  # type: ignore[arg-type]
        ledger=ledger,
        lock=lock,
        clock=clock,
        sleep=no_sleep,
        rng=random.Random(1),
        batch_size=4,
        **kwargs,  # type: ignore[arg-type]
    )


def test_two_replicas_firing_together_do_the_work_once() -> None:
    """Of two daily runs started together, one works and the other reports it was running."""
    portfolios, market = world()
    store, ledger, lock, clock = (
        YieldingStore(),
        InMemoryRunLedger(),
        InMemoryRunLock(),
        Clock(),
    )
    counting = YieldingMarket(market)
    a = coordinated_job(portfolios, counting, store, ledger, lock, clock, owner="a")
    b = coordinated_job(portfolios, counting, store, ledger, lock, clock, owner="b")

    async def both() -> list[RunReport]:
        return list(await asyncio.gather(a.run_daily(), b.run_daily()))

    reports = asyncio.run(both())
    assert sorted(r.status for r in reports) == ["already_running", "completed"]
    done = next(r for r in reports if r.status == "completed")
    assert done.succeeded == 30
    assert 1 <= counting.calls <= 8  # at most one price call per batch of 4
    assert store.all() == clean_run()


def test_a_run_that_succeeded_is_not_redone() -> None:
    """Re-triggering a succeeded key returns the stored report and does no work."""
    portfolios, market = world()
    store, ledger, lock, clock = (
        InMemorySnapshotRepository(),
        InMemoryRunLedger(),
        InMemoryRunLock(),
        Clock(),
    )
    counting = YieldingMarket(market)
    job = coordinated_job(portfolios, counting, store, ledger, lock, clock)
    first = asyncio.run(job.run_daily())
    calls = counting.calls
    again = asyncio.run(job.run_daily())
    assert again.status == "already_succeeded"
    assert (again.succeeded, again.key, again.started_at) == (
        30,
        "daily:2026-11-27",
        first.started_at,
    )
    assert counting.calls == calls
    record = asyncio.run(ledger.get("daily:2026-11-27"))
    assert record is not None
    assert record.state is RunState.SUCCEEDED


def test_a_key_reused_with_other_parameters_is_refused() -> None:
    """The same explicit key for another date raises and changes nothing."""
    portfolios, market = world()
    store, ledger, lock, clock = (
        InMemorySnapshotRepository(),
        InMemoryRunLedger(),
        InMemoryRunLock(),
        Clock(),
    )
    job = coordinated_job(portfolios, market, store, ledger, lock, clock)
    asyncio.run(job.run_daily(key="nightly"))
    before = store.all()
    with pytest.raises(RunKeyConflictError, match="nightly"):
        asyncio.run(job.run_daily(DAY - dt.timedelta(days=1), key="nightly"))
    assert store.all() == before
    assert asyncio.run(lock.acquire("nightly", "x", dt.timedelta(seconds=1), clock())) is not None


def test_a_failed_run_resumes_redoing_only_what_is_missing() -> None:
    """After prices come back, rerunning the key computes only the portfolio-days not stored."""
    portfolios, market = world()
    partial = InMemoryMarketData([PriceQuote("B", Decimal("20.20"), DAY)])  # "A" is missing
    store, ledger, lock, clock = (
        InMemorySnapshotRepository(),
        InMemoryRunLedger(),
        InMemoryRunLock(),
        Clock(),
    )
    first = asyncio.run(
        coordinated_job(portfolios, partial, store, ledger, lock, clock).run_daily()
    )
    assert (first.succeeded, first.failed) == (10, 20)  # i % 3 == 0 hold no A
    record = asyncio.run(ledger.get("daily:2026-11-27"))
    assert record is not None
    assert record.state is RunState.FAILED
    second = asyncio.run(
        coordinated_job(portfolios, market, store, ledger, lock, clock).run_daily()
    )
    assert (second.attempt, second.skipped, second.succeeded, second.failed) == (2, 10, 20, 0)
    assert store.all() == clean_run()


@given(st.integers(min_value=0, max_value=60), st.booleans())
@settings(max_examples=60)
def test_cancelling_at_any_point_then_rerunning_equals_a_clean_run(
    steps: int, release: bool
) -> None:
    """Cancel after any number of scheduler steps, rerun the key: nothing lost or doubled."""
    portfolios, market = world()
    store, ledger, lock, clock = YieldingStore(), InMemoryRunLedger(), InMemoryRunLock(), Clock()
    if not release:  # a crash that never released its lease (SIGKILL): the next run waits it out
        lock.release = no_release  # type: ignore[method-assign]

    async def interrupted() -> None:
        job = coordinated_job(portfolios, YieldingMarket(market), store, ledger, lock, clock)
        task = asyncio.create_task(job.run_daily())
        for _ in range(steps):
            await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(interrupted())
    partial = store.all()
    assert all(s in clean_run() for s in partial)  # only whole, correct snapshots
    clock.advance(minutes=6)  # past the TTL of a lease that was never released
    report = asyncio.run(
        coordinated_job(portfolios, market, store, ledger, lock, clock).run_daily()
    )
    assert report.status in {"completed", "already_succeeded"}
    assert store.all() == clean_run()
    assert len(store) == 30


async def no_release(lease: object) -> None:
    return None


def test_a_stalled_holder_loses_its_lease_and_cannot_overwrite() -> None:
    """A run stalled past its TTL is taken over; when it wakes it writes nothing."""
    portfolios, market = world(4)
    store, ledger, lock, clock = (
        InMemorySnapshotRepository(),
        InMemoryRunLedger(),
        InMemoryRunLock(),
        Clock(),
    )
    gate = asyncio.Event()
    events: list[RunEvent] = []
    stalled = coordinated_job(
        portfolios, YieldingMarket(market, gate), store, ledger, lock, clock, events=events.append
    )
    fresh_market = InMemoryMarketData(
        [PriceQuote("A", Decimal("11.11"), DAY), PriceQuote("B", Decimal("22.22"), DAY)]
    )
    taker = coordinated_job(portfolios, fresh_market, store, ledger, lock, clock)

    async def scenario() -> RunReport:
        task = asyncio.create_task(stalled.run_daily())
        await asyncio.sleep(0.01)  # the stalled run holds the lease, waiting on the gate
        clock.advance(minutes=10)
        report = await taker.run_daily()
        gate.set()
        with pytest.raises(LeaseLostError):
            await task
        return report

    report = asyncio.run(scenario())
    assert report.status == "completed"
    assert report.attempt == 2
    assert all(s.positions[-1].price == Decimal("22.22") for s in store.all())
    assert [type(e) for e in events if isinstance(e, LeaseLost)] == [LeaseLost]


def test_a_stale_fence_cannot_overwrite_a_newer_write() -> None:
    """Rows written under a newer lease survive a late write under an older one."""
    new, old = (
        clean_run(2),
        [
            PortfolioSnapshot(
                s.portfolio_id, s.snapshot_date, "USD", Decimal(0), Decimal(0), Decimal(0)
            )
            for s in clean_run(2)
        ],
    )
    store = InMemorySnapshotRepository()
    asyncio.run(store.upsert_many(new, fence=7))
    asyncio.run(store.upsert_many(old, fence=6))
    assert store.all() == new


def test_events_report_start_retries_failures_and_finish() -> None:
    """A custom hook sees the run start, each retry with its delay, failures and the end."""
    portfolios, market = world(3)
    portfolios.put(Portfolio(uuid.UUID(int=99), Decimal(0), {"NOPE": Decimal(1)}))
    flaky = FlakyOnce(market)
    events: list[RunEvent] = []
    job = SnapshotJob(
        portfolios=portfolios,
        snapshots=InMemorySnapshotRepository(),
        market_data=flaky,
        clock=Clock(),
        sleep=no_sleep,
        rng=random.Random(3),
        retry=RetryPolicy(max_attempts=2, initial_delay=0.25, jitter=0),
        events=events.append,
    )
    report = asyncio.run(job.run_daily())
    kinds = [type(e) for e in events]
    assert kinds[0] is RunStarted
    assert kinds[-1] is RunFinished
    retry = next(e for e in events if isinstance(e, RetryScheduled))
    assert (retry.operation, retry.attempt, retry.delay, retry.error_type) == (
        "get_prices",
        1,
        0.25,
        "TransientError",
    )
    failed = [e for e in events if isinstance(e, PortfolioFailed)]
    assert [f.portfolio_id for f in failed] == [uuid.UUID(int=99)]
    assert report.retried == 1


class FlakyOnce:
    """Fails its first call transiently."""

    def __init__(self, inner: InMemoryMarketData) -> None:
        self.inner = inner
        self.calls = 0

    async def get_prices(
        self, tickers: Collection[str], as_of: dt.date
    ) -> Mapping[str, PriceQuote]:
        self.calls += 1
        if self.calls == 1:
            raise TransientError("rate limited")
        return await self.inner.get_prices(tickers, as_of)


def test_default_hook_logs_structured_fields(caplog: pytest.LogCaptureFixture) -> None:
    """LoggingEvents logs each event with its fields in `extra`, prefixed snapshot_."""
    portfolios, market = world(2)
    portfolios.put(Portfolio(uuid.UUID(int=99), Decimal(0), {"NOPE": Decimal(1)}))
    job = SnapshotJob(
        portfolios=portfolios,
        snapshots=InMemorySnapshotRepository(),
        market_data=market,
        clock=Clock(),
        events=LoggingEvents(),
    )
    with caplog.at_level(logging.INFO, logger="portfolio_snapshots"):
        asyncio.run(job.run_daily())
    by_event = {r.__dict__["snapshot_event"]: r for r in caplog.records}
    assert set(by_event) == {"RunStarted", "PortfolioFailed", "RunFinished"}
    failed = by_event["PortfolioFailed"]
    assert failed.levelno == logging.WARNING
    assert failed.__dict__["snapshot_portfolio_id"] == str(uuid.UUID(int=99))
    assert failed.__dict__["snapshot_error_type"] == "MissingPriceError"
    assert by_event["RunFinished"].__dict__["snapshot_succeeded"] == 2


# --- stateful: runs, cancellations, duplicate triggers, lease expiry ---------------------


class RunsMachine(RuleBasedStateMachine):
    """Interleaves daily runs of two dates by two replicas with faults and crashes."""

    def __init__(self) -> None:
        super().__init__()
        self.portfolios, self.market = world(12)
        for back in (1,):
            day = DAY - dt.timedelta(days=back)
            self.market.add_price("A", day, Decimal("9.90"))
            self.market.add_price("B", day, Decimal("19.90"))
        self.store = YieldingStore()
        self.ledger = InMemoryRunLedger()
        self.lock = InMemoryRunLock()
        self.clock = Clock()
        self.expected = self._expected()

    def _expected(self) -> dict[tuple[uuid.UUID, dt.date], PortfolioSnapshot]:
        out = {}
        for back in (0, 1):
            store = InMemorySnapshotRepository()
            job = SnapshotJob(
                portfolios=self.portfolios, snapshots=store, market_data=self.market, clock=Clock()
            )
            asyncio.run(job.run_daily(DAY - dt.timedelta(days=back)))
            out.update({(s.portfolio_id, s.snapshot_date): s for s in store.all()})
        return out

    def job(self, owner: str, failing: float) -> SnapshotJob:
        return coordinated_job(
            self.portfolios,
            SometimesFailing(self.market, failing, random.Random(owner)),
            self.store,
            self.ledger,
            self.lock,
            self.clock,
            owner=owner,
            retry=RetryPolicy(max_attempts=3, jitter=0),
        )

    @rule(back=st.sampled_from([0, 1]), failing=st.sampled_from([0.0, 0.5]))
    def run_to_the_end(self, back: int, failing: float) -> None:
        asyncio.run(self.job("solo", failing).run_daily(DAY - dt.timedelta(days=back)))

    @rule(back=st.sampled_from([0, 1]))
    def duplicate_trigger(self, back: int) -> None:
        day = DAY - dt.timedelta(days=back)

        async def both() -> list[RunReport]:
            return list(
                await asyncio.gather(
                    self.job("r1", 0.0).run_daily(day), self.job("r2", 0.0).run_daily(day)
                )
            )

        statuses = [r.status for r in asyncio.run(both())]
        # At most one of the two does the work; the other was told it ran or was done.
        assert statuses.count("completed") <= 1
        assert set(statuses) <= {"completed", "already_running", "already_succeeded"}

    @rule(back=st.sampled_from([0, 1]), steps=st.integers(min_value=0, max_value=30))
    def crash(self, back: int, steps: int) -> None:
        async def interrupted() -> None:
            task = asyncio.create_task(
                self.job("crashy", 0.0).run_daily(DAY - dt.timedelta(days=back))
            )
            for _ in range(steps):
                await asyncio.sleep(0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        asyncio.run(interrupted())

    @rule()
    def time_passes_beyond_the_ttl(self) -> None:
        self.clock.advance(minutes=6)

    @invariant()
    def stored_snapshots_are_whole_and_right(self) -> None:
        for s in self.store.all():
            assert self.expected[(s.portfolio_id, s.snapshot_date)] == s

    def teardown(self) -> None:
        self.clock.advance(minutes=6)
        for back in (0, 1):
            asyncio.run(self.job("final", 0.0).run_daily(DAY - dt.timedelta(days=back)))
        final = {(s.portfolio_id, s.snapshot_date): s for s in self.store.all()}
        assert final == self.expected
        assert len(self.store) == len(self.expected)


class SometimesFailing:
    """Fails a seeded fraction of price calls transiently."""

    def __init__(self, inner: InMemoryMarketData, fraction: float, rng: random.Random) -> None:
        self.inner, self.fraction, self.rng = inner, fraction, rng

    async def get_prices(
        self, tickers: Collection[str], as_of: dt.date
    ) -> Mapping[str, PriceQuote]:
        await asyncio.sleep(0)
        if self.rng.random() < self.fraction:
            raise TransientError("provider timeout")
        return await self.inner.get_prices(tickers, as_of)


TestRunsMachine = RunsMachine.TestCase
TestRunsMachine.settings = settings(max_examples=40, stateful_step_count=12, deadline=None)


# --- fault injection at scale, with the public testing kit -------------------------------


def big_world(n: int) -> tuple[InMemoryPortfolioRepository, InMemoryMarketData]:
    tickers = [f"T{i:02d}" for i in range(40)]
    rng = random.Random(5)
    portfolios = InMemoryPortfolioRepository(
        Portfolio(
            uuid.UUID(int=i + 1),
            Decimal(rng.randint(0, 10_000)),
            {t: Decimal(rng.randint(1, 500)) / 10 for t in rng.sample(tickers, 3)},
        )
        for i in range(n)
    )
    market = InMemoryMarketData(PriceQuote(t, Decimal(10 + i), DAY) for i, t in enumerate(tickers))
    return portfolios, market


def test_thirty_percent_transient_price_failures_still_snapshot_everyone() -> None:
    """With 30% of price calls failing transiently, 1,000 portfolios are all stored."""
    # Each batch of 25 holds a ticker of its own, so each of the 40 batches asks for prices.
    portfolios = InMemoryPortfolioRepository(
        Portfolio(uuid.UUID(int=i + 1), Decimal(i), {f"B{i // 25}": Decimal(1), "ALL": Decimal(2)})
        for i in range(1000)
    )
    market = InMemoryMarketData(
        [
            PriceQuote("ALL", Decimal(3), DAY),
            *(PriceQuote(f"B{n}", Decimal(n + 1), DAY) for n in range(40)),
        ]
    )
    faulty = FaultyMarketData(market, Fault(fail_rate=0.3, seed=11))
    store = InMemorySnapshotRepository()
    job = SnapshotJob(
        portfolios=portfolios,
        snapshots=store,
        market_data=faulty,
        retry=instant_retry(RetryPolicy(max_attempts=10)),
        clock=Clock(),
        batch_size=25,
    )
    report = asyncio.run(job.run_daily())
    assert (report.succeeded, report.failed) == (1000, 0)
    assert len(store) == 1000
    assert report.retried == faulty.failures > 5
    assert faulty.calls == 40 + faulty.failures  # one successful call per batch, plus retries


def test_one_ticker_failing_for_good_fails_exactly_its_holders() -> None:
    """A ticker whose price lookups always fail fails the portfolios holding it, and only them."""
    portfolios, market = big_world(300)
    bad = "T07"

    class BrokenTicker:
        async def get_prices(
            self, tickers: Collection[str], as_of: dt.date
        ) -> Mapping[str, PriceQuote]:
            quotes = await market.get_prices(tickers, as_of)
            return {t: q for t, q in quotes.items() if t != bad}

    holders = {p.id for p in asyncio.run(_collect(portfolios)) if bad in p.holdings}
    job = SnapshotJob(
        portfolios=portfolios,
        snapshots=InMemorySnapshotRepository(),
        market_data=BrokenTicker(),
        clock=Clock(),
        batch_size=16,
    )
    report = asyncio.run(job.run_daily())
    assert holders
    assert {f.portfolio_id for f in report.failures} == holders
    assert all(f.error_type == "MissingPriceError" and bad in f.message for f in report.failures)
    assert report.succeeded == 300 - len(holders)


def test_a_ticker_whose_provider_call_fails_fails_only_batches_asking_for_it() -> None:
    """A provider error for one ticker (retried, then given up) fails only batches holding it."""
    portfolios, market = big_world(200)
    faulty = FaultyMarketData(market, Fault(tickers=frozenset({"T03"})))
    job = SnapshotJob(
        portfolios=portfolios,
        snapshots=InMemorySnapshotRepository(),
        market_data=faulty,
        retry=instant_retry(RetryPolicy(max_attempts=2)),
        clock=Clock(),
        batch_size=1,
    )
    report = asyncio.run(job.run_daily())
    holders = {p.id for p in asyncio.run(_collect(portfolios)) if "T03" in p.holdings}
    assert {f.portfolio_id for f in report.failures} == holders
    assert all(f.attempts == 2 and f.error_type == "TransientError" for f in report.failures)


async def _collect(repo: InMemoryPortfolioRepository) -> list[Portfolio]:
    return [p async for p in repo.iter_portfolios(DAY)]


@pytest.mark.parametrize(
    ("holdings", "price", "error_type"),
    [
        ({"A": Decimal(-1)}, Decimal(1), "InvalidPortfolioError"),
        ({"A": Decimal("NaN")}, Decimal(1), "InvalidPortfolioError"),
        ({"A": Decimal("Infinity")}, Decimal(1), "InvalidPortfolioError"),
        ({"A": Decimal(1)}, Decimal("-0"), "InvalidPriceError"),
        ({"A": Decimal(1)}, Decimal(-5), "InvalidPriceError"),
        ({"A": Decimal(1)}, Decimal("NaN"), "InvalidPriceError"),
        ({"A": Decimal(1)}, None, "MissingPriceError"),
    ],
)
def test_bad_input_on_a_rerun_leaves_the_stored_snapshot_unchanged(
    holdings: dict[str, Decimal], price: Decimal | None, error_type: str
) -> None:
    """Each kind of bad portfolio or price is a typed failure and the earlier snapshot stays."""
    pid = uuid.UUID(int=1)
    good = InMemoryPortfolioRepository([Portfolio(pid, Decimal(5), {"A": Decimal(2)})])
    store = InMemorySnapshotRepository()
    market = InMemoryMarketData([PriceQuote("A", Decimal(3), DAY)])
    asyncio.run(
        SnapshotJob(portfolios=good, snapshots=store, market_data=market, clock=Clock()).run_daily()
    )
    before = store.all()
    bad_market = InMemoryMarketData([] if price is None else [PriceQuote("A", price, DAY)])
    bad = InMemoryPortfolioRepository([Portfolio(pid, Decimal(5), holdings)])
    report = asyncio.run(
        SnapshotJob(
            portfolios=bad, snapshots=store, market_data=bad_market, clock=Clock()
        ).run_daily()
    )
    assert [f.error_type for f in report.failures] == [error_type]
    assert str(pid) in report.failures[0].message
    assert "'A'" in report.failures[0].message
    assert store.all() == before
