import asyncio
import datetime as dt
import random
import uuid
from decimal import Decimal

import pytest

from portfolio_snapshots import (
    InMemoryMarketData,
    InMemoryPortfolioRepository,
    InMemorySnapshotRepository,
    MarketData,
    Portfolio,
    PortfolioRepository,
    PortfolioSnapshot,
    RetryPolicy,
    RunLedger,
    RunLock,
    RunState,
    SnapshotJob,
    SnapshotRepository,
    TransientError,
)
from portfolio_snapshots.adapters.memory import InMemoryRunLedger, InMemoryRunLock
from portfolio_snapshots.testing import (
    FakeClock,
    FakeSleep,
    Fault,
    FaultyMarketData,
    FaultyPortfolioRepository,
    FaultyRunLedger,
    FaultyRunLock,
    FaultySnapshotRepository,
    instant_retry,
)

DAY = dt.date(2025, 1, 2)
NOW = dt.datetime(2025, 1, 2, 12, tzinfo=dt.UTC)
P1, P2, P3 = (uuid.UUID(int=n) for n in (1, 2, 3))


def market() -> InMemoryMarketData:
    data = InMemoryMarketData()
    data.add_price("AAPL", DAY, Decimal("190.00"))
    data.add_price("MSFT", DAY, Decimal("400.00"))
    return data


def snapshot(pid: uuid.UUID, cash: str = "10.00") -> PortfolioSnapshot:
    return PortfolioSnapshot(pid, DAY, "USD", Decimal(cash), Decimal("0.00"), Decimal(cash))


async def outcomes(wrapper: FaultyMarketData[InMemoryMarketData], n: int) -> list[bool]:
    """Make `n` price requests; True for each that succeeded."""
    results = []
    for _ in range(n):
        try:
            await wrapper.get_prices(["AAPL"], DAY)
        except TransientError:
            results.append(False)
        else:
            results.append(True)
    return results


def test_wrappers_satisfy_the_ports() -> None:
    """Each wrapper type-checks as its port and passes the runtime protocol check."""
    portfolios: PortfolioRepository = FaultyPortfolioRepository(InMemoryPortfolioRepository())
    prices: MarketData = FaultyMarketData(InMemoryMarketData())
    snapshots: SnapshotRepository = FaultySnapshotRepository(InMemorySnapshotRepository())
    ledger: RunLedger = FaultyRunLedger(InMemoryRunLedger())
    lock: RunLock = FaultyRunLock(InMemoryRunLock())
    assert isinstance(portfolios, PortfolioRepository)
    assert isinstance(prices, MarketData)
    assert isinstance(snapshots, SnapshotRepository)
    assert isinstance(ledger, RunLedger)
    assert isinstance(lock, RunLock)


def test_no_fault_only_counts_and_delegates() -> None:
    """Without a fault the wrapper returns the inner adapter's answers and counts the calls."""
    wrapper = FaultyMarketData(market())
    quotes = asyncio.run(wrapper.get_prices(["AAPL", "NOPE"], DAY))
    assert set(quotes) == {"AAPL"}
    assert quotes["AAPL"].price == Decimal("190.00")
    assert (wrapper.calls, wrapper.failures) == (1, 0)
    assert wrapper.calls_by_method == {"get_prices": 1}
    assert wrapper.inner.request_count == 1


def test_fail_first_fails_that_many_calls_then_heals() -> None:
    """`fail_first=2` fails the first two calls with TransientError and lets the rest through."""
    wrapper = FaultyMarketData(market(), Fault(fail_first=2))
    assert asyncio.run(outcomes(wrapper, 4)) == [False, False, True, True]
    assert (wrapper.calls, wrapper.failures) == (4, 2)
    assert wrapper.inner.request_count == 2


def test_injected_error_names_the_call() -> None:
    """The injected exception's message names the wrapper, the method, the call and the cause."""
    wrapper = FaultyMarketData(market(), Fault(fail_first=1))
    with pytest.raises(TransientError, match=r"FaultyMarketData\.get_prices \(call 1\)"):
        asyncio.run(wrapper.get_prices(["AAPL"], DAY))


