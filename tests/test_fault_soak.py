"""30 % transient faults on all five ports at once: one run and at most one rerun store all."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from portfolio_snapshots import (
    InMemoryMarketData,
    InMemoryPortfolioRepository,
    Portfolio,
    RetryPolicy,
    RunReport,
    SnapshotJob,
    SqliteSnapshotStore,
    TransientError,
)
from portfolio_snapshots.testing import (
    FakeClock,
    Fault,
    FaultyMarketData,
    FaultyPortfolioRepository,
    FaultyRunLedger,
    FaultyRunLock,
    FaultySnapshotRepository,
    instant_retry,
)

if TYPE_CHECKING:
    from pathlib import Path

DAY = dt.date(2026, 11, 27)
TICKERS = [f"T{n:03d}" for n in range(60)]


def world() -> tuple[InMemoryPortfolioRepository, InMemoryMarketData]:
    portfolios = InMemoryPortfolioRepository(
        Portfolio(
            uuid.UUID(int=n),
            Decimal(n),
            {TICKERS[n % 60]: Decimal(n % 9 + 1), TICKERS[(n * 7) % 60]: Decimal(2)},
        )
        for n in range(1, 1001)
    )
    market = InMemoryMarketData()
    for j, ticker in enumerate(TICKERS):
        market.add_price(ticker, DAY, Decimal(10 + j))
    return portfolios, market


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_run_at_30_percent_faults_on_every_port_stores_all_1000(
    tmp_path: Path, seed: int
) -> None:
    """Faults on portfolios, prices, snapshots, ledger and lock: all stored, no lease held."""
    portfolios, market = world()
    clock = FakeClock(dt.datetime(2026, 11, 28, 0, 1, tzinfo=dt.UTC))  # frozen: never advanced

    def fault(port: int) -> Fault:
        return Fault(fail_rate=0.3, seed=seed * 10 + port)

    async def scenario() -> tuple[list[RunReport | BaseException], int, bool]:
        async with await SqliteSnapshotStore.open(tmp_path / "soak.sqlite3") as store:
            job = SnapshotJob(
                portfolios=FaultyPortfolioRepository(portfolios, fault(1)),
                snapshots=FaultySnapshotRepository(store, fault(2)),
                market_data=FaultyMarketData(market, fault(3)),
                ledger=FaultyRunLedger(store, fault(4)),
                lock=FaultyRunLock(store, fault(5)),
                clock=clock,
                retry=instant_retry(RetryPolicy(max_attempts=6)),
                batch_size=100,
            )
            outcomes: list[RunReport | BaseException] = []
            for _ in range(2):  # one run, and at most one rerun
                try:
                    report = await job.run_daily(DAY)
                except TransientError as error:  # the lock or the ledger out for good
                    outcomes.append(error)
                    continue
                outcomes.append(report)
                if report.status != "completed" or report.failed == 0:
                    break
            keys = [(uuid.UUID(int=n), DAY) for n in range(1, 1001)]
            stored = len(await store.existing_keys(keys))
            free = await store.acquire(
                f"daily:{DAY.isoformat()}", "probe", dt.timedelta(minutes=1), clock()
            )
            return outcomes, stored, free is not None

    outcomes, stored, lease_free = asyncio.run(scenario())
    assert stored == 1000
    assert lease_free, "a lease was left held"
    last = outcomes[-1]
    assert isinstance(last, RunReport)
    assert last.status in {"completed", "already_succeeded"}
    assert last.failed == 0
