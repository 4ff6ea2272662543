"""Benchmark: the library's daily run into PostgreSQL against what an engineer might write instead.

To run:
    pip install -e '.[bench]'     # pandas and its stubs: the pandas pipeline needs them
    python benchmarks/set_based.py [--portfolios 100000] [--positions 10] [--tickers 2000]
                                   [--rounds 3] [--concurrency 4] [--breakdown]
                                   [--pg-dsn postgresql://user@host:port/db]

pandas is not a dependency of the library, nor of the ``dev`` extra: it comes with the
``bench`` extra. Without it this script measures the other sides and says that the pandas
pipeline was not measured. PostgreSQL comes from ``--pg-dsn``, else
``PORTFOLIO_SNAPSHOTS_PG_DSN``, else a throwaway server the script starts (see
``benchmarks/storage.py``). ``--portfolios 2000 --rounds 1`` is a smoke run of a few seconds.

Every side starts from the same seeded tables (``bench_cash``, ``bench_holdings``,
``bench_closes``, loaded once with ``COPY``) and writes into empty tables of its own; the
sides run one after the other, ``--rounds`` times, and each keeps its best time:

- **library**: ``run_daily`` with a repository streaming the portfolios out of those tables
  (one query grouped per portfolio, through an asyncpg cursor), a `MarketData` reading the
  closes table, and `SqlAlchemySnapshotStore` on the same database as store, run ledger and
  lock (a run key, a lease and fenced writes, as in production). It writes schema version 2:
  a row per snapshot with its totals and its positions in the compact form (ticker and
  quantity; the exact market value too when the price does not give it back) and the day's
  prices once per ticker in ``ps_prices``.
- **pandas**: what a data engineer might write: read the three tables out with ``COPY ... TO
  STDOUT`` into DataFrames (floats), merge holdings with closes, value each position
  (quantity times price, rounded to cents), sum per portfolio, add cash, and write the
  totals back with ``COPY`` into a temporary table and one ``INSERT ... ON CONFLICT`` (an
  upsert, so a rerun replaces). Timed with its reads and writes.
- **SQL, totals only**: one ``INSERT ... SELECT ... JOIN ... GROUP BY ... ON CONFLICT``
  computing every portfolio's totals in the database.
- **SQL, same data**: two statements in one transaction that store what the library stores,
  into tables made by the library's own schema code: the day's prices once per ticker into
  ``ps_prices``, and every snapshot into ``ps_snapshots`` with its totals as decimal text and
  its positions as the same compact text (``string_agg`` of ticker and quantity per
  position, in ticker order), market values rounded half to even as the library rounds,
  upserted fenced as the library upserts. The script checks that its rows equal the
  library's, column for column (the fence aside).

It then checks the totals: the library's against the totals-only statement's (equal but for
rounding ties: PostgreSQL's ``round()`` breaks ties away from zero, the library to even) and
against the pandas pipeline's (it counts the totals more than half a cent away from the
library's exact Decimal ones, and their share). It prints the three ratios side by side,
with the targets of issue 14: the library at or below the pandas pipeline, and within 1.5x
of the statements that store the same data; the totals-only statement has no target.

What the alternatives do not do, the library does: exact Decimal arithmetic (pandas uses
binary floats: a total can be a cent off; PostgreSQL's numeric is exact, but its ``round()``
breaks ties away from zero unless written otherwise, as the same-data statements do); each
position stored with the price and price date used (neither the pandas pipeline nor the
totals-only statement keeps positions; the same-data statements do, for this one simple case
only: one currency, every close of the day, no FX rate, no stale price); a missing price
(an inner join drops the holding and stores a wrong total, silently; pandas' left join would
value it at zero), a stale price (used as if current) and a bad value failing that portfolio
alone with a typed error; retries of transient faults with the failed batch isolated; run
keys and a fenced lease (a rerun of a finished day does nothing; two schedulers running the
same day at once write once; the alternatives' upserts only make a rerun rewrite the same
rows); FX conversion; events and a report per run.

``--breakdown`` then times the parts of the library's run alone, on the same data: reading
the stream, valuing it (``run_daily`` from memory into memory), writing (``upsert_many`` of
the valued snapshots, batch after batch), encoding the rows (the codec's compact positions,
part of the write), and the run from memory into the store; they overlap in a run.

The script prints the retries of the library's run in each round, and stops if the run did
not store every portfolio. ``--concurrency`` sets ``run_daily``'s batches in flight (4 by
default); this benchmark is where a deadlock between batches inserting the day's new
``ps_prices`` rows at once was found, now fixed (see docs/performance.md).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import gc
import importlib
import io
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

import asyncpg  # type: ignore[import-untyped]

from benchmarks.storage import postgres, schemas, sqlalchemy_url
from portfolio_snapshots import (
    InMemoryMarketData,
    InMemoryPortfolioRepository,
    InMemorySnapshotRepository,
    Portfolio,
    PriceQuote,
    SnapshotJob,
)
from portfolio_snapshots.adapters._sql_codec import PriceCatalog, dedupe_sorted
from portfolio_snapshots.adapters.sqlalchemy import SqlAlchemySnapshotStore
from portfolio_snapshots.events import RetryScheduled

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Collection

    from portfolio_snapshots import MarketData, PortfolioRepository
    from portfolio_snapshots.events import RunEvent

DAY = dt.date(2026, 11, 27)
NOW = dt.datetime(2026, 11, 27, 23, tzinfo=dt.UTC)
CENTS = Decimal("0.01")
HALF_CENT = Decimal("0.005")
#: The fence the same-data statements write under (the library's lease takes its own).
FENCE = 1
BATCH = 500

TABLES = """
CREATE TABLE bench_cash (portfolio_id uuid PRIMARY KEY, cash numeric NOT NULL);
CREATE TABLE bench_holdings (portfolio_id uuid, ticker text, quantity numeric NOT NULL,
                             PRIMARY KEY (portfolio_id, ticker));
