"""`SqlAlchemySnapshotStore`: snapshots, run ledger and run lock on SQLAlchemy 2 (async).

Needs the ``sqlalchemy`` extra (SQLite through aiosqlite), the ``postgres`` extra (PostgreSQL
through asyncpg, ``pip install "portfolio-snapshots[postgres]"``) or the ``psycopg`` extra
(PostgreSQL through psycopg 3). Only hosts that installed one import this module; nothing
else in the library does.

One class implements the three ports (`SnapshotRepository`, `RunLedger`, `RunLock`), because
they share one engine, one schema and one fence counter: pass the same store as the job's
``snapshots``, ``ledger`` and ``lock``.

The tables are in `metadata`, so a host that migrates with Alembic adds them to its own target
metadata; a host without migrations calls `create_schema` (or `SqlAlchemySnapshotStore.open`,
which does). Money is stored as decimal TEXT (see `DecimalText`), not NUMERIC: SQLite has no
exact decimal type (NUMERIC affinity turns values into floats), and TEXT keeps each value's
exact digits and exponent on both databases, so ``Decimal("10.50")`` reads back as
``Decimal("10.50")``. Leases use rows and a fence counter table, not advisory locks: advisory
locks belong to a server session, and behind PgBouncer in transaction pooling mode the session
changes between transactions, so the lock would be held by (or released from) someone else.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, Self, cast
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Integer,
    MetaData,
    Table,
    Text,
    TypeDecorator,
    and_,
    delete,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from portfolio_snapshots._domain import Lease, PortfolioSnapshot, RunRecord, RunState
from portfolio_snapshots._errors import (
    DatabaseBusyError,
    DatabaseUnavailableError,
    InvalidInputError,
    LeaseLostError,
    RunKeyConflictError,
    SchemaVersionError,
)
from portfolio_snapshots.adapters._sql_codec import (
    FENCE_COUNTER_TABLE,
    LEASES_TABLE,
    RUNS_TABLE,
    SCHEMA_VERSION,
    SCHEMA_VERSION_TABLE,
    SNAPSHOTS_TABLE,
    PositionTexts,
    as_utc,
    chunks,
    dedupe_sorted,
    flat_positions_from_json,
    flat_positions_json,
    lease_lost_detail,
    remembered,
    report_from_json,
    report_json,
    run_record,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
    from types import TracebackType

    from sqlalchemy import URL, Connection, RowMapping
    from sqlalchemy.engine.default import DefaultDialect
    from sqlalchemy.engine.interfaces import Dialect
    from sqlalchemy.ext.asyncio import AsyncConnection
    from sqlalchemy.sql.type_api import TypeEngine

__all__ = [
    "DatabaseBusyError",
    "DatabaseUnavailableError",
    "DecimalText",
    "SchemaVersionError",
    "SqlAlchemySnapshotStore",
    "UtcDateTime",
    "UuidText",
    "create_schema",
    "metadata",
]


class DecimalText(TypeDecorator[Decimal]):
    """A `Decimal` stored as its exact text (``str(value)``), read back with ``Decimal(text)``.

    Values keep their digits and exponent on every database. To aggregate in SQL, cast:
    ``SUM(total_value::numeric)`` on PostgreSQL.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(
        self,
        value: Decimal | None,
        dialect: Dialect,  # noqa: ARG002 - SQLAlchemy's signature
    ) -> str | None:
        """Return the Decimal's text."""
        return None if value is None else str(value)

    def process_result_value(
        self,
        value: object,
        dialect: Dialect,  # noqa: ARG002 - SQLAlchemy's signature
    ) -> Decimal | None:
        """Read the text back as a Decimal."""
        return None if value is None else Decimal(str(value))


