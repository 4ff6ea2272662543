"""Benchmark: the SQL stores' writes and reads against a bare ``executemany``, side by side.

To run:
    python benchmarks/storage.py [--snapshots 100000] [--positions 10] [--batch 500]
                                 [--days 3650] [--rounds 3] [--backends sqlite,postgres]
                                 [--pg-dsn postgresql://user@host:port/db] [--size]
                                 [--books]

PostgreSQL comes from ``--pg-dsn``, else ``PORTFOLIO_SNAPSHOTS_PG_DSN``, else the script starts
a throwaway server with ``scripts/pg-test-server start`` (on a free port, in a directory of its
own) and stops it at the end. Leave ``postgres`` out of ``--backends`` to run without one.

The data is seeded and valued by `SnapshotCalculator`, as a run values it: one portfolio with
``--days`` days of history and, for the rest of the ``--snapshots``, as many other portfolios on
the last day (a backfill plus a daily run), each with ``--positions`` positions; with
``--books`` every portfolio also has the books a ledger replay gives (cost basis, realized
gain and dividends of its tickers, income, fees, taxes: the book columns and the positions'
accounting fields are written, by the store and by the bare side alike). For each
backend it times, alternately and ``--rounds`` times in this one process, each side writing
into a fresh, empty table of the same shape (made by the store's own schema code):

- bare: the driver's own ``executemany`` of a plain ``INSERT`` of rows already encoded as the
  store encodes them (decimal text, compact positions, and the day's price rows, written with
  the first batch), one transaction per batch;
- store: ``upsert_many(batch, fence=1)``, as the job calls it: encoding, deduplication and
  the ``INSERT ... ON CONFLICT ... DO UPDATE ... WHERE`` upsert, one transaction per batch;

then reads the one portfolio's ``--days`` days back, bare (the same ``SELECT`` through the same
driver, rows as the driver returns them) and through ``list_snapshots`` (snapshots built, their
prices read too), and the chart read: a bare ``SELECT`` of the total columns against
``list_totals`` (`DailyTotals` built), with the floor under it: the same fetch, then a
``Decimal`` made of each day's three amounts (total, cash, holdings), which any exact reader
of the text columns pays. With ``--size`` it also prints the bytes per
portfolio-day the store's tables take (SQLite: the file, after a checkpoint; PostgreSQL:
``pg_total_relation_size`` of ``ps_snapshots`` and ``ps_prices``, indexes included). It
checks that both sides stored identical rows, and prints the best times, rows per second and
the ratios, the figures that matter on a shared, noisy machine. Target: the upsert within 2x of
the bare insert. The input is built first and frozen out of the garbage collector's sight
(``gc.freeze``): a job never holds a hundred thousand snapshots at once.

Drivers: ``sqlite3`` for `SqliteSnapshotStore`; asyncpg for `SqlAlchemySnapshotStore` on
PostgreSQL, whose bare side uses asyncpg directly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import gc
import os
import random
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
import uuid
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, LiteralString, TypeVar

import asyncpg  # type: ignore[import-untyped]
import psycopg
from sqlalchemy.ext.asyncio import create_async_engine

from portfolio_snapshots import (
    Portfolio,
    PortfolioSnapshot,
    PriceQuote,
    SnapshotCalculator,
    SqliteSnapshotStore,
)
from portfolio_snapshots.adapters._sql_codec import (
    PriceCatalog,
    book_texts,
    dedupe_sorted,
    has_books,
)
from portfolio_snapshots.adapters.sqlalchemy import SqlAlchemySnapshotStore, create_schema
from portfolio_snapshots.history import Accounting

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence

ROOT = Path(__file__).resolve().parent.parent
PG_SCRIPT = ROOT / "scripts" / "pg-test-server"
DSN_ENV = "PORTFOLIO_SNAPSHOTS_PG_DSN"
END = dt.date(2026, 11, 27)
FENCE = 1
READ_REPEATS = 20
COLUMNS = (
    "portfolio_id, snapshot_date, currency, cash_balance, holdings_value, total_value, "
    "net_contributions, external_flow, stale, positions, fence"
)
# With ``--books``: the snapshot's books too (`book_texts`).
BOOKS_COLUMNS = (
    f"{COLUMNS}, cost_basis, unrealized_gain, realized_gain, dividends, interest, fees, taxes, "
    "net_transfers, cash_balances"
)
READ_COLUMNS = (
    "portfolio_id, snapshot_date, currency, cash_balance, holdings_value, total_value, "
    "positions, net_contributions, external_flow, stale"
)
# What `list_totals` selects (the portfolio id is the one asked for): the fields of
# `DailyTotals`, the accounting ones included.
TOTALS_COLUMNS = (
    "snapshot_date, currency, total_value, cash_balance, holdings_value, net_contributions, "
    "stale, external_flow, cost_basis, unrealized_gain, realized_gain, dividends, interest, "
    "fees, taxes, net_transfers"
)
PRICE_COLUMNS = "snapshot_date, ticker, variant, price, price_date, price_currency, fx_rate, stale"
SQLITE_PRICES = f"INSERT INTO ps_prices ({PRICE_COLUMNS}) VALUES ({', '.join('?' * 8)})"  # noqa: S608
PG_PRICES = (
    f"INSERT INTO ps_prices ({PRICE_COLUMNS}) "  # noqa: S608 - constant columns
    f"VALUES ({', '.join(f'${i}' for i in range(1, 9))})"
)
PSYCOPG_PRICES: LiteralString = (
    f"INSERT INTO ps_prices ({PRICE_COLUMNS}) "  # noqa: S608 - constant columns
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)
SQLITE_TOTALS = (
    f"SELECT {TOTALS_COLUMNS} FROM ps_snapshots "  # noqa: S608 - constant columns
    "WHERE portfolio_id = ? AND snapshot_date BETWEEN ? AND ? ORDER BY snapshot_date"
)
PG_TOTALS = (
    f"SELECT {TOTALS_COLUMNS} FROM ps_snapshots "  # noqa: S608 - constant columns
    "WHERE portfolio_id = $1 AND snapshot_date >= $2 AND snapshot_date <= $3 "
    "ORDER BY snapshot_date"
)
PSYCOPG_TOTALS: LiteralString = (
    f"SELECT {TOTALS_COLUMNS} FROM ps_snapshots "  # noqa: S608 - constant columns
    "WHERE portfolio_id = %s AND snapshot_date >= %s AND snapshot_date <= %s "
    "ORDER BY snapshot_date"
)
SQLITE_INSERT = f"INSERT INTO ps_snapshots ({COLUMNS}) VALUES ({', '.join('?' * 11)})"  # noqa: S608
SQLITE_INSERT_BOOKS = f"INSERT INTO ps_snapshots ({BOOKS_COLUMNS}) VALUES ({', '.join('?' * 20)})"  # noqa: S608
SQLITE_SELECT = (
    f"SELECT {READ_COLUMNS} FROM ps_snapshots "  # noqa: S608 - constant columns
    "WHERE portfolio_id = ? AND snapshot_date BETWEEN ? AND ? ORDER BY snapshot_date"
)
PG_INSERT = (
    f"INSERT INTO ps_snapshots ({COLUMNS}) "  # noqa: S608 - constant columns
    f"VALUES ({', '.join(f'${i}' for i in range(1, 12))})"
)
PG_INSERT_BOOKS = (
    f"INSERT INTO ps_snapshots ({BOOKS_COLUMNS}) "  # noqa: S608 - constant columns
    f"VALUES ({', '.join(f'${i}' for i in range(1, 21))})"
)
# psycopg's types ask for literal strings, which these are.
PSYCOPG_INSERT: LiteralString = (
    f"INSERT INTO ps_snapshots ({COLUMNS}) "  # noqa: S608 - constant columns
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
PSYCOPG_INSERT_BOOKS: LiteralString = (
    f"INSERT INTO ps_snapshots ({BOOKS_COLUMNS}) "  # noqa: S608 - constant columns
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
PSYCOPG_SELECT: LiteralString = (
    f"SELECT {READ_COLUMNS} FROM ps_snapshots "  # noqa: S608 - constant columns
    "WHERE portfolio_id = %s AND snapshot_date >= %s AND snapshot_date <= %s "
    "ORDER BY snapshot_date"
)
PG_SELECT = (
    f"SELECT {READ_COLUMNS} FROM ps_snapshots "  # noqa: S608 - constant columns
    "WHERE portfolio_id = %s AND snapshot_date >= %s AND snapshot_date <= %s "
    "ORDER BY snapshot_date"
)
PG_SELECT = (
    f"SELECT {READ_COLUMNS} FROM ps_snapshots "  # noqa: S608 - constant columns
    "WHERE portfolio_id = $1 AND snapshot_date >= $2 AND snapshot_date <= $3 "
    "ORDER BY snapshot_date"
)

Row = tuple[object, ...]
T = TypeVar("T")


# --- data --------------------------------------------------------------------------------------


def build(
    n_snapshots: int, n_positions: int, n_days: int, seed: int, *, books: bool = False
) -> list[PortfolioSnapshot]:
    """Return seeded snapshots, valued by the calculator as a run values them.

    One portfolio has `n_days` days of history (a close a day for each of its tickers); the
    other portfolios have one day each, valued at that day's closes of a 1,000-ticker universe.
    With `books`, every portfolio has the books a ledger replay gives (`Accounting`: cost
    basis, realized gain and dividends of every ticker held, income, fees and taxes).
    """
    rng = random.Random(seed)
    calculator = SnapshotCalculator()
    tickers = [f"T{i:04d}" for i in range(1000)]

    def quote(ticker: str, day: dt.date) -> PriceQuote:
        return PriceQuote(ticker, Decimal(rng.randint(100, 500_000)) / 100, day)

    def money(low: int, high: int) -> Decimal:
        return Decimal(rng.randint(low, high)) / 100

    def accounting(held: list[str]) -> Accounting:
        return Accounting(
            cost_basis={t: money(100, 50_000_000) for t in held},
            realized_gain=money(-1_000_000, 1_000_000),
            dividends=money(0, 100_000),
            interest=money(0, 10_000),
            fees=money(0, 10_000),
            taxes=money(0, 10_000),
            net_transfers=Decimal(0),
            position_realized={t: money(-100_000, 100_000) for t in held[::3]},
            position_dividends={t: money(0, 10_000) for t in held[::2]},
        )

    def portfolio() -> Portfolio:
        held = rng.sample(tickers, n_positions)
        return Portfolio(
            uuid.UUID(int=rng.getrandbits(128)),
            Decimal(rng.randint(0, 10_000_000)) / 100,
            {t: Decimal(rng.randint(1, 100_000)) / 1000 for t in held},
            accounting=accounting(held) if books else None,
        )

    history = portfolio()
    out = []
    for i in range(min(n_days, n_snapshots)):
        day = END - dt.timedelta(days=i)
        quotes = {t: quote(t, day) for t in history.holdings}
        out.append(calculator.value_portfolio(history, quotes, day))
    closes = {t: quote(t, END) for t in tickers}
    out += [
        calculator.value_portfolio(portfolio(), closes, END) for _ in range(n_snapshots - len(out))
    ]
    return out


@dataclasses.dataclass
class Encoded:
    """The rows the store writes for the snapshots: snapshot rows by batch, and price rows."""

    batches: list[list[Row]]
    prices: list[Row]
    books: bool


def encode_all(snapshots: list[PortfolioSnapshot], batch: int, *, native: bool) -> Encoded:
    """Encode `snapshots` as the store does, batch by batch, `native` ids and dates for PostgreSQL.

    Prices get their variants in the order the store gives them (each batch deduplicated and
    sorted by key), so both sides store the very same rows. When a snapshot has books, every
    row holds the book columns too.
    """
    books = any(map(has_books, snapshots))
    catalog = PriceCatalog()
    stored: dict[tuple[dt.date, str], dict[int, tuple[str, dt.date, str | None, str | None, bool]]]
    stored = {}
    price_rows = []
    row_batches: list[list[Row]] = []
    for part in batches(snapshots, batch):
        ordered = dedupe_sorted(part)
        plan = catalog.plan(ordered)
        new = plan.resolve(stored)
        for day, ticker, variant, *content in new:
            stored.setdefault((day, ticker), {})[variant] = tuple(content)  # type: ignore[assignment]
        price_rows += new
        row_batches.append(
            [encoded(s, plan.encode(s), native=native, books=books) for s in ordered]
        )
        plan.commit()
    prices: list[Row] = [
        (
            day if native else day.isoformat(),
            ticker,
            variant,
            price,
            price_date if native else price_date.isoformat(),
            currency,
            fx_rate,
            stale if native else int(stale),
        )
        for day, ticker, variant, price, price_date, currency, fx_rate, stale in price_rows
    ]
    return Encoded(row_batches, prices, books)


def encoded(s: PortfolioSnapshot, positions: str, *, native: bool, books: bool = False) -> Row:
    """Return the row the store writes for `s`: `native` ids and dates for PostgreSQL.

    With `books`, the texts of the snapshot's books follow (`book_texts`).
    """
    row = (
        s.portfolio_id if native else s.portfolio_id.bytes,
        s.snapshot_date if native else s.snapshot_date.isoformat(),
        s.currency,
        str(s.cash_balance),
        str(s.holdings_value),
        str(s.total_value),
        None if s.net_contributions is None else str(s.net_contributions),
        None if s.external_flow is None else str(s.external_flow),
        bool(s.stale) if native else int(s.stale),
        positions,
        FENCE,
    )
    return (*row, *book_texts(s)) if books else row


def batches(items: list[T], size: int) -> list[list[T]]:
    """Cut `items` into consecutive slices of at most `size`."""
    return [items[i : i + size] for i in range(0, len(items), size)]


# --- timing ------------------------------------------------------------------------------------


@dataclasses.dataclass
class Times:
    """The best time of each side over the rounds, and how many snapshots a read returned."""

    bare_write: float = float("inf")
    store_write: float = float("inf")
    bare_read: float = float("inf")
    store_read: float = float("inf")
    bare_totals: float = float("inf")
    floor_totals: float = float("inf")
    store_totals: float = float("inf")
    rows_read: int = 0
    size: int | None = None

    def report(self, title: str, n: int, batch: int, rounds: int) -> None:
        """Print the figures."""
        read = self.rows_read
        print(f"{title}: {n} snapshots in batches of {batch}, best of {rounds} rounds")
        print(f"  bare executemany  {self.bare_write:8.3f} s  {n / self.bare_write:9,.0f} rows/s")
        print(
            f"  upsert_many       {self.store_write:8.3f} s  {n / self.store_write:9,.0f} rows/s"
            f"  ratio {self.store_write / self.bare_write:.2f}x (target <= 2x)"
        )
        print(f"  bare fetch        {self.bare_read:8.4f} s  {read / self.bare_read:9,.0f} rows/s")
        print(
            f"  list_snapshots    {self.store_read:8.4f} s  {read / self.store_read:9,.0f} rows/s"
            f"  ratio {self.store_read / self.bare_read:.2f}x ({read} days of one portfolio)"
        )
        bare, store = self.bare_totals, self.store_totals
        print(f"  bare totals fetch {bare:8.4f} s  {read / bare:9,.0f} rows/s")
        floor = self.floor_totals
        print(
            f"  + three Decimals  {floor:8.4f} s  {read / floor:9,.0f} rows/s"
            f"  ratio {floor / bare:.2f}x (the fetch, then each day's three amounts made exact)"
        )
        print(
            f"  list_totals       {store:8.4f} s  {read / store:9,.0f} rows/s"
            f"  ratio {store / bare:.2f}x (target <= 2x)"
        )
        if self.size is not None:
            print(
                f"  size              {self.size:,} bytes, {self.size / n:,.0f} bytes per "
                "portfolio-day (target <= 400)"
            )


def freeze_input() -> None:
    """Move everything built so far out of the garbage collector's sight.

    A job holds only the batches in flight, never all the input at once: without this, every
    full collection during a timing would rescan all of it. The collector stays on, so each
    side still pays for the garbage it makes.
    """
    gc.collect()
    gc.freeze()


async def timed(work: Callable[[], Awaitable[object]], repeats: int = 1) -> float:
    """Return the best of `repeats` timings of `work`, each after a garbage collection."""
    best = float("inf")
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        await work()
        best = min(best, time.perf_counter() - start)
    return best


# --- SQLite ------------------------------------------------------------------------------------


async def sqlite_bare_write(conn: sqlite3.Connection, encoded: Encoded) -> None:
    """Insert every batch with ``executemany`` in a transaction of its own (prices first)."""
    for i, rows in enumerate(encoded.batches):
        conn.execute("BEGIN IMMEDIATE")
        if i == 0:
            conn.executemany(SQLITE_PRICES, encoded.prices)
        conn.executemany(SQLITE_INSERT_BOOKS if encoded.books else SQLITE_INSERT, rows)
        conn.execute("COMMIT")


async def sqlite_bare_read(
    conn: sqlite3.Connection, sql: str, key: tuple[bytes, str, str]
) -> list[Any]:
    """Fetch the range, rows as sqlite3 returns them."""
    return conn.execute(sql, key).fetchall()


async def with_decimals(fetch: Callable[[], Awaitable[Sequence[Sequence[Any]]]]) -> None:
    """Fetch the totals, then make a `Decimal` of each row's three amounts (their text).

    What any exact reader of the chart pays at least beyond the bare fetch: the floor under
    `list_totals`, which also builds a `DailyTotals` per row.
    """
    number = Decimal
    rows = await fetch()
    for row in rows:
        number(row[2])
        number(row[3])
        number(row[4])


async def store_write(
    store: SqliteSnapshotStore | SqlAlchemySnapshotStore,
    snapshot_batches: list[list[PortfolioSnapshot]],
) -> None:
    """Upsert every batch as the job does, fenced."""
    for snapshots in snapshot_batches:
        await store.upsert_many(snapshots, fence=FENCE)


async def bench_sqlite(
    snapshots: list[PortfolioSnapshot], batch: int, days: int, rounds: int, *, size: bool
) -> Times:
    """Time the bare sqlite3 insert and `SqliteSnapshotStore.upsert_many`, then the reads."""
    times = Times()
    rows = encode_all(snapshots, batch, native=False)
    freeze_input()
    snapshot_batches = batches(snapshots, batch)
    pid, start = snapshots[0].portfolio_id, END - dt.timedelta(days=days - 1)
    key = (pid.bytes, start.isoformat(), END.isoformat())
    with tempfile.TemporaryDirectory(prefix="portfolio-snapshots-bench-") as directory:
        for r in range(rounds):
            bare_file = Path(directory) / f"bare-{r}.db"
            store_file = Path(directory) / f"store-{r}.db"
            # The same table, made by the store's own migration, in the same WAL mode.
            await (await SqliteSnapshotStore.open(bare_file)).close()
            conn = sqlite3.connect(bare_file, isolation_level=None)
            try:
                elapsed = await timed(partial(sqlite_bare_write, conn, rows))
                times.bare_write = min(times.bare_write, elapsed)
                read = partial(sqlite_bare_read, conn, SQLITE_SELECT, key)
                times.bare_read = min(times.bare_read, await timed(read, READ_REPEATS))
                read = partial(sqlite_bare_read, conn, SQLITE_TOTALS, key)
                times.bare_totals = min(times.bare_totals, await timed(read, READ_REPEATS))
                floor = await timed(partial(with_decimals, read), READ_REPEATS)
                times.floor_totals = min(times.floor_totals, floor)
            finally:
                conn.close()
            async with await SqliteSnapshotStore.open(store_file) as store:
                elapsed = await timed(partial(store_write, store, snapshot_batches))
                times.store_write = min(times.store_write, elapsed)
                elapsed = await timed(partial(store.list_snapshots, pid, start, END), READ_REPEATS)
                times.store_read = min(times.store_read, elapsed)
                totals = partial(store.list_totals, pid, start, END)
                times.store_totals = min(times.store_totals, await timed(totals, READ_REPEATS))
                times.rows_read = len(await store.list_snapshots(pid, start, END))
            if r == 0:
                check_sqlite_same(bare_file, store_file, len(snapshots))
                if size:
                    times.size = sqlite_size(store_file)
    return times


def sqlite_size(path: Path) -> int:
    """Return the size of the file at `path` once its WAL is checkpointed into it."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        conn.close()
    return path.stat().st_size