CREATE TABLE bench_closes (ticker text PRIMARY KEY, price numeric NOT NULL);
CREATE TABLE bench_totals (portfolio_id uuid, snapshot_date date, holdings_value numeric,
                           total_value numeric, PRIMARY KEY (portfolio_id, snapshot_date));
CREATE TABLE bench_pandas_totals (portfolio_id uuid, snapshot_date date,
                                  holdings_value numeric, total_value numeric,
                                  PRIMARY KEY (portfolio_id, snapshot_date));
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

# The same data as the library: the day's closes once per ticker held (variant 0: the close
# of the day, in the portfolio's currency, not stale), then one row per snapshot whose
# positions are the library's compact text, "ticker|quantity" joined by ";" in ticker order
# (code point order, hence COLLATE "C"): a market value that is quantity x price rounded to
# cents, half to even, is left out, as the library leaves it out. The holdings' total sums
# those values, rounded half to even as the library rounds (PostgreSQL's round() goes away
# from zero; the amounts here are positive, which the expression relies on). Run with the
# search path naming the store's schema first, then the benchmark's tables.
SAME_DATA_PRICES = """
INSERT INTO ps_prices (snapshot_date, ticker, variant, price, price_date, price_currency,
                       fx_rate, stale)
SELECT $1::date, p.ticker, 0, p.price::text, $1::date, 'USD', NULL, false
FROM bench_closes p
WHERE EXISTS (SELECT FROM bench_holdings h WHERE h.ticker = p.ticker)
ORDER BY p.ticker
ON CONFLICT DO NOTHING
"""

