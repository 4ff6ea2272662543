"""The job factory the Dask tests name by import path (``dask_app:make_job``).

Each worker process builds its own job from the JSON file named by ``PS_DASK_TEST_CONFIG``
(written by the test before it submits): the store (SQLite file or PostgreSQL schema), how
many portfolios, the latency of each price request and the lease TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import uuid
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from portfolio_snapshots import (
    Portfolio,
    PriceQuote,
    SnapshotJob,
    SqliteSnapshotStore,
)
from portfolio_snapshots.adapters.sqlalchemy import SqlAlchemySnapshotStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Collection

CONFIG_ENV = "PS_DASK_TEST_CONFIG"
DAY = dt.date(2026, 11, 27)


def portfolio_ids(count: int) -> list[uuid.UUID]:
    """The ids of the test's portfolios."""
    return [uuid.UUID(int=n + 1) for n in range(count)]


class Portfolios:
    """`count` portfolios, each holding 2 of its own ticker, so every batch asks for prices."""

    def __init__(self, count: int) -> None:
        self.ids = portfolio_ids(count)

    async def iter_portfolios(self, as_of: dt.date) -> AsyncIterator[Portfolio]:
        for n, pid in enumerate(self.ids):
            yield Portfolio(pid, Decimal(n), {f"T{n}": Decimal(2)})

    async def get_portfolio(self, portfolio_id: uuid.UUID, as_of: dt.date) -> Portfolio | None:
        if portfolio_id not in self.ids:
            return None
        n = self.ids.index(portfolio_id)
        return Portfolio(portfolio_id, Decimal(n), {f"T{n}": Decimal(2)})


class SlowMarket:
    """Every close is 10, after `delay` seconds per request."""

    def __init__(self, delay: float) -> None:
        self.delay = delay

    async def get_prices(self, tickers: Collection[str], as_of: dt.date) -> dict[str, PriceQuote]:
        await asyncio.sleep(self.delay)
        return {t: PriceQuote(t, Decimal(10), as_of) for t in tickers}


async def open_store(config: dict[str, object]) -> SqliteSnapshotStore | SqlAlchemySnapshotStore:
    """Open the store the config names."""
    if config["store"] == "sqlite":
        return await SqliteSnapshotStore.open(str(config["path"]), busy_timeout=30)
    connect_args = config["connect_args"]
    assert isinstance(connect_args, dict)
    return await SqlAlchemySnapshotStore.open(str(config["url"]), connect_args=connect_args)


def read_config() -> dict[str, object]:
    """The test's current configuration."""
    config: dict[str, object] = json.loads(Path(os.environ[CONFIG_ENV]).read_text())
    return config


@contextlib.asynccontextmanager
async def make_job() -> AsyncIterator[SnapshotJob]:
    """A job over the configured store, which is also its run ledger and lock."""
    config = read_config()
    async with await open_store(config) as store:
        yield SnapshotJob(
            portfolios=Portfolios(int(str(config["portfolios"]))),
            snapshots=store,
            market_data=SlowMarket(float(str(config["delay"]))),
            ledger=store,
            lock=store,
            lease_ttl=dt.timedelta(seconds=float(str(config["lease_ttl"]))),
            batch_size=10,
            concurrency=1,
        )
