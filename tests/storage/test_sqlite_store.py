from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, TypeVar

import pytest

from portfolio_snapshots import (
    InvalidInputError,
    RetryPolicy,
    RunKeyConflictError,
    RunLedger,
    RunLock,
    RunState,
    SnapshotRepository,
    SqliteSnapshotStore,
    TransientError,
)
from portfolio_snapshots.adapters._sql_codec import SCHEMA_VERSION
from portfolio_snapshots.adapters.sqlite import _MIGRATIONS
from portfolio_snapshots.errors import DatabaseBusyError, LeaseLostError, SchemaVersionError
from storage.samples import DAY, NOW, PID, booked_snapshot, plain_snapshot, rich_snapshot

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    from portfolio_snapshots import PortfolioSnapshot

TTL = dt.timedelta(minutes=5)
T = TypeVar("T")


def run(db: Path, body: Callable[[SqliteSnapshotStore], Awaitable[T]], **options: float) -> T:
    """Open the store at `db`, run `body` with it, and close it."""

    async def main() -> T:
        async with await SqliteSnapshotStore.open(db, **options) as store:
            return await body(store)

    return asyncio.run(main())


def query(db: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    """Run `sql` on a connection of our own and return its rows."""
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def test_round_trip(tmp_path: Path) -> None:
    """Every field of a snapshot, Decimals included digit for digit, reads back as written."""
    db = tmp_path / "s.db"
    snap = rich_snapshot()
    other = plain_snapshot(PID, DAY + dt.timedelta(days=1))

    async def body(store: SqliteSnapshotStore) -> None:
        await store.upsert_many([snap, other])
        got = await store.get_snapshot(PID, DAY)
        assert got == snap
        assert got is not None
        assert [str(p.price) for p in got.positions] == ["189.9500", "1.2E+2", "0.0001"]
        assert str(got.net_contributions) == "-0.00"
        assert await store.list_snapshots(PID, DAY, DAY + dt.timedelta(days=3)) == [snap, other]
        assert await store.list_snapshots(
            PID, DAY + dt.timedelta(days=1), DAY + dt.timedelta(days=1)
        ) == [other]
        assert await store.existing_dates(PID, DAY, DAY) == {DAY}
        missing = (uuid.uuid4(), DAY)
        assert await store.existing_keys([(PID, DAY), missing]) == {(PID, DAY)}
        assert await store.get_snapshot(PID, DAY - dt.timedelta(days=1)) is None

    run(db, body)
    assert query(
        db, "SELECT DISTINCT typeof(cash_balance), typeof(total_value) FROM ps_snapshots"
    ) == [("text", "text")]


def test_store_satisfies_the_ports(tmp_path: Path) -> None:
    """The store is a SnapshotRepository, a RunLedger and a RunLock."""

    async def body(store: SqliteSnapshotStore) -> None:
        assert isinstance(store, SnapshotRepository)
        assert isinstance(store, RunLedger)
        assert isinstance(store, RunLock)

    run(tmp_path / "s.db", body)


def test_wal_mode_is_on(tmp_path: Path) -> None:
    """Opening the store switches the file to WAL journaling, which persists in the file."""
    db = tmp_path / "s.db"

    async def body(store: SqliteSnapshotStore) -> None:
        await store.upsert_many([plain_snapshot(PID, DAY)])

    run(db, body)
    assert query(db, "PRAGMA journal_mode") == [("wal",)]


def test_one_row_per_key(tmp_path: Path) -> None:
    """Writing a key twice, or twice in one batch, leaves one row holding the last snapshot."""
    db = tmp_path / "s.db"
    first, second, third = (plain_snapshot(PID, DAY, cash) for cash in ("1.00", "2.00", "3.00"))

    async def body(store: SqliteSnapshotStore) -> None:
        await store.upsert_many([first])
        await store.upsert_many([second, third])

    run(db, body)
    assert query(db, "SELECT cash_balance FROM ps_snapshots") == [("3.00",)]
    conn = sqlite3.connect(db)
    try:
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(
                "INSERT INTO ps_snapshots SELECT * FROM ps_snapshots WHERE portfolio_id = ?",
                (PID.bytes,),
            )
    finally:
        conn.close()


def test_list_snapshots_uses_the_primary_key(tmp_path: Path) -> None:
    """The (portfolio_id, snapshot_date) key is the index that serves date-range reads."""
    db = tmp_path / "s.db"
    run(db, lambda store: store.upsert_many([plain_snapshot(PID, DAY)]))
    plan = query(
        db,
        "EXPLAIN QUERY PLAN SELECT * FROM ps_snapshots "
        "WHERE portfolio_id = ? AND snapshot_date BETWEEN ? AND ? ORDER BY snapshot_date",
        PID.bytes,
        "2026-01-01",
        "2026-12-31",
    )
    details = " ".join(str(row[-1]) for row in plan)
    assert "USING PRIMARY KEY" in details
    assert "TEMP B-TREE" not in details


def test_schema_version_table(tmp_path: Path) -> None:
    """A new file records the current schema version, which matches the migration steps."""
    db = tmp_path / "s.db"
    run(db, lambda store: store.existing_dates(PID, DAY, DAY))
    assert query(db, "SELECT id, version FROM ps_schema_version") == [(1, SCHEMA_VERSION)]
    assert len(_MIGRATIONS) == SCHEMA_VERSION


def test_reopening_migrates_nothing_and_keeps_data(tmp_path: Path) -> None:
    """Opening a current file again changes neither its schema nor its rows."""
    db = tmp_path / "s.db"
    run(db, lambda store: store.upsert_many([rich_snapshot()]))
    schema = query(db, "SELECT type, name, sql FROM sqlite_master ORDER BY name")
    run(db, lambda store: store.existing_dates(PID, DAY, DAY))
    assert query(db, "SELECT type, name, sql FROM sqlite_master ORDER BY name") == schema
    assert query(db, "SELECT version FROM ps_schema_version") == [(SCHEMA_VERSION,)]
    assert run(db, lambda store: store.get_snapshot(PID, DAY)) == rich_snapshot()


def test_newer_schema_is_refused_and_left_unchanged(tmp_path: Path) -> None:
    """A file of a newer schema version raises SchemaVersionError and is not modified."""
    db = tmp_path / "s.db"
    run(db, lambda store: store.upsert_many([rich_snapshot()]))
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE ps_schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    conn.close()
    before = db.read_bytes()
    files = sorted(p.name for p in tmp_path.iterdir())

    with pytest.raises(SchemaVersionError) as caught:
        run(db, lambda store: store.existing_dates(PID, DAY, DAY))

    assert caught.value.found == SCHEMA_VERSION + 1
    assert caught.value.supported == SCHEMA_VERSION
    assert db.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == files


def test_locked_database_is_a_transient_error(tmp_path: Path) -> None:
    """A write blocked by another connection's lock raises DatabaseBusyError, which is retried."""
    db = tmp_path / "s.db"
    run(db, lambda store: store.existing_dates(PID, DAY, DAY))
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(DatabaseBusyError) as caught:
            run(db, lambda store: store.upsert_many([plain_snapshot(PID, DAY)]), busy_timeout=0)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert isinstance(caught.value, TransientError)
    assert isinstance(caught.value, RetryPolicy().transient)
    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
    assert query(db, "SELECT count(*) FROM ps_snapshots") == [(0,)]


def test_fencing(tmp_path: Path) -> None:
    """A fenced write skips rows of a greater fence; an unfenced one replaces and stores 0."""
    db = tmp_path / "s.db"
    newer, older, host = (plain_snapshot(PID, DAY, cash) for cash in ("5.00", "4.00", "9.00"))

    async def body(store: SqliteSnapshotStore) -> None:
        await store.upsert_many([newer], fence=5)
        await store.upsert_many([older], fence=4)
        assert await store.get_snapshot(PID, DAY) == newer
        await store.upsert_many([older], fence=5)
        assert await store.get_snapshot(PID, DAY) == older
        await store.upsert_many([host])
        assert await store.get_snapshot(PID, DAY) == host

    run(db, body)
    assert query(db, "SELECT fence FROM ps_snapshots") == [(0,)]


@pytest.mark.parametrize("make", [rich_snapshot, booked_snapshot])
def test_identical_row_is_not_rewritten(
    tmp_path: Path, make: Callable[..., PortfolioSnapshot]
) -> None:
    """Writing a row identical to the stored one, fence included, performs no update.

    With books or without; a change of a book alone, or its clearing, rewrites it.
    """
    db = tmp_path / "s.db"
    snap = make()
    run(db, lambda store: store.upsert_many([snap], fence=2))
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("CREATE TABLE updates (n INTEGER)")
        conn.execute(
            "CREATE TRIGGER count_updates AFTER UPDATE ON ps_snapshots "
            "BEGIN INSERT INTO updates VALUES (1); END"
        )
    conn.close()

    async def body(store: SqliteSnapshotStore) -> None:
        await store.upsert_many([snap], fence=2)  # identical: skipped
        await store.upsert_many([snap], fence=3)  # newer fence: rewritten
        await store.upsert_many([snap.replace(stale=False)], fence=3)  # rewritten
        await store.upsert_many([snap.replace(stale=False, fees=Decimal(1))], fence=3)  # rewritten
        await store.upsert_many([snap.replace(stale=False)], fence=3)  # its books: rewritten

    run(db, body)
    assert query(db, "SELECT count(*) FROM updates") == [(4,)]


def test_non_decimal_money_is_refused(tmp_path: Path) -> None:
    """A float amount is rejected with InvalidInputError before anything is written."""
    db = tmp_path / "s.db"
    bad = plain_snapshot(PID, DAY).replace(cash_balance=1.5)

    with pytest.raises(InvalidInputError):
        run(db, lambda store: store.upsert_many([plain_snapshot(uuid.uuid4(), DAY), bad]))
    assert query(db, "SELECT count(*) FROM ps_snapshots") == [(0,)]


def test_ids_are_stored_as_their_16_bytes_and_a_non_uuid_id_is_refused(tmp_path: Path) -> None:
    """Portfolio ids are 16-byte blobs in key order; an id that is not a UUID is refused."""
    db = tmp_path / "s.db"
    ids = [uuid.UUID(int=n) for n in (2**127 + 5, 7, 2**64, 3)]
    run(db, lambda store: store.upsert_many([plain_snapshot(pid, DAY) for pid in ids]))
    assert query(db, "SELECT typeof(portfolio_id), length(portfolio_id) FROM ps_snapshots") == [
        ("blob", 16)
    ] * len(ids)
    assert query(db, "SELECT portfolio_id FROM ps_snapshots ORDER BY portfolio_id") == [
        (pid.bytes,) for pid in sorted(ids)
    ]
    named = plain_snapshot(PID, DAY).replace(portfolio_id=str(PID))
    with pytest.raises(InvalidInputError, match="portfolio_id must be a UUID"):
        run(db, lambda store: store.upsert_many([named]))
    assert query(db, "SELECT count(*) FROM ps_snapshots") == [(len(ids),)]


def test_concurrent_writers_of_the_same_keys(tmp_path: Path) -> None:
    """Eight tasks on two stores upserting the same keys all succeed and leave one row per key."""
    db = tmp_path / "s.db"
    pids = [uuid.UUID(int=i) for i in range(20)]

    async def main() -> None:
        async with (
            await SqliteSnapshotStore.open(db) as one,
            await SqliteSnapshotStore.open(db) as two,
            asyncio.TaskGroup() as group,
        ):
            for i in range(8):
                batch = [plain_snapshot(p, DAY, f"{i}.00") for p in reversed(pids)]
                group.create_task((one if i % 2 else two).upsert_many(batch, fence=i))

    asyncio.run(main())
    assert query(db, "SELECT count(*), count(DISTINCT portfolio_id) FROM ps_snapshots") == [
        (20, 20)
    ]
    assert query(db, "SELECT DISTINCT fence, cash_balance FROM ps_snapshots") == [(7, "7.00")]


def test_run_ledger(tmp_path: Path) -> None:
    """The ledger creates, resumes, conflicts, finishes and reads back runs, as in memory."""
    db = tmp_path / "s.db"
    later = NOW + dt.timedelta(hours=1)

    async def body(store: SqliteSnapshotStore) -> None:
        assert await store.get("daily") is None
        first = await store.start("daily", "h1", NOW)
        assert (first.state, first.attempts, first.started_at) == (RunState.RUNNING, 1, NOW)
        failed = await store.finish("daily", RunState.FAILED, {"failed": 2}, later)
        assert (failed.state, failed.finished_at, failed.report) == (
            RunState.FAILED,
            later,
            {"failed": 2},
        )
        assert await store.get("daily") == failed
        resumed = await store.start("daily", "h1", later)
        assert (resumed.attempts, resumed.finished_at, resumed.report) == (2, None, None)
        with pytest.raises(RunKeyConflictError):
            await store.start("daily", "h2", later)
        done = await store.finish("daily", RunState.SUCCEEDED, {"failures": []}, later)
        assert await store.start("daily", "h1", later) == done
        with pytest.raises(KeyError):
            await store.finish("never", RunState.FAILED, {}, later)

    run(db, body)


def test_run_lock(tmp_path: Path) -> None:
    """Leases exclude other owners until they expire, and fences increase across reopening."""
    db = tmp_path / "s.db"

    async def first(store: SqliteSnapshotStore) -> int:
        lease = await store.acquire("k", "a", TTL, NOW)
        assert lease is not None
        assert await store.acquire("k", "b", TTL, NOW) is None
        renewed = await store.renew(lease, TTL, NOW + dt.timedelta(minutes=1))
        assert renewed.fence == lease.fence
        assert renewed.expires_at == NOW + dt.timedelta(minutes=6)
        expired = NOW + dt.timedelta(minutes=7)
        with pytest.raises(LeaseLostError, match="expired"):
            await store.renew(lease, TTL, expired)
        taken = await store.acquire("k", "b", TTL, expired)
        assert taken is not None
        assert taken.fence > lease.fence
        with pytest.raises(LeaseLostError, match="taken over"):
            await store.renew(lease, TTL, expired)
        await store.release(lease)  # no longer held by it: nothing happens
        assert await store.acquire("k", "c", TTL, expired) is None
        await store.release(taken)
        again = await store.acquire("k", "c", TTL, expired)
        assert again is not None
        return again.fence

    last = run(db, first)
    lease = run(db, lambda store: store.acquire("other", "a", TTL, NOW))
    assert lease is not None
    assert lease.fence > last


def test_closed_store_refuses_calls(tmp_path: Path) -> None:
    """After close (which may be called twice) every call raises RuntimeError."""

    async def main() -> None:
        store = await SqliteSnapshotStore.open(tmp_path / "s.db")
        await store.close()
        await store.close()
        with pytest.raises(RuntimeError, match="closed"):
            await store.get_snapshot(PID, DAY)

    asyncio.run(main())


def test_memory_database_is_refused(tmp_path: Path) -> None:
    """An in-memory database, which no second connection could share, is refused."""
    with pytest.raises(ValueError, match="memory"):
        asyncio.run(SqliteSnapshotStore.open(":memory:"))
    assert not list(tmp_path.iterdir())


def test_decimal_text_survives_a_large_batch(tmp_path: Path) -> None:
    """Many snapshots written in one batch all read back exactly."""
    db = tmp_path / "s.db"
    snaps = [
        plain_snapshot(PID, DAY - dt.timedelta(days=i), str(Decimal(i).scaleb(-3)))
        for i in range(1, 1200)
    ]

    async def body(store: SqliteSnapshotStore) -> None:
        await store.upsert_many(snaps)
        got = await store.list_snapshots(PID, dt.date.min, dt.date.max)
        assert got == sorted(snaps, key=lambda s: s.snapshot_date)
        keys = [(s.portfolio_id, s.snapshot_date) for s in snaps]
        assert await store.existing_keys(keys) == set(keys)

    run(db, body)