SAME_DATA_SNAPSHOTS = """
INSERT INTO ps_snapshots (portfolio_id, snapshot_date, currency, cash_balance, holdings_value,
                          total_value, net_contributions, external_flow, stale, positions,
                          fence)
SELECT c.portfolio_id, $1::date, 'USD', c.cash::text, v.holdings::text,
       (c.cash + v.holdings)::text, NULL, NULL, false, v.positions, $2::bigint
FROM bench_cash c
JOIN (SELECT h.portfolio_id,
             sum(m.value) AS holdings,
             string_agg(h.ticker || '|' || h.quantity::text, ';'
                        ORDER BY h.ticker COLLATE "C") AS positions
      FROM bench_holdings h
      JOIN bench_closes p ON p.ticker = h.ticker
      CROSS JOIN LATERAL (SELECT h.quantity * p.price * 100 AS cents) x
      CROSS JOIN LATERAL (
          SELECT CASE WHEN x.cents % 1 = 0.5 AND trunc(x.cents) % 2 = 0
                      THEN trunc(x.cents) ELSE round(x.cents) END * 0.01 AS value) m
      GROUP BY h.portfolio_id) v ON v.portfolio_id = c.portfolio_id
ORDER BY c.portfolio_id
ON CONFLICT (portfolio_id, snapshot_date) DO UPDATE
SET currency = excluded.currency, cash_balance = excluded.cash_balance,
    holdings_value = excluded.holdings_value, total_value = excluded.total_value,
    net_contributions = excluded.net_contributions, external_flow = excluded.external_flow,
    stale = excluded.stale, positions = excluded.positions, fence = excluded.fence
WHERE ps_snapshots.fence <= excluded.fence
  AND (ps_snapshots.currency, ps_snapshots.cash_balance, ps_snapshots.holdings_value,
       ps_snapshots.total_value, ps_snapshots.net_contributions, ps_snapshots.external_flow,
       ps_snapshots.stale, ps_snapshots.positions)
      IS DISTINCT FROM
      (excluded.currency, excluded.cash_balance, excluded.holdings_value,
       excluded.total_value, excluded.net_contributions, excluded.external_flow,
       excluded.stale, excluded.positions)
"""

# The pandas pipeline's upsert, from the temporary table its COPY filled.
PANDAS_LOAD = """
CREATE TEMPORARY TABLE pandas_totals (portfolio_id uuid, holdings_value float8,
                                      total_value float8) ON COMMIT DROP
"""
PANDAS_UPSERT = """
INSERT INTO bench_pandas_totals (portfolio_id, snapshot_date, holdings_value, total_value)
SELECT portfolio_id, $1::date, round(holdings_value::numeric, 2), round(total_value::numeric, 2)
FROM pandas_totals
ON CONFLICT (portfolio_id, snapshot_date) DO UPDATE
SET holdings_value = excluded.holdings_value, total_value = excluded.total_value
"""

SNAPSHOT_COLUMNS = (
    "portfolio_id, snapshot_date, currency, cash_balance, holdings_value, total_value, "
    "net_contributions, external_flow, stale, positions"
)
PRICE_COLUMNS = "snapshot_date, ticker, variant, price, price_date, price_currency, fx_rate, stale"
#: What each side writes, emptied before each of its rounds.
LIBRARY_TABLES = "ps_snapshots, ps_prices, ps_runs, ps_leases"
STORE_TABLES = "ps_snapshots, ps_prices"

Totals = dict[uuid.UUID, Decimal]


# --- the library's adapters over the benchmark's tables ----------------------------------------


class TablePortfolios:
    """Streams the portfolios out of the benchmark's tables, one query grouped per portfolio.

    Each row is a portfolio: its id, its cash and its holdings as one text (``ticker
    quantity`` pairs, the tickers here hold no space), parsed into Decimals here: asyncpg
    decodes a ``numeric`` into a `Decimal` several times slower than ``Decimal(text)``, and a
    row per holding (a million rows through a cursor) took 4.5 to 6 s of a 100,000-portfolio
    run, this form about 1.5 s.
    """

    QUERY = (
        "SELECT c.portfolio_id, c.cash, string_agg(h.ticker || ' ' || h.quantity::text, ' ') "
        "FROM bench_cash c JOIN bench_holdings h USING (portfolio_id) "
        "GROUP BY c.portfolio_id ORDER BY c.portfolio_id"
    )

    def __init__(self, dsn: str, schema: str) -> None:
        self.dsn, self.schema = dsn, schema

    async def iter_portfolios(self, as_of: dt.date) -> AsyncIterator[Portfolio]:  # noqa: ARG002 - the port's signature
        """Yield each portfolio with its holdings."""
        conn = await asyncpg.connect(self.dsn, server_settings={"search_path": self.schema})
        try:
            async with conn.transaction():
                async for pid, cash, text in conn.cursor(self.QUERY, prefetch=5000):
                    parts = text.split(" ")
                    holdings = dict(zip(parts[::2], map(Decimal, parts[1::2]), strict=True))
                    # asyncpg's own UUID (a subclass of uuid.UUID), as a host hands it on
                    yield Portfolio(pid, cash, holdings)
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