def check_sqlite_same(bare_file: Path, store_file: Path, n: int) -> None:
    """Stop unless both files hold the same `n` rows, column for column."""
    conn = sqlite3.connect(bare_file)
    try:
        conn.execute("ATTACH DATABASE ? AS store", (str(store_file),))
        differ = sum(
            conn.execute(
                f"SELECT count(*) FROM (SELECT * FROM main.{t} "  # noqa: S608 - our tables
                f"EXCEPT SELECT * FROM store.{t})"
            ).fetchone()[0]
            for t in ("ps_snapshots", "ps_prices")
        )
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM main.ps_snapshots), "
            "(SELECT count(*) FROM store.ps_snapshots)"
        ).fetchone()
    finally:
        conn.close()
    if differ or counts != (n, n):
        raise SystemExit(f"SQLite: the two sides stored different rows ({differ}, {counts})")


# --- PostgreSQL --------------------------------------------------------------------------------


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@contextlib.contextmanager
def postgres(given: str | None) -> Iterator[str]:
    """Yield a ``postgresql://`` DSN: `given`, the environment's, or a server started here."""
    dsn = given or os.environ.get(DSN_ENV)
    if dsn:
        yield dsn
        return
    directory = Path(tempfile.mkdtemp(prefix="portfolio-snapshots-bench-pg-"))
    env = {**os.environ, "PG_TEST_DIR": str(directory), "PG_TEST_PORT": str(free_port())}

    def script(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - our own script, fixed arguments
            ["bash", str(PG_SCRIPT), command],  # noqa: S607 - bash from PATH is intended
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=180,
        )

    try:
        started = script("start")
        if started.returncode != 0:
            raise SystemExit(f"scripts/pg-test-server start failed:\n{started.stderr}")
        yield started.stdout.strip().splitlines()[-1].removeprefix(f"export {DSN_ENV}=")
    finally:
        script("stop")
        shutil.rmtree(directory, ignore_errors=True)


