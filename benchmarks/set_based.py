"""Benchmark: the library's daily run into PostgreSQL against one set-based SQL statement.

To run:
    python benchmarks/set_based.py [--portfolios 100000] [--positions 10] [--tickers 2000]
                                   [--pg-dsn postgresql://user@host:port/db]

What an engineer might write instead of the library, with holdings and closes already in
PostgreSQL tables: one ``INSERT ... SELECT ... JOIN ... GROUP BY ... ON CONFLICT`` computing
every portfolio's totals in the database. Both sides start from the same seeded tables
(``bench_cash``, ``bench_holdings``, ``bench_closes``, loaded once with ``COPY``):

- set-based: the one statement, writing (portfolio, date, holdings value, total) rows;
- library: ``run_daily`` with a repository streaming the holdings out of those tables (one
  ordered query through an asyncpg cursor), a `MarketData` reading the closes table, and
  `SqlAlchemySnapshotStore` on the same database.

It checks that both wrote a total for every portfolio, equal but for rounding ties (PostgreSQL's
``round()`` breaks ties away from zero, the library to even: a cent per tie), and prints the
ratio (the
library is slower: it reads every row out of the database and writes 10 positions back per
snapshot). What the statement does not do, the library does: exact Decimal rounding per
position to the currency's minor unit, each position stored with the price and price date
used, a missing or stale price failing that portfolio with a typed error (the statement's
inner join silently drops the holding and stores a wrong total), retries of transient
faults, run keys and leases (a rerun or a second worker does nothing twice), FX conversion.
A pandas pipeline (floats) is not measured: pandas is not a dependency of this project.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

if __package__ in {None, ""}:  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg  # type: ignore[import-untyped]

from benchmarks.storage import postgres, schemas, sqlalchemy_url
from portfolio_snapshots import Portfolio, PriceQuote, SnapshotJob
from portfolio_snapshots.adapters.sqlalchemy import SqlAlchemySnapshotStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Collection

DAY = dt.date(2026, 11, 27)
NOW = dt.datetime(2026, 11, 27, 23, tzinfo=dt.UTC)

TABLES = """
CREATE TABLE bench_cash (portfolio_id uuid PRIMARY KEY, cash numeric NOT NULL);
CREATE TABLE bench_holdings (portfolio_id uuid, ticker text, quantity numeric NOT NULL,
                             PRIMARY KEY (portfolio_id, ticker));
CREATE TABLE bench_closes (ticker text PRIMARY KEY, price numeric NOT NULL);
CREATE TABLE bench_totals (portfolio_id uuid, snapshot_date date, holdings_value numeric,
                           total_value numeric, PRIMARY KEY (portfolio_id, snapshot_date));
"""

SET_BASED = """
INSERT INTO bench_totals (portfolio_id, snapshot_date, holdings_value, total_value)
SELECT c.portfolio_id, $1::date, v.holdings, c.cash + v.holdings
FROM bench_cash c
JOIN (SELECT h.portfolio_id, sum(round(h.quantity * p.price, 2)) AS holdings
      FROM bench_holdings h JOIN bench_closes p ON p.ticker = h.ticker
      GROUP BY h.portfolio_id) v ON v.portfolio_id = c.portfolio_id
ON CONFLICT (portfolio_id, snapshot_date) DO UPDATE
SET holdings_value = excluded.holdings_value, total_value = excluded.total_value
"""


class TablePortfolios:
    """Streams the portfolios out of the benchmark's tables, one ordered query."""

    def __init__(self, dsn: str, schema: str) -> None:
        self.dsn, self.schema = dsn, schema

    async def iter_portfolios(self, as_of: dt.date) -> AsyncIterator[Portfolio]:  # noqa: ARG002 - the port's signature
        """Yield each portfolio with its holdings."""
        conn = await asyncpg.connect(self.dsn, server_settings={"search_path": self.schema})
        try:
            async with conn.transaction():
                current: uuid.UUID | None = None
                cash = Decimal(0)
                holdings: dict[str, Decimal] = {}
                query = (
                    "SELECT h.portfolio_id, c.cash, h.ticker, h.quantity FROM bench_holdings h "
                    "JOIN bench_cash c USING (portfolio_id) ORDER BY h.portfolio_id"
                )
                async for pid, pcash, ticker, quantity in conn.cursor(query, prefetch=5000):
                    if pid != current:
                        if current is not None:
                            yield Portfolio(current, cash, holdings)
                        # asyncpg's UUID is a subclass, which the job refuses: a plain one
                        current, cash, holdings = uuid.UUID(bytes=pid.bytes), pcash, {}
                    holdings[ticker] = quantity
                if current is not None:
                    yield Portfolio(current, cash, holdings)
        finally:
            await conn.close()

    async def get_portfolio(self, portfolio_id: uuid.UUID, as_of: dt.date) -> Portfolio | None:  # noqa: ARG002 - the port's signature
        """Not needed by a daily run."""
        return None


