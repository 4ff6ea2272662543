"""Schema version 2: a version-1 database migrated in place reads back every snapshot equal."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import shutil
import sqlite3
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from portfolio_snapshots import PortfolioSnapshot, SqliteSnapshotStore
from portfolio_snapshots.adapters.sqlalchemy import SqlAlchemySnapshotStore, metadata
from portfolio_snapshots.adapters.sqlalchemy._schema import MIGRATIONS, schema_version_table
from storage.pg_server import fresh_schema
from storage.samples import booked_snapshot, version_1_samples

if TYPE_CHECKING:
    from collections.abc import Sequence

    from portfolio_snapshots.history import SnapshotTotals

#: Written by `SqliteSnapshotStore` at schema version 1 (the store before version 2), from
#: `version_1_samples`: the first five with fence 7, the others unfenced.
VERSION_1_FILE = Path(__file__).parent / "data" / "version_1.db"


def texts(snapshot: PortfolioSnapshot) -> tuple[str, ...]:
    """Every field of `snapshot` and its positions as text, so another exponent differs."""
    return (repr(snapshot.values[:6]), repr(snapshot.positions), repr(snapshot.values[7:]))


async def read_all(
    store: SqliteSnapshotStore | SqlAlchemySnapshotStore, written: Sequence[PortfolioSnapshot]
) -> list[PortfolioSnapshot | None]:
    """Read every snapshot of `written` back, by `get_snapshot` and by `list_snapshots`."""
    got: list[PortfolioSnapshot | None] = []
    for s in written:
        got.append(await store.get_snapshot(s.portfolio_id, s.snapshot_date))
        listed = await store.list_snapshots(s.portfolio_id, s.snapshot_date, s.snapshot_date)
        got.append(listed[0] if listed else None)
    return got


def expect_equal(got: Sequence[PortfolioSnapshot | None], written: list[PortfolioSnapshot]) -> None:
    """Check each snapshot read twice (get, list) equals the written one, texts included."""
    twice = [s for s in written for _ in range(2)]
    assert got == twice
    assert [None if g is None else texts(g) for g in got] == [texts(s) for s in twice]


def schema_of(path: Path) -> tuple[int, list[str]]:
    """Return the file's schema version and its tables."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        version = conn.execute("SELECT version FROM ps_schema_version").fetchone()[0]
        tables = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1")
        ]
    return int(version), tables


def stored_ids(path: Path) -> list[bytes]:
    """Return the portfolio id of every row of the file, in key order (16-byte blobs)."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        rows = conn.execute(
            "SELECT portfolio_id, typeof(portfolio_id) FROM ps_snapshots ORDER BY 1, snapshot_date"
        ).fetchall()
    assert {kind for _, kind in rows} == {"blob"}
    return [pid for pid, _ in rows]


def test_the_fixture_is_a_version_1_file() -> None:
    """The committed fixture holds version 1's schema and JSON positions, as version 1 wrote."""
    version, tables = schema_of(VERSION_1_FILE)
    assert version == 1
    assert "ps_prices" not in tables
    with contextlib.closing(sqlite3.connect(VERSION_1_FILE)) as conn:
        first = conn.execute("SELECT positions FROM ps_snapshots LIMIT 1").fetchone()[0]
    assert first.startswith('[{"ticker":')


def test_sqlite_store_migrates_a_version_1_file_in_place(tmp_path: Path) -> None:
    """SqliteSnapshotStore opens a version-1 file, migrates it, and reads every snapshot equal."""
    db = tmp_path / "v1.db"
    shutil.copyfile(VERSION_1_FILE, db)
    written = version_1_samples()

    async def body() -> list[PortfolioSnapshot | None]:
        async with await SqliteSnapshotStore.open(db) as store:
            return await read_all(store, written)

    expect_equal(asyncio.run(body()), written)
    version, tables = schema_of(db)
    assert version == 2
    assert "ps_prices" in tables
    assert "ps_snapshots_v2" not in tables
    with contextlib.closing(sqlite3.connect(db)) as conn:
        json_rows = conn.execute(
            "SELECT count(*) FROM ps_snapshots WHERE positions LIKE '[{%'"
        ).fetchone()[0]
    assert json_rows == 0
    assert stored_ids(db) == sorted(s.portfolio_id.bytes for s in written)