# --- data --------------------------------------------------------------------------------------


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
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def empty(dsn: str, schema: str, tables: str) -> None:
    """Empty `tables` (so each round writes into empty tables) and let the server settle."""
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        await conn.execute(f"TRUNCATE {tables}")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def fetch_totals(dsn: str, schema: str, table: str) -> Totals:
    """Return the total of every portfolio stored in `table` on the day."""
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        rows = await conn.fetch(
            f"SELECT portfolio_id, total_value FROM {table} WHERE snapshot_date = $1",  # noqa: S608 - our own table names
            DAY,
        )
    finally:
        await conn.close()
    return {uuid.UUID(bytes=p.bytes): Decimal(t) for p, t in rows}


# --- the sides -----------------------------------------------------------------------------------


class Retries:
    """An event hook that keeps the retries of a run (what it logs by default, kept quiet)."""

    def __init__(self) -> None:
        self.seen: list[RetryScheduled] = []

    def __call__(self, event: RunEvent, /) -> None:
        """Keep `event` if it is a retry."""
        if isinstance(event, RetryScheduled):
            self.seen.append(event)


async def library(  # noqa: PLR0917 - where, how, and optionally from what
    dsn: str,
    schema: str,
    concurrency: int,
    retries: list[Retries],
    portfolios: PortfolioRepository | None = None,
    market_data: MarketData | None = None,
) -> float:
    """Time ``run_daily`` into the store in `schema`; keep its retries in `retries`.

    Args:
        dsn: The database.
        schema: The schema of the store's tables (and of the benchmark's, by default).
        concurrency: ``run_daily``'s batches in flight.
        retries: Where to add the run's retries.
        portfolios: The repository to read; by default `TablePortfolios` on `schema`.
        market_data: The closes; by default `TableCloses` on `schema`.
    """
    hook = Retries()
    retries.append(hook)
    url = sqlalchemy_url(dsn)
    args = {"server_settings": {"search_path": schema}}
    async with await SqlAlchemySnapshotStore.open(url, connect_args=args, create=False) as store:
        job = SnapshotJob(
            portfolios=portfolios or TablePortfolios(dsn, schema),
            snapshots=store,
            market_data=market_data or TableCloses(dsn, schema),
            ledger=store,
            lock=store,
            events=hook,
            clock=lambda: NOW,
            concurrency=concurrency,
        )
        start = time.perf_counter()
        report = await job.run_daily(DAY)
        elapsed = time.perf_counter() - start
    if report.failed:
        first = report.failures[0]
        raise SystemExit(
            f"the library's run failed for {report.failed} portfolios, e.g. "
            f"{first.error_type}: {first.message}"
        )
    return elapsed


async def set_based(dsn: str, schema: str) -> float:
    """Time the one totals-only statement."""
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        start = time.perf_counter()
        await conn.execute(SET_BASED, DAY)
        return time.perf_counter() - start
    finally:
        await conn.close()


async def same_data(dsn: str, schema: str, tables: str) -> float:
    """Time the two statements storing the library's rows into `schema`'s store tables."""
    conn = await asyncpg.connect(dsn, server_settings={"search_path": f"{schema}, {tables}"})
    try:
        start = time.perf_counter()
        async with conn.transaction():
            await conn.execute(SAME_DATA_PRICES, DAY)
            await conn.execute(SAME_DATA_SNAPSHOTS, DAY, FENCE)
        return time.perf_counter() - start
    finally:
        await conn.close()