def test_fail_rate_is_reproducible_with_a_seed() -> None:
    """The same seed fails the same calls; both outcomes occur at rate 0.5."""
    first = asyncio.run(outcomes(FaultyMarketData(market(), Fault(fail_rate=0.5, seed=3)), 40))
    again = asyncio.run(outcomes(FaultyMarketData(market(), Fault(fail_rate=0.5, seed=3)), 40))
    assert first == again
    assert True in first
    assert False in first


def test_fail_rate_bounds() -> None:
    """A rate of 0 never fails and a rate of 1 always fails."""
    never = FaultyMarketData(market(), Fault(fail_rate=0.0))
    always = FaultyMarketData(market(), Fault(fail_rate=1.0))
    assert asyncio.run(outcomes(never, 10)) == [True] * 10
    assert asyncio.run(outcomes(always, 10)) == [False] * 10
    assert always.failures == 10


def test_delay_goes_through_the_injected_sleep() -> None:
    """A delay is requested from the injected sleep, which moves the fake clock instead."""
    clock = FakeClock(NOW)
    sleep = FakeSleep(clock)
    wrapper = FaultyMarketData(market(), Fault(delay=2.5), sleep=sleep)
    asyncio.run(outcomes(wrapper, 2))
    assert sleep.delays == [2.5, 2.5]
    assert clock() == NOW + dt.timedelta(seconds=5)
    assert wrapper.failures == 0


def test_ticker_fault_fails_requests_for_that_ticker() -> None:
    """A ticker fault raises the chosen error for requests that ask for it, and only those."""
    wrapper = FaultyMarketData(market(), Fault(tickers=frozenset({"MSFT"}), error=ConnectionError))
    assert set(asyncio.run(wrapper.get_prices(["AAPL"], DAY))) == {"AAPL"}
    with pytest.raises(ConnectionError, match="ticker 'MSFT'"):
        asyncio.run(wrapper.get_prices(["AAPL", "MSFT"], DAY))
    assert (wrapper.calls, wrapper.failures) == (2, 1)


def test_portfolio_fault_in_get_portfolio() -> None:
    """A portfolio fault fails `get_portfolio` for that id and not for others."""
    repo = InMemoryPortfolioRepository([Portfolio(P1, Decimal(1)), Portfolio(P2, Decimal(2))])
    wrapper = FaultyPortfolioRepository(repo, Fault(portfolio_ids=frozenset({P2})))
    found = asyncio.run(wrapper.get_portfolio(P1, DAY))
    assert found is not None
    assert found.id == P1
    with pytest.raises(TransientError, match=str(P2)):
        asyncio.run(wrapper.get_portfolio(P2, DAY))


def test_portfolio_fault_strikes_mid_stream() -> None:
    """`iter_portfolios` yields the portfolios before the faulty one, then raises."""
    repo = InMemoryPortfolioRepository([Portfolio(p, Decimal(1)) for p in (P1, P2, P3)])
    wrapper = FaultyPortfolioRepository(repo, Fault(portfolio_ids=frozenset({P2})))
    seen: list[uuid.UUID] = []

    async def consume() -> None:
        async for portfolio in wrapper.iter_portfolios(DAY):
            seen.append(portfolio.id)  # noqa: PERF401 - keep what came before the fault

    with pytest.raises(TransientError):
        asyncio.run(consume())
    assert seen == [P1]
    assert (wrapper.calls, wrapper.failures) == (1, 1)


def test_first_call_fault_strikes_when_the_stream_starts() -> None:
    """A first-call fault on `iter_portfolios` raises on the first step, before any portfolio."""
    repo = InMemoryPortfolioRepository([Portfolio(P1, Decimal(1))])
    wrapper = FaultyPortfolioRepository(repo, Fault(fail_first=1))

    async def ids() -> list[uuid.UUID]:
        return [p.id async for p in wrapper.iter_portfolios(DAY)]

    with pytest.raises(TransientError):
        asyncio.run(ids())
    assert asyncio.run(ids()) == [P1]