class UtcDateTime(TypeDecorator[dt.datetime]):
    """An aware UTC datetime: PostgreSQL's TIMESTAMP WITH TIME ZONE, or fixed-width ISO text.

    Naive datetimes are taken to be UTC. The text form sorts in time order, so ``<`` works in
    SQL on SQLite as it does on PostgreSQL.
    """

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """Use PostgreSQL's timestamptz, and text on other databases."""
        if dialect.name == "postgresql":
            return dialect.type_descriptor(DateTime(timezone=True))
        return dialect.type_descriptor(Text())

    def process_bind_param(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | str | None:
        """Convert to UTC (text outside PostgreSQL)."""
        if value is None:
            return None
        utc = as_utc(value)
        return utc if dialect.name == "postgresql" else utc.isoformat(timespec="microseconds")

    def process_result_value(
        self,
        value: object,
        dialect: Dialect,  # noqa: ARG002 - SQLAlchemy's signature
    ) -> dt.datetime | None:
        """Return an aware UTC datetime."""
        if value is None:
            return None
        if isinstance(value, str):
            return as_utc(dt.datetime.fromisoformat(value))
        if not isinstance(value, dt.datetime):
            raise TypeError(f"expected a datetime from the database, got {value!r}")
        return as_utc(value)


class UuidText(TypeDecorator[UUID]):
    """A `UUID`: PostgreSQL's UUID type, or its hyphenated text elsewhere.

    On SQLite this is the form `SqliteSnapshotStore` writes too, so either store reads the
    other's file.
    """

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """Use PostgreSQL's native UUID, and text on other databases."""
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.UUID(as_uuid=True))
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: UUID | None, dialect: Dialect) -> UUID | str | None:
        """Pass the UUID to PostgreSQL, its text to other databases."""
        if value is None:
            return None
        return value if dialect.name == "postgresql" else str(value)

    def process_result_value(
        self,
        value: object,
        dialect: Dialect,  # noqa: ARG002 - SQLAlchemy's signature
    ) -> UUID | None:
        """Return a UUID."""
        if value is None or isinstance(value, UUID):
            return value
        return UUID(str(value))


#: The tables, for `create_schema` and for hosts that include them in their Alembic metadata.
metadata: Final = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

_snapshots = Table(
    SNAPSHOTS_TABLE,
    metadata,
    Column("portfolio_id", UuidText(), primary_key=True),
    Column("snapshot_date", Date(), primary_key=True),
    Column("currency", Text(), nullable=False),
    Column("cash_balance", DecimalText(), nullable=False),
    Column("holdings_value", DecimalText(), nullable=False),
    Column("total_value", DecimalText(), nullable=False),
    Column("net_contributions", DecimalText(), nullable=True),
    Column("external_flow", DecimalText(), nullable=True),
    Column("stale", Boolean(), nullable=False),
    Column("positions", Text(), nullable=False),
    Column("fence", BigInteger(), nullable=False, server_default="0"),
    comment="portfolio-snapshots: one valuation per (portfolio_id, snapshot_date)",
)
_runs = Table(
    RUNS_TABLE,
    metadata,
    Column("key", Text(), primary_key=True),
    Column("params_hash", Text(), nullable=False),
    Column("state", Text(), nullable=False),
    Column("attempts", Integer(), nullable=False),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("finished_at", UtcDateTime(), nullable=True),
    Column("report", Text(), nullable=True),
    comment="portfolio-snapshots: the run ledger",
)
_leases = Table(
    LEASES_TABLE,
    metadata,
    Column("key", Text(), primary_key=True),
    Column("owner", Text(), nullable=False),
    Column("fence", BigInteger(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    comment="portfolio-snapshots: run leases",
)
_fence_counter = Table(
    FENCE_COUNTER_TABLE,
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=False),
    Column("value", BigInteger(), nullable=False),
    CheckConstraint("id = 1", name="single_row"),
    comment="portfolio-snapshots: the last lease fence handed out",
)
_schema_version = Table(
    SCHEMA_VERSION_TABLE,
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=False),
    Column("version", Integer(), nullable=False),
    CheckConstraint("id = 1", name="single_row"),
    comment="portfolio-snapshots: the schema version written by create_schema",
)

_CONTENT: Final = tuple(c.name for c in _snapshots.columns if not c.primary_key)

#: Rows per statement of a write: a big batch is sent in several, in one transaction.
_ROWS_PER_STATEMENT: Final = 1000
#: Snapshots per statement on PostgreSQL, whose statements are streamed (`_stream`): small
#: enough that the server starts on a batch while the rest of it is being encoded.
_ROWS_PER_STREAMED_STATEMENT: Final = 25
#: The PostgreSQL drivers whose writes are streamed; any other goes through Core.
_STREAMING_DRIVERS: Final = frozenset({"asyncpg", "psycopg"})

# SQLSTATEs worth retrying: serialization failure, deadlock, lock timeout, statement timeout.
_BUSY_SQLSTATES: Final = frozenset({"40001", "40P01", "55P03", "57014"})
# SQLSTATE classes of a lost or refused server: connection exception, insufficient resources,
# operator intervention (shutdown, "the database system is starting up").
_UNAVAILABLE_SQLSTATE_PREFIXES: Final = ("08", "53", "57P")
# SQLite's primary result codes for "try again later": BUSY, LOCKED and a WAL race (PROTOCOL).
_SQLITE_BUSY_CODES: Final = frozenset({5, 6, 15})


