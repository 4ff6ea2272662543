"""`SqlAlchemySnapshotStore`: the three storage ports on the schema of `_schema`.

Reads, the run ledger and the run lock go through SQLAlchemy Core; snapshot writes go through
the driver-level upsert of `_fast_path` when it applies, through Core otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, Self, cast

from sqlalchemy import (
    Text,
    and_,
    bindparam,
    delete,
    literal_column,
    null,
    or_,
    select,
    tuple_,
    type_coerce,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from portfolio_snapshots._domain import DailyTotals, Lease, PortfolioSnapshot, RunRecord, RunState
from portfolio_snapshots._errors import DatabaseBusyError, LeaseLostError, RunKeyConflictError
from portfolio_snapshots.adapters._sql_codec import (
    BOOK_COLUMNS,
    PositionPrice,
    PriceCatalog,
    PricePlan,
    as_utc,
    book_texts,
    books_column_sql,
    books_from_columns,
    chunks,
    dedupe_sorted,
    flat_positions_from_text,
    lease_lost_detail,
    price_from_row,
    referenced_prices,
    report_from_json,
    report_json,
    run_record,
    totals_of_rows,
)
from portfolio_snapshots.adapters.sqlalchemy._fast_path import DriverRead, DriverUpsert
from portfolio_snapshots.adapters.sqlalchemy._schema import (
    booked_columns,
    checked_decimal,
    checked_dialect,
    create_schema,
    database_name,
    dialect_insert,
    fence_counter_table,
    leases_table,
    price_params,
    price_queries,
    prices_table,
    runs_table,
    snapshots_table,
    stored_prices,
    translated,
    written_columns,
)

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Collection, Sequence
    from decimal import Decimal
    from types import TracebackType
    from uuid import UUID

    from sqlalchemy import URL, RowMapping
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.dialects import sqlite as sqlite_dialect

#: The columns an upsert of a snapshot without books replaces: all it writes but the key.
_CONTENT: Final = tuple(c.name for c in written_columns if not c.primary_key)
#: The same for a snapshot with books.
_BOOKED_CONTENT: Final = tuple(c.name for c in booked_columns if not c.primary_key)
#: The columns a read selects, in the order `_snapshot` takes them: the books as their text.
_SNAPSHOT_COLUMNS: Final = (
    snapshots_table.c.portfolio_id,
    snapshots_table.c.snapshot_date,
    snapshots_table.c.currency,
    snapshots_table.c.cash_balance,
    snapshots_table.c.holdings_value,
    snapshots_table.c.total_value,
    snapshots_table.c.positions,
    snapshots_table.c.net_contributions,
    snapshots_table.c.external_flow,
    snapshots_table.c.stale,
    *(type_coerce(snapshots_table.c[name], Text()) for name in BOOK_COLUMNS),
)


#: The columns a totals read selects, in the order `_daily_totals` takes them.
_TOTALS_COLUMNS: Final = (
    snapshots_table.c.portfolio_id,
    snapshots_table.c.snapshot_date,
    snapshots_table.c.currency,
    snapshots_table.c.total_value,
    snapshots_table.c.cash_balance,
    snapshots_table.c.holdings_value,
    snapshots_table.c.net_contributions,
    snapshots_table.c.stale,
    snapshots_table.c.external_flow,
    *(snapshots_table.c[name] for name in BOOK_COLUMNS[:-1]),
)


def _daily_totals(row: Sequence[Any]) -> DailyTotals:
    """Build totals from a row of `_TOTALS_COLUMNS` (types already processed)."""
    pid, day, currency, total, cash, holdings, net, stale, *optional = row
    return DailyTotals(pid, day, currency, total, cash, holdings, net, bool(stale), *optional)


def _optional_checked(value: Decimal | None, field: str) -> Decimal | None:
    return None if value is None else checked_decimal(value, field)


def _snapshot_params(s: PortfolioSnapshot, fence: int, plan: PricePlan) -> dict[str, object]:
    """Return the Core parameters of `s`, books included, for writes `DriverUpsert` cannot take.

    The books go as their texts (`book_texts`), bound as text: the same the driver gets.
    """
    return {
        **dict(zip(BOOK_COLUMNS, book_texts(s), strict=True)),
        "portfolio_id": s.portfolio_id,
        "snapshot_date": s.snapshot_date,
        "currency": s.currency,
        "cash_balance": checked_decimal(s.cash_balance, "cash_balance"),
        "holdings_value": checked_decimal(s.holdings_value, "holdings_value"),
        "total_value": checked_decimal(s.total_value, "total_value"),
        "net_contributions": _optional_checked(s.net_contributions, "net_contributions"),
        "external_flow": _optional_checked(s.external_flow, "external_flow"),
        "stale": bool(s.stale),
        "positions": plan.encode(s),
        "fence": fence,
    }


def _snapshot(
    row: Sequence[Any], positions: tuple[tuple[object, ...], tuple[object, ...]]
) -> PortfolioSnapshot:
    """Build a snapshot from a row of `_SNAPSHOT_COLUMNS` (types already processed).

    `positions` are the flat positions and their flat books, as `flat_positions_from_text`
    decodes them.
    """
    pid, day, currency, cash, holdings, total, _, net, flow, stale = row[:10]
    flat, position_books = positions
    return PortfolioSnapshot.from_values(
        (
            pid,
            day,
            currency,
            cash,
            holdings,
            total,
            flat,
            net,
            flow,
            bool(stale),
            *books_from_columns(row[10:]),
            position_books,
        )
    )


async def _read_snapshots(conn: AsyncConnection, rows: Sequence[Any]) -> list[PortfolioSnapshot]:
    """Build snapshots from rows of `_SNAPSHOT_COLUMNS`, reading the prices they refer to."""
    texts = [(r[1], r[6]) for r in rows]
    wanted = referenced_prices(texts)
    prices: dict[tuple[dt.date, str, int], PositionPrice] = {}
    if wanted:
        for query in price_queries(wanted):
            found = await conn.execute(query)
            for day, ticker, variant, price, price_date, currency, fx_rate, stale in found:
                prices[day, ticker, variant] = price_from_row(
                    price, price_date, currency, fx_rate, stale
                )
    return [
        _snapshot(row, flat_positions_from_text(text, day, prices, row[4]))
        for row, (day, text) in zip(rows, texts, strict=True)
    ]


def _record(row: RowMapping) -> RunRecord:
    return run_record(
        row["key"],
        row["params_hash"],
        row["state"],
        row["attempts"],
        row["started_at"],
        row["finished_at"],
        report_from_json(row["report"]),
    )


class SqlAlchemySnapshotStore:
    """A `SnapshotRepository`, `RunLedger` (with `RecentRuns`) and `RunLock` over an `AsyncEngine`.

    It also reads totals without positions (`SnapshotTotals`), for charts.

    Works on PostgreSQL (asyncpg or psycopg 3) and SQLite (aiosqlite). Either wrap the host's
    engine::

        store = SqlAlchemySnapshotStore(engine)   # tables made by create_schema or Alembic

    or let the store make (and later dispose of) its own::

        async with await SqlAlchemySnapshotStore.open("postgresql+asyncpg://...") as store:
            ...

    Writes run one transaction per call. Snapshots are upserted with
    ``INSERT ... ON CONFLICT (portfolio_id, snapshot_date) DO UPDATE ... WHERE``: the batch is
    deduplicated first (the last snapshot of a key wins) and sorted by key, so concurrent
    batches neither fail on duplicate keys nor deadlock; a fenced write leaves alone rows
    stored under a greater fence; a row identical to the stored one (fence included) is not
    rewritten. Lost connections, refused connections, lock timeouts, deadlocks and
    serialization failures become `DatabaseUnavailableError` or `DatabaseBusyError`, both
    `TransientError`, which the job's `RetryPolicy` retries. A refused password or role, a
    database that does not exist, or an SQLite file that cannot be opened becomes
    `DatabaseAccessError`, never retried, on every driver; a store built on an engine connects
    on first use, so that is where it is raised (`open` connects at once).

    On PostgreSQL a write of more than 25 snapshots is several statements in its
    transaction: the first runs through SQLAlchemy, the others through the driver's own
    ``executemany`` on the same connection, so SQLAlchemy's cursor events (``echo``, tracing
    hooks) see the first statement of a write only. Use a transactional engine (the default
    isolation levels): on an ``AUTOCOMMIT`` engine each statement commits on its own.

    Args:
        engine: An `AsyncEngine` on PostgreSQL or SQLite, made by
            ``sqlalchemy.ext.asyncio.create_async_engine``; the host keeps ownership of it.

    Raises:
        InvalidInputError: `engine` is not an `AsyncEngine` (a sync `Engine` from
            ``sqlalchemy.create_engine`` included), or its database is neither PostgreSQL nor
            SQLite. Raised when the store is built, before anything touches the database.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._dialect = checked_dialect(engine, type(self).__name__)
        self._engine = engine
        self._where = database_name(engine.url)  # for messages; never the password
        self._owns_engine = False
        # By (fenced, with books): a snapshot without books is written without those columns.
        self._upserts = {
            (fenced, books): self._upsert_statement(fenced=fenced, books=books)
            for fenced in (False, True)
            for books in (False, True)
        }
        self._driver = DriverUpsert.compile(engine.dialect, self._upserts)
        # The prices known to be stored (encoding runs between awaits, on the loop).
        self._prices = PriceCatalog()
        # Whether new price rows are inserted RETURNING their keys, so that only a key another
        # writer took is read back: on asyncpg, where it measured faster than reading every
        # new row back; on psycopg, whose plain insert pipelines, RETURNING measured 0.6 s
        # slower a 100,000-snapshot write (benchmarks/storage.py, docs/performance.md).
        self._inserts_returning = engine.dialect.driver == "asyncpg"
        c = snapshots_table.c
        # The chart read: amounts as text (no processor per value), made into Decimals at once,
        # and the books in one column (NULL on the usual day, which has none).
        chars = "chr" if engine.dialect.name == "postgresql" else "char"
        self._totals_query = (
            select(
                c.snapshot_date,
                c.currency,
                *(
                    type_coerce(col, Text())
                    for col in (c.total_value, c.cash_balance, c.holdings_value)
                ),
                type_coerce(c.net_contributions, Text()),
                c.stale,
                type_coerce(c.external_flow, Text()),
                literal_column(books_column_sql(chars), Text()),
            )
            .where(
                c.portfolio_id == bindparam("pid", type_=c.portfolio_id.type),
                c.snapshot_date >= bindparam("start", type_=c.snapshot_date.type),
                c.snapshot_date <= bindparam("end", type_=c.snapshot_date.type),
            )
            .order_by(c.snapshot_date)
        )
        self._totals_reader = DriverRead.compile(engine.dialect, self._totals_query)

    @classmethod
    async def open(
        cls,
        url: str | URL,
        *,
        create: bool = True,
        busy_timeout: float = 5.0,
        partition_by_month: bool = False,
        **engine_options: object,
    ) -> Self:
        """Make an engine for `url`, create or migrate the schema, and return a store owning it.

        Args:
            url: An SQLAlchemy URL: ``postgresql+asyncpg://...`` or
                ``sqlite+aiosqlite:///path.db``.
            create: Whether to call `create_schema` (False when the host migrates).
            busy_timeout: On SQLite, seconds to wait for another connection's write lock.
            partition_by_month: On PostgreSQL, create ``ps_snapshots`` partitioned by month
                when `create` makes the tables (see `create_schema`).
            **engine_options: Passed on to `create_async_engine`.

        Returns:
            The store; `close` disposes of its engine.

        Raises:
            SchemaVersionError: The database's schema is newer than this library's.
            DatabaseAccessError: The server refused the login, the database does not exist,
                or the SQLite file cannot be opened (only when `create` is True: otherwise
                the first call raises it). Never retried.
            DatabaseUnavailableError: The database cannot be reached.
        """
        options = dict(engine_options)
        if make_url(url).get_backend_name() == "sqlite":
            connect_args: dict[str, object] = {"timeout": busy_timeout}
            given = options.get("connect_args")
            if isinstance(given, Mapping):
                connect_args.update(given)
            options["connect_args"] = connect_args
        engine = create_async_engine(url, **options)
        try:
            store = cls(engine)
            store._owns_engine = True
            if create:
                await create_schema(engine, partition_by_month=partition_by_month)
        except BaseException:
            await engine.dispose()
            raise
        return store

    @property
    def engine(self) -> AsyncEngine:
        """The engine the store uses."""
        return self._engine

    async def close(self) -> None:
        """Dispose of the engine if `open` made it; a host's engine is left to the host."""
        if self._owns_engine:
            await self._engine.dispose()

    async def __aenter__(self) -> Self:
        """Return the store itself."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the store (see `close`)."""
        await self.close()

    def _upsert_statement(
        self, *, fenced: bool, books: bool
    ) -> postgresql.Insert | sqlite_dialect.Insert:
        """The upsert of snapshots with their books, or of those without (books set NULL).

        Books are bound as their texts (`book_texts`).
        """
        columns = booked_columns if books else written_columns
        content = _BOOKED_CONTENT if books else _CONTENT
        ins = dialect_insert(self._dialect, snapshots_table).values(
            {
                c.name: bindparam(c.name, type_=Text() if c.name in BOOK_COLUMNS else c.type)
                for c in columns
            }
        )
        excluded = ins.excluded
        table = snapshots_table.c
        changes = [table[c].is_distinct_from(excluded[c]) for c in content]
        updates: dict[str, Any] = {c: excluded[c] for c in content}
        if not books:
            # Replacing a row that had books clears them; a row without any is left alone.
            changes += [table[c].is_not(None) for c in BOOK_COLUMNS]
            updates.update(dict.fromkeys(BOOK_COLUMNS, null()))
        differs = or_(*changes)
        where = and_(table.fence <= excluded.fence, differs) if fenced else differs
        return ins.on_conflict_do_update(
            index_elements=[table.portfolio_id, table.snapshot_date],
            set_=updates,
            where=where,
        )

    # SnapshotRepository

    def _translates_schema(self) -> bool:
        """Whether the engine has a ``schema_translate_map`` (then Core runs every statement).

        Core renders the map into each statement; the driver-level SQL (`DriverUpsert`,
        `DriverRead`) cannot.
        """
        return "schema_translate_map" in self._engine.get_execution_options()

    async def upsert_many(
        self, snapshots: Sequence[PortfolioSnapshot], *, fence: int | None = None
    ) -> None:
        """Insert or replace `snapshots` in one transaction.

        The batch is deduplicated (the last snapshot of a key wins) and written in key order.
        A fenced write leaves alone the rows stored under a greater fence; an unfenced one
        replaces them and stores fence 0. Rows identical to the stored ones are not rewritten.

        Args:
            snapshots: The snapshots to store.
            fence: The fence of the lease the job writes under, or None (the host writing on
                purpose).

        Raises:
            InvalidInputError: An amount is not a Decimal (or, on PostgreSQL, its text holds
                the control character U+001F); nothing of the batch is stored.
            DatabaseBusyError: The database is locked or busy; nothing of the batch is stored.
            DatabaseUnavailableError: The database cannot be reached, or the connection broke;
                nothing of the batch is stored.
        """
        ordered = dedupe_sorted(snapshots)
        if not ordered:
            return
        driver = self._driver
        # Filled by the driver-level write, which on PostgreSQL plans as it sends.
        plan = self._prices.plan()

        async def write_prices(conn: AsyncConnection) -> None:
            await self._write_prices(conn, plan)

        if driver is not None and not self._translates_schema():
            with translated(self._where):
                await driver.write(self._engine, ordered, fence, plan, write_prices)
            plan.commit()
            return
        plan.add(ordered)
        stored_fence = 0 if fence is None else fence
        # Core binds every snapshot with its books (NULL when it has none): the slow path.
        statement = self._upserts[fence is not None, True]
        with translated(self._where):
            async with self._engine.begin() as conn:
                await write_prices(conn)
                params = [_snapshot_params(s, stored_fence, plan) for s in ordered]
                await conn.execute(statement, params)
        plan.commit()

    async def _write_prices(self, conn: AsyncConnection, plan: PricePlan) -> None:
        """Give the plan's new prices their variants and insert them, before the snapshots.

        A price row is inserted unless its key is taken. On PostgreSQL the rows are read back
        (on asyncpg only the keys the insert did not return: taken by another writer at the
        same moment, which the lookup did not see), and a key taken for another price (two
        new variants of one ticker and day written at once) fails the write with
        `DatabaseBusyError`; the retry finds the stored variants.
        """
        missing = plan.missing
        if not missing:
            return
        if self._dialect == "sqlite":
            # A write first takes SQLite's write lock, so no one adds variants in between.
            await conn.execute(
                update(fence_counter_table)
                .where(fence_counter_table.c.id == 0)
                .values(value=fence_counter_table.c.value)
            )
        stored = await conn.run_sync(lambda c: stored_prices(c, missing))
        rows = plan.resolve(stored)
        if not rows:
            return
        insert = dialect_insert(self._dialect, prices_table).on_conflict_do_nothing()
        params = [price_params(r) for r in rows]
        if self._dialect == "sqlite":
            await conn.execute(insert, params)
            return
        conflicts = rows
        if self._inserts_returning:
            columns = prices_table.c
            inserted = await conn.execute(
                insert.returning(columns.snapshot_date, columns.ticker, columns.variant), params
            )
            returned = inserted.all()
            if len(returned) == len(rows):
                return
            # A key that was taken is not returned: only those are read back and compared.
            taken = {(day, ticker, variant) for day, ticker, variant in returned}
            conflicts = [r for r in rows if (r[0], r[1], r[2]) not in taken]
        else:
            await conn.execute(insert, params)
        again = await conn.run_sync(
            lambda c: stored_prices(c, sorted({(r[0], r[1]) for r in conflicts}))
        )
        for day, ticker, variant, *content in conflicts:
            if again.get((day, ticker), {}).get(variant) != tuple(content):
                raise DatabaseBusyError(
                    f"another writer stored a price of {ticker} on {day} at once; try again"
                )

    async def existing_keys(
        self, keys: Collection[tuple[UUID, dt.date]]
    ) -> frozenset[tuple[UUID, dt.date]]:
        """Return the ``(portfolio_id, snapshot_date)`` keys among `keys` that are stored."""
        wanted = sorted(set(keys))
        if not wanted:
            return frozenset()
        key = tuple_(snapshots_table.c.portfolio_id, snapshots_table.c.snapshot_date)
        found: set[tuple[UUID, dt.date]] = set()
        with translated(self._where):
            async with self._engine.connect() as conn:
                for chunk in chunks(wanted):
                    result = await conn.execute(
                        select(
                            snapshots_table.c.portfolio_id, snapshots_table.c.snapshot_date
                        ).where(key.in_(chunk))
                    )
                    found.update((r.portfolio_id, r.snapshot_date) for r in result)
        return frozenset(found)

    async def get_snapshot(self, portfolio_id: UUID, day: dt.date) -> PortfolioSnapshot | None:
        """Return the stored snapshot of `portfolio_id` on `day`, or None."""
        query = select(*_SNAPSHOT_COLUMNS).where(
            snapshots_table.c.portfolio_id == portfolio_id, snapshots_table.c.snapshot_date == day
        )
        with translated(self._where):
            async with self._engine.connect() as conn:
                rows = (await conn.execute(query)).all()
                found = await _read_snapshots(conn, rows)
        return found[0] if found else None

    async def list_snapshots(
        self, portfolio_id: UUID, start: dt.date, end: dt.date
    ) -> list[PortfolioSnapshot]:
        """Return the snapshots of `portfolio_id` from `start` to `end` inclusive, by date."""
        query = (
            select(*_SNAPSHOT_COLUMNS)
            .where(
                snapshots_table.c.portfolio_id == portfolio_id,
                snapshots_table.c.snapshot_date >= start,
                snapshots_table.c.snapshot_date <= end,
            )
            .order_by(snapshots_table.c.snapshot_date)
        )
        with translated(self._where):
            async with self._engine.connect() as conn:
                rows = (await conn.execute(query)).all()
                return await _read_snapshots(conn, rows)

    async def existing_dates(
        self, portfolio_id: UUID, start: dt.date, end: dt.date
    ) -> frozenset[dt.date]:
        """Return the dates from `start` to `end` inclusive that have a stored snapshot."""
        query = select(snapshots_table.c.snapshot_date).where(
            snapshots_table.c.portfolio_id == portfolio_id,
            snapshots_table.c.snapshot_date >= start,
            snapshots_table.c.snapshot_date <= end,
        )
        with translated(self._where):
            async with self._engine.connect() as conn:
                dates = (await conn.execute(query)).scalars().all()
        return frozenset(dates)

    # SnapshotTotals

    async def list_totals(
        self, portfolio_id: UUID, start: dt.date, end: dt.date
    ) -> list[DailyTotals]:
        """Return the totals of `portfolio_id` from `start` to `end` inclusive, by date.

        Reads only the total columns: no position is read or decoded (the chart read path).
        """
        params = {"pid": portfolio_id, "start": start, "end": end}
        reader = self._totals_reader
        with translated(self._where):
            if reader is not None and not self._translates_schema():
                rows = await reader.fetch(self._engine, params)
            else:
                query = self._totals_query.params(params)
                async with self._engine.connect() as conn:
                    rows = cast("Sequence[tuple[Any, ...]]", (await conn.execute(query)).all())
        return totals_of_rows(portfolio_id, rows, None)

    async def totals_on(self, day: dt.date, portfolio_ids: Collection[UUID]) -> list[DailyTotals]:
        """Return the totals on `day` of those `portfolio_ids` that have a snapshot, by id."""
        wanted = sorted(set(portfolio_ids))
        found: list[DailyTotals] = []
        if not wanted:
            return found
        with translated(self._where):
            async with self._engine.connect() as conn:
                for chunk in chunks(wanted):
                    query = select(*_TOTALS_COLUMNS).where(
                        snapshots_table.c.snapshot_date == day,
                        snapshots_table.c.portfolio_id.in_(chunk),
                    )
                    found.extend(_daily_totals(r) for r in await conn.execute(query))
        found.sort(key=lambda t: t.portfolio_id)
        return found

    # RunLedger

    async def start(self, key: str, params_hash: str, now: dt.datetime) -> RunRecord:
        """Create or resume the run `key`, or return it unchanged when it already succeeded."""
        created = RunRecord(key, params_hash, RunState.RUNNING, 1, now)
        with translated(self._where):
            async with self._engine.connect() as conn:
                # Insert first: a write takes SQLite's write lock before anything is read.
                inserted = await conn.execute(
                    dialect_insert(self._dialect, runs_table)
                    .values(
                        key=key,
                        params_hash=params_hash,
                        state=RunState.RUNNING.value,
                        attempts=1,
                        started_at=now,
                    )
                    .on_conflict_do_nothing(index_elements=[runs_table.c.key])
                    # An INSERT's row count is kept only when asked for (psycopg drops it).
                    .execution_options(preserve_rowcount=True)
                )
                if inserted.rowcount == 1:
                    await conn.commit()
                    return created
                row = (
                    (
                        await conn.execute(
                            select(runs_table).where(runs_table.c.key == key).with_for_update()
                        )
                    )
                    .mappings()
                    .one()
                )
                record = _record(row)
                if record.params_hash != params_hash:
                    raise RunKeyConflictError(key)
                if record.state is RunState.SUCCEEDED:
                    return record
                attempts = record.attempts + 1
                await conn.execute(
                    update(runs_table)
                    .where(runs_table.c.key == key)
                    .values(
                        state=RunState.RUNNING.value,
                        attempts=attempts,
                        started_at=now,
                        finished_at=None,
                        report=None,
                    )
                )
                await conn.commit()
        return RunRecord(key, params_hash, RunState.RUNNING, attempts, now)

    async def finish(
        self, key: str, state: RunState, report: Mapping[str, object], now: dt.datetime
    ) -> RunRecord:
        """Record that the latest attempt of `key` ended in `state` with `report`."""
        state = RunState(state)
        encoded = report_json(report)
        with translated(self._where):
            async with self._engine.connect() as conn:
                changed = await conn.execute(
                    update(runs_table)
                    .where(runs_table.c.key == key)
                    .values(state=state.value, finished_at=now, report=encoded)
                )
                if changed.rowcount != 1:
                    raise KeyError(f"run key {key!r} was never started")
                row = (
                    (await conn.execute(select(runs_table).where(runs_table.c.key == key)))
                    .mappings()
                    .one()
                )
                await conn.commit()
        return RunRecord(
            key,
            row["params_hash"],
            state,
            row["attempts"],
            row["started_at"],
            now,
            report_from_json(encoded),
        )

    async def get(self, key: str) -> RunRecord | None:
        """Return the record of `key`, or None."""
        with translated(self._where):
            async with self._engine.connect() as conn:
                row = (
                    (await conn.execute(select(runs_table).where(runs_table.c.key == key)))
                    .mappings()
                    .one_or_none()
                )
        return None if row is None else _record(row)

    async def recent_runs(self, limit: int) -> list[RunRecord]:
        """Return the `limit` most recently started runs, latest first (the `RecentRuns` way)."""
        query = (
            select(runs_table)
            .order_by(runs_table.c.started_at.desc(), runs_table.c.key)
            .limit(max(limit, 0))
        )
        with translated(self._where):
            async with self._engine.connect() as conn:
                rows = (await conn.execute(query)).mappings().all()
        return [_record(row) for row in rows]

    # RunLock

    async def acquire(
        self, key: str, owner: str, ttl: dt.timedelta, now: dt.datetime
    ) -> Lease | None:
        """Take the lease on `key` for `ttl`, or return None if someone else holds it."""
        expires_at = now + ttl
        counter = dialect_insert(self._dialect, fence_counter_table).values(id=1, value=1)
        with translated(self._where):
            async with self._engine.connect() as conn:
                # The counter row is the first write: it serializes acquisitions, and the
                # fence it hands out is greater than every fence before it.
                await conn.execute(
                    counter.on_conflict_do_update(
                        index_elements=[fence_counter_table.c.id],
                        set_={"value": fence_counter_table.c.value + 1},
                    )
                )
                fence = (
                    await conn.execute(
                        select(fence_counter_table.c.value).where(fence_counter_table.c.id == 1)
                    )
                ).scalar_one()
                lease = dialect_insert(self._dialect, leases_table).values(
                    key=key, owner=owner, fence=fence, expires_at=expires_at
                )
                await conn.execute(
                    lease.on_conflict_do_update(
                        index_elements=[leases_table.c.key],
                        set_={
                            "owner": lease.excluded.owner,
                            "fence": lease.excluded.fence,
                            "expires_at": lease.excluded.expires_at,
                        },
                        where=or_(
                            leases_table.c.owner == lease.excluded.owner,
                            leases_table.c.expires_at <= as_utc(now),
                        ),
                    )
                )
                held = (
                    await conn.execute(
                        select(leases_table.c.fence).where(leases_table.c.key == key)
                    )
                ).scalar_one()
                if held != fence:
                    await conn.rollback()
                    return None
                await conn.commit()
        return Lease(key, owner, fence, expires_at)

    async def renew(self, lease: Lease, ttl: dt.timedelta, now: dt.datetime) -> Lease:
        """Extend `lease` by `ttl` from `now`, or raise `LeaseLostError`."""
        expires_at = now + ttl
        with translated(self._where):
            async with self._engine.connect() as conn:
                changed = await conn.execute(
                    update(leases_table)
                    .where(
                        leases_table.c.key == lease.key,
                        leases_table.c.fence == lease.fence,
                        leases_table.c.expires_at > as_utc(now),
                    )
                    .values(expires_at=expires_at)
                )
                if changed.rowcount != 1:
                    held = (
                        await conn.execute(
                            select(leases_table.c.fence).where(leases_table.c.key == lease.key)
                        )
                    ).scalar_one_or_none()
                    raise LeaseLostError(lease.key, lease_lost_detail(held, lease.fence))
                await conn.commit()
        return Lease(lease.key, lease.owner, lease.fence, expires_at)

    async def release(self, lease: Lease) -> None:
        """Give `lease` up if it is still held."""
        with translated(self._where):
            async with self._engine.begin() as conn:
                await conn.execute(
                    delete(leases_table).where(
                        leases_table.c.key == lease.key, leases_table.c.fence == lease.fence
                    )
                )