def sqlalchemy_url(dsn: str) -> str:
    """Return `dsn` as an SQLAlchemy URL for asyncpg."""
    return "postgresql+asyncpg://" + dsn.split("://", 1)[1]


@contextlib.asynccontextmanager
async def schemas(dsn: str, count: int) -> AsyncIterator[list[str]]:
    """Create `count` schemas holding the store's empty tables; drop them on exit."""
    names = [f"bench_{uuid.uuid4().hex}" for _ in range(count)]
    admin = await asyncpg.connect(dsn)
    try:
        for name in names:
            await admin.execute(f'CREATE SCHEMA "{name}"')
            engine = create_async_engine(
                sqlalchemy_url(dsn), connect_args={"server_settings": {"search_path": name}}
            )
            try:
                await create_schema(engine)
            finally:
                await engine.dispose()
        yield names
    finally:
        for name in names:
            await admin.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        await admin.close()


async def pg_bare_write(conn: asyncpg.Connection, encoded: Encoded) -> None:
    """Insert every batch with asyncpg's ``executemany`` in a transaction of its own."""
    for i, rows in enumerate(encoded.batches):
        async with conn.transaction():
            if i == 0:
                await conn.executemany(PG_PRICES, encoded.prices)
            await conn.executemany(PG_INSERT_BOOKS if encoded.books else PG_INSERT, rows)


