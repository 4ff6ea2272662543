from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import inspect
import sqlite3
import uuid
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import create_async_engine

import portfolio_snapshots
import portfolio_snapshots.adapters.sqlalchemy as sqlalchemy_adapter
from portfolio_snapshots import (
    DatabaseUnavailableError,
    InvalidInputError,
    PortfolioSnapshot,
    PositionValuation,
    RunKeyConflictError,
    RunLedger,
    RunLock,
    RunState,
    SnapshotRepository,
    SqliteSnapshotStore,
    TransientError,
)
from portfolio_snapshots.adapters._sql_codec import SCHEMA_VERSION
from portfolio_snapshots.adapters.sqlalchemy import (
    SqlAlchemySnapshotStore,
    create_schema,
    metadata,
)
from portfolio_snapshots.adapters.sqlalchemy._schema import MIGRATIONS, translate
from portfolio_snapshots.errors import DatabaseBusyError, LeaseLostError, SchemaVersionError
from storage.pg_server import (
    asyncpg_url,
    create_test_schema,
    drop_test_schema,
    free_port,
    psycopg_connect_args,
    psycopg_url,
    search_path,
)
from storage.samples import DAY, NOW, PID, booked_snapshot, plain_snapshot, rich_snapshot

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

T = TypeVar("T")
TTL = dt.timedelta(minutes=5)
TABLES = {
    "ps_snapshots",
    "ps_prices",
    "ps_runs",
    "ps_leases",
    "ps_fence_counter",
    "ps_schema_version",
}


@dataclasses.dataclass(frozen=True)
class Target:
    """One empty database to test on: a new SQLite file, or a new PostgreSQL schema."""

    dialect: str
    url: str
    connect_args: dict[str, object]
    file: Path | None = None

    async def open(self) -> SqlAlchemySnapshotStore:
        """Open a store (with its own engine) on the database."""
        return await SqlAlchemySnapshotStore.open(self.url, connect_args=self.connect_args)

    def run(self, body: Callable[[SqlAlchemySnapshotStore], Awaitable[T]]) -> T:
        """Open a store, run `body` with it, and close it."""

        async def main() -> T:
            async with await self.open() as store:
                return await body(store)

        return asyncio.run(main())

    def rows(self, sql: str, **params: object) -> list[tuple[object, ...]]:
        """Run `sql` on a connection of our own, commit, and return its rows (if any)."""

        async def main() -> list[tuple[object, ...]]:
            engine = create_async_engine(self.url, connect_args=self.connect_args)
            try:
                async with engine.begin() as conn:
                    result = await conn.execute(text(sql), params)
                    return [tuple(r) for r in result] if result.returns_rows else []
            finally:
                await engine.dispose()

        return asyncio.run(main())

    def tables(self) -> set[str]:
        """Return the names of the tables in the database (or the test's schema)."""
        if self.dialect == "sqlite":
            names = self.rows("SELECT name FROM sqlite_master WHERE type = 'table'")
        else:
            names = self.rows(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema()"
            )
        return {str(n[0]) for n in names}


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("psycopg", marks=pytest.mark.postgres),
    ]
)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    """An empty database on each backend and driver the SQLAlchemy store supports."""
    if request.param == "sqlite":
        file = tmp_path / "store.db"
        yield Target("sqlite", f"sqlite+aiosqlite:///{file}", {}, file)
        return
    dsn: str = request.getfixturevalue("pg_dsn")
    schema = asyncio.run(create_test_schema(dsn))
    try:
        if request.param == "psycopg":
            yield Target("postgresql", psycopg_url(dsn), psycopg_connect_args(search_path(schema)))
        else:
            yield Target("postgresql", asyncpg_url(dsn), search_path(schema))
    finally:
        asyncio.run(drop_test_schema(dsn, schema))