def pandas_available() -> bool:
    """Import pandas (outside the timings) if it is installed: the ``bench`` extra has it."""
    try:
        importlib.import_module("pandas")
    except ImportError:
        return False
    return True


def pandas_totals(
    holdings_csv: bytes, cash_csv: bytes, closes_csv: bytes
) -> list[tuple[str, float, float]]:
    """Compute (portfolio id, holdings value, total) per portfolio with pandas, in floats."""
    # pandas comes with the bench extra only: imported here, so the module imports without it.
    import pandas as pd  # type: ignore[import-not-found, import-untyped, unused-ignore]  # noqa: PLC0415

    holdings = pd.read_csv(
        io.BytesIO(holdings_csv),
        names=["portfolio_id", "ticker", "quantity"],
        dtype={"portfolio_id": "str", "ticker": "str", "quantity": "float64"},
    )
    cash = pd.read_csv(
        io.BytesIO(cash_csv),
        names=["portfolio_id", "cash"],
        dtype={"portfolio_id": "str", "cash": "float64"},
    )
    closes = pd.read_csv(
        io.BytesIO(closes_csv),
        names=["ticker", "price"],
        dtype={"ticker": "str", "price": "float64"},
    )
    # As an engineer writes it: an inner join (a holding without a close disappears), each
    # position rounded to cents, summed per portfolio, then the cash added.
    valued = holdings.merge(closes, on="ticker", how="inner")
    valued["value"] = (valued["quantity"] * valued["price"]).round(2)
    by_portfolio = valued.groupby("portfolio_id", sort=False)["value"].sum().rename("holdings")
    totals = cash.merge(by_portfolio, left_on="portfolio_id", right_index=True, how="inner")
    totals["holdings"] = totals["holdings"].round(2)
    totals["total"] = (totals["cash"] + totals["holdings"]).round(2)
    ids: list[str] = totals["portfolio_id"].astype(str).tolist()
    values: list[float] = totals["holdings"].astype(float).tolist()
    sums: list[float] = totals["total"].astype(float).tolist()
    return list(zip(ids, values, sums, strict=True))


async def copied_out(conn: asyncpg.Connection, table: str) -> bytes:
    """Return `table` as CSV, read with ``COPY ... TO STDOUT``."""
    chunks: list[bytes] = []

    async def sink(data: bytes) -> None:
        chunks.append(data)

    await conn.copy_from_table(table, output=sink, format="csv")
    return b"".join(chunks)


async def pandas_pipeline(dsn: str, schema: str) -> float:
    """Time the pandas pipeline: COPY out, DataFrames, COPY in, upsert."""
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        start = time.perf_counter()
        holdings = await copied_out(conn, "bench_holdings")
        cash = await copied_out(conn, "bench_cash")
        closes = await copied_out(conn, "bench_closes")
        rows = pandas_totals(holdings, cash, closes)
        async with conn.transaction():
            await conn.execute(PANDAS_LOAD)
            await conn.copy_records_to_table("pandas_totals", records=rows)
            await conn.execute(PANDAS_UPSERT, DAY)
        return time.perf_counter() - start
    finally:
        await conn.close()


# --- checks ----------------------------------------------------------------------------------


async def check_same_data(dsn: str, library_schema: str, sql_schema: str, n: int) -> int:
    """Check the same-data statements stored the library's rows; return the rows compared."""
    conn = await asyncpg.connect(dsn)
    try:
        found: list[set[tuple[object, ...]]] = []
        for schema in (library_schema, sql_schema):
            snapshots = await conn.fetch(
                f'SELECT {SNAPSHOT_COLUMNS} FROM "{schema}".ps_snapshots'  # noqa: S608 - ours
            )
            prices = await conn.fetch(f'SELECT {PRICE_COLUMNS} FROM "{schema}".ps_prices')  # noqa: S608 - ours
            rows: set[tuple[object, ...]] = {("snapshot", *r) for r in snapshots}
            rows.update(("price", *r) for r in prices)
            found.append(rows)
    finally:
        await conn.close()
    ours, theirs = found
    if len(ours) < n or ours != theirs:
        differ = sorted(ours ^ theirs, key=str)[:4]
        raise SystemExit(
            f"the same-data statements did not store the library's rows: "
            f"{len(ours ^ theirs)} rows differ, e.g. {differ}"
        )
    return len(ours)