async def psycopg_bare_write(conn: psycopg.AsyncConnection, encoded: Encoded) -> None:
    """Insert every batch with a psycopg cursor's ``executemany`` in a transaction of its own."""
    for i, rows in enumerate(encoded.batches):
        async with conn.transaction(), conn.cursor() as cursor:
            if i == 0:
                await cursor.executemany(PSYCOPG_PRICES, encoded.prices)
            await cursor.executemany(
                PSYCOPG_INSERT_BOOKS if encoded.books else PSYCOPG_INSERT, rows
            )


async def psycopg_fetch(
    conn: psycopg.AsyncConnection, sql: LiteralString, key: tuple[object, ...]
) -> list[Any]:
    """Fetch the range, rows as psycopg returns them."""
    async with conn.cursor() as cursor:
        await cursor.execute(sql, key)
        return await cursor.fetchall()


async def pg_bare(
    driver: str, dsn: str, schema: str, encoded: Encoded, key: tuple[object, ...]
) -> tuple[float, float, float, float]:
    """Time the bare insert, fetch, totals fetch and its floor through `driver`, in `schema`."""
    if driver == "psycopg":
        conn = await psycopg.AsyncConnection.connect(
            dsn, autocommit=True, options=f"-c search_path={schema}"
        )
        try:
            write = await timed(partial(psycopg_bare_write, conn, encoded))
            read = await timed(partial(psycopg_fetch, conn, PSYCOPG_SELECT, key), READ_REPEATS)
            fetch = partial(psycopg_fetch, conn, PSYCOPG_TOTALS, key)
            totals = await timed(fetch, READ_REPEATS)
            floor = await timed(partial(with_decimals, fetch), READ_REPEATS)
        finally:
            await conn.close()
        return write, read, totals, floor
    pg = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        write = await timed(partial(pg_bare_write, pg, encoded))
        read = await timed(partial(pg.fetch, PG_SELECT, *key), READ_REPEATS)
        totals = await timed(partial(pg.fetch, PG_TOTALS, *key), READ_REPEATS)
        floor = await timed(
            partial(with_decimals, partial(pg.fetch, PG_TOTALS, *key)), READ_REPEATS
        )
    finally:
        await pg.close()
    return write, read, totals, floor