def test_round_trip(target: Target) -> None:
    """Every field of a snapshot, Decimals included digit for digit, reads back as written."""
    snap = rich_snapshot()
    other = plain_snapshot(PID, DAY + dt.timedelta(days=1))

    async def body(store: SqlAlchemySnapshotStore) -> None:
        assert isinstance(store, SnapshotRepository)
        assert isinstance(store, RunLedger)
        assert isinstance(store, RunLock)
        await store.upsert_many([snap, other])
        got = await store.get_snapshot(PID, DAY)
        assert got == snap
        assert got is not None
        assert [str(p.price) for p in got.positions] == ["189.9500", "1.2E+2", "0.0001"]
        assert str(got.net_contributions) == "-0.00"
        assert await store.list_snapshots(PID, DAY, DAY + dt.timedelta(days=3)) == [snap, other]
        assert await store.list_snapshots(PID, DAY, DAY) == [snap]
        assert await store.existing_dates(PID, DAY - dt.timedelta(days=1), DAY) == {DAY}
        missing = (uuid.uuid4(), DAY)
        assert await store.existing_keys([(PID, DAY), missing, (PID, DAY)]) == {(PID, DAY)}
        assert await store.existing_keys([]) == frozenset()
        assert await store.get_snapshot(PID, DAY - dt.timedelta(days=1)) is None

    target.run(body)


def test_list_snapshots_is_served_by_the_primary_key(target: Target) -> None:
    """The statement `list_snapshots` runs reads the (portfolio_id, snapshot_date) index.

    The plan is asked for the very SQL and parameters the store sent, on a table of 60
    portfolios x 100 days whose statistics are fresh.
    """
    ids = [uuid.UUID(int=n) for n in range(1, 61)]
    days = [DAY - dt.timedelta(days=n) for n in range(100)]
    sent: list[tuple[str, object]] = []

    def capture(
        _conn: object, _cursor: object, statement: str, parameters: object, *_: object
    ) -> None:
        """SQLAlchemy's before_cursor_execute: keep each read of the snapshots table."""
        if "FROM ps_snapshots" in statement:
            sent.append((statement, parameters))

    async def body(store: SqlAlchemySnapshotStore) -> list[tuple[object, ...]]:
        await store.upsert_many([plain_snapshot(pid, day) for pid in ids for day in days])
        async with store.engine.begin() as conn:
            await conn.exec_driver_sql("ANALYZE")
        event.listen(store.engine.sync_engine, "before_cursor_execute", capture)
        try:
            listed = await store.list_snapshots(ids[7], days[29], days[0])
        finally:
            event.remove(store.engine.sync_engine, "before_cursor_execute", capture)
        assert len(listed) == 30
        ((statement, parameters),) = sent
        explain = "EXPLAIN QUERY PLAN " if target.dialect == "sqlite" else "EXPLAIN "
        async with store.engine.connect() as conn:
            result = await conn.exec_driver_sql(explain + statement, parameters)  # type: ignore[arg-type]
            return [tuple(row) for row in result]

    plan = " ".join(str(row[-1]) for row in target.run(body))
    if target.dialect == "sqlite":
        assert "USING INDEX" in plan or "USING PRIMARY KEY" in plan, plan
        assert "TEMP B-TREE" not in plan, plan  # rows come in index order: no sort
    else:
        assert "pk_ps_snapshots" in plan, plan
        assert "Seq Scan" not in plan, plan


def test_money_columns_are_text(target: Target) -> None:
    """Amounts are stored as decimal text, never as floating point, accounting fields too."""
    target.run(lambda store: store.upsert_many([rich_snapshot()]))
    if target.dialect == "sqlite":
        kinds = target.rows("SELECT DISTINCT typeof(cash_balance) FROM ps_snapshots")
    else:
        kinds = target.rows(
            "SELECT DISTINCT data_type FROM information_schema.columns WHERE table_schema = "
            "current_schema() AND table_name = 'ps_snapshots' AND (column_name LIKE '%value' "
            "OR column_name IN ('cost_basis', 'realized_gain', 'fees', 'net_transfers', "
            "'cash_balances'))"
        )
    assert kinds == [("text",)]
    assert target.rows("SELECT cash_balance FROM ps_snapshots") == [("1000.50",)]
    target.run(lambda store: store.upsert_many([booked_snapshot()]))
    if target.dialect == "sqlite":
        kinds = target.rows(
            "SELECT DISTINCT typeof(realized_gain) || typeof(taxes) || typeof(cash_balances) "
            "FROM ps_snapshots"
        )
        assert kinds == [("texttexttext",)]
    assert target.rows("SELECT taxes, net_transfers, cost_basis FROM ps_snapshots") == [
        ("-1.50", "1E+3", None)
    ]