def test_snapshot_fault_blocks_the_whole_batch() -> None:
    """A batch holding a faulty portfolio fails before the inner repository writes any of it."""
    wrapper = FaultySnapshotRepository(
        InMemorySnapshotRepository(), Fault(portfolio_ids=frozenset({P2}))
    )
    with pytest.raises(TransientError):
        asyncio.run(wrapper.upsert_many([snapshot(P1), snapshot(P2)]))
    assert len(wrapper.inner) == 0
    asyncio.run(wrapper.upsert_many([snapshot(P1)]))
    assert len(wrapper.inner) == 1
    with pytest.raises(TransientError):
        asyncio.run(wrapper.existing_keys([(P1, DAY), (P2, DAY)]))
    with pytest.raises(TransientError):
        asyncio.run(wrapper.list_snapshots(P2, DAY, DAY))
    assert asyncio.run(wrapper.existing_dates(P1, DAY, DAY)) == {DAY}


def test_methods_limit_what_the_fault_covers() -> None:
    """A fault limited to `upsert_many` leaves the reads alone, though they are counted."""
    wrapper = FaultySnapshotRepository(
        InMemorySnapshotRepository(), Fault(fail_rate=1.0, methods=frozenset({"upsert_many"}))
    )
    assert asyncio.run(wrapper.get_snapshot(P1, DAY)) is None
    with pytest.raises(TransientError):
        asyncio.run(wrapper.upsert_many([snapshot(P1)]))
    assert wrapper.calls_by_method == {"get_snapshot": 1, "upsert_many": 1}
    assert (wrapper.calls, wrapper.failures) == (2, 1)


def test_unknown_method_name_is_rejected() -> None:
    """Naming a method the port does not have raises ValueError, so typos do not pass silently."""
    with pytest.raises(ValueError, match="get_price"):
        FaultyMarketData(market(), Fault(methods=frozenset({"get_price"})))


@pytest.mark.parametrize(
    "settings",
    [{"fail_first": -1}, {"fail_rate": 1.5}, {"fail_rate": -0.1}, {"delay": -1.0}],
    ids=["negative-count", "rate-above-1", "negative-rate", "negative-delay"],
)
def test_fault_rejects_impossible_settings(settings: dict[str, float]) -> None:
    """A negative count or delay, or a rate outside 0..1, raises ValueError."""
    with pytest.raises(ValueError, match="must be"):
        Fault(**settings)  # type: ignore[arg-type]


def test_assigning_a_fault_restarts_its_count() -> None:
    """Assigning a new fault heals or breaks the port mid-test, its first-calls count restarted."""
    wrapper = FaultyMarketData(market(), Fault(fail_first=1))
    assert asyncio.run(outcomes(wrapper, 2)) == [False, True]
    wrapper.fault = Fault(fail_first=1)
    assert asyncio.run(outcomes(wrapper, 2)) == [False, True]
    wrapper.fault = Fault()
    assert asyncio.run(outcomes(wrapper, 1)) == [True]
    assert (wrapper.calls, wrapper.failures) == (5, 2)


def test_hang_waits_until_cancelled() -> None:
    """A hanging call never reaches the inner adapter and ends only when it is cancelled."""
    wrapper = FaultyMarketData(market(), Fault(fail_first=1, hang=True))

    async def scenario() -> None:
        task = asyncio.create_task(wrapper.get_prices(["AAPL"], DAY))
        await asyncio.sleep(0)  # the task runs up to its hang
        assert wrapper.failures == 1
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        quotes = await wrapper.get_prices(["AAPL"], DAY)
        assert set(quotes) == {"AAPL"}

    asyncio.run(scenario())
    assert wrapper.inner.request_count == 1


