"""Run keys stand for all of a run's arguments, and leases are renewed before they lapse."""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from portfolio_snapshots import (
    InMemoryMarketData,
    InMemoryPortfolioRepository,
    InMemorySnapshotRepository,
    Portfolio,
    PriceQuote,
    RunKeyConflictError,
    RunReport,
    SnapshotJob,
)
from portfolio_snapshots.adapters.memory import InMemoryRunLedger, InMemoryRunLock
from portfolio_snapshots.shards import Shard
from portfolio_snapshots.testing import FakeClock, Fault, FaultyRunLock

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

TODAY = dt.date(2026, 11, 27)
A, B = uuid.UUID(int=1), uuid.UUID(int=2)

#: For every argument a run method takes (but `key`): a base value and another one.
ALTERNATIVES: dict[str, tuple[object, object]] = {
    "on": (TODAY - dt.timedelta(days=1), TODAY - dt.timedelta(days=2)),
    "portfolio_id": (A, B),
    "start": (TODAY - dt.timedelta(days=3), TODAY - dt.timedelta(days=4)),
    "end": (TODAY - dt.timedelta(days=1), TODAY),
    "only_missing": (False, True),
    "day": (TODAY - dt.timedelta(days=2), TODAY - dt.timedelta(days=1)),
    "shard": (None, Shard(1, 2)),
}
RUN_METHODS = ["run_daily", "backfill", "backfill_all", "recompute_since"]


def world() -> SnapshotJob:
    market = InMemoryMarketData()
    for n in range(8):
        market.add_price("AAA", TODAY - dt.timedelta(days=n), Decimal(10 + n))
    return SnapshotJob(
        portfolios=InMemoryPortfolioRepository(
            [Portfolio(A, Decimal(1), {"AAA": Decimal(1)}), Portfolio(B, Decimal(2))]
        ),
        snapshots=InMemorySnapshotRepository(),
        market_data=market,
        ledger=InMemoryRunLedger(),
        clock=FakeClock(dt.datetime(2026, 11, 27, 23, tzinfo=dt.UTC)),
    )


def arguments(method: str) -> list[str]:
    parameters = inspect.signature(getattr(SnapshotJob, method)).parameters
    return [name for name in parameters if name not in {"self", "key"}]


@pytest.mark.parametrize(
    ("method", "argument"),
    [(method, argument) for method in RUN_METHODS for argument in arguments(method)],
)
def test_every_argument_of_a_run_is_part_of_its_key(method: str, argument: str) -> None:
    """Reusing a key with any one argument changed is a RunKeyConflictError, never a no-op.

    The cases come from the methods' signatures: a new argument fails here until it has
    alternatives in ALTERNATIVES and is part of the run's parameters.
    """
    assert argument in ALTERNATIVES, f"{method}({argument}=...) needs a test alternative"
    job = world()
    base = {name: ALTERNATIVES[name][0] for name in arguments(method)}
    changed = {**base, argument: ALTERNATIVES[argument][1]}
    run = getattr(job, method)
    first = asyncio.run(run(**base, key="the-key"))
    assert first.status == "completed"
    with pytest.raises(RunKeyConflictError):
        asyncio.run(run(**changed, key="the-key"))


def test_the_run_methods_are_the_ones_checked() -> None:
    """Every public coroutine of SnapshotJob that takes a run key is covered above."""
    keyed = {
        name
        for name, member in inspect.getmembers(SnapshotJob, inspect.iscoroutinefunction)
        if not name.startswith("_") and "key" in inspect.signature(member).parameters
    }
    assert keyed <= set(RUN_METHODS) | {"snapshot_one"}, keyed


class AdvancingMarket:
    """Answers prices, and moves the clock `step` forward on each call: slow batches."""

    def __init__(self, clock: FakeClock, step: dt.timedelta) -> None:
        self.clock, self.step = clock, step

    async def get_prices(
        self, tickers: Collection[str], as_of: dt.date
    ) -> Mapping[str, PriceQuote]:
        self.clock.advance(self.step)
        return {t: PriceQuote(t, Decimal(5), as_of) for t in tickers}


def batches_taking(step: dt.timedelta) -> tuple[RunReport, FaultyRunLock[InMemoryRunLock]]:
    """Run six one-portfolio batches, each taking `step`, under a 30 s lease."""
    clock = FakeClock(dt.datetime(2026, 11, 27, 23, tzinfo=dt.UTC))
    lock = FaultyRunLock(InMemoryRunLock(), Fault())
    portfolios = [Portfolio(uuid.UUID(int=n), Decimal(0), {f"T{n}": Decimal(1)}) for n in range(6)]
    job = SnapshotJob(
        portfolios=InMemoryPortfolioRepository(portfolios),
        snapshots=InMemorySnapshotRepository(),
        market_data=AdvancingMarket(clock, step),
        lock=lock,
        lease_ttl=dt.timedelta(seconds=30),
        clock=clock,
        batch_size=1,
        concurrency=1,
    )
    return asyncio.run(job.run_daily(TODAY)), lock


def test_the_lease_is_renewed_once_a_third_of_its_ttl_has_passed() -> None:
    """Batches taking 11 s under a 30 s lease: renewed every batch after 10 s, never lost."""
    report, lock = batches_taking(dt.timedelta(seconds=11))
    assert (report.succeeded, report.lease) == (6, "released")
    # 66 s of work under a 30 s lease: it lives only because it is renewed as it goes
    assert lock.calls_by_method["renew"] >= 6


def test_the_lease_is_not_renewed_before_a_third_of_its_ttl() -> None:
    """Batches taking 1 s under a 30 s lease: 6 s of work needs no renewal at all."""
    report, lock = batches_taking(dt.timedelta(seconds=1))
    assert report.succeeded == 6
    assert lock.calls_by_method.get("renew", 0) == 0


def test_the_default_keys_are_the_ones_the_runs_use() -> None:
    """`daily_key`, `backfill_key` and `backfill_all_key` name the runs' default keys."""
    job = world()
    start, end = TODAY - dt.timedelta(days=2), TODAY - dt.timedelta(days=1)
    assert asyncio.run(job.run_daily(end)).key == job.daily_key(end) == f"daily:{end}"
    assert asyncio.run(job.backfill(A, start, end)).key == job.backfill_key(A, start, end)
    missing = asyncio.run(job.backfill(A, start, end, only_missing=True))
    assert missing.key == job.backfill_key(A, start, end, only_missing=True)
    assert (missing.key or "").endswith(":only-missing")
    assert asyncio.run(job.backfill_all(start, end)).key == job.backfill_all_key(start, end)


def test_computing_only_the_missing_dates_is_a_run_of_its_own() -> None:
    """A full backfill and an only-missing one of the same range both run: no key conflict."""
    job = world()
    start, end = TODAY - dt.timedelta(days=3), TODAY - dt.timedelta(days=1)
    full = asyncio.run(job.backfill(A, start, end))
    again = asyncio.run(job.backfill(A, start, end, only_missing=True))
    assert (full.status, again.status) == ("completed", "completed")
    assert (full.succeeded, again.succeeded) == (3, 0)  # nothing was missing any more