def test_schema_version_and_idempotent_reopen(target: Target) -> None:
    """The schema records its version; opening again migrates nothing and keeps the rows."""
    target.run(lambda store: store.upsert_many([rich_snapshot()]))
    assert target.tables() == TABLES
    assert target.rows("SELECT id, version FROM ps_schema_version") == [(1, SCHEMA_VERSION)]
    assert len(MIGRATIONS) == SCHEMA_VERSION
    assert set(metadata.tables) == TABLES
    assert target.run(lambda store: store.get_snapshot(PID, DAY)) == rich_snapshot()
    assert target.rows("SELECT id, version FROM ps_schema_version") == [(1, SCHEMA_VERSION)]


def test_newer_schema_is_refused_and_left_unchanged(target: Target) -> None:
    """A database of a newer schema version raises SchemaVersionError and is not modified."""
    target.run(lambda store: store.upsert_many([rich_snapshot()]))
    target.rows("DROP TABLE ps_leases")  # a migration would create it again
    target.rows("UPDATE ps_schema_version SET version = :v", v=SCHEMA_VERSION + 1)
    before = None if target.file is None else target.file.read_bytes()

    async def main() -> None:
        await target.open()

    with pytest.raises(SchemaVersionError) as caught:
        asyncio.run(main())

    assert caught.value.found == SCHEMA_VERSION + 1
    assert target.tables() == TABLES - {"ps_leases"}
    assert target.rows("SELECT version FROM ps_schema_version") == [(SCHEMA_VERSION + 1,)]
    if target.file is not None:
        assert target.file.read_bytes() == before


def test_one_row_per_key(target: Target) -> None:
    """Writing a key twice, or twice in one batch, leaves one row holding the last snapshot."""
    first, second, third = (plain_snapshot(PID, DAY, cash) for cash in ("1.00", "2.00", "3.00"))

    async def body(store: SqlAlchemySnapshotStore) -> None:
        await store.upsert_many([first])
        await store.upsert_many([second, third])

    target.run(body)
    assert target.rows("SELECT cash_balance FROM ps_snapshots") == [("3.00",)]
    with pytest.raises(sa_exc.IntegrityError):
        target.rows("INSERT INTO ps_snapshots SELECT * FROM ps_snapshots")


def test_fencing(target: Target) -> None:
    """A fenced write skips rows of a greater fence; an unfenced one replaces and stores 0."""
    newer, older, host = (plain_snapshot(PID, DAY, cash) for cash in ("5.00", "4.00", "9.00"))

    async def body(store: SqlAlchemySnapshotStore) -> None:
        await store.upsert_many([newer], fence=5)
        await store.upsert_many([older], fence=4)
        assert await store.get_snapshot(PID, DAY) == newer
        await store.upsert_many([newer], fence=6)  # same content, newer fence: recorded
        await store.upsert_many([older], fence=5)
        assert await store.get_snapshot(PID, DAY) == newer
        await store.upsert_many([host])
        assert await store.get_snapshot(PID, DAY) == host

    target.run(body)
    assert target.rows("SELECT fence FROM ps_snapshots") == [(0,)]