def test_ledger_and_lock_wrappers_inject_faults() -> None:
    """The ledger and lock wrappers fail their first calls and then delegate."""
    ledger = FaultyRunLedger(InMemoryRunLedger(), Fault(fail_first=1))
    lock = FaultyRunLock(InMemoryRunLock(), Fault(fail_first=1, methods=frozenset({"renew"})))

    async def scenario() -> None:
        with pytest.raises(TransientError):
            await ledger.start("k", "h", NOW)
        record = await ledger.start("k", "h", NOW)
        assert record.attempts == 1
        await ledger.finish("k", RunState.SUCCEEDED, {}, NOW)
        stored = await ledger.get("k")
        assert stored is not None
        assert stored.state is RunState.SUCCEEDED
        lease = await lock.acquire("k", "a", dt.timedelta(seconds=30), NOW)
        assert lease is not None
        with pytest.raises(TransientError):
            await lock.renew(lease, dt.timedelta(seconds=30), NOW)
        renewed = await lock.renew(lease, dt.timedelta(seconds=30), NOW)
        await lock.release(renewed)

    asyncio.run(scenario())
    assert (ledger.calls, ledger.failures) == (4, 1)
    assert lock.calls_by_method == {"acquire": 1, "renew": 2, "release": 1}


def job_parts() -> tuple[InMemoryPortfolioRepository, InMemorySnapshotRepository]:
    portfolios = InMemoryPortfolioRepository(
        [Portfolio(P1, Decimal("100.00"), {"AAPL": Decimal(2)})]
    )
    return portfolios, InMemorySnapshotRepository()


def test_job_retries_injected_transient_faults_instantly() -> None:
    """With `instant_retry`, two injected price failures cost two retries and no waiting."""
    portfolios, store = job_parts()
    prices = FaultyMarketData(market(), Fault(fail_first=2))
    job = SnapshotJob(
        portfolios=portfolios,
        snapshots=store,
        market_data=prices,
        retry=instant_retry(),
        clock=FakeClock(NOW),
    )
    report = asyncio.run(job.run_daily(DAY))
    assert (report.succeeded, report.failed, report.retried) == (1, 0, 2)
    assert prices.calls == 3
    assert len(store) == 1


def test_job_backoff_moves_the_fake_clock() -> None:
    """The job's backoff waits go through the fake sleep, which moves the job's fake clock."""
    portfolios, store = job_parts()
    clock = FakeClock(NOW)
    sleep = FakeSleep(clock)
    job = SnapshotJob(
        portfolios=portfolios,
        snapshots=FaultySnapshotRepository(store, Fault(fail_first=2)),
        market_data=market(),
        retry=RetryPolicy(max_attempts=3, initial_delay=1.0, multiplier=2.0, jitter=0.0),
        clock=clock,
        sleep=sleep,
        rng=random.Random(0),
    )
    report = asyncio.run(job.run_daily(DAY))
    assert report.ok
    assert sleep.delays == [1.0, 2.0]
    assert report.finished_at - report.started_at == dt.timedelta(seconds=3)


def test_job_reports_a_port_that_keeps_failing() -> None:
    """A snapshot store that always fails makes the job report the portfolio after 3 attempts."""
    portfolios, store = job_parts()
    faulty = FaultySnapshotRepository(store, Fault(fail_rate=1.0))
    job = SnapshotJob(
        portfolios=portfolios,
        snapshots=faulty,
        market_data=market(),
        retry=instant_retry(RetryPolicy(max_attempts=3)),
        clock=FakeClock(NOW),
    )
    report = asyncio.run(job.run_daily(DAY))
    assert (report.succeeded, report.failed) == (0, 1)
    assert report.failures[0].error_type == "TransientError"
    assert report.failures[0].attempts == 3
    assert faulty.failures == 3
    assert len(store) == 0


def test_hanging_port_is_cut_by_the_retry_timeout() -> None:
    """A hanging first price request is abandoned by the policy's timeout and then retried."""
    portfolios, store = job_parts()
    prices = FaultyMarketData(market(), Fault(fail_first=1, hang=True))
    job = SnapshotJob(
        portfolios=portfolios,
        snapshots=store,
        market_data=prices,
        retry=instant_retry(RetryPolicy(timeout=0.01)),
        clock=FakeClock(NOW),
    )
    report = asyncio.run(job.run_daily(DAY))
    assert (report.succeeded, report.retried) == (1, 1)
    assert (prices.calls, prices.failures) == (2, 1)
