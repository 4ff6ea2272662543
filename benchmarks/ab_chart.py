"""Benchmark: the chart read of this checkout against another version's, side by side.

To run:
    mkdir /tmp/before && git archive COMMIT src | tar -x -C /tmp/before
    python benchmarks/ab_chart.py --before /tmp/before/src [--backend postgres] [--flows]

The method of ``ab_store.py``: the other version's package is imported beside this one under
another name. One portfolio's 3,650 days (10 positions, valued by this checkout's
calculator; with ``--flows``, net contributions and a day's flow as a ledger gives them:
a deposit now and then) are written once by this checkout into a SQLite file or a
PostgreSQL schema (``--backend postgres`` reads through asyncpg, ``psycopg`` through
psycopg; the server from ``--pg-dsn``, ``PORTFOLIO_SNAPSHOTS_PG_DSN`` or started as in
``storage.py``). Then both versions read the whole range, the order swapped every round,
each the best of ``--reads`` reads; it prints each version's best and median, and the median
of the per-round ratios. Both versions must read the same schema version.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

if __package__ in {None, ""}:  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import portfolio_snapshots
from benchmarks.ab_daily_run import alternate, print_comparison
from benchmarks.ab_store import load_with_stores
from benchmarks.storage import build, postgres, schemas, sqlalchemy_url
from portfolio_snapshots.adapters.sqlalchemy import SqlAlchemySnapshotStore

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType

DAYS = 3_650


def history(*, flows: bool) -> list[portfolio_snapshots.PortfolioSnapshot]:
    """One portfolio's `DAYS` days; with `flows`, a deposit of 500.00 every 30th day."""
    days = sorted(build(DAYS, 10, DAYS, 1), key=lambda s: s.snapshot_date)
    if not flows:
        return days
    net, made = Decimal("10000.00"), []
    for n, s in enumerate(days):
        flow = Decimal("500.00") if n % 30 == 0 else Decimal("0.00")
        net += flow
        made.append(s.replace(net_contributions=net, external_flow=flow))
    return made


def url_of(backend: str, dsn: str) -> str:
    """The SQLAlchemy URL of `backend` (asyncpg's for ``postgres``) on `dsn`."""
    if backend == "psycopg":
        return "postgresql+psycopg://" + dsn.split("://", 1)[1]
    return sqlalchemy_url(dsn)


def side(
    ps: ModuleType, backend: str, where: str, reads: int, days: list[Any]
) -> Callable[[], float]:
    """One version's best chart read of `days` from `where`, as a function of no argument."""
    first, last = days[0], days[-1]
    pid, start, end = first.portfolio_id, first.snapshot_date, last.snapshot_date

    async def best(store: Any) -> float:  # noqa: ANN401 - either version's store
        await store.list_totals(pid, start, end)  # connect, prepare, warm
        fastest = float("inf")
        for _ in range(reads):
            gc.collect()
            began = time.perf_counter()
            await store.list_totals(pid, start, end)
            fastest = min(fastest, time.perf_counter() - began)
        return fastest * 1000  # milliseconds

    async def once() -> float:
        if backend == "sqlite":
            sqlite_store = sys.modules[f"{ps.__name__}.adapters.sqlite"].SqliteSnapshotStore
            async with await sqlite_store.open(Path(where)) as store:
                return await best(store)
        dsn, schema = where.rsplit("#", 1)
        url = url_of(backend, dsn)
        connect_args: dict[str, object] = (
            {"options": f"-c search_path={schema}"}
            if backend == "psycopg"
            else {"server_settings": {"search_path": schema}}
        )
        sqlalchemy = sys.modules[f"{ps.__name__}.adapters.sqlalchemy"]
        async with await sqlalchemy.SqlAlchemySnapshotStore.open(
            url, connect_args=connect_args
        ) as store:
            return await best(store)

    return lambda: asyncio.run(once())


async def write_sqlite(path: Path, days: list[Any]) -> None:
    """Store `days` in a new SQLite file."""
    async with await portfolio_snapshots.SqliteSnapshotStore.open(path) as store:
        for i in range(0, len(days), 500):
            await store.upsert_many(days[i : i + 500])


async def write_postgres(dsn: str, schema: str, days: list[Any]) -> None:
    """Store `days` in `schema` (its tables made by `schemas`)."""
    store = await SqlAlchemySnapshotStore.open(
        sqlalchemy_url(dsn), connect_args={"server_settings": {"search_path": schema}}
    )
    async with store:
        for i in range(0, len(days), 500):
            await store.upsert_many(days[i : i + 500])


def main() -> None:
    """Parse arguments, store the history, alternate both versions' reads, print the ratio."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="the other version's src")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "psycopg"], default="postgres")
    parser.add_argument("--flows", action="store_true", help="net contributions and flows")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--reads", type=int, default=20)
    parser.add_argument("--pg-dsn", default=None)
    args = parser.parse_args()
    days = history(flows=args.flows)
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ps-ab-chart-")))
        if args.backend == "sqlite":
            where = str(folder / "chart.db")
            asyncio.run(write_sqlite(Path(where), days))
        else:
            dsn = stack.enter_context(postgres(args.pg_dsn))
            (schema,) = stack.enter_context(_schema(dsn))
            asyncio.run(write_postgres(dsn, schema, days))
            where = f"{dsn}#{schema}"
        before = load_with_stores(args.before, folder)
        times, ratios = alternate(
            args.rounds,
            side(before, args.backend, where, args.reads, days),
            side(portfolio_snapshots, args.backend, where, args.reads, days),
            unit="ms",
        )
    flows = ", with flows" if args.flows else ""
    print(f"list_totals of {len(days)} days{flows} on {args.backend}, {args.rounds} rounds")
    print_comparison(times, ratios, unit="ms")


@contextlib.contextmanager
def _schema(dsn: str) -> Any:  # noqa: ANN401 - a generator-based context manager
    """One schema with the store's tables, dropped on exit (`storage.schemas`, synchronously)."""
    runner = asyncio.Runner()
    manager = schemas(dsn, 1)
    names = runner.run(manager.__aenter__())
    try:
        yield names
    finally:
        runner.run(manager.__aexit__(None, None, None))
        runner.close()


if __name__ == "__main__":
    main()