@pytest.mark.parametrize("make", [rich_snapshot, booked_snapshot])
def test_identical_row_is_not_rewritten(
    target: Target, make: Callable[..., PortfolioSnapshot]
) -> None:
    """Upserting a row identical to the stored one (fence included) leaves the row untouched.

    With books or without; a change of a book alone rewrites it.
    """
    snap = make()
    target.run(lambda store: store.upsert_many([snap], fence=2))
    if target.dialect == "sqlite":
        target.rows("CREATE TABLE updates (n INTEGER)")
        target.rows(
            "CREATE TRIGGER count_updates AFTER UPDATE ON ps_snapshots "
            "BEGIN INSERT INTO updates VALUES (1); END"
        )

        def version() -> object:
            return target.rows("SELECT count(*) FROM updates")[0][0]
    else:

        def version() -> object:
            return target.rows("SELECT xmin::text FROM ps_snapshots")[0][0]

    before = version()
    target.run(lambda store: store.upsert_many([snap], fence=2))
    assert version() == before
    target.run(lambda store: store.upsert_many([snap.replace(stale=False)], fence=2))
    assert version() != before
    before = version()
    taxed = snap.replace(stale=False, taxes=Decimal("0.01"))
    target.run(lambda store: store.upsert_many([taxed], fence=2))
    assert version() != before


def test_concurrent_upserts_of_the_same_keys(target: Target) -> None:
    """Eight tasks upserting the same keys at once all succeed and leave one row per key."""
    pids = [uuid.UUID(int=i) for i in range(25)]

    async def body(store: SqlAlchemySnapshotStore) -> None:
        await asyncio.gather(
            *(
                store.upsert_many(
                    [plain_snapshot(p, DAY, f"{i}.00") for p in (pids if i % 2 else pids[::-1])]
                )
                for i in range(8)
            )
        )

    target.run(body)
    assert target.rows("SELECT count(*) FROM ps_snapshots") == [(25,)]
    assert len(target.rows("SELECT DISTINCT portfolio_id FROM ps_snapshots")) == 25


def test_concurrent_batches_meeting_new_prices_in_opposite_orders_both_store(
    target: Target,
) -> None:
    """Batches written at once that meet the same new prices in opposite orders both succeed.

    Each inserts the day's new ``ps_prices`` rows in key order, whatever order its snapshots
    met them in: in the order met, two such batches deadlocked on PostgreSQL.
    """
    tickers = [f"T{i:03d}" for i in range(60)]

    def batch(first: int, order: list[str], day: dt.date) -> list[PortfolioSnapshot]:
        snapshots = []
        for n in range(30):
            held = sorted(order[n * 2 : n * 2 + 2])
            positions = [
                PositionValuation(t, Decimal(1), Decimal(2), day, Decimal("2.00")) for t in held
            ]
            snapshots.append(
                PortfolioSnapshot(
                    uuid.UUID(int=first + n),
                    day,
                    "USD",
                    Decimal(0),
                    Decimal("4.00"),
                    Decimal("4.00"),
                    positions,
                )
            )
        return snapshots

    async def body(store: SqlAlchemySnapshotStore) -> None:
        for offset in range(10):  # a new day each time: every price row is new
            day = DAY + dt.timedelta(days=offset)
            await asyncio.gather(
                store.upsert_many(batch(1_000, tickers, day)),
                store.upsert_many(batch(2_000, tickers[::-1], day)),
            )

    target.run(body)
    assert target.rows("SELECT count(*) FROM ps_snapshots") == [(600,)]
    assert target.rows("SELECT count(*) FROM ps_prices") == [(600,)]


def test_concurrent_lease_acquisition(target: Target) -> None:
    """Of eight owners racing for one key, exactly one gets the lease; fences are distinct."""

    async def body(store: SqlAlchemySnapshotStore) -> None:
        leases = await asyncio.gather(
            *(store.acquire("daily", f"owner-{i}", TTL, NOW) for i in range(8))
        )
        won = [lease for lease in leases if lease is not None]
        assert len(won) == 1
        again = await store.acquire("other", "x", TTL, NOW)
        assert again is not None
        assert again.fence > won[0].fence

    target.run(body)


def test_concurrent_starts_of_one_run(target: Target) -> None:
    """Eight tasks starting one run key see attempts 1 to 8, each exactly once."""

    async def body(store: SqlAlchemySnapshotStore) -> None:
        records = await asyncio.gather(*(store.start("daily", "h", NOW) for _ in range(8)))
        assert sorted(r.attempts for r in records) == list(range(1, 9))

    target.run(body)


