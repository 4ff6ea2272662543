"""One OS process running `SnapshotJob.run_daily` on a shared store, for the race tests.

Run by ``tests/storage/test_process_races.py`` with ``sys.executable``; not a test itself::

    python tests/storage/race_worker.py --sqlite /tmp/x/store.db --portfolios 100 ...
    python tests/storage/race_worker.py --postgres postgresql+asyncpg://... --schema t_abc ...

It opens the store (`SqliteSnapshotStore` on a file, or `SqlAlchemySnapshotStore` on
PostgreSQL), builds a seeded world of ``--portfolios`` portfolios, and wires a job with the
store as snapshots, ledger and lock. With ``--ready`` and ``--go`` it then creates the ready
file and polls for the go file, so that the parent can release several workers at the same
moment. It runs one date and prints the report (``RunReport.as_dict()``) as one line of JSON.

``--delay`` makes every portfolio take that many seconds to arrive, so runs overlap; with
``--stall-after N`` the portfolio after the first N never arrives, so the process stays in the
middle of its run (lease held, the batches of those N portfolios stored) until it is killed.
``--clock-offset`` shifts the job's clock, to act as if a lease's TTL had passed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from portfolio_snapshots import (
    InMemoryMarketData,
    InMemoryPortfolioRepository,
    Portfolio,
    SnapshotJob,
    SqliteSnapshotStore,
    utc_now,
)
from portfolio_snapshots.adapters.sqlalchemy import SqlAlchemySnapshotStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

#: The date every worker snapshots: in the past, so the real clock (shifted or not) allows it.
DAY = dt.date(2025, 1, 2)
TICKERS = tuple(f"T{i:02d}" for i in range(20))
#: How long a worker waits for the go file before giving up.
GO_TIMEOUT = 60.0


def world(n_portfolios: int, seed: int = 20250102) -> tuple[list[Portfolio], InMemoryMarketData]:
    """Return the same seeded portfolios and prices in every worker."""
    rng = random.Random(seed)
    market = InMemoryMarketData()
    for ticker in TICKERS:
        market.add_price(ticker, DAY, Decimal(rng.randint(100, 50_000)) / 100)
    portfolios = [
        Portfolio(
            uuid.UUID(int=i + 1),
            Decimal(rng.randint(0, 1_000_000)) / 100,
            {t: Decimal(rng.randint(1, 10_000)) / 100 for t in rng.sample(TICKERS, 3)},
        )
        for i in range(n_portfolios)
    ]
    return portfolios, market


class SlowPortfolios:
    """Portfolios from `inner`, each taking `delay` seconds; after `stall_after`, none comes.

    Stalling the stream, not the prices, keeps the victim's stop independent of how the job
    groups its price requests: the batches cut from the first `stall_after` portfolios are
    valued and stored, then the run waits, lease held, for a portfolio that never comes.
    """

    def __init__(
        self, inner: InMemoryPortfolioRepository, delay: float, stall_after: int | None
    ) -> None:
        self.inner = inner
        self.delay = delay
        self.stall_after = stall_after

    async def iter_portfolios(self, as_of: dt.date) -> AsyncIterator[Portfolio]:
        async for count, portfolio in _enumerate(self.inner.iter_portfolios(as_of)):
            if self.stall_after is not None and count >= self.stall_after:
                await asyncio.Event().wait()  # the process is killed while it waits here
            if self.delay:
                await asyncio.sleep(self.delay)
            yield portfolio

    async def get_portfolio(self, portfolio_id: uuid.UUID, as_of: dt.date) -> Portfolio | None:
        return await self.inner.get_portfolio(portfolio_id, as_of)


async def _enumerate(items: AsyncIterator[Portfolio]) -> AsyncIterator[tuple[int, Portfolio]]:
    count = 0
    async for item in items:
        yield count, item
        count += 1


def wait_for_go(ready: Path, go: Path) -> None:
    """Say we are ready, then poll until the parent releases us (another process: no Event)."""
    ready.touch()
    deadline = time.monotonic() + GO_TIMEOUT
    while not go.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no go file {go} after {GO_TIMEOUT} s")
        time.sleep(0.002)


async def run(args: argparse.Namespace) -> dict[str, object]:
    """Open the store, run the day, close the store; return the report as a dict."""
    store: SqliteSnapshotStore | SqlAlchemySnapshotStore
    if args.sqlite:
        store = await SqliteSnapshotStore.open(args.sqlite)
    else:
        # The application name lets the parent see when the server has dropped our sessions.
        settings = {"application_name": f"{args.schema}-{args.name}"[:63]}
        if args.schema:
            settings["search_path"] = args.schema
        store = await SqlAlchemySnapshotStore.open(
            args.postgres, connect_args={"server_settings": settings}
        )
    offset = dt.timedelta(seconds=args.clock_offset)
    portfolios, market = world(args.portfolios)
    async with store:
        job = SnapshotJob(
            portfolios=SlowPortfolios(
                InMemoryPortfolioRepository(portfolios), args.delay, args.stall_after
            ),
            market_data=market,
            snapshots=store,
            ledger=store,
            lock=store,
            clock=lambda: utc_now() + offset,
            lease_ttl=dt.timedelta(seconds=args.lease_ttl),
            batch_size=args.batch,
            concurrency=args.concurrency,
        )
        if args.ready and args.go:
            await asyncio.to_thread(wait_for_go, Path(args.ready), Path(args.go))
        report = await job.run_daily(DAY)
    return report.as_dict()


def main() -> None:
    """Parse the arguments, run, and print the report as one line of JSON."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--sqlite", help="SqliteSnapshotStore on this file")
    where.add_argument("--postgres", help="SqlAlchemySnapshotStore on this asyncpg URL")
    parser.add_argument("--schema", help="PostgreSQL schema to put on the search path")
    parser.add_argument("--name", default="worker", help="names the PostgreSQL sessions")
    parser.add_argument("--portfolios", type=int, default=20)
    parser.add_argument("--batch", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--stall-after", type=int, default=None)
    parser.add_argument("--lease-ttl", type=float, default=300.0)
    parser.add_argument("--clock-offset", type=float, default=0.0)
    parser.add_argument("--ready", help="file to create once ready")
    parser.add_argument("--go", help="file to wait for before running")
    report = asyncio.run(run(parser.parse_args()))
    sys.stdout.write(json.dumps(report) + "\n")


if __name__ == "__main__":
    main()