def check_ties(lib: Totals, sql: Totals, positions: int) -> tuple[int, Decimal]:
    """Check the totals-only statement's totals are the library's but for rounding ties.

    Returns:
        How many totals differ, and by how much at most.
    """
    if sql.keys() != lib.keys():
        raise SystemExit("the totals-only statement and the library stored other portfolios")
    gaps = [abs(sql[p] - lib[p]) for p in sql]
    # PostgreSQL's round() breaks ties away from zero, the library to even: a cent per tie.
    if max(gaps) > CENTS * positions:
        raise SystemExit(f"the totals-only statement's totals differ by up to {max(gaps)}")
    return sum(1 for g in gaps if g), max(gaps)


def off_by_more_than_half_a_cent(lib: Totals, other: Totals) -> tuple[int, Decimal]:
    """Count `other`'s totals more than half a cent away from the library's; the largest gap."""
    if other.keys() != lib.keys():
        raise SystemExit("the pandas pipeline and the library stored other portfolios")
    gaps = [abs(other[p] - lib[p]) for p in lib]
    return sum(1 for g in gaps if g > HALF_CENT), max(gaps)


# --- the breakdown of the library's time --------------------------------------------------------


async def breakdown(  # noqa: PLR0917 - where, then how
    dsn: str, schema: str, scratch: str, n: int, concurrency: int, retries: list[Retries]
) -> list[tuple[str, float]]:
    """Time the parts of the library's run alone; return (what, seconds) in order.

    The first three add up to the run done one part after the other: reading the stream,
    valuing it, writing the snapshots; encoding is part of the write, shown alone; the last
    is the run from memory into the store (valuing and writing, overlapped as a run does).
    """
    parts: list[tuple[str, float]] = []
    start = time.perf_counter()
    portfolios = [p async for p in TablePortfolios(dsn, schema).iter_portfolios(DAY)]
    parts.append(("read the stream (TablePortfolios alone)", time.perf_counter() - start))
    # What the parts hold at once (a run never holds it) is kept out of the collector's sight.
    gc.collect()
    gc.freeze()

    closes = await TableCloses(dsn, schema).get_prices(
        {t for p in portfolios for t in p.holdings}, DAY
    )
    memory = InMemorySnapshotRepository()
    job = SnapshotJob(
        portfolios=InMemoryPortfolioRepository(portfolios),
        snapshots=memory,
        market_data=InMemoryMarketData(closes.values()),
        clock=lambda: NOW,
    )
    start = time.perf_counter()
    report = await job.run_daily(DAY)
    parts.append(("value (run_daily from memory into memory)", time.perf_counter() - start))
    snapshots = memory.all()
    if report.succeeded != n or len(snapshots) != n:
        raise SystemExit(f"the in-memory run stored {len(snapshots)} of {n}")
    batches = [snapshots[i : i + BATCH] for i in range(0, n, BATCH)]
    gc.collect()
    gc.freeze()

    await empty(dsn, scratch, STORE_TABLES)
    url = sqlalchemy_url(dsn)
    args = {"server_settings": {"search_path": scratch}}
    async with await SqlAlchemySnapshotStore.open(url, connect_args=args, create=False) as store:
        start = time.perf_counter()
        for batch in batches:
            await store.upsert_many(batch, fence=FENCE)
        write = time.perf_counter() - start
    parts.append(("write (upsert_many, batch after batch)", write))

    catalog = PriceCatalog()
    start = time.perf_counter()
    for batch in batches:
        plan = catalog.plan(dedupe_sorted(batch))
        plan.resolve({})
        for s in batch:
            plan.encode(s)
        plan.commit()
    parts.append(("  of which encoding (the codec alone)", time.perf_counter() - start))

    await empty(dsn, scratch, LIBRARY_TABLES)
    from_memory = await library(
        dsn,
        scratch,
        concurrency,
        retries,
        InMemoryPortfolioRepository(portfolios),
        InMemoryMarketData(closes.values()),
    )
    parts.append(("run_daily from memory into the store", from_memory))
    return parts