def test_run_ledger(target: Target) -> None:
    """The ledger creates, resumes, conflicts, finishes and reads back runs, as in memory."""
    later = NOW + dt.timedelta(hours=1)

    async def body(store: SqlAlchemySnapshotStore) -> None:
        assert await store.get("daily") is None
        first = await store.start("daily", "h1", NOW)
        assert (first.state, first.attempts, first.started_at) == (RunState.RUNNING, 1, NOW)
        failed = await store.finish("daily", RunState.FAILED, {"failed": 2}, later)
        assert await store.get("daily") == failed
        resumed = await store.start("daily", "h1", later)
        assert (resumed.attempts, resumed.finished_at, resumed.report) == (2, None, None)
        assert await store.get("daily") == resumed
        with pytest.raises(RunKeyConflictError):
            await store.start("daily", "h2", later)
        done = await store.finish("daily", RunState.SUCCEEDED, {"failures": []}, later)
        assert await store.start("daily", "h1", later) == done
        with pytest.raises(KeyError):
            await store.finish("never", RunState.FAILED, {}, later)
        with pytest.raises(InvalidInputError):
            await store.finish("daily", RunState.FAILED, {"x": object()}, later)

    target.run(body)


def test_run_lock(target: Target) -> None:
    """Leases exclude other owners until they expire, renew, and release only their own key."""

    async def body(store: SqlAlchemySnapshotStore) -> None:
        lease = await store.acquire("k", "a", TTL, NOW)
        assert lease is not None
        assert await store.acquire("k", "b", TTL, NOW) is None
        renewed = await store.renew(lease, TTL, NOW + dt.timedelta(minutes=1))
        assert (renewed.fence, renewed.expires_at) == (lease.fence, NOW + dt.timedelta(minutes=6))
        expired = NOW + dt.timedelta(minutes=7)
        with pytest.raises(LeaseLostError, match="expired"):
            await store.renew(lease, TTL, expired)
        taken = await store.acquire("k", "b", TTL, expired)
        assert taken is not None
        assert taken.fence > lease.fence
        with pytest.raises(LeaseLostError, match="taken over"):
            await store.renew(lease, TTL, expired)
        await store.release(lease)
        assert await store.acquire("k", "c", TTL, expired) is None
        await store.release(taken)
        assert await store.acquire("k", "c", TTL, expired) is not None

    target.run(body)


def test_non_decimal_money_is_refused(target: Target) -> None:
    """A float amount is rejected with InvalidInputError before anything is written."""
    bad = plain_snapshot(PID, DAY).replace(total_value=2.5)

    with pytest.raises(InvalidInputError):
        target.run(lambda store: store.upsert_many([plain_snapshot(uuid.uuid4(), DAY), bad]))
    assert target.rows("SELECT count(*) FROM ps_snapshots") == [(0,)]


def test_ids_are_uuids_or_16_bytes_and_a_non_uuid_id_is_refused(target: Target) -> None:
    """Portfolio ids are UUIDs on PostgreSQL, 16-byte blobs on SQLite; a str id is refused."""
    target.run(lambda store: store.upsert_many([plain_snapshot(PID, DAY)]))
    if target.dialect == "sqlite":
        kinds = target.rows("SELECT typeof(portfolio_id), length(portfolio_id) FROM ps_snapshots")
        assert kinds == [("blob", 16)]
    else:
        kinds = target.rows(
            "SELECT data_type FROM information_schema.columns WHERE table_schema = "
            "current_schema() AND table_name = 'ps_snapshots' AND column_name = 'portfolio_id'"
        )
        assert kinds == [("uuid",)]
    named = plain_snapshot(uuid.uuid4(), DAY)
    named = named.replace(portfolio_id=str(named.portfolio_id))
    with pytest.raises(InvalidInputError, match="portfolio_id must be a UUID"):
        target.run(lambda store: store.upsert_many([named]))
    assert target.rows("SELECT count(*) FROM ps_snapshots") == [(1,)]


