"""The snapshot upsert at driver level: set-based statements streamed to PostgreSQL.

Core's per-row work (a parameter dict, then each column's bind processor) costs about as much
as the driver's insert itself, so the store writes snapshots through `DriverUpsert` whenever
it can: on PostgreSQL (asyncpg or psycopg) as ``unnest`` statements of
`ROWS_PER_STREAMED_STATEMENT` snapshots streamed through the driver's own ``executemany``, on
SQLite (aiosqlite) as an ``executemany`` of rows. The values bound are those Core would bind;
the store falls back to Core when this module cannot promise that.

A snapshot without books (accounting fields and cash balances, see
`portfolio_snapshots.adapters._sql_codec.has_books`) is written by the statement of the columns
it has, with the parameters of a store that knew no books (the conflict clause also clears the
books of a row it replaces); one with books by the statement of every column.
"""

from __future__ import annotations

import asyncio
import itertools
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, cast

from sqlalchemy import Text

from portfolio_snapshots._errors import DatabaseUnavailableError, InvalidInputError
from portfolio_snapshots.adapters._sql_codec import BOOK_COLUMNS, book_texts, chunks, has_books
from portfolio_snapshots.adapters.sqlalchemy._schema import (
    DecimalText,
    booked_columns,
    checked_decimal,
    written_columns,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence

    from sqlalchemy import Column
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.dialects import sqlite as sqlite_dialect
    from sqlalchemy.engine.default import DefaultDialect
    from sqlalchemy.engine.interfaces import Dialect
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
    from sqlalchemy.sql import Select

    from portfolio_snapshots._domain import PortfolioSnapshot
    from portfolio_snapshots.adapters._sql_codec import PricePlan

#: Rows per statement of a write on SQLite: a big batch is sent in several, in one transaction.
ROWS_PER_STATEMENT: Final = 1000
#: Snapshots per statement on PostgreSQL, whose statements are streamed (`_stream`): small
#: enough that the server starts on a batch while the rest of it is being encoded.
ROWS_PER_STREAMED_STATEMENT: Final = 25
#: Statements per piece of a streamed write: the driver sends a piece (about 25 KB) at once,
#: and the server runs it while the next one is encoded.
STATEMENTS_PER_PIECE: Final = 4
#: The PostgreSQL drivers whose writes are streamed; any other goes through Core.
_STREAMING_DRIVERS: Final = frozenset({"asyncpg", "psycopg"})


class DriverUpsert:
    """The snapshot upsert as the driver's own SQL and parameters, without Core's binding.

    The statement is compiled once, and snapshots become the driver's parameters directly,
    each value what Core would have bound: amounts as `DecimalText` binds them (``str`` of a
    checked Decimal), positions in their compact text (version 1's JSON for odd tickers), the
    id and the date through the bind processors SQLAlchemy itself would apply, and ``stale``
    as that column's processor binds True or False. Only for positional paramstyles (asyncpg,
    aiosqlite; psycopg, compiled with ``%s`` parameters) and the column processors known here;
    otherwise `compile` returns None and the store binds through Core.

    On aiosqlite a snapshot becomes one row of parameters (`row`). On PostgreSQL (asyncpg or
    psycopg) a statement writes many snapshots (`columns`): ``INSERT ... SELECT ... FROM
    unnest(...) WITH ORDINALITY ... ORDER BY ord`` inserts them in the batch's (key) order,
    with the very ``ON CONFLICT`` clause Core compiled, so the server runs one statement per
    `ROWS_PER_STREAMED_STATEMENT` snapshots instead of one per snapshot. The id, date,
    currency and stale columns travel as arrays; the amounts and positions, text that never
    holds the control character `_SEPARATOR`, travel as one string a column, joined by it and
    split by the server (``string_to_array``), which spares the driver's per-element array
    encoding; the fence is the same for every row and travels once. A statement's snapshots
    are all written with their books, or all without: `write` sends a batch's snapshots in
    key order, a run of statements of one kind after the other.
    """

    __slots__ = ("_day", "_fresh", "_pid", "_sql", "_stale", "streamed")

    def __init__(
        self,
        sql: Mapping[tuple[bool, bool], str],
        pid: Callable[[Any], Any] | None,
        day: Callable[[Any], Any] | None,
        stale: object,
        fresh: object,
        *,
        streamed: bool,
    ) -> None:
        self._sql = dict(sql)
        self._pid = pid
        self._day = day
        self._stale = stale
        self._fresh = fresh
        #: Whether statements take `columns` and are streamed (PostgreSQL), not `row`s (SQLite).
        self.streamed = streamed

    @classmethod
    def compile(
        cls,
        dialect: Dialect,
        statements: Mapping[tuple[bool, bool], postgresql.Insert | sqlite_dialect.Insert],
    ) -> DriverUpsert | None:
        """Compile the upserts for `dialect`, or return None if Core must bind them.

        Args:
            dialect: The engine's dialect.
            statements: The four upserts, by (fenced, with books): those with books bind
                `booked_columns` (books as text), the others `written_columns`.
        """
        streamed = dialect.name == "postgresql"
        if streamed and dialect.driver not in _STREAMING_DRIVERS:
            return None
        if streamed:
            dialect = _positional(dialect)
        sql: dict[tuple[bool, bool], str] = {}
        for (fenced, books), statement in statements.items():
            columns = booked_columns if books else written_columns
            compiled = statement.compile(dialect=dialect)
            if not compiled.positional or compiled.positiontup != [c.name for c in columns]:
                return None
            text = compiled.string
            sql[fenced, books] = _unnest_upsert(text, dialect, columns) if streamed else text
        processors = {
            c.name: c.type.dialect_impl(dialect).bind_processor(dialect)
            for c in written_columns
            if not isinstance(c.type, DecimalText)
        }
        if any(processors[c] is not None for c in ("currency", "positions", "fence")):
            return None
        if Text().dialect_impl(dialect).bind_processor(dialect) is not None:
            return None  # the books are bound as text, as they are
        stale = processors["stale"]
        return cls(
            sql,
            processors["portfolio_id"],
            processors["snapshot_date"],
            True if stale is None else stale(True),  # noqa: FBT003 - the bound value of True
            False if stale is None else stale(False),  # noqa: FBT003 - the bound value of False
            streamed=streamed,
        )

    async def write(
        self,
        engine: AsyncEngine,
        ordered: Sequence[PortfolioSnapshot],
        fence: int | None,
        plan: PricePlan,
        write_prices: Callable[[AsyncConnection], Awaitable[None]],
    ) -> None:
        """Upsert `ordered` in one transaction of `engine`, fenced unless `fence` is None.

        Args:
            engine: The store's engine.
            ordered: The snapshots, one per key, in key order (see `dedupe_sorted`).
            fence: The lease's fence, or None for an unfenced write (which stores fence 0).
            plan: The batch's prices (see `PriceCatalog`), empty: the write adds the
                snapshots to it, and it encodes their positions.
            write_prices: Writes the plan's new prices (their variants looked up first).

        Raises:
            InvalidInputError: An amount is not a Decimal, or its text holds `_SEPARATOR`, or a
                price has the wrong type; nothing of the batch is stored.
            DatabaseUnavailableError: The connection was lost while statements streamed.
        """
        fenced = fence is not None
        stored_fence = 0 if fence is None else fence
        if self.streamed:  # planned and encoded as they are sent
            parts = iter(chunks(ordered, ROWS_PER_STREAMED_STATEMENT))
            # The first part with a price not known to be stored, once met.
            cold: list[Sequence[PortfolioSnapshot]] = []

            def known() -> Iterator[Sequence[PortfolioSnapshot]]:
                # While every price met is known to be stored (a run's batches, once its first
                # stored the day's prices), each part is planned as it is encoded.
                for part in parts:
                    if not plan.add(part):
                        cold.append(part)
                        return
                    yield part

            async with engine.begin() as conn:
                await self._send(conn, known(), fenced, stored_fence, plan)
                if cold:
                    # A new price: the rest is planned at once, the new prices get their
                    # variants and are written, then the rest follows, in key order still.
                    cold += parts
                    for later in cold[1:]:
                        plan.add(later)
                    await write_prices(conn)
                    await self._send(conn, iter(cold), fenced, stored_fence, plan)
            return
        plan.add(ordered)
        async with engine.begin() as conn:
            await write_prices(conn)
            rows = [self.row(s, stored_fence, plan) for s in ordered if not has_books(s)]
            booked = (
                [
                    (*self.row(s, stored_fence, plan), *book_texts(s))
                    for s in ordered
                    if has_books(s)
                ]
                if len(rows) < len(ordered)
                else []
            )
            for books, kind in ((False, rows), (True, booked)):
                for part in chunks(kind, ROWS_PER_STATEMENT):
                    await conn.exec_driver_sql(self._sql[fenced, books], list(part))

    async def _send(
        self,
        conn: AsyncConnection,
        parts: Iterator[Sequence[PortfolioSnapshot]],
        fenced: bool,
        fence: int,
        plan: PricePlan,
    ) -> None:
        """Stream the statements writing `parts`, each encoded as it is sent (`_stream`).

        Statements of snapshots without books (all of a run that knows none) and with books,
        in the batch's key order: a run of one kind, then one of the other.
        """
        for books, run in itertools.groupby(parts, key=_any_books):
            statements = (self.columns(p, fence, plan, books=books) for p in run)
            await _stream(conn, self._sql[fenced, books], statements)

    def row(self, s: PortfolioSnapshot, fence: int, plan: PricePlan) -> tuple[object, ...]:
        """Return the driver's parameters for `s` without its books, in the statement's order.

        Raises:
            InvalidInputError: An amount is not a Decimal.
        """
        pid, day, currency, cash, holdings, total, _, net, flow, stale = s.values[:10]
        # Seen as objects: a host may hand in a float, which must be refused.
        amounts: tuple[object, object, object] = (cash, holdings, total)
        if not (
            isinstance(amounts[0], Decimal)
            and isinstance(amounts[1], Decimal)
            and isinstance(amounts[2], Decimal)
        ):
            checked_decimal(cash, "cash_balance")
            checked_decimal(holdings, "holdings_value")
            checked_decimal(total, "total_value")
        net_text = None if net is None else str(checked_decimal(net, "net_contributions"))
        flow_text = None if flow is None else str(checked_decimal(flow, "external_flow"))
        stale_value = self._stale if stale else self._fresh
        positions = plan.encode(s)
        return (
            pid if self._pid is None else self._pid(pid),
            day if self._day is None else self._day(day),
            currency,
            str(cash),
            str(holdings),
            str(total),
            net_text,
            flow_text,
            stale_value,
            positions,
            fence,
        )

    def columns(
        self, part: Sequence[PortfolioSnapshot], fence: int, plan: PricePlan, *, books: bool
    ) -> tuple[object, ...]:
        """Return the parameters of one statement writing `part`, in the statement's order.

        Args:
            part: The snapshots of the statement.
            fence: The fence stored.
            plan: The batch's prices, which encodes the positions.
            books: Whether the statement writes the snapshots' books too.

        Raises:
            InvalidInputError: An amount is not a Decimal, or its text holds `_SEPARATOR`.
        """
        pid, day, currency, cash, holdings, total, _, net, flow, stale = zip(
            *[s.values[:10] for s in part], strict=True
        )
        without_fence = (
            list(pid) if self._pid is None else list(map(self._pid, pid)),
            list(day) if self._day is None else list(map(self._day, day)),
            list(currency),
            _joined_amounts(cash, "cash_balance", part),
            _joined_amounts(holdings, "holdings_value", part),
            _joined_amounts(total, "total_value", part),
            _joined_amounts(net, "net_contributions", part, nullable=True),
            _joined_amounts(flow, "external_flow", part, nullable=True),
            [self._stale if s else self._fresh for s in stale],
            # Compact positions hold no control character, JSON ones only escaped: no check.
            _SEPARATOR.join([plan.encode(s) for s in part]),
        )
        if not books:
            return (*without_fence, fence)
        texts = zip(*[book_texts(s) for s in part], strict=True)
        joined = [
            _joined(["" if t is None else t for t in column], name, part)
            for name, column in zip(BOOK_COLUMNS, texts, strict=True)
        ]
        return (*without_fence, *joined, fence)  # the fence last, as `_unnest_upsert` takes it


def _any_books(part: Sequence[PortfolioSnapshot]) -> bool:
    """Whether a snapshot of `part` has books: the statement then writes them for all."""
    return any(map(has_books, part))


#: Joins the values of a text column into one parameter (see `DriverUpsert`): the ASCII unit
#: separator, which decimal text never holds and JSON text holds only escaped.
_SEPARATOR: Final = "\x1f"
#: Columns sent joined by `_SEPARATOR`; an empty string between separators stands for NULL
#: (decimal text, compact positions and cash balances are never empty).
_JOINED: Final = frozenset(
    c.name
    for c in booked_columns
    if isinstance(c.type, DecimalText) or c.name in {"positions", *BOOK_COLUMNS}
)
_DECIMAL: Final = frozenset({Decimal})
_OPTIONAL_DECIMAL: Final = frozenset({Decimal, type(None)})


def _joined_amounts(
    values: tuple[object, ...],
    field: str,
    part: Sequence[PortfolioSnapshot],
    *,
    nullable: bool = False,
) -> str:
    """Return one amount column's texts joined by `_SEPARATOR`, None as the empty string.

    Raises:
        InvalidInputError: An amount is not a Decimal (or None, when `nullable`).
    """
    kinds = set(map(type, values))
    if not kinds <= (_OPTIONAL_DECIMAL if nullable else _DECIMAL):
        for value in values:  # refuses what is not a Decimal; a subclass passes
            if value is not None or not nullable:
                checked_decimal(value, field)
    if type(None) not in kinds:
        return _joined(map(str, values), field, part)
    return _joined(["" if v is None else str(v) for v in values], field, part)


def _joined(texts: Iterable[str], field: str, part: Sequence[PortfolioSnapshot]) -> str:
    """Join `texts`, one per snapshot of `part`, by `_SEPARATOR`.

    Raises:
        InvalidInputError: A text holds `_SEPARATOR` (a Decimal subclass's odd ``str``), which
            would shift the column's values onto other rows.
    """
    listed = list(texts)
    joined = _SEPARATOR.join(listed)
    if joined.count(_SEPARATOR) != len(part) - 1:
        s = next(s for s, t in zip(part, listed, strict=True) if _SEPARATOR in t)
        raise InvalidInputError(
            f"{field} of portfolio {s.portfolio_id} on {s.snapshot_date} holds the control "
            "character U+001F, which the store cannot write"
        )
    return joined


class DriverRead:
    """A read as the driver's own query, its rows as the driver returns them (PostgreSQL).

    Core's result handling (a `Row` per row, each column's processor) costs more than the
    driver's fetch itself on a chart of thousands of days (`list_totals`). The query is
    compiled once for the dialect, and run on the pooled connection's driver (asyncpg's
    ``fetch``, or a psycopg cursor). `compile` makes sure the rows are those Core would give:
    Core would process no selected column on this dialect (dates, text and booleans on
    PostgreSQL), and the parameters are bound through the processors Core itself would apply;
    otherwise it returns None and the store reads through Core.

    A read the driver fails (or that is cancelled) gives the connection up rather than back to
    the pool: Core has not seen the failure, so it could not tell whether the connection still
    works.
    """

    __slots__ = ("_binds", "_psycopg", "_sql")

    def __init__(
        self,
        sql: str,
        binds: Sequence[tuple[str, Callable[[Any], Any] | None]],
        *,
        psycopg: bool,
    ) -> None:
        self._sql = sql
        self._binds = tuple(binds)
        self._psycopg = psycopg

    @classmethod
    def compile(cls, dialect: Dialect, query: Select[Any]) -> DriverRead | None:
        """Compile `query` for `dialect`, or return None if Core must run it.

        Args:
            dialect: The engine's dialect.
            query: A ``SELECT`` with named bind parameters.
        """
        if dialect.name != "postgresql" or dialect.driver not in _STREAMING_DRIVERS:
            return None
        psycopg = dialect.driver == "psycopg"
        dialect = _positional(dialect)
        compiled = query.compile(dialect=dialect)
        if not compiled.positional or compiled.positiontup is None:
            return None
        if any(
            column.type.dialect_impl(dialect).result_processor(dialect, None) is not None
            for column in query.selected_columns
        ):
            return None
        binds = [
            (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in compiled.positiontup
        ]
        return cls(compiled.string, binds, psycopg=psycopg)

    async def fetch(
        self, engine: AsyncEngine, params: Mapping[str, object]
    ) -> Sequence[Sequence[Any]]:
        """Run the query with `params` (by name) on a connection of `engine`; return its rows.

        Raises:
            DatabaseUnavailableError: The pool gave a connection without its driver's.
        """
        bound = [
            params[name] if process is None else process(params[name])
            for name, process in self._binds
        ]
        async with engine.connect() as conn:
            if self._psycopg:
                # One statement needs no transaction: psycopg then sends no BEGIN before it,
                # and the pool's reset finds nothing to roll back (SQLAlchemy restores the
                # engine's isolation level when the connection goes back to the pool).
                await conn.execution_options(isolation_level="AUTOCOMMIT")
            driver_connection = await _driver_connection(conn, "a read")
            try:
                if self._psycopg:
                    async with driver_connection.cursor() as cursor:
                        await cursor.execute(self._sql, bound)
                        return cast("Sequence[Sequence[Any]]", await cursor.fetchall())
                return cast(
                    "Sequence[Sequence[Any]]", await driver_connection.fetch(self._sql, *bound)
                )
            except BaseException:
                await conn.invalidate()
                raise


def _positional(dialect: Dialect) -> Dialect:
    """`dialect`, or for psycopg one compiling positional ``%s`` parameters.

    psycopg takes them as well as the named ones Core uses; asyncpg's are positional already.
    """
    if dialect.driver != "psycopg":
        return dialect
    return cast("type[DefaultDialect]", type(dialect))(paramstyle="format")


async def _driver_connection(conn: AsyncConnection, work: str) -> Any:  # noqa: ANN401 - the driver's
    """The driver's own connection under `conn` (asyncpg's, or psycopg's).

    Raises:
        DatabaseUnavailableError: The pool let go of it (gone with its transaction).
    """
    driver_connection = (await conn.get_raw_connection()).driver_connection
    if driver_connection is None:
        raise DatabaseUnavailableError(f"database connection lost during {work}")
    return driver_connection


def _unnest_upsert(compiled: str, dialect: Dialect, columns: Sequence[Column[Any]]) -> str:
    """Turn the compiled one-row upsert into one taking a statement's `columns`.

    ``INSERT INTO t (a, b, fence) VALUES ($1, $2, $3) ON CONFLICT ...`` becomes ``INSERT INTO
    t (a, b, fence) SELECT a, b, fence FROM unnest($1::type[], string_to_array($2::text,
    chr(31), '')) WITH ORDINALITY AS batch (a, b, ord) CROSS JOIN (SELECT $3::BIGINT) AS
    constant (fence) ORDER BY ord ON CONFLICT ...``, keeping Core's own conflict clause; the
    columns in `_JOINED` come as joined text. The parameters are numbered in the order they
    appear, the columns' order with the fence last, so the statement also suits positional
    ``%s`` parameters (psycopg).
    """
    head, rest = compiled.split(" VALUES ", 1)
    _, conflict = rest.split(" ON CONFLICT ", 1)
    names = [c.name for c in columns]
    sources: dict[str, str] = {}
    in_order = sorted(columns, key=lambda c: c.name == "fence")  # stable: the fence last
    for i, c in enumerate(in_order, 1):
        parameter = "%s" if dialect.paramstyle == "format" else f"${i}"
        sql_type = c.type.compile(dialect=dialect)
        if c.name in _JOINED:
            sources[c.name] = f"string_to_array({parameter}::text, chr({ord(_SEPARATOR)}), '')"
        elif c.name == "fence":
            sources[c.name] = f"{parameter}::{sql_type}"
        else:
            sources[c.name] = f"{parameter}::{sql_type}[]"
    fence = sources.pop("fence")
    select = (
        f"SELECT {', '.join(names)} FROM unnest({', '.join(sources.values())}) "  # noqa: S608
        f"WITH ORDINALITY AS batch ({', '.join(sources)}, ord) "
        f"CROSS JOIN (SELECT {fence}) AS constant (fence)"
    )
    return f"{head} {select} ORDER BY ord ON CONFLICT {conflict}"


async def _stream(
    conn: AsyncConnection, sql: str, statements: Iterator[tuple[object, ...]]
) -> None:
    """Run `sql` once for each parameter tuple `statements` yields, in `conn`'s transaction.

    The first statement goes through SQLAlchemy, which begins the transaction as the engine
    is configured (isolation level included). The others go to the driver's own
    ``executemany``: a psycopg cursor's, which pipelines, drawing their parameters from
    `statements` as it sends them; asyncpg's, in pieces of `STATEMENTS_PER_PIECE`, each sent
    before the next is drawn. Either way the server runs the statements already sent while
    the next ones are encoded (and, on a write that plans as it sends, planned). They run in
    the same transaction, and the driver stops at the first error, which is raised here.
    """
    first = next(statements, None)
    if first is None:
        return
    await conn.exec_driver_sql(sql, first)
    driver_connection = await _driver_connection(conn, "a write")
    if type(driver_connection).__module__.startswith("psycopg"):
        # A cursor's executemany pipelines as it draws the statements.
        async with driver_connection.cursor() as cursor:
            await cursor.executemany(sql, statements)
        return

    # asyncpg's executemany sends nothing before it has drawn 128 KB of statements, most of
    # a batch: sent in pieces, each is encoded while the server runs the one before.
    sent: asyncio.Future[None] | None = None
    try:
        while piece := list(itertools.islice(statements, STATEMENTS_PER_PIECE)):
            if sent is not None:
                await sent
            sent = asyncio.ensure_future(driver_connection.executemany(sql, piece))
            await asyncio.sleep(0)  # the driver sends the piece before the next is encoded
        if sent is not None:
            await sent
    except BaseException as error:
        # Encoding failed, or the write was cancelled, with a piece on the server: the
        # connection is left idle (the piece finished or cancelled) for the rollback.
        if sent is not None and not sent.done():
            if isinstance(error, asyncio.CancelledError):
                sent.cancel()
            await asyncio.gather(sent, return_exceptions=True)
        raise
