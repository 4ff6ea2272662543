"""Benchmark: a daily run fanned out over Dask with 1, 2 and 4 worker processes, on PostgreSQL.

To run:
    python benchmarks/dask_scaling.py [--portfolios 40000] [--workers 1,2,4] [--pg-dsn DSN]

PostgreSQL comes from ``--pg-dsn``, else ``PORTFOLIO_SNAPSHOTS_PG_DSN``, else a throwaway
server started as in ``benchmarks/storage.py``. For each worker count, a fresh
`distributed.LocalCluster` (``processes=True``, one thread per worker) runs
`portfolio_snapshots.integrations.dask.run_daily` with one shard per worker into an empty
schema: each worker generates only its shard's portfolios (each from its own seed, 10
positions over 2,000 tickers; the repository offers `ShardedPortfolios`), values them and
writes them with `SqlAlchemySnapshotStore`. It prints each time and the speed-up over one
worker. On a machine with 2 cores, 2 workers can at best halve the time
(the PostgreSQL server competes for the same cores), and 4 workers cannot beat 2.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import random
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

if __package__ in {None, ""}:  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.memory import Prices
from benchmarks.storage import postgres, schemas, sqlalchemy_url
from portfolio_snapshots import Portfolio, SnapshotJob
from portfolio_snapshots.adapters.sqlalchemy import SqlAlchemySnapshotStore
from portfolio_snapshots.integrations import dask as on_dask

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from portfolio_snapshots.shards import Shard

DAY = dt.date(2026, 11, 27)
CONFIG_ENV = "PS_DASK_BENCH_CONFIG"
ROOT = Path(__file__).resolve().parent.parent


class Generated:
    """`count` portfolios, each made from its own seed, so a shard makes only its own."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.tickers = [f"T{i:05d}" for i in range(2_000)]

    def _made(self, n: int, portfolio_id: uuid.UUID) -> Portfolio:
        rng = random.Random(n)
        return Portfolio(
            portfolio_id,
            Decimal(rng.randint(0, 10_000_000)) / 100,
            {t: Decimal(rng.randint(1, 100_000)) / 1000 for t in rng.sample(self.tickers, 10)},
        )

    async def iter_portfolios(self, as_of: dt.date) -> AsyncIterator[Portfolio]:  # noqa: ARG002 - the port's signature
        """Yield every portfolio."""
        for n in range(self.count):
            yield self._made(n, uuid.UUID(int=n + 1))

    async def iter_shard(self, as_of: dt.date, shard: Shard) -> AsyncIterator[Portfolio]:  # noqa: ARG002 - the port's signature
        """Yield the shard's portfolios, making no other (the `ShardedPortfolios` push-down)."""
        for n in range(self.count):
            portfolio_id = uuid.UUID(int=n + 1)
            if shard.contains(portfolio_id):
                yield self._made(n, portfolio_id)

    async def get_portfolio(self, portfolio_id: uuid.UUID, as_of: dt.date) -> Portfolio | None:  # noqa: ARG002 - the port's signature
        """Not needed by a daily run."""
        return None


@contextlib.asynccontextmanager
async def make_job() -> AsyncIterator[SnapshotJob]:
    """The job each worker builds: generated portfolios into the configured schema."""
    config = json.loads(os.environ[CONFIG_ENV])
    store = await SqlAlchemySnapshotStore.open(
        config["url"],
        create=False,
        connect_args={"server_settings": {"search_path": config["schema"]}},
    )
    async with store:
        yield SnapshotJob(
            portfolios=Generated(config["portfolios"]),
            snapshots=store,
            market_data=Prices(),
            ledger=store,
            lock=store,
        )


def timed_run(workers: int, portfolios: int, url: str, schema: str) -> float:
    """Time one fanned-out daily run on a fresh cluster of `workers` processes."""
    from distributed import Client, LocalCluster  # noqa: PLC0415 - the extra, imported late

    os.environ[CONFIG_ENV] = json.dumps({"url": url, "schema": schema, "portfolios": portfolios})
    os.environ["PYTHONPATH"] = str(ROOT)
    with (
        LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            memory_limit="1GiB",
            dashboard_address=":0",
            silence_logs=50,
        ) as cluster,
        Client(cluster) as client,  # type: ignore[no-untyped-call]
    ):
        start = time.perf_counter()
        report = on_dask.run_daily(client, "benchmarks.dask_scaling:make_job", DAY, shards=workers)
        elapsed = time.perf_counter() - start
    if report.succeeded != portfolios or report.failed:
        raise SystemExit(f"{workers} workers stored {report.succeeded} of {portfolios}")
    return elapsed


def measure(portfolios: int, counts: list[int], dsn: str | None) -> dict[int, float]:
    """Time the run with each worker count, each into an empty schema."""
    times: dict[int, float] = {}
    with postgres(dsn) as server:

        async def run_all() -> None:
            async with schemas(server, len(counts)) as names:
                for workers, schema in zip(counts, names, strict=True):
                    times[workers] = await asyncio.to_thread(
                        timed_run, workers, portfolios, sqlalchemy_url(server), schema
                    )

        asyncio.run(run_all())
    return times


def main() -> None:
    """Parse arguments, time each worker count, print the speed-ups."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--portfolios", type=int, default=40_000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--pg-dsn", default=None)
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    times = measure(args.portfolios, counts, args.pg_dsn)
    print(f"{args.portfolios} portfolios x 10 positions, PostgreSQL, {os.cpu_count()} cores")
    for workers, seconds in times.items():
        print(f"{workers} worker(s)       : {seconds:8.2f} s")
    base = times[counts[0]]
    for workers in counts[1:]:
        target = min(workers, os.cpu_count() or 1) * 0.6
        print(
            f"speed-up {workers} workers : {base / times[workers]:8.2f}x  (target >= {target:.1f}x)"
        )


if __name__ == "__main__":
    main()