async def bench_postgres(  # noqa: PLR0917 - the driver, the data, then how to time it
    driver: str,
    dsn: str,
    snapshots: list[PortfolioSnapshot],
    batch: int,
    days: int,
    rounds: int,
    *,
    size: bool,
) -> Times:
    """Time the bare insert and `SqlAlchemySnapshotStore.upsert_many` via `driver`, then reads."""
    times = Times()
    encoded = encode_all(snapshots, batch, native=True)
    freeze_input()
    snapshot_batches = batches(snapshots, batch)
    pid, start = snapshots[0].portfolio_id, END - dt.timedelta(days=days - 1)
    for r in range(rounds):
        async with schemas(dsn, 2) as (bare_schema, store_schema):
            write, read, totals, floor = await pg_bare(
                driver, dsn, bare_schema, encoded, (pid, start, END)
            )
            times.bare_write = min(times.bare_write, write)
            times.bare_read = min(times.bare_read, read)
            times.bare_totals = min(times.bare_totals, totals)
            times.floor_totals = min(times.floor_totals, floor)
            if driver == "psycopg":
                url = "postgresql+psycopg://" + dsn.split("://", 1)[1]
                connect_args: dict[str, object] = {"options": f"-c search_path={store_schema}"}
            else:
                url = sqlalchemy_url(dsn)
                connect_args = {"server_settings": {"search_path": store_schema}}
            engine = create_async_engine(url, connect_args=connect_args)
            try:
                store = SqlAlchemySnapshotStore(engine)
                await store.get_snapshot(pid, END)  # connect before the clock starts
                elapsed = await timed(partial(store_write, store, snapshot_batches))
                times.store_write = min(times.store_write, elapsed)
                elapsed = await timed(partial(store.list_snapshots, pid, start, END), READ_REPEATS)
                times.store_read = min(times.store_read, elapsed)
                chart = partial(store.list_totals, pid, start, END)
                times.store_totals = min(times.store_totals, await timed(chart, READ_REPEATS))
                times.rows_read = len(await store.list_snapshots(pid, start, END))
            finally:
                await engine.dispose()
            if r == 0:
                await check_postgres_same(dsn, bare_schema, store_schema, len(snapshots))
                if size:
                    times.size = await postgres_size(dsn, store_schema)
    return times