def _from_sqlstate(sqlstate: str, exc: BaseException) -> Exception | None:
    if sqlstate in _BUSY_SQLSTATES:
        return DatabaseBusyError(f"database busy ({sqlstate}): {exc}")
    if sqlstate.startswith(_UNAVAILABLE_SQLSTATE_PREFIXES):
        return DatabaseUnavailableError(f"database unavailable ({sqlstate}): {exc}")
    return None


def _transient_dbapi(exc: sa_exc.DBAPIError) -> Exception | None:
    orig = exc.orig
    if exc.connection_invalidated:
        return DatabaseUnavailableError(f"database connection lost: {exc}")
    if isinstance(orig, sqlite3.Error):
        code = getattr(orig, "sqlite_errorcode", None)
        if (isinstance(code, int) and code & 0xFF in _SQLITE_BUSY_CODES) or (
            "database is locked" in str(orig)
        ):
            return DatabaseBusyError(f"SQLite database is busy: {orig}")
        return None
    # SQLAlchemy's asyncpg adapter copies the SQLSTATE; the driver's own error is the cause.
    for source in (orig, getattr(orig, "__cause__", None)):
        sqlstate = getattr(source, "sqlstate", None) or getattr(source, "pgcode", None)
        if isinstance(sqlstate, str) and sqlstate:
            return _from_sqlstate(sqlstate, exc)
    if isinstance(exc, (sa_exc.InterfaceError, sa_exc.OperationalError)) or isinstance(
        orig, OSError
    ):
        return DatabaseUnavailableError(f"database unavailable: {exc}")
    return None