def test_wal_mode_on_sqlite(tmp_path: Path) -> None:
    """create_schema switches an SQLite file to WAL journaling."""
    file = tmp_path / "s.db"
    Target("sqlite", f"sqlite+aiosqlite:///{file}", {}, file).run(
        lambda store: store.existing_dates(PID, DAY, DAY)
    )
    conn = sqlite3.connect(file)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        conn.close()


def test_locked_sqlite_is_a_transient_error(tmp_path: Path) -> None:
    """A write blocked by another connection's lock raises DatabaseBusyError."""
    file = tmp_path / "s.db"
    url = f"sqlite+aiosqlite:///{file}"
    Target("sqlite", url, {}, file).run(lambda store: store.existing_dates(PID, DAY, DAY))
    blocker = sqlite3.connect(file, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")

    async def main() -> None:
        async with await SqlAlchemySnapshotStore.open(url, busy_timeout=0, create=False) as store:
            await store.upsert_many([plain_snapshot(PID, DAY)])

    try:
        with pytest.raises(DatabaseBusyError) as caught:
            asyncio.run(main())
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert isinstance(caught.value, TransientError)


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
def test_unreachable_postgres_is_a_transient_error(driver: str) -> None:
    """A PostgreSQL URL whose port nobody listens on gives DatabaseUnavailableError."""
    url = f"postgresql+{driver}://postgres@127.0.0.1:{free_port()}/nowhere"

    async def main() -> None:
        with pytest.raises(DatabaseUnavailableError) as caught:
            await SqlAlchemySnapshotStore.open(url)
        assert isinstance(caught.value, TransientError)
        engine = create_async_engine(url)
        try:
            store = SqlAlchemySnapshotStore(engine)
            with pytest.raises(DatabaseUnavailableError):
                await store.upsert_many([plain_snapshot(PID, DAY)])
            with pytest.raises(DatabaseUnavailableError):
                await store.get_snapshot(PID, DAY)
        finally:
            await engine.dispose()

    asyncio.run(main())


@pytest.mark.postgres
def test_concurrent_create_schema(pg_dsn: str) -> None:
    """Several processes' worth of create_schema calls at once all succeed on one database."""
    schema = asyncio.run(create_test_schema(pg_dsn))
    url = "postgresql+asyncpg://" + pg_dsn.split("://", 1)[1]

    async def main() -> None:
        engines = [create_async_engine(url, connect_args=search_path(schema)) for _ in range(4)]
        try:
            await asyncio.gather(*(create_schema(e) for e in engines))
        finally:
            for e in engines:
                await e.dispose()

    try:
        asyncio.run(main())
        target = Target("postgresql", url, search_path(schema))
        assert target.tables() == TABLES
        assert target.rows("SELECT version FROM ps_schema_version") == [(SCHEMA_VERSION,)]
    finally:
        asyncio.run(drop_test_schema(pg_dsn, schema))


def test_host_engine_is_left_to_the_host(tmp_path: Path) -> None:
    """Closing a store built on the host's engine does not dispose of that engine."""
    url = f"sqlite+aiosqlite:///{tmp_path / 's.db'}"

    async def main() -> None:
        engine = create_async_engine(url)
        try:
            await create_schema(engine)
            async with SqlAlchemySnapshotStore(engine) as store:
                await store.upsert_many([plain_snapshot(PID, DAY)])
            assert await SqlAlchemySnapshotStore(engine).existing_dates(PID, DAY, DAY) == {DAY}
        finally:
            await engine.dispose()

    asyncio.run(main())


def test_other_databases_are_refused() -> None:
    """Only PostgreSQL and SQLite engines are accepted."""

    async def main() -> None:
        engine = create_async_engine("sqlite+aiosqlite://")
        engine.dialect.name = "mysql"
        try:
            with pytest.raises(InvalidInputError, match="mysql"):
                SqlAlchemySnapshotStore(engine)
            with pytest.raises(InvalidInputError, match="mysql"):
                await create_schema(engine)
        finally:
            await engine.dispose()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("url", "sync"),
    [
        ("sqlite://", True),
        ("postgresql+psycopg://app@localhost/app", True),  # never connects
        ("sqlite+aiosqlite://", False),  # the URL itself, not an engine
    ],
    ids=["sync-sqlite", "sync-postgresql", "url"],
)
def test_what_is_not_an_async_engine_is_refused_when_the_store_is_built(
    url: str, sync: bool
) -> None:
    """A sync Engine (or a URL) raises InvalidInputError at once, pointing to create_async_engine.

    Accepted, a sync engine would fail only on the store's first use, with SQLAlchemy's
    "'Connection' object does not support the asynchronous context manager protocol".
    """
    engine = create_engine(url) if sync else url
    kind = "sqlalchemy.engine.base.Engine" if sync else "builtins.str"
    try:
        with pytest.raises(InvalidInputError) as built:
            SqlAlchemySnapshotStore(engine)  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError) as migrated:
            asyncio.run(create_schema(engine))  # type: ignore[arg-type]
    finally:
        if not isinstance(engine, str):
            engine.dispose()
    for caught, user in ((built, "SqlAlchemySnapshotStore"), (migrated, "create_schema")):
        message = str(caught.value)
        assert message.startswith(f"{user} needs an AsyncEngine, got {kind}:")
        assert "sqlalchemy.ext.asyncio.create_async_engine" in message


