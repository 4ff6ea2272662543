from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal
from typing import TYPE_CHECKING

from portfolio_snapshots import (
    InMemoryMarketData,
    InMemoryPortfolioRepository,
    Portfolio,
    RunLedger,
    RunLock,
    RunState,
    SnapshotJob,
    SnapshotRepository,
)
from storage.samples import DAY, NOW, PID, plain_snapshot

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractAsyncContextManager

    from portfolio_snapshots import SqliteSnapshotStore
    from portfolio_snapshots.adapters.sqlalchemy import SqlAlchemySnapshotStore

    Factory = Callable[
        [], AbstractAsyncContextManager[SqliteSnapshotStore | SqlAlchemySnapshotStore]
    ]


def test_each_factory_yields_a_fresh_empty_store(factory: Factory) -> None:
    """Every factory yields a store of all three ports, empty each time it is entered."""

    async def main() -> None:
        async with factory() as store:
            assert isinstance(store, SnapshotRepository)
            assert isinstance(store, RunLedger)
            assert isinstance(store, RunLock)
            await store.upsert_many([plain_snapshot(PID, DAY)])
            assert await store.acquire("k", "a", dt.timedelta(minutes=1), NOW) is not None
        async with factory() as store:
            assert await store.existing_dates(PID, DAY, DAY) == frozenset()
            assert await store.get("k") is None
            assert await store.acquire("k", "b", dt.timedelta(minutes=1), NOW) is not None

    asyncio.run(main())


def test_a_daily_run_on_each_store(factory: Factory) -> None:
    """The job runs a day on the store as snapshots, ledger and lock; a rerun stores nothing new."""
    market = InMemoryMarketData()
    market.add_price("AAPL", DAY, Decimal("190.00"))
    portfolios = InMemoryPortfolioRepository(
        [Portfolio(PID, Decimal("100.00"), {"AAPL": Decimal(2)})]
    )

    async def main() -> None:
        async with factory() as store:
            job = SnapshotJob(
                portfolios=portfolios,
                snapshots=store,
                market_data=market,
                ledger=store,
                lock=store,
                clock=lambda: NOW,
            )
            first = await job.run_daily(DAY)
            assert first.ok
            assert first.succeeded == 1
            stored = await store.get_snapshot(PID, DAY)
            assert stored is not None
            assert stored.total_value == Decimal("480.00")
            record = await store.get(f"daily:{DAY.isoformat()}")
            assert record is not None
            assert record.state is RunState.SUCCEEDED
            again = await job.run_daily(DAY)
            assert again.succeeded == first.succeeded
            assert await store.list_snapshots(PID, DAY, DAY) == [stored]

    asyncio.run(main())