# --- main ------------------------------------------------------------------------------------


async def best_of(
    rounds: int,
    sides: dict[str, tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[float]]]],
) -> dict[str, float]:
    """Run each side `rounds` times, each after its preparation; return each one's best time."""
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, (prepare, run) in sides.items():
            await prepare()
            times[name].append(await run())
    return {name: min(found) for name, found in times.items()}


def ratio_line(label: str, ratio: float, target: float | None, note: str) -> str:
    """One line of the ratios, in the form `benchmarks/run_all.py` reads."""
    if target is None:
        return f"{label:<24}: {ratio:8.2f}x  (no target: {note})"
    met = "met" if ratio <= target else "NOT met"
    return f"{label:<24}: {ratio:8.2f}x  (target <= {target:g}x) {met}: {note}"


@dataclasses.dataclass
class Results:
    """What `measure` found: the best times, the checks, and the breakdown if asked for."""

    best: dict[str, float]
    load: tuple[float, float]
    retries: list[Retries]
    rows: int
    ties: tuple[int, Decimal]
    pandas_off: tuple[int, Decimal] | None
    parts: list[tuple[str, float]] | None


async def measure(dsn: str, args: argparse.Namespace) -> Results:
    """Load the data, run every side, check what they stored."""
    with_pandas = pandas_available()
    retries: list[Retries] = []
    async with schemas(dsn, 3) as (schema, sql_schema, scratch):
        await load(dsn, schema, args.portfolios, args.positions, args.tickers, args.seed)
        sides: dict[str, tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[float]]]] = {
            "library": (
                lambda: empty(dsn, schema, LIBRARY_TABLES),
                lambda: library(dsn, schema, args.concurrency, retries),
            ),
            "totals": (lambda: empty(dsn, schema, "bench_totals"), lambda: set_based(dsn, schema)),
            "same": (
                lambda: empty(dsn, sql_schema, STORE_TABLES),
                lambda: same_data(dsn, sql_schema, schema),
            ),
        }
        if with_pandas:
            sides["pandas"] = (
                lambda: empty(dsn, schema, "bench_pandas_totals"),
                lambda: pandas_pipeline(dsn, schema),
            )
        before = os.getloadavg()[0]
        best = await best_of(args.rounds, sides)
        load_average = (before, os.getloadavg()[0])

        lib_totals = await fetch_totals(dsn, schema, "ps_snapshots")
        if len(lib_totals) != args.portfolios:
            raise SystemExit(f"the library stored {len(lib_totals)} of {args.portfolios}")
        ties = check_ties(
            lib_totals, await fetch_totals(dsn, schema, "bench_totals"), args.positions
        )
        rows = await check_same_data(dsn, schema, sql_schema, args.portfolios)
        pandas_off = None
        if with_pandas:
            pandas_off = off_by_more_than_half_a_cent(
                lib_totals, await fetch_totals(dsn, schema, "bench_pandas_totals")
            )
        parts = None
        if args.breakdown:
            parts = await breakdown(dsn, schema, scratch, args.portfolios, args.concurrency, [])
    return Results(best, load_average, retries, rows, ties, pandas_off, parts)