def _transient(exc: Exception) -> Exception | None:
    """Return the `TransientError` to raise instead of `exc`, or None to raise `exc` itself."""
    if isinstance(exc, sa_exc.DBAPIError):
        return _transient_dbapi(exc)
    if isinstance(exc, sa_exc.TimeoutError):  # no pooled connection came free in time
        return DatabaseBusyError(f"database connection pool exhausted: {exc}")
    if isinstance(exc, OSError):  # refused, reset, unreachable; TimeoutError is an OSError
        return DatabaseUnavailableError(f"database unreachable: {exc}")
    # A driver error that escaped unwrapped (asyncpg raises some while connecting).
    if type(exc).__module__.startswith("asyncpg"):
        sqlstate = getattr(exc, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate:
            return _from_sqlstate(sqlstate, exc)
        if type(exc).__name__ in {"InterfaceError", "ConnectionDoesNotExistError"}:
            return DatabaseUnavailableError(f"database connection lost: {exc}")
    return None


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """Turn the driver's temporary failures into `TransientError` subclasses."""
    try:
        yield
    except Exception as exc:
        mapped = _transient(exc)
        if mapped is None:
            raise
        raise mapped from exc


def _dialect_insert(dialect: str, table: Table) -> postgresql.Insert | sqlite_dialect.Insert:
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite_dialect.insert(table)


def _check_dialect(engine: AsyncEngine) -> str:
    name = engine.dialect.name
    if name not in {"postgresql", "sqlite"}:
        raise ValueError(f"SqlAlchemySnapshotStore supports PostgreSQL and SQLite, not {name}")
    return name


# --- schema ---------------------------------------------------------------------------------------


def _migrate_to_1(conn: Connection) -> None:
    metadata.create_all(conn, tables=[_snapshots, _runs, _leases, _fence_counter], checkfirst=True)


# Each step takes the schema from version i to i + 1; all pending steps run in one transaction.
_MIGRATIONS: Final[tuple[Callable[[Connection], None], ...]] = (_migrate_to_1,)


async def create_schema(engine: AsyncEngine) -> None:
    """Create the tables, or migrate them to the current schema version.

    Safe to call on every start, also from several processes at once: the version row is
    locked while the migration runs, and a database at the current version is left alone.
    On SQLite it also switches the file to WAL mode. Hosts that manage their schema with
    Alembic include `metadata` in their own migrations instead, and never call this.

    Args:
        engine: The engine (PostgreSQL through asyncpg, or SQLite through aiosqlite).

    Raises:
        SchemaVersionError: The database's schema is newer than this library's; nothing in
            the database was changed.
    """
    name = _check_dialect(engine)
    where = engine.url.render_as_string(hide_password=True)
    with _translated():
        async with engine.connect() as conn:
            for attempt in range(2):
                try:
                    await conn.run_sync(
                        lambda c: metadata.create_all(c, tables=[_schema_version], checkfirst=True)
                    )
                    await conn.commit()
                    break
                except (sa_exc.IntegrityError, sa_exc.ProgrammingError):
                    # Another process created the table between our check and our CREATE.
                    await conn.rollback()
                    if attempt:
                        raise
            # A write first: on SQLite it takes the write lock, on PostgreSQL the row lock,
            # so concurrent callers migrate one after the other.
            await conn.execute(
                _dialect_insert(name, _schema_version)
                .values(id=1, version=0)
                .on_conflict_do_nothing(index_elements=[_schema_version.c.id])
            )
            found = (
                await conn.execute(
                    select(_schema_version.c.version)
                    .where(_schema_version.c.id == 1)
                    .with_for_update()
                )
            ).scalar_one()
            if found > SCHEMA_VERSION:
                await conn.rollback()
                raise SchemaVersionError(found, SCHEMA_VERSION, where=where)
            if found < SCHEMA_VERSION:
                for step in _MIGRATIONS[found:]:
                    await conn.run_sync(step)
                await conn.execute(
                    update(_schema_version)
                    .where(_schema_version.c.id == 1)
                    .values(version=SCHEMA_VERSION)
                )
            await conn.commit()
            if name == "sqlite":
                await conn.exec_driver_sql("PRAGMA journal_mode=WAL")
                await conn.commit()


# --- values <-> rows ------------------------------------------------------------------------------


def _checked(value: object, field: str) -> Decimal:
    if not isinstance(value, Decimal):
        raise InvalidInputError(f"{field} must be a Decimal, got {type(value).__name__}")
    return value


def _optional_checked(value: Decimal | None, field: str) -> Decimal | None:
    return None if value is None else _checked(value, field)


def _snapshot_params(s: PortfolioSnapshot, fence: int, texts: PositionTexts) -> dict[str, object]:
    return {
        "portfolio_id": s.portfolio_id,
        "snapshot_date": s.snapshot_date,
        "currency": s.currency,
        "cash_balance": _checked(s.cash_balance, "cash_balance"),
        "holdings_value": _checked(s.holdings_value, "holdings_value"),
        "total_value": _checked(s.total_value, "total_value"),
        "net_contributions": _optional_checked(s.net_contributions, "net_contributions"),
        "external_flow": _optional_checked(s.external_flow, "external_flow"),
        "stale": bool(s.stale),
        "positions": flat_positions_json(s.flat_positions, texts),
        "fence": fence,
    }


def _snapshot(row: Sequence[Any]) -> PortfolioSnapshot:
    """Build a snapshot from a row of `_SNAPSHOT_COLUMNS` (types already processed)."""
    pid, day, currency, cash, holdings, total, positions, net, flow, stale = row
    return PortfolioSnapshot.from_values(
        (
            pid,
            day,
            currency,
            cash,
            holdings,
            total,
            flat_positions_from_json(positions),
            net,
            flow,
            bool(stale),
        )
    )


class _DriverUpsert:
    """The snapshot upsert as the driver's own SQL and parameters, without Core's binding.

    Core's per-row work (a parameter dict, then each column's bind processor) costs about as
    much as the driver's insert itself. Here the statement is compiled once, and snapshots
    become the driver's parameters directly, each value what Core would have bound: amounts
    as `DecimalText` binds them (``str`` of a checked Decimal), positions as
    `flat_positions_json` encodes them, the id and the date through the bind processors
    SQLAlchemy itself would apply, and ``stale`` as that column's processor binds True or
    False. Only for positional paramstyles (asyncpg, aiosqlite; psycopg, compiled with
    ``%s`` parameters) and the column processors known here; otherwise `compile` returns None
    and the store binds through Core.

    On aiosqlite a snapshot becomes one row of parameters (`row`). On PostgreSQL (asyncpg or
    psycopg) a statement writes many snapshots (`columns`): ``INSERT ... SELECT ... FROM
    unnest(...) WITH ORDINALITY ... ORDER BY ord`` inserts them in the batch's (key) order,
    with the very ``ON CONFLICT`` clause Core compiled, so the server runs one statement per
    `_ROWS_PER_STREAMED_STATEMENT` snapshots instead of one per snapshot. The id, date,
    currency and stale columns travel as arrays; the amounts and positions, text that never
    holds the control character `_SEPARATOR`, travel as one string a column, joined by it and
    split by the server (``string_to_array``), which spares the driver's per-element array
    encoding; the fence is the same for every row and travels once.
    """

    __slots__ = ("_day", "_fenced", "_fresh", "_pid", "_plain", "_stale", "streamed")

    def __init__(  # noqa: PLR0917 - each piece compile() worked out
        self,
        plain: str,
        fenced: str,
        pid: Callable[[Any], Any] | None,
        day: Callable[[Any], Any] | None,
        stale: object,
        fresh: object,
        *,
        streamed: bool,
    ) -> None:
        self._plain = plain
        self._fenced = fenced
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
        plain: postgresql.Insert | sqlite_dialect.Insert,
        fenced: postgresql.Insert | sqlite_dialect.Insert,
    ) -> _DriverUpsert | None:
        """Compile the two upserts for `dialect`, or return None if Core must bind them."""
        streamed = dialect.name == "postgresql"
        if streamed and dialect.driver not in _STREAMING_DRIVERS:
            return None
        if streamed and dialect.driver == "psycopg":
            # psycopg takes positional ``%s`` parameters as well as the named ones Core uses.
            dialect = cast("type[DefaultDialect]", type(dialect))(paramstyle="format")
        compiled = [statement.compile(dialect=dialect) for statement in (plain, fenced)]
        names = [c.name for c in _snapshots.columns]
        if any(not c.positional or c.positiontup != names for c in compiled):
            return None
        processors = {
            c.name: c.type.dialect_impl(dialect).bind_processor(dialect)
            for c in _snapshots.columns
            if not isinstance(c.type, DecimalText)
        }
        if any(processors[c] is not None for c in ("currency", "positions", "fence")):
            return None
        stale = processors["stale"]
        sql = [c.string for c in compiled]
        if streamed:
            sql = [_unnest_upsert(text, dialect) for text in sql]
        return cls(
            sql[0],
            sql[1],
            processors["portfolio_id"],
            processors["snapshot_date"],
            True if stale is None else stale(True),  # noqa: FBT003 - the bound value of True
            False if stale is None else stale(False),  # noqa: FBT003 - the bound value of False
            streamed=streamed,
        )

    def sql(self, *, fenced: bool) -> str:
        """Return the statement's text."""
        return self._fenced if fenced else self._plain

    def row(self, s: PortfolioSnapshot, fence: int, texts: PositionTexts) -> tuple[object, ...]:
        """Return the driver's parameters for `s`, in the statement's order.

        Raises:
            InvalidInputError: An amount is not a Decimal.
        """
        pid, day, currency, cash, holdings, total, flat, net, flow, stale = s.values
        # Seen as objects: a host may hand in a float, which must be refused.
        amounts: tuple[object, object, object] = (cash, holdings, total)
        if not (
            isinstance(amounts[0], Decimal)
            and isinstance(amounts[1], Decimal)
            and isinstance(amounts[2], Decimal)
        ):
            _checked(cash, "cash_balance")
            _checked(holdings, "holdings_value")
            _checked(total, "total_value")
        net_text = None if net is None else str(_checked(net, "net_contributions"))
        flow_text = None if flow is None else str(_checked(flow, "external_flow"))
        stale_value = self._stale if stale else self._fresh
        positions = flat_positions_json(flat, texts)
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
        self, part: Sequence[PortfolioSnapshot], fence: int, texts: PositionTexts
    ) -> tuple[object, ...]:
        """Return the parameters of one statement writing `part`, in the statement's order.

        Raises:
            InvalidInputError: An amount is not a Decimal, or its text holds `_SEPARATOR`.
        """
        pid, day, currency, cash, holdings, total, flat, net, flow, stale = zip(
            *[s.values for s in part], strict=True
        )
        return (
            list(pid) if self._pid is None else list(map(self._pid, pid)),
            list(day) if self._day is None else list(map(self._day, day)),
            list(currency),
            _joined_amounts(cash, "cash_balance", part),
            _joined_amounts(holdings, "holdings_value", part),
            _joined_amounts(total, "total_value", part),
            _joined_amounts(net, "net_contributions", part, nullable=True),
            _joined_amounts(flow, "external_flow", part, nullable=True),
            [self._stale if s else self._fresh for s in stale],
            # JSON text holds control characters only escaped: no check needed.
            _SEPARATOR.join([flat_positions_json(f, texts) for f in flat]),
            fence,
        )