def test_public_names_report_the_public_module() -> None:
    """__all__ is sorted and complete; what the package defines names its public path.

    Reprs, tracebacks, generated docs and Alembic's autogenerated revisions (which import the
    column types by their ``__module__``) then show ``portfolio_snapshots.adapters.sqlalchemy``,
    never a private module; the errors it re-exports are the library's own.
    """
    package = sqlalchemy_adapter.__name__
    public = sorted(name for name in vars(sqlalchemy_adapter) if not name.startswith("_"))
    assert sqlalchemy_adapter.__all__ == public
    defined = []
    for name in sqlalchemy_adapter.__all__:
        obj = getattr(sqlalchemy_adapter, name)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        if obj.__module__.startswith(package):
            assert obj.__module__ == package, name
            defined.append(name)
        else:
            assert getattr(portfolio_snapshots, name) is obj, name
    assert defined == [
        "DecimalText",
        "SqlAlchemySnapshotStore",
        "UtcDateTime",
        "UuidKey",
        "UuidText",
        "create_month_partitions",
        "create_schema",
    ]


class _OrigError(Exception):
    """A driver error carrying a SQLSTATE, as SQLAlchemy's asyncpg adapter raises."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("sqlstate", "expected"),
    [
        ("40001", DatabaseBusyError),
        ("40P01", DatabaseBusyError),
        ("55P03", DatabaseBusyError),
        ("08006", DatabaseUnavailableError),
        ("53300", DatabaseUnavailableError),
        ("57P01", DatabaseUnavailableError),
        ("57P03", DatabaseUnavailableError),
        ("23505", None),
        ("42P01", None),
    ],
)
def test_sqlstates_that_are_transient(sqlstate: str, expected: type[Exception] | None) -> None:
    """Serialization, deadlock, lock and connection SQLSTATEs map to transient errors only."""
    error = sa_exc.DBAPIError("SELECT 1", None, _OrigError(sqlstate))
    mapped = translate(error, "db")
    if expected is None:
        assert mapped is None
    else:
        assert type(mapped) is expected


def test_other_transient_errors() -> None:
    """Refused connections, pool timeouts and invalidated connections are transient."""
    invalidated = sa_exc.DBAPIError(
        "SELECT 1", None, Exception("gone"), connection_invalidated=True
    )
    assert type(translate(invalidated, "db")) is DatabaseUnavailableError
    assert type(translate(ConnectionRefusedError(), "db")) is DatabaseUnavailableError
    assert type(translate(sa_exc.TimeoutError(), "db")) is DatabaseBusyError
    locked = sqlite3.OperationalError("database is locked")
    assert type(translate(sa_exc.OperationalError("x", None, locked), "db")) is DatabaseBusyError
    missing = sqlite3.OperationalError("no such table: ps_snapshots")
    assert translate(sa_exc.OperationalError("x", None, missing), "db") is None
    assert translate(ValueError("bad"), "db") is None


def test_existing_keys_in_many_chunks(target: Target) -> None:
    """existing_keys answers for more keys than one statement carries, across portfolios."""
    snaps = [
        plain_snapshot(uuid.UUID(int=i % 7), DAY - dt.timedelta(days=i)) for i in range(0, 1000, 2)
    ]
    asked = [(uuid.UUID(int=i % 7), DAY - dt.timedelta(days=i)) for i in range(1000)]

    async def body(store: SqlAlchemySnapshotStore) -> None:
        await store.upsert_many(snaps)
        found = await store.existing_keys(asked)
        assert found == {(s.portfolio_id, s.snapshot_date) for s in snaps}

    target.run(body)


@pytest.mark.parametrize("make", [rich_snapshot, booked_snapshot])
def test_both_stores_share_an_sqlite_file(
    tmp_path: Path, make: Callable[..., PortfolioSnapshot]
) -> None:
    """A file written by SqliteSnapshotStore reads and upserts the same keys through SQLAlchemy.

    Books included: each store reads what the other wrote.
    """
    file = tmp_path / "shared.db"
    snap = make()

    async def main() -> None:
        async with await SqliteSnapshotStore.open(file) as native:
            await native.upsert_many([snap], fence=1)
            lease = await native.acquire("k", "a", TTL, NOW)
        async with await SqlAlchemySnapshotStore.open(f"sqlite+aiosqlite:///{file}") as alchemy:
            assert await alchemy.get_snapshot(PID, DAY) == snap
            assert await alchemy.existing_keys([(PID, DAY)]) == {(PID, DAY)}
            await alchemy.upsert_many(
                [plain_snapshot(PID, DAY), make(PID, DAY + dt.timedelta(days=1))], fence=2
            )
            assert await alchemy.acquire("k", "b", TTL, NOW) is None
            assert lease is not None
            await alchemy.release(lease)
        async with await SqliteSnapshotStore.open(file) as native:
            assert await native.get_snapshot(PID, DAY) == plain_snapshot(PID, DAY)
            assert await native.get_snapshot(PID, DAY + dt.timedelta(days=1)) == make(
                PID, DAY + dt.timedelta(days=1)
            )

    asyncio.run(main())
    conn = sqlite3.connect(file)
    try:
        assert conn.execute(
            "SELECT portfolio_id, fence FROM ps_snapshots WHERE snapshot_date = ?",
            (DAY.isoformat(),),
        ).fetchall() == [(PID.bytes, 2)]
    finally:
        conn.close()


@pytest.mark.postgres
def test_a_killed_connection_is_transient_and_the_next_call_recovers(pg_dsn: str) -> None:
    """A pooled connection the server terminated raises DatabaseUnavailableError, once."""
    schema = asyncio.run(create_test_schema(pg_dsn))
    name = f"victim-{schema}"
    settings = {"search_path": schema, "application_name": name}
    url = "postgresql+asyncpg://" + pg_dsn.split("://", 1)[1]
    target = Target("postgresql", url, {"server_settings": settings})

    async def main() -> None:
        async with await target.open() as store:
            await store.upsert_many([plain_snapshot(PID, DAY)])  # leaves a pooled connection
            killer = create_async_engine(url)
            try:
                async with killer.begin() as conn:
                    killed = await conn.execute(
                        text(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE application_name = :name"
                        ),
                        {"name": name},
                    )
                    assert killed.scalars().all() == [True]
                for _ in range(200):  # wait until the backend has really gone
                    async with killer.connect() as conn:
                        alive = await conn.scalar(
                            text(
                                "SELECT count(*) FROM pg_stat_activity WHERE application_name = :n"
                            ),
                            {"n": name},
                        )
                    if not alive:
                        break
                    await asyncio.sleep(0.05)
            finally:
                await killer.dispose()
            with pytest.raises(DatabaseUnavailableError):
                await store.get_snapshot(PID, DAY)
            assert await store.get_snapshot(PID, DAY) == plain_snapshot(PID, DAY)

    try:
        asyncio.run(main())
    finally:
        asyncio.run(drop_test_schema(pg_dsn, schema))