def expect_no_books(got: Sequence[PortfolioSnapshot | None]) -> None:
    """Check every snapshot read from version 1's rows has no books: None, never zero."""
    for snapshot in got:
        assert snapshot is not None
        assert snapshot.values[10:] == (None,) * 8 + ((), ())
        assert all(p[8:] == (None,) * 4 for p in snapshot.positions)


@pytest.mark.parametrize("store_kind", ["sqlite", "sqlalchemy"])
def test_a_migrated_file_reads_no_books_and_stores_them(tmp_path: Path, store_kind: str) -> None:
    """Migrated snapshots read with every accounting field None; new ones store their books."""
    db = tmp_path / "v1.db"
    shutil.copyfile(VERSION_1_FILE, db)
    written = version_1_samples()
    booked = booked_snapshot(written[0].portfolio_id, written[0].snapshot_date)
    added = booked_snapshot(uuid.UUID(int=7), written[0].snapshot_date)

    async def body() -> tuple[list[PortfolioSnapshot | None], list[PortfolioSnapshot | None]]:
        store: SqliteSnapshotStore | SqlAlchemySnapshotStore
        if store_kind == "sqlite":
            store = await SqliteSnapshotStore.open(db)
        else:
            store = await SqlAlchemySnapshotStore.open(f"sqlite+aiosqlite:///{db}")
        async with store:
            before = await read_all(store, written)
            await store.upsert_many([booked, added], fence=7)
            after = [
                await store.get_snapshot(s.portfolio_id, s.snapshot_date) for s in (booked, added)
            ]
            return before, after

    before, after = asyncio.run(body())
    expect_equal(before, written)
    expect_no_books(before)
    assert after == [booked, added]


def test_migrated_rows_keep_their_fences(tmp_path: Path) -> None:
    """A row migrated with fence 7 is left alone by a write under fence 6, replaced under 7."""
    db = tmp_path / "v1.db"
    shutil.copyfile(VERSION_1_FILE, db)
    first, unfenced = version_1_samples()[0], version_1_samples()[-1]
    changed = first.replace(cash_balance=first.cash_balance + 1)
    changed_unfenced = unfenced.replace(cash_balance=unfenced.cash_balance + 1)

    async def body() -> tuple[PortfolioSnapshot | None, ...]:
        async with await SqliteSnapshotStore.open(db) as store:
            await store.upsert_many([changed, changed_unfenced], fence=6)
            kept = await store.get_snapshot(first.portfolio_id, first.snapshot_date)
            replaced = await store.get_snapshot(unfenced.portfolio_id, unfenced.snapshot_date)
            await store.upsert_many([changed], fence=7)
            later = await store.get_snapshot(first.portfolio_id, first.snapshot_date)
            return kept, replaced, later

    assert asyncio.run(body()) == (first, changed_unfenced, changed)


def test_sqlalchemy_store_migrates_a_version_1_sqlite_file(tmp_path: Path) -> None:
    """SqlAlchemySnapshotStore opens a version-1 SQLite file, migrates it, reads it all equal."""
    db = tmp_path / "v1.db"
    shutil.copyfile(VERSION_1_FILE, db)
    written = version_1_samples()

    async def body() -> list[PortfolioSnapshot | None]:
        async with await SqlAlchemySnapshotStore.open(f"sqlite+aiosqlite:///{db}") as store:
            return await read_all(store, written)

    expect_equal(asyncio.run(body()), written)
    version, tables = schema_of(db)
    assert version == 2
    assert "ps_prices" in tables
    with contextlib.closing(sqlite3.connect(db)) as conn:
        json_rows = conn.execute(
            "SELECT count(*) FROM ps_snapshots WHERE positions LIKE '[{%'"
        ).fetchone()[0]
    assert json_rows == 0
    assert stored_ids(db) == sorted(s.portfolio_id.bytes for s in written)