def report(args: argparse.Namespace, r: Results) -> None:
    """Print the times, the checks and the ratios."""
    n, best = args.portfolios, r.best
    lib = best["library"]
    print(f"{n} portfolios x {args.positions} positions over {args.tickers} tickers, PostgreSQL")
    print(
        f"best of {args.rounds} round(s); load average {r.load[0]:.2f} before, "
        f"{r.load[1]:.2f} after"
    )
    print(
        f"run_daily         : {lib:8.3f} s  (store, ledger and lock: snapshots with positions, "
        "prices once, exact, checked, idempotent)"
    )
    first = next((x.seen[0] for x in r.retries if x.seen), None)
    print(
        f"run_daily retries : {[len(x.seen) for x in r.retries]} per round"
        + ("" if first is None else f", e.g. {first.operation}: {first.message[-80:]}")
    )
    if "pandas" in best:
        print(
            f"pandas pipeline   : {best['pandas']:8.3f} s  (COPY out, floats, COPY in, upsert: "
            "totals only)"
        )
    else:
        print(
            "pandas pipeline   : not measured: pandas is not installed (pip install -e '.[bench]')"
        )
    print(
        f"SQL, totals only  : {best['totals']:8.3f} s  (one INSERT ... SELECT ... GROUP BY ... "
        "ON CONFLICT)"
    )
    print(
        f"SQL, same data    : {best['same']:8.3f} s  (ps_prices and ps_snapshots as the library "
        "writes them)"
    )
    print(f"same data         : {r.rows} rows (snapshots and prices) identical to the library's")
    ties, tie_gap = r.ties
    print(
        f"totals, SQL       : {n - ties} equal, {ties} differ by up to {tie_gap} "
        "(ties: PostgreSQL's round() goes away from zero, the library's to even)"
    )
    if r.pandas_off is not None:
        off, gap = r.pandas_off
        print(
            f"totals, pandas    : {off} of {n} ({off / n:.2%}) more than half a cent off the "
            f"exact totals, by up to {gap}"
        )
    if "pandas" in best:
        print(
            ratio_line(
                "library / pandas",
                lib / best["pandas"],
                1.0,
                "at or below a pandas pipeline writing float totals",
            )
        )
    print(
        ratio_line(
            "library / SQL-same-data",
            lib / best["same"],
            1.5,
            "within 1.5x of statements storing the same rows",
        )
    )
    print(
        ratio_line(
            "library / SQL-totals",
            lib / best["totals"],
            None,
            "the price of positions, exactness and checks",
        )
    )
    print("not done by the alternatives: exact Decimals (pandas: floats); positions with the price")
    print("  used (pandas, totals-only SQL); missing or stale prices failing the portfolio (all:")
    print("  a join drops the holding); retries, batch isolation, run keys and leases (all).")
    if r.parts is not None:
        report_breakdown(r.parts, n, best)


def report_breakdown(parts: list[tuple[str, float]], n: int, best: dict[str, float]) -> None:
    """Print where the library's time goes."""
    print("where the library's time goes, each part alone (a run overlaps them):")
    for what, took in parts:
        print(f"  {what:<42}: {took:7.3f} s  ({took / n * 1e6:5.1f} us per portfolio)")
    in_turn = sum(took for _, took in parts[:3])
    print(
        f"  {'read, value and write in turn':<42}: {in_turn:7.3f} s  "
        f"(run_daily: {best['library']:.3f} s)"
    )
    from_memory = parts[-1][1]
    if "pandas" in best:
        print(
            f"from memory / pandas    : {from_memory / best['pandas']:8.2f}x  "
            "(no target: the run without its read, against the pandas pipeline with its own)"
        )
    print(
        f"from memory / same data : {from_memory / best['same']:8.2f}x  "
        "(no target: the run without its read, against the same-data statements)"
    )


def main() -> None:
    """Parse arguments, run every side, print the ratios."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--portfolios", type=int, default=100_000)
    parser.add_argument("--positions", type=int, default=10)
    parser.add_argument("--tickers", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4, help="run_daily's batches in flight")
    parser.add_argument("--breakdown", action="store_true", help="time the library's parts too")
    parser.add_argument("--seed", type=int, default=20261127)
    parser.add_argument("--pg-dsn", default=None)
    args = parser.parse_args()
    with postgres(args.pg_dsn) as dsn:
        results = asyncio.run(measure(dsn, args))
    report(args, results)


if __name__ == "__main__":
    main()