class TableCloses:
    """Reads closes out of the benchmark's closes table."""

    def __init__(self, dsn: str, schema: str) -> None:
        self.dsn, self.schema = dsn, schema

    async def get_prices(self, tickers: Collection[str], as_of: dt.date) -> dict[str, PriceQuote]:
        """Return the close of each ticker found."""
        conn = await asyncpg.connect(self.dsn, server_settings={"search_path": self.schema})
        try:
            rows = await conn.fetch(
                "SELECT ticker, price FROM bench_closes WHERE ticker = ANY($1)", list(tickers)
            )
        finally:
            await conn.close()
        return {t: PriceQuote(t, p, as_of) for t, p in rows}


async def load(dsn: str, schema: str, n: int, positions: int, n_tickers: int, seed: int) -> None:  # noqa: PLR0917 - sizes
    """Create and fill the tables with seeded data."""
    rng = random.Random(seed)
    tickers = [f"T{i:05d}" for i in range(n_tickers)]
    closes = [(t, Decimal(rng.randint(100, 500_000)) / 100) for t in tickers]
    cash: list[tuple[uuid.UUID, Decimal]] = []
    holdings: list[tuple[uuid.UUID, str, Decimal]] = []
    for _ in range(n):
        pid = uuid.UUID(int=rng.getrandbits(128))
        cash.append((pid, Decimal(rng.randint(0, 10_000_000)) / 100))
        holdings.extend(
            (pid, t, Decimal(rng.randint(1, 100_000)) / 1000)
            for t in rng.sample(tickers, positions)
        )
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        await conn.execute(TABLES)
        await conn.copy_records_to_table("bench_closes", records=closes)
        await conn.copy_records_to_table("bench_cash", records=cash)
        await conn.copy_records_to_table("bench_holdings", records=holdings)
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def set_based(dsn: str, schema: str) -> tuple[float, dict[uuid.UUID, Decimal]]:
    """Time the one statement; return its time and the totals it wrote."""
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        start = time.perf_counter()
        await conn.execute(SET_BASED, DAY)
        elapsed = time.perf_counter() - start
        rows = await conn.fetch("SELECT portfolio_id, total_value FROM bench_totals")
    finally:
        await conn.close()
    return elapsed, {uuid.UUID(bytes=p.bytes): t for p, t in rows}


async def library(dsn: str, schema: str) -> tuple[float, dict[uuid.UUID, Decimal]]:
    """Time ``run_daily`` into the store on the same database; return time and totals."""
    url = sqlalchemy_url(dsn)
    args = {"server_settings": {"search_path": schema}}
    async with await SqlAlchemySnapshotStore.open(url, connect_args=args, create=False) as store:
        job = SnapshotJob(
            portfolios=TablePortfolios(dsn, schema),
            snapshots=store,
            market_data=TableCloses(dsn, schema),
            clock=lambda: NOW,
        )
        start = time.perf_counter()
        report = await job.run_daily(DAY)
        elapsed = time.perf_counter() - start
        if report.failed:
            raise SystemExit(f"the run failed: {report.failures[:3]}")
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        rows = await conn.fetch(
            "SELECT portfolio_id, total_value FROM ps_snapshots WHERE snapshot_date = $1", DAY
        )
    finally:
        await conn.close()
    return elapsed, {uuid.UUID(str(p)): Decimal(t) for p, t in rows}


async def measure(dsn: str, args: argparse.Namespace) -> tuple[float, float, int, Decimal]:
    """Load the data, run both sides, compare the totals; return both times."""
    async with schemas(dsn, 1) as (schema,):
        await load(dsn, schema, args.portfolios, args.positions, args.tickers, args.seed)
        sql_time, sql_totals = await set_based(dsn, schema)
        lib_time, lib_totals = await library(dsn, schema)
    if sql_totals.keys() != lib_totals.keys() or len(lib_totals) != args.portfolios:
        raise SystemExit("the two sides stored different portfolios")
    gaps = [abs(sql_totals[p] - lib_totals[p]) for p in sql_totals]
    # PostgreSQL's round() breaks ties away from zero, the library to even: a cent per tie.
    if max(gaps) > Decimal("0.01") * args.positions:
        raise SystemExit(f"the totals differ by up to {max(gaps)}")
    differ = sum(1 for g in gaps if g)
    return sql_time, lib_time, differ, max(gaps)


def main() -> None:
    """Parse arguments, run both sides, print the ratio."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--portfolios", type=int, default=100_000)
    parser.add_argument("--positions", type=int, default=10)
    parser.add_argument("--tickers", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=20261127)
    parser.add_argument("--pg-dsn", default=None)
    args = parser.parse_args()
    with postgres(args.pg_dsn) as dsn:
        sql_time, lib_time, differ, gap = asyncio.run(measure(dsn, args))
    print(f"{args.portfolios} portfolios x {args.positions} positions, PostgreSQL")
    print(f"set-based INSERT  : {sql_time:8.3f} s (totals only, nothing else checked)")
    print(f"run_daily         : {lib_time:8.3f} s (snapshots with positions, checked)")
    print(
        f"totals            : {args.portfolios - differ} equal, {differ} differ by up to {gap} "
        "(ties: PostgreSQL's round() goes away from zero, the library's to even)"
    )
    print(
        f"library / SQL     : {lib_time / sql_time:8.2f}x  (no target: the price of what it adds)"
    )


if __name__ == "__main__":
    main()