#: Joins the values of a text column into one parameter (see `_DriverUpsert`): the ASCII unit
#: separator, which decimal text never holds and JSON text holds only escaped.
_SEPARATOR: Final = "\x1f"
#: Columns sent joined by `_SEPARATOR`; an empty string between separators stands for NULL.
_JOINED: Final = frozenset(
    c.name for c in _snapshots.columns if isinstance(c.type, DecimalText) or c.name == "positions"
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
                _checked(value, field)
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


def _unnest_upsert(compiled: str, dialect: Dialect) -> str:
    """Turn the compiled one-row upsert into one taking a statement's `columns`.

    ``INSERT INTO t (a, b, fence) VALUES ($1, $2, $3) ON CONFLICT ...`` becomes ``INSERT INTO
    t (a, b, fence) SELECT a, b, fence FROM unnest($1::type[], string_to_array($2::text,
    chr(31), '')) WITH ORDINALITY AS batch (a, b, ord) CROSS JOIN (SELECT $3::BIGINT) AS
    constant (fence) ORDER BY ord ON CONFLICT ...``, keeping Core's own conflict clause; the
    columns in `_JOINED` come as joined text. The parameters appear in the columns' order, so
    the statement also suits positional ``%s`` parameters (psycopg).
    """
    head, rest = compiled.split(" VALUES ", 1)
    _, conflict = rest.split(" ON CONFLICT ", 1)
    names = [c.name for c in _snapshots.columns]
    sources: dict[str, str] = {}
    for i, c in enumerate(_snapshots.columns, 1):
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
    ``executemany`` (asyncpg's, or a psycopg cursor's, which pipelines), which draws their
    parameters from `statements` as it sends them: the server runs the statements already
    sent while the next ones are encoded, the way a bare ``executemany`` overlaps its work
    with the server's. They run in the same transaction, and the driver stops at the first
    error, which is raised here.
    """
    first = next(statements, None)
    if first is None:
        return
    await conn.exec_driver_sql(sql, first)
    driver_connection = (await conn.get_raw_connection()).driver_connection
    if driver_connection is None:  # the pool let go of it: gone with the transaction
        raise DatabaseUnavailableError("database connection lost during a write")
    if type(driver_connection).__module__.startswith("psycopg"):
        async with driver_connection.cursor() as cursor:
            await cursor.executemany(sql, statements)
        return
    await driver_connection.executemany(sql, statements)


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


_SNAPSHOT_COLUMNS = (
    _snapshots.c.portfolio_id,
    _snapshots.c.snapshot_date,
    _snapshots.c.currency,
    _snapshots.c.cash_balance,
    _snapshots.c.holdings_value,
    _snapshots.c.total_value,
    _snapshots.c.positions,
    _snapshots.c.net_contributions,
    _snapshots.c.external_flow,
    _snapshots.c.stale,
)


# --- the store ------------------------------------------------------------------------------------


class SqlAlchemySnapshotStore:
    """A `SnapshotRepository`, `RunLedger` (with `RecentRuns`) and `RunLock` over an `AsyncEngine`.

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
    `TransientError`, which the job's `RetryPolicy` retries.

    On PostgreSQL a write of more than 25 snapshots is several statements in its
    transaction: the first runs through SQLAlchemy, the others through the driver's own
    ``executemany`` on the same connection, so SQLAlchemy's cursor events (``echo``, tracing
    hooks) see the first statement of a write only. Use a transactional engine (the default
    isolation levels): on an ``AUTOCOMMIT`` engine each statement commits on its own.

    Args:
        engine: An async engine on PostgreSQL or SQLite; the host keeps ownership of it.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        """Use `engine`; see the class docstring."""
        self._dialect = _check_dialect(engine)
        self._engine = engine
        self._owns_engine = False
        self._upsert_plain = self._upsert_statement(fenced=False)
        self._upsert_fenced = self._upsert_statement(fenced=True)
        self._driver = _DriverUpsert.compile(
            engine.dialect, self._upsert_plain, self._upsert_fenced
        )
        # Price texts kept between writes (encoding runs between awaits, on the loop).
        self._texts: PositionTexts = {}

    @classmethod
    async def open(
        cls,
        url: str | URL,
        *,
        create: bool = True,
        busy_timeout: float = 5.0,
        **engine_options: object,
    ) -> Self:
        """Make an engine for `url`, create or migrate the schema, and return a store owning it.

        Args:
            url: An SQLAlchemy URL: ``postgresql+asyncpg://...`` or
                ``sqlite+aiosqlite:///path.db``.
            create: Whether to call `create_schema` (False when the host migrates).
            busy_timeout: On SQLite, seconds to wait for another connection's write lock.
            **engine_options: Passed on to `create_async_engine`.

        Returns:
            The store; `close` disposes of its engine.

        Raises:
            SchemaVersionError: The database's schema is newer than this library's.
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
                await create_schema(engine)
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

    def _upsert_statement(self, *, fenced: bool) -> postgresql.Insert | sqlite_dialect.Insert:
        ins = _dialect_insert(self._dialect, _snapshots)
        excluded = ins.excluded
        differs = or_(*(_snapshots.c[c].is_distinct_from(excluded[c]) for c in _CONTENT))
        where = and_(_snapshots.c.fence <= excluded.fence, differs) if fenced else differs
        return ins.on_conflict_do_update(
            index_elements=[_snapshots.c.portfolio_id, _snapshots.c.snapshot_date],
            set_={c: excluded[c] for c in _CONTENT},
            where=where,
        )

    # SnapshotRepository

    async def upsert_many(
        self, snapshots: Sequence[PortfolioSnapshot], *, fence: int | None = None
    ) -> None:
        """Insert or replace `snapshots` in one transaction (see the class docstring)."""
        stored_fence = 0 if fence is None else fence
        ordered = dedupe_sorted(snapshots)
        if not ordered:
            return
        driver = self._driver
        texts = remembered(self._texts)
        # Core renders a schema_translate_map into each statement; the driver's SQL cannot.
        if (
            driver is not None
            and "schema_translate_map" not in self._engine.get_execution_options()
        ):
            sql = driver.sql(fenced=fence is not None)
            if driver.streamed:  # encoded as they are sent
                parts = chunks(ordered, _ROWS_PER_STREAMED_STATEMENT)
                statements = (driver.columns(p, stored_fence, texts) for p in parts)
                with _translated():
                    async with self._engine.begin() as conn:
                        await _stream(conn, sql, statements)
                return
            rows = [driver.row(s, stored_fence, texts) for s in ordered]
            with _translated():
                async with self._engine.begin() as conn:
                    for part in chunks(rows, _ROWS_PER_STATEMENT):
                        await conn.exec_driver_sql(sql, list(part))
            return
        params = [_snapshot_params(s, stored_fence, texts) for s in ordered]
        statement = self._upsert_plain if fence is None else self._upsert_fenced
        with _translated():
            async with self._engine.begin() as conn:
                await conn.execute(statement, params)

    async def existing_keys(
        self, keys: Collection[tuple[UUID, dt.date]]
    ) -> frozenset[tuple[UUID, dt.date]]:
        """Return the ``(portfolio_id, snapshot_date)`` keys among `keys` that are stored."""
        wanted = sorted(set(keys))
        if not wanted:
            return frozenset()
        key = tuple_(_snapshots.c.portfolio_id, _snapshots.c.snapshot_date)
        found: set[tuple[UUID, dt.date]] = set()
        with _translated():
            async with self._engine.connect() as conn:
                for chunk in chunks(wanted):
                    result = await conn.execute(
                        select(_snapshots.c.portfolio_id, _snapshots.c.snapshot_date).where(
                            key.in_(chunk)
                        )
                    )
                    found.update((r.portfolio_id, r.snapshot_date) for r in result)
        return frozenset(found)

    async def get_snapshot(self, portfolio_id: UUID, day: dt.date) -> PortfolioSnapshot | None:
        """Return the stored snapshot of `portfolio_id` on `day`, or None."""
        query = select(*_SNAPSHOT_COLUMNS).where(
            _snapshots.c.portfolio_id == portfolio_id, _snapshots.c.snapshot_date == day
        )
        with _translated():
            async with self._engine.connect() as conn:
                row = (await conn.execute(query)).one_or_none()
        return None if row is None else _snapshot(row)

    async def list_snapshots(
        self, portfolio_id: UUID, start: dt.date, end: dt.date
    ) -> list[PortfolioSnapshot]:
        """Return the snapshots of `portfolio_id` from `start` to `end` inclusive, by date."""
        query = (
            select(*_SNAPSHOT_COLUMNS)
            .where(
                _snapshots.c.portfolio_id == portfolio_id,
                _snapshots.c.snapshot_date >= start,
                _snapshots.c.snapshot_date <= end,
            )
            .order_by(_snapshots.c.snapshot_date)
        )
        with _translated():
            async with self._engine.connect() as conn:
                rows = (await conn.execute(query)).all()
        return [_snapshot(r) for r in rows]

    async def existing_dates(
        self, portfolio_id: UUID, start: dt.date, end: dt.date
    ) -> frozenset[dt.date]:
        """Return the dates from `start` to `end` inclusive that have a stored snapshot."""
        query = select(_snapshots.c.snapshot_date).where(
            _snapshots.c.portfolio_id == portfolio_id,
            _snapshots.c.snapshot_date >= start,
            _snapshots.c.snapshot_date <= end,
        )
        with _translated():
            async with self._engine.connect() as conn:
                dates = (await conn.execute(query)).scalars().all()
        return frozenset(dates)

    # RunLedger

    async def start(self, key: str, params_hash: str, now: dt.datetime) -> RunRecord:
        """Create or resume the run `key`, or return it unchanged when it already succeeded."""
        created = RunRecord(key, params_hash, RunState.RUNNING, 1, now)
        with _translated():
            async with self._engine.connect() as conn:
                # Insert first: a write takes SQLite's write lock before anything is read.
                inserted = await conn.execute(
                    _dialect_insert(self._dialect, _runs)
                    .values(
                        key=key,
                        params_hash=params_hash,
                        state=RunState.RUNNING.value,
                        attempts=1,
                        started_at=now,
                    )
                    .on_conflict_do_nothing(index_elements=[_runs.c.key])
                    # An INSERT's row count is kept only when asked for (psycopg drops it).
                    .execution_options(preserve_rowcount=True)
                )
                if inserted.rowcount == 1:
                    await conn.commit()
                    return created
                row = (
                    (await conn.execute(select(_runs).where(_runs.c.key == key).with_for_update()))
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
                    update(_runs)
                    .where(_runs.c.key == key)
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
        with _translated():
            async with self._engine.connect() as conn:
                changed = await conn.execute(
                    update(_runs)
                    .where(_runs.c.key == key)
                    .values(state=state.value, finished_at=now, report=encoded)
                )
                if changed.rowcount != 1:
                    raise KeyError(f"run key {key!r} was never started")
                row = (await conn.execute(select(_runs).where(_runs.c.key == key))).mappings().one()
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
        with _translated():
            async with self._engine.connect() as conn:
                row = (
                    (await conn.execute(select(_runs).where(_runs.c.key == key)))
                    .mappings()
                    .one_or_none()
                )
        return None if row is None else _record(row)

    async def recent_runs(self, limit: int) -> list[RunRecord]:
        """Return the `limit` most recently started runs, latest first (the `RecentRuns` way)."""
        query = select(_runs).order_by(_runs.c.started_at.desc(), _runs.c.key).limit(max(limit, 0))
        with _translated():
            async with self._engine.connect() as conn:
                rows = (await conn.execute(query)).mappings().all()
        return [_record(row) for row in rows]

    # RunLock

    async def acquire(
        self, key: str, owner: str, ttl: dt.timedelta, now: dt.datetime
    ) -> Lease | None:
        """Take the lease on `key` for `ttl`, or return None if someone else holds it."""
        expires_at = now + ttl
        counter = _dialect_insert(self._dialect, _fence_counter).values(id=1, value=1)
        with _translated():
            async with self._engine.connect() as conn:
                # The counter row is the first write: it serializes acquisitions, and the
                # fence it hands out is greater than every fence before it.
                await conn.execute(
                    counter.on_conflict_do_update(
                        index_elements=[_fence_counter.c.id],
                        set_={"value": _fence_counter.c.value + 1},
                    )
                )
                fence = (
                    await conn.execute(
                        select(_fence_counter.c.value).where(_fence_counter.c.id == 1)
                    )
                ).scalar_one()
                lease = _dialect_insert(self._dialect, _leases).values(
                    key=key, owner=owner, fence=fence, expires_at=expires_at
                )
                await conn.execute(
                    lease.on_conflict_do_update(
                        index_elements=[_leases.c.key],
                        set_={
                            "owner": lease.excluded.owner,
                            "fence": lease.excluded.fence,
                            "expires_at": lease.excluded.expires_at,
                        },
                        where=or_(
                            _leases.c.owner == lease.excluded.owner,
                            _leases.c.expires_at <= as_utc(now),
                        ),
                    )
                )
                held = (
                    await conn.execute(select(_leases.c.fence).where(_leases.c.key == key))
                ).scalar_one()
                if held != fence:
                    await conn.rollback()
                    return None
                await conn.commit()
        return Lease(key, owner, fence, expires_at)

    async def renew(self, lease: Lease, ttl: dt.timedelta, now: dt.datetime) -> Lease:
        """Extend `lease` by `ttl` from `now`, or raise `LeaseLostError`."""
        expires_at = now + ttl
        with _translated():
            async with self._engine.connect() as conn:
                changed = await conn.execute(
                    update(_leases)
                    .where(
                        _leases.c.key == lease.key,
                        _leases.c.fence == lease.fence,
                        _leases.c.expires_at > as_utc(now),
                    )
                    .values(expires_at=expires_at)
                )
                if changed.rowcount != 1:
                    held = (
                        await conn.execute(
                            select(_leases.c.fence).where(_leases.c.key == lease.key)
                        )
                    ).scalar_one_or_none()
                    raise LeaseLostError(lease.key, lease_lost_detail(held, lease.fence))
                await conn.commit()
        return Lease(lease.key, lease.owner, lease.fence, expires_at)

    async def release(self, lease: Lease) -> None:
        """Give `lease` up if it is still held."""
        with _translated():
            async with self._engine.begin() as conn:
                await conn.execute(
                    delete(_leases).where(
                        _leases.c.key == lease.key, _leases.c.fence == lease.fence
                    )
                )
