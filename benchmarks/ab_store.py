"""Benchmark: the SQL stores' writes of this checkout against another version's, in one process.

To run:
    mkdir /tmp/before && git archive COMMIT src | tar -x -C /tmp/before
    python benchmarks/ab_store.py --before /tmp/before/src [--backend postgres] [--rounds 8]

The same method as ``ab_daily_run.py`` (whose loader it uses): the other version's package is
imported beside this one under another name. Both write the same seeded daily snapshots (made
once by this checkout's calculator: 10 positions over 2,000 tickers, and rebuilt as the other
version's values) with ``upsert_many`` in batches of 500, fenced, each round into a fresh
SQLite file or a fresh PostgreSQL schema (``SqlAlchemySnapshotStore`` on asyncpg; the server
from ``--pg-dsn``, ``PORTFOLIO_SNAPSHOTS_PG_DSN`` or started as in ``storage.py``), the order
of the two swapped every round. It prints each version's best and median time (process CPU
plus the server's share, as the wall clock) and the median of the per-round ratios.

With ``--history``, they write one portfolio's 3,650 days instead (``ab_chart.py``'s), as a
backfill does: every batch with prices new to the store.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if __package__ in {None, ""}:  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import portfolio_snapshots
from benchmarks.ab_daily_run import alternate, load_before, print_comparison
from benchmarks.daily_run import DAY, build
from benchmarks.storage import postgres, schemas, sqlalchemy_url
from portfolio_snapshots import PriceQuote, SnapshotCalculator
from portfolio_snapshots._calculator import PriceTable

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType

BATCH = 500


def snapshots(count: int, seed: int) -> list[portfolio_snapshots.PortfolioSnapshot]:
    """The day's snapshots of `count` seeded portfolios, valued by this checkout."""
    portfolios, prices = build(count, 10, 2_000, seed)
    table = PriceTable({t: PriceQuote(t, p, DAY) for t, p in prices.items()}, DAY)
    valued, failed = SnapshotCalculator().value_many(portfolios, table)
    if failed:
        raise SystemExit(f"{len(failed)} portfolios could not be valued: {failed[:1]}")
    return valued


async def write(opened: Callable[[], Any], batches: list[list[Any]]) -> float:
    """Write every batch into the store `opened` makes; return the seconds it took."""
    async with await opened() as store:
        gc.collect()
        start = time.perf_counter()
        for batch in batches:
            await store.upsert_many(batch, fence=1)
        return time.perf_counter() - start


def side(
    ps: ModuleType, made: list[Any], backend: str, dsn: str | None, folder: Path
) -> Callable[[], float]:
    """One version's timed write into a fresh file or schema, as a function of no argument."""
    values = [ps.PortfolioSnapshot.from_values(s.values) for s in made]
    batches = [values[i : i + BATCH] for i in range(0, len(values), BATCH)]
    sqlite_store = sys.modules[f"{ps.__name__}.adapters.sqlite"].SqliteSnapshotStore
    sqlalchemy = sys.modules[f"{ps.__name__}.adapters.sqlalchemy"]
    counter = itertools.count()

    def once() -> float:
        if backend == "sqlite":
            path = folder / f"{ps.__name__}-{next(counter)}.db"
            return asyncio.run(write(lambda: sqlite_store.open(path), batches))

        async def in_schema() -> float:
            if dsn is None:
                raise SystemExit("no PostgreSQL server")
            async with schemas(dsn, 1) as (name,):
                url = sqlalchemy_url(dsn)
                args = {"server_settings": {"search_path": name}}
                return await write(
                    lambda: sqlalchemy.SqlAlchemySnapshotStore.open(url, connect_args=args),
                    batches,
                )

        return asyncio.run(in_schema())

    return once


def load_with_stores(src: Path, into: Path) -> ModuleType:
    """`load_before`, then both versions' SQL stores imported (`side` looks them up)."""
    before = load_before(src, into)
    for ps in (before, portfolio_snapshots):
        __import__(f"{ps.__name__}.adapters.sqlite")
        __import__(f"{ps.__name__}.adapters.sqlalchemy")
    return before


def main() -> None:
    """Parse arguments, load both versions, alternate their writes, print the ratio."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="the other version's src")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--snapshots", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seed", type=int, default=20261127)
    parser.add_argument("--pg-dsn", default=None)
    parser.add_argument("--history", action="store_true", help="one portfolio's 3,650 days")
    args = parser.parse_args()
    if args.history:
        from benchmarks.ab_chart import history  # noqa: PLC0415 - it imports this module

        made = history(flows=False)
    else:
        made = snapshots(args.snapshots, args.seed)
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ps-ab-store-")))
        dsn = stack.enter_context(postgres(args.pg_dsn)) if args.backend == "postgres" else None
        before = load_with_stores(args.before, folder)
        times, ratios = alternate(
            args.rounds,
            side(before, made, args.backend, dsn, folder),
            side(portfolio_snapshots, made, args.backend, dsn, folder),
        )
    what = "one portfolio's days" if args.history else "snapshots"
    print(f"{len(made)} {what} x 10 positions into {args.backend}, {args.rounds} rounds")
    print_comparison(times, ratios)


if __name__ == "__main__":
    main()