def test_migrated_totals_read_as_the_snapshots(tmp_path: Path) -> None:
    """After the migration, list_totals reads each portfolio's totals as its snapshots hold."""
    db = tmp_path / "v1.db"
    shutil.copyfile(VERSION_1_FILE, db)
    written = version_1_samples()
    pid = written[0].portfolio_id
    mine = sorted((s for s in written if s.portfolio_id == pid), key=lambda s: s.snapshot_date)

    async def body() -> list[object]:
        async with await SqliteSnapshotStore.open(db) as store:
            totals: SnapshotTotals = store
            got = await totals.list_totals(pid, mine[0].snapshot_date, mine[-1].snapshot_date)
            return [(t.snapshot_date, t.total_value, t.cash_balance, t.stale) for t in got]

    assert asyncio.run(body()) == [
        (s.snapshot_date, s.total_value, s.cash_balance, s.stale) for s in mine
    ]


async def _version_1_on_postgres(url: str, connect_args: dict[str, object]) -> None:
    """Make the version-1 tables, holding the fixture file's rows as version 1 wrote them."""
    with contextlib.closing(sqlite3.connect(VERSION_1_FILE)) as source:
        rows = source.execute(
            "SELECT portfolio_id, snapshot_date, currency, cash_balance, holdings_value, "
            "total_value, net_contributions, external_flow, stale, positions, fence "
            "FROM ps_snapshots"
        ).fetchall()
    engine = create_async_engine(url, connect_args=connect_args)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(MIGRATIONS[0])
            await conn.run_sync(lambda c: metadata.create_all(c, tables=[schema_version_table]))
            await conn.execute(text("INSERT INTO ps_schema_version (id, version) VALUES (1, 1)"))
            await conn.execute(
                text(
                    "INSERT INTO ps_snapshots (portfolio_id, snapshot_date, currency, "
                    "cash_balance, holdings_value, total_value, net_contributions, "
                    "external_flow, stale, positions, fence) VALUES (:p, :d, :c, :cash, :h, :t, "
                    ":n, :f, :s, :pos, :fence)"
                ),
                [
                    {
                        "p": uuid.UUID(r[0]),
                        "d": dt.date.fromisoformat(r[1]),
                        "c": r[2],
                        "cash": r[3],
                        "h": r[4],
                        "t": r[5],
                        "n": r[6],
                        "f": r[7],
                        "s": bool(r[8]),
                        "pos": r[9],
                        "fence": r[10],
                    }
                    for r in rows
                ],
            )
    finally:
        await engine.dispose()


@pytest.mark.postgres
def test_sqlalchemy_store_migrates_a_version_1_postgres_database(pg_dsn: str) -> None:
    """A version-1 PostgreSQL schema holding version 1's rows migrates and reads back equal."""
    written = version_1_samples()

    async def body() -> tuple[list[PortfolioSnapshot | None], object, object]:
        async with fresh_schema(pg_dsn) as (url, connect_args):
            await _version_1_on_postgres(url, connect_args)
            store = await SqlAlchemySnapshotStore.open(url, connect_args=connect_args)
            async with store:
                got = await read_all(store, written)
                async with store.engine.connect() as conn:
                    version = (
                        await conn.execute(text("SELECT version FROM ps_schema_version"))
                    ).scalar_one()
                    json_rows = (
                        await conn.execute(
                            text("SELECT count(*) FROM ps_snapshots WHERE positions LIKE '[{%'")
                        )
                    ).scalar_one()
            return got, version, json_rows

    got, version, json_rows = asyncio.run(body())
    expect_equal(got, written)
    expect_no_books(got)
    assert (version, json_rows) == (2, 0)