async def postgres_size(dsn: str, schema: str) -> int:
    """Return the bytes the store's snapshot and price tables take, indexes and TOAST included."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'VACUUM ANALYZE "{schema}".ps_snapshots')
        await conn.execute(f'VACUUM ANALYZE "{schema}".ps_prices')
        size: int = await conn.fetchval(
            f"SELECT pg_total_relation_size('\"{schema}\".ps_snapshots') "
            f"+ pg_total_relation_size('\"{schema}\".ps_prices')"
        )
    finally:
        await conn.close()
    return size


async def check_postgres_same(dsn: str, bare: str, store: str, n: int) -> None:
    """Stop unless both schemas hold the same `n` rows, column for column."""
    conn = await asyncpg.connect(dsn)
    try:
        differ = 0
        for table in ("ps_snapshots", "ps_prices"):
            differ += await conn.fetchval(
                f'SELECT count(*) FROM (SELECT * FROM "{bare}".{table} '  # noqa: S608
                f'EXCEPT SELECT * FROM "{store}".{table}) AS d'
            )
        counts = [
            await conn.fetchval(f'SELECT count(*) FROM "{s}".ps_snapshots')  # noqa: S608
            for s in (bare, store)
        ]
    finally:
        await conn.close()
    if differ or counts != [n, n]:
        raise SystemExit(f"PostgreSQL: the two sides stored different rows ({differ}, {counts})")


# --- main --------------------------------------------------------------------------------------


def main() -> None:
    """Parse arguments, build the data, time each backend and print the figures."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--snapshots", type=int, default=100_000)
    parser.add_argument("--positions", type=int, default=10)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--days", type=int, default=3650)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20261127)
    parser.add_argument("--backends", default="sqlite,postgres,psycopg")
    parser.add_argument("--pg-dsn", default=None, help=f"a postgresql:// DSN (or {DSN_ENV})")
    parser.add_argument(
        "--size", action="store_true", help="print the bytes per portfolio-day stored"
    )
    parser.add_argument(
        "--books",
        action="store_true",
        help="give every portfolio its books (cost basis, gains, income, fees, taxes)",
    )
    args = parser.parse_args()
    backends = {b.strip() for b in args.backends.split(",") if b.strip()}
    if not backends <= {"sqlite", "postgres", "psycopg"}:
        parser.error("--backends takes any of sqlite, postgres (asyncpg) and psycopg")
    if not 1 <= args.days <= args.snapshots:
        parser.error("--days must be between 1 and --snapshots")

    snapshots = build(args.snapshots, args.positions, args.days, args.seed, books=args.books)
    n = len(snapshots)
    print(
        f"{n} snapshots x {args.positions} positions: one portfolio over {args.days} days, "
        f"{n - args.days} portfolios on one day"
        + (", every one with its books" if args.books else "")
    )
    if "sqlite" in backends:
        times = asyncio.run(
            bench_sqlite(snapshots, args.batch, args.days, args.rounds, size=args.size)
        )
        times.report("SQLite, SqliteSnapshotStore vs sqlite3", n, args.batch, args.rounds)
    drivers = [d for d in ("postgres", "psycopg") if d in backends]
    if drivers:
        with postgres(args.pg_dsn) as dsn:
            for driver in drivers:
                name = "asyncpg" if driver == "postgres" else "psycopg"
                times = asyncio.run(
                    bench_postgres(
                        name, dsn, snapshots, args.batch, args.days, args.rounds, size=args.size
                    )
                )
                title = f"PostgreSQL, SqlAlchemySnapshotStore on {name} vs {name}"
                times.report(title, n, args.batch, args.rounds)


if __name__ == "__main__":
    main()
