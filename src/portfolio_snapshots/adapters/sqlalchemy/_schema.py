"""The SQLAlchemy store's schema: column types, tables, migrations, and the engines it accepts.

Also how the drivers' errors become the library's (`translated`), the same on every driver,
since every layer above talks to the database through it: temporary failures become
`TransientError` subclasses, a refused login or a missing database `DatabaseAccessError`.
Nothing here knows the store class or the PostgreSQL write fast path; both build on this
module.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import sqlite3
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    TypeDecorator,
    literal,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.ext.asyncio import AsyncEngine

from portfolio_snapshots._domain import PortfolioSnapshot
from portfolio_snapshots._errors import (
    DatabaseAccessError,
    DatabaseBusyError,
    DatabaseUnavailableError,
    InvalidInputError,
    SchemaVersionError,
)
from portfolio_snapshots.adapters._sql_codec import (
    BOOK_COLUMNS,
    FENCE_COUNTER_TABLE,
    LEASES_TABLE,
    PRICES_TABLE,
    RUNS_TABLE,
    SCHEMA_VERSION,
    SCHEMA_VERSION_TABLE,
    SNAPSHOTS_TABLE,
    PriceCatalog,
    PriceContent,
    PriceDay,
    PriceRow,
    as_utc,
    chunks,
    flat_positions_from_json,
    sqlite_error,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterator, Sequence

    from sqlalchemy import URL, Connection, Select
    from sqlalchemy.engine.interfaces import Dialect
    from sqlalchemy.sql.type_api import TypeEngine

    #: The columns of a ``ps_prices`` row as `price_queries` selects them.
    _PriceRowTypes = tuple[dt.date, str, int, str, dt.date, str, str | None, bool]


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


class _PortableUuid(TypeDecorator[UUID]):
    """A `UUID` column: PostgreSQL's UUID type, or the subclass's `impl` on other databases."""

    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """Use PostgreSQL's native UUID, and `impl` on other databases."""
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.UUID(as_uuid=True))
        return dialect.type_descriptor(self.impl_instance)

    def process_result_value(
        self,
        value: object,
        dialect: Dialect,  # noqa: ARG002 - SQLAlchemy's signature
    ) -> UUID | None:
        """Return a UUID."""
        if value is None or isinstance(value, UUID):
            return value
        return UUID(str(value))


class UuidText(_PortableUuid):
    """A `UUID`: PostgreSQL's UUID type, or its hyphenated text elsewhere.

    The type of ``ps_snapshots.portfolio_id`` at schema version 1, which both stores wrote on
    SQLite; version 2 stores `UuidKey`. For a host's own tables, where readable text matters
    more than 20 bytes a row.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: UUID | None, dialect: Dialect) -> UUID | str | None:
        """Pass the UUID to PostgreSQL, its text to other databases."""
        if value is None:
            return None
        return value if dialect.name == "postgresql" else str(value)


class UuidKey(_PortableUuid):
    """A `UUID` key: PostgreSQL's UUID type, or its 16 bytes (``UUID.bytes``) elsewhere.

    The type of ``ps_snapshots.portfolio_id`` from schema version 2 on. On SQLite the 16 bytes
    take less than half the room of the hyphenated text (`UuidText`, version 1's), in the row
    and in the key index, and sort as the UUIDs do; it is the form `SqliteSnapshotStore`
    writes too, so either store reads the other's file. Reads also accept text.
    """

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: UUID | None, dialect: Dialect) -> UUID | bytes | None:
        """Pass the UUID to PostgreSQL, its 16 bytes to other databases.

        Raises:
            InvalidInputError: `value` is not a UUID.
        """
        if value is None:
            return None
        if not isinstance(value, UUID):
            raise InvalidInputError(
                f"portfolio_id must be a UUID, got {type(value).__name__}: {value!r}"
            )
        return value if dialect.name == "postgresql" else value.bytes

    def process_result_value(self, value: object, dialect: Dialect) -> UUID | None:
        """Return a UUID, from its 16 bytes or (a file of version 1) its text."""
        if isinstance(value, bytes | bytearray | memoryview):
            return UUID(bytes=bytes(value))
        return super().process_result_value(value, dialect)


def checked_decimal(value: object, field: str) -> Decimal:
    """Return `value`, which a `DecimalText` column is about to store.

    Raises:
        InvalidInputError: `value` is not a Decimal (a float would lose money silently).
    """
    if not isinstance(value, Decimal):
        raise InvalidInputError(f"{field} must be a Decimal, got {type(value).__name__}")
    return value


# --- tables ---------------------------------------------------------------------------------------

#: The tables, for `create_schema` and for hosts that include them in their Alembic metadata.
_NAMING: Final = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: Final = MetaData(naming_convention=_NAMING)


def _snapshot_columns(key: type[UuidKey | UuidText] = UuidKey) -> list[Column[Any]]:
    """The columns of ``ps_snapshots`` at version 2, made afresh for each table built.

    Args:
        key: The type of ``portfolio_id``: `UuidKey` (version 2), `UuidText` (version 1).
    """
    return [
        Column("portfolio_id", key(), primary_key=True),
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
        # The snapshot's books (`BOOK_COLUMNS`): NULL when it has none.
        *(Column(name, DecimalText(), nullable=True) for name in BOOK_COLUMNS[:-1]),
        Column(BOOK_COLUMNS[-1], Text(), nullable=True),
    ]


_SNAPSHOTS_COMMENT: Final = "portfolio-snapshots: one valuation per (portfolio_id, snapshot_date)"

snapshots_table: Final = Table(
    SNAPSHOTS_TABLE,
    metadata,
    *_snapshot_columns(),
    sqlite_with_rowid=False,
    comment=_SNAPSHOTS_COMMENT,
)
#: The columns a write of a snapshot without books fills, in the order of its parameters.
written_columns: Final = tuple(c for c in snapshots_table.columns if c.name not in BOOK_COLUMNS)
#: The columns a write of a snapshot with books fills: every column, books last.
booked_columns: Final = tuple(snapshots_table.columns)
prices_table: Final = Table(
    PRICES_TABLE,
    metadata,
    Column("snapshot_date", Date(), primary_key=True),
    Column("ticker", Text(), primary_key=True),
    Column("variant", Integer(), primary_key=True, autoincrement=False),
    Column("price", Text(), nullable=False),
    Column("price_date", Date(), nullable=False),
    Column("price_currency", Text(), nullable=True),
    Column("fx_rate", Text(), nullable=True),
    Column("stale", Boolean(), nullable=False),
    sqlite_with_rowid=False,
    comment="portfolio-snapshots: each price a day's snapshots were valued with, once",
)
runs_table: Final = Table(
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
leases_table: Final = Table(
    LEASES_TABLE,
    metadata,
    Column("key", Text(), primary_key=True),
    Column("owner", Text(), nullable=False),
    Column("fence", BigInteger(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    comment="portfolio-snapshots: run leases",
)
fence_counter_table: Final = Table(
    FENCE_COUNTER_TABLE,
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=False),
    Column("value", BigInteger(), nullable=False),
    CheckConstraint("id = 1", name="single_row"),
    comment="portfolio-snapshots: the last lease fence handed out",
)
schema_version_table: Final = Table(
    SCHEMA_VERSION_TABLE,
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=False),
    Column("version", Integer(), nullable=False),
    CheckConstraint("id = 1", name="single_row"),
    comment="portfolio-snapshots: the schema version written by create_schema",
)


# --- engines --------------------------------------------------------------------------------------


def checked_dialect(engine: object, user: str) -> str:
    """Return the name of `engine`'s database, refusing engines the store cannot use.

    Args:
        engine: What the host passed as the engine.
        user: Who asks (``SqlAlchemySnapshotStore`` or ``create_schema``), for the message.

    Raises:
        InvalidInputError: `engine` is not an `AsyncEngine` (a sync `Engine` would fail only
            on first use, deep in a write), or its database is neither PostgreSQL nor SQLite.
    """
    if not isinstance(engine, AsyncEngine):
        raise InvalidInputError(
            f"{user} needs an AsyncEngine, got {type(engine).__module__}."
            f"{type(engine).__qualname__}: make the engine with "
            "sqlalchemy.ext.asyncio.create_async_engine and an async driver "
            '(create_async_engine("postgresql+asyncpg://..."), "postgresql+psycopg://..." or '
            '"sqlite+aiosqlite:///..."), or let SqlAlchemySnapshotStore.open(url) make one'
        )
    name = engine.dialect.name
    if name not in {"postgresql", "sqlite"}:
        raise InvalidInputError(f"{user} supports PostgreSQL and SQLite, not {name}")
    return name


def dialect_insert(dialect: str, table: Table) -> postgresql.Insert | sqlite_dialect.Insert:
    """Return an INSERT into `table` with the ``ON CONFLICT`` clauses of `dialect`."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite_dialect.insert(table)


# --- error translation ----------------------------------------------------------------------------

# SQLSTATEs worth retrying: serialization failure, deadlock, lock timeout, statement timeout.
_BUSY_SQLSTATES: Final = frozenset({"40001", "40P01", "55P03", "57014"})
# SQLSTATE classes of a lost or refused server: connection exception, insufficient resources,
# operator intervention (shutdown, "the database system is starting up").
_UNAVAILABLE_SQLSTATE_PREFIXES: Final = ("08", "53", "57P")
# SQLSTATEs of a server that refuses the store for good: class 28, invalid authorization
# specification (28P01 a wrong password, 28000 a role that may not log in from here), and
# 3D000, invalid catalog name (no such database).
_LOGIN_REFUSED_CLASS: Final = "28"
_NO_SUCH_DATABASE: Final = "3D000"
_CHECK_LOGIN: Final = (
    "the user name and password the URL gives, and that the server lets that role log in "
    "from this host (pg_hba.conf)"
)
_CHECK_DATABASE: Final = "the database name in the URL, or create the database"
# psycopg reports no SQLSTATE for a failed connection (libpq keeps it to itself: psycopg
# issue #1188), so its refusals are recognised by the server's messages, which are English
# unless the server's lc_messages says otherwise.
_PSYCOPG_REFUSALS: Final = (
    (re.compile(r'database ".*" does not exist'), _NO_SUCH_DATABASE),
    (re.compile(r'password authentication failed for user "'), "28P01"),
    (
        re.compile(
            r'authentication failed for user "|role ".*" (?:does not exist|is not permitted '
            r"to log in)|pg_hba\.conf (?:entry|rejects)"
        ),
        "28000",
    ),
)


def database_name(url: URL) -> str:
    """Name the database of `url` for messages, never with its password.

    On SQLite, the file; elsewhere the URL without the password and the query (which may
    hold one).
    """
    if url.get_backend_name() == "sqlite":
        return url.database or ""
    user = f"{url.username}@" if url.username else ""
    port = f":{url.port}" if url.port is not None else ""
    return f"{url.drivername}://{user}{url.host or ''}{port}/{url.database or ''}"


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _sqlstate(error: BaseException | None) -> tuple[str, BaseException] | None:
    """Return the SQLSTATE carried by `error` or, on asyncpg under SQLAlchemy, its cause."""
    for source in (error, getattr(error, "__cause__", None)):
        sqlstate = getattr(source, "sqlstate", None) or getattr(source, "pgcode", None)
        if isinstance(sqlstate, str) and sqlstate and source is not None:
            return sqlstate, source
    return None


def _access_error(sqlstate: str | None, error: BaseException, where: str) -> DatabaseAccessError:
    if sqlstate == _NO_SUCH_DATABASE:
        problem, check = "the database does not exist", _CHECK_DATABASE
    else:
        problem, check = "the server refused the login", _CHECK_LOGIN
    return DatabaseAccessError(
        f"{problem} ({_first_line(error)})", database=where, check=check, sqlstate=sqlstate
    )


def _refusal(error: BaseException | None, where: str) -> DatabaseAccessError | None:
    """Return the `DatabaseAccessError` for a driver error that asking again cannot cure."""
    if error is None:
        return None
    if isinstance(error, sqlite3.Error):
        mapped = sqlite_error(error, where)
        return mapped if isinstance(mapped, DatabaseAccessError) else None
    found = _sqlstate(error)
    if found is not None:
        sqlstate, source = found
        if sqlstate.startswith(_LOGIN_REFUSED_CLASS) or sqlstate == _NO_SUCH_DATABASE:
            return _access_error(sqlstate, source, where)
        return None
    if type(error).__module__.startswith("psycopg"):
        return _psycopg_refusal(error, where)
    return None


def _psycopg_refusal(error: BaseException, where: str) -> DatabaseAccessError | None:
    # A failed connection attempt carries the finished libpq connection; others do not.
    pgconn = getattr(error, "pgconn", None)
    if pgconn is None:
        return None
    if getattr(pgconn, "needs_password", False):  # the server asked for one; none was given
        return _access_error(None, error, where)
    text = str(error)
    for pattern, sqlstate in _PSYCOPG_REFUSALS:
        if pattern.search(text):
            return _access_error(sqlstate, error, where)
    return None


def _transient_sqlstate(sqlstate: str, exc: BaseException, where: str) -> Exception | None:
    if sqlstate in _BUSY_SQLSTATES:
        return DatabaseBusyError(f"database {where} busy [{sqlstate}]: {_first_line(exc)}")
    if sqlstate.startswith(_UNAVAILABLE_SQLSTATE_PREFIXES):
        return DatabaseUnavailableError(
            f"database {where} unavailable [{sqlstate}]: {_first_line(exc)}"
        )
    return None


def _translate_dbapi(exc: sa_exc.DBAPIError, where: str) -> Exception | None:
    orig = exc.orig
    refused = _refusal(orig, where)
    if refused is not None:
        return refused
    if exc.connection_invalidated:
        return DatabaseUnavailableError(f"database {where}: connection lost: {_first_line(exc)}")
    if isinstance(orig, sqlite3.Error):
        return sqlite_error(orig, where)
    found = _sqlstate(orig)
    if found is not None:
        return _transient_sqlstate(found[0], exc, where)
    if isinstance(exc, (sa_exc.InterfaceError, sa_exc.OperationalError)) or isinstance(
        orig, OSError
    ):
        return DatabaseUnavailableError(f"database {where} unavailable: {_first_line(exc)}")
    return None


def translate(exc: Exception, where: str) -> Exception | None:
    """Return the library's error to raise instead of the driver's `exc`, or None.

    Temporary faults become `DatabaseBusyError` or `DatabaseUnavailableError` (transient); a
    refused login, a database that does not exist or an SQLite file that cannot be used
    becomes `DatabaseAccessError` (never retried), whichever driver raised it.

    Args:
        exc: What the driver, or SQLAlchemy around it, raised.
        where: The database, for messages (`database_name`: never a password).

    Returns:
        The error to raise from `exc`, or None to raise `exc` itself.
    """
    if isinstance(exc, sa_exc.DBAPIError):
        return _translate_dbapi(exc, where)
    if isinstance(exc, sa_exc.TimeoutError):  # no pooled connection came free in time
        return DatabaseBusyError(f"database {where}: connection pool exhausted: {exc}")
    if isinstance(exc, OSError):  # refused, reset, unreachable; TimeoutError is an OSError
        return DatabaseUnavailableError(f"database {where} unreachable: {exc}")
    # A driver error that escaped unwrapped: asyncpg raises some while connecting, and the
    # driver-level reads and writes (`_fast_path`) call the driver itself.
    if type(exc).__module__.startswith(("asyncpg", "psycopg")):
        return _translate_unwrapped(exc, where)
    return None


def _translate_unwrapped(exc: Exception, where: str) -> Exception | None:
    refused = _refusal(exc, where)
    if refused is not None:
        return refused
    found = _sqlstate(exc)
    if found is not None:
        return _transient_sqlstate(found[0], exc, where)
    # asyncpg's lost connection, or psycopg's (which has no SQLSTATE for it).
    if type(exc).__name__ in {"InterfaceError", "ConnectionDoesNotExistError", "OperationalError"}:
        return DatabaseUnavailableError(f"database {where}: connection lost: {exc}")
    return None


@contextlib.contextmanager
def translated(where: str) -> Iterator[None]:
    """Raise the library's errors (see `translate`) instead of the driver's.

    Args:
        where: The database, for messages (`database_name`: never a password).
    """
    try:
        yield
    except Exception as exc:
        mapped = translate(exc, where)
        if mapped is None:
            raise
        raise mapped from exc


# --- migrations -----------------------------------------------------------------------------------


# Version 1's snapshots table, as version 1 created it.
_v1_metadata: Final = MetaData(naming_convention=_NAMING)
_v1_snapshots_table: Final = Table(
    SNAPSHOTS_TABLE,
    _v1_metadata,
    *_snapshot_columns(UuidText)[: -len(BOOK_COLUMNS)],
    comment=_SNAPSHOTS_COMMENT,
)
#: Version-1 rows moved per statement by the migration to version 2.
_MIGRATION_CHUNK: Final = 2000


def _migrate_to_1(conn: Connection) -> None:
    _v1_metadata.create_all(conn, tables=[_v1_snapshots_table], checkfirst=True)
    metadata.create_all(
        conn, tables=[runs_table, leases_table, fence_counter_table], checkfirst=True
    )


def _migrate_to_2(conn: Connection) -> None:
    """Move every version-1 snapshot to the compact form, its prices into ``ps_prices``.

    The snapshots go into a new table (``ps_snapshots_v2`` until the old one is dropped),
    read in key order a chunk at a time.
    """
    metadata.create_all(conn, tables=[prices_table], checkfirst=True)
    staging_metadata = MetaData(naming_convention=_NAMING)
    staging = Table(
        f"{SNAPSHOTS_TABLE}_v2",
        staging_metadata,
        *_snapshot_columns(),
        sqlite_with_rowid=False,
        comment=_SNAPSHOTS_COMMENT,
    )
    staging_metadata.create_all(conn)
    old = _v1_snapshots_table
    key = tuple_(old.c.portfolio_id, old.c.snapshot_date)
    catalog = PriceCatalog()
    last: tuple[object, object] | None = None
    while True:
        query = select(old).order_by(old.c.portfolio_id, old.c.snapshot_date)
        if last is not None:
            query = query.where(
                key > tuple_(literal(last[0], UuidText()), literal(last[1], Date()))
            )
        rows = conn.execute(query.limit(_MIGRATION_CHUNK)).mappings().all()
        if not rows:
            break
        last = (rows[-1]["portfolio_id"], rows[-1]["snapshot_date"])
        snapshots = [
            PortfolioSnapshot.from_flat(
                r["portfolio_id"],
                r["snapshot_date"],
                r["currency"],
                r["cash_balance"],
                r["holdings_value"],
                r["total_value"],
                flat,
                r["net_contributions"],
                r["external_flow"],
                bool(r["stale"]),
                position_books=books,
            )
            for r in rows
            for flat, books in [flat_positions_from_json(r["positions"])]
        ]
        plan = catalog.plan(snapshots)
        new_prices = plan.resolve(stored_prices(conn, plan.missing))
        if new_prices:
            conn.execute(prices_table.insert(), [price_params(p) for p in new_prices])
        conn.execute(
            staging.insert(),
            [
                {**dict(r), "positions": plan.encode(s)}
                for r, s in zip(rows, snapshots, strict=True)
            ],
        )
        plan.commit()
    conn.execute(text(f"DROP TABLE {SNAPSHOTS_TABLE}"))
    conn.execute(text(f"ALTER TABLE {SNAPSHOTS_TABLE}_v2 RENAME TO {SNAPSHOTS_TABLE}"))
    if conn.dialect.name == "postgresql":
        conn.execute(
            text(
                f"ALTER TABLE {SNAPSHOTS_TABLE} RENAME CONSTRAINT pk_{SNAPSHOTS_TABLE}_v2 "
                f"TO pk_{SNAPSHOTS_TABLE}"
            )
        )


def price_queries(wanted: Collection[PriceDay]) -> list[Select[*_PriceRowTypes]]:
    """The queries of the ``ps_prices`` rows of the (day, ticker) pairs `wanted`.

    One range scan per chunk of tickers: a daily run asks about one day, a backfill about a
    range of days; rows of other pairs in the range come back too, for the caller to skip.
    """
    first = min(day for day, _ in wanted)
    last = max(day for day, _ in wanted)
    t = prices_table.c
    columns = (
        t.snapshot_date,
        t.ticker,
        t.variant,
        t.price,
        t.price_date,
        t.price_currency,
        t.fx_rate,
        t.stale,
    )
    return [
        select(*columns).where(
            t.snapshot_date >= first, t.snapshot_date <= last, t.ticker.in_(chunk)
        )
        for chunk in chunks(sorted({ticker for _, ticker in wanted}))
    ]


def stored_prices(
    conn: Connection, missing: Sequence[PriceDay]
) -> dict[PriceDay, dict[int, PriceContent]]:
    """Return the stored variants of the (day, ticker) pairs `missing`, read on `conn`."""
    stored: dict[PriceDay, dict[int, PriceContent]] = {}
    wanted = set(missing)
    if not wanted:
        return stored
    for query in price_queries(wanted):
        for row in conn.execute(query):
            day, ticker, variant, price, price_date, currency, fx_rate, stale = row
            if (day, ticker) in wanted:
                stored.setdefault((day, ticker), {})[variant] = (
                    price,
                    price_date,
                    currency,
                    fx_rate,
                    bool(stale),
                )
    return stored


def price_params(row: PriceRow) -> dict[str, object]:
    """Return the Core parameters of one ``ps_prices`` row."""
    day, ticker, variant, price, price_date, currency, fx_rate, stale = row
    return {
        "snapshot_date": day,
        "ticker": ticker,
        "variant": variant,
        "price": price,
        "price_date": price_date,
        "price_currency": currency,
        "fx_rate": fx_rate,
        "stale": stale,
    }


#: Each step takes the schema from version i to i + 1; all pending steps run in one transaction.
MIGRATIONS: Final[tuple[Callable[[Connection], None], ...]] = (_migrate_to_1, _migrate_to_2)


def _create_partitioned(conn: Connection) -> None:
    """Create version 2's tables in an empty database, ``ps_snapshots`` partitioned by month.

    The table is ``PARTITION BY RANGE (snapshot_date)`` with a DEFAULT partition, so a write
    never fails for want of a month; `create_month_partitions` adds the months.
    """
    partitioned_metadata = MetaData(naming_convention=_NAMING)
    partitioned = Table(
        SNAPSHOTS_TABLE,
        partitioned_metadata,
        *_snapshot_columns(),
        postgresql_partition_by="RANGE (snapshot_date)",
        comment=_SNAPSHOTS_COMMENT,
    )
    partitioned_metadata.create_all(conn, tables=[partitioned])
    conn.execute(
        text(f"CREATE TABLE {SNAPSHOTS_TABLE}_default PARTITION OF {SNAPSHOTS_TABLE} DEFAULT")
    )
    metadata.create_all(
        conn,
        tables=[prices_table, runs_table, leases_table, fence_counter_table],
        checkfirst=True,
    )


def _month_name(month: dt.date) -> str:
    return f"{SNAPSHOTS_TABLE}_y{month.year:04d}m{month.month:02d}"


async def create_month_partitions(engine: AsyncEngine, first: dt.date, last: dt.date) -> list[str]:
    """Create the monthly partitions of ``ps_snapshots`` from `first`'s month to `last`'s.

    For a schema made with ``create_schema(engine, partition_by_month=True)``: run it ahead of
    time (say, monthly, for the next three months), before any snapshot of those months is
    written: a month whose rows already went to the DEFAULT partition cannot be created until
    they are moved out of it. Months that exist are left alone. An old month can then be
    detached (``ALTER TABLE ps_snapshots DETACH PARTITION ps_snapshots_y2024m01``) and
    archived or dropped.

    Args:
        engine: The store's engine, on PostgreSQL.
        first: A day of the first month to create.
        last: A day of the last month to create.

    Returns:
        The names of the partitions created (not those that existed).

    Raises:
        InvalidInputError: The engine is not on PostgreSQL, or `last` is before `first`.
    """
    if checked_dialect(engine, "create_month_partitions") != "postgresql":
        raise InvalidInputError("create_month_partitions needs PostgreSQL")
    if last < first:
        raise InvalidInputError(f"create_month_partitions: {last} is before {first}")
    months = []
    month = first.replace(day=1)
    while month <= last:
        following = (month + dt.timedelta(days=32)).replace(day=1)
        months.append((month, following))
        month = following
    created = []
    with translated(database_name(engine.url)):
        async with engine.begin() as conn:
            for start, end in months:
                name = _month_name(start)
                exists = await conn.scalar(text("SELECT to_regclass(:name)"), {"name": name})
                if exists is not None:
                    continue
                await conn.execute(
                    text(
                        f"CREATE TABLE {name} PARTITION OF {SNAPSHOTS_TABLE} "
                        f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
                    )
                )
                created.append(name)
    return created


async def create_schema(engine: AsyncEngine, *, partition_by_month: bool = False) -> None:
    """Create the tables, or migrate them to the current schema version.

    Safe to call on every start, also from several processes at once: the version row is
    locked while the migration runs, and a database at the current version is left alone.
    On SQLite it also switches the file to WAL mode. Hosts that manage their schema with
    Alembic include `metadata` in their own migrations instead, and never call this.

    Args:
        engine: The engine (PostgreSQL through asyncpg or psycopg, or SQLite through
            aiosqlite), made by ``sqlalchemy.ext.asyncio.create_async_engine``.
        partition_by_month: On PostgreSQL, when the tables are created (not when an existing
            database is migrated), make ``ps_snapshots`` a table partitioned by month of
            ``snapshot_date``, with a DEFAULT partition; add months with
            `create_month_partitions`. The key and the fenced upsert mean the same.

    Raises:
        InvalidInputError: `engine` is not an `AsyncEngine`, or not on PostgreSQL or SQLite.
        SchemaVersionError: The database's schema is newer than this library's; nothing in
            the database was changed.
        DatabaseAccessError: The server refused the login, the database does not exist, or
            the SQLite file cannot be opened. Never retried.
        DatabaseUnavailableError: The database cannot be reached.
    """
    name = checked_dialect(engine, "create_schema")
    where = database_name(engine.url)
    with translated(where):
        async with engine.connect() as conn:
            for attempt in range(2):
                try:
                    await conn.run_sync(
                        lambda c: metadata.create_all(
                            c, tables=[schema_version_table], checkfirst=True
                        )
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
                dialect_insert(name, schema_version_table)
                .values(id=1, version=0)
                .on_conflict_do_nothing(index_elements=[schema_version_table.c.id])
            )
            found = (
                await conn.execute(
                    select(schema_version_table.c.version)
                    .where(schema_version_table.c.id == 1)
                    .with_for_update()
                )
            ).scalar_one()
            if found > SCHEMA_VERSION:
                await conn.rollback()
                raise SchemaVersionError(found, SCHEMA_VERSION, where=where)
            if found < SCHEMA_VERSION:
                if found == 0 and partition_by_month and name == "postgresql":
                    await conn.run_sync(_create_partitioned)
                else:
                    for step in MIGRATIONS[found:]:
                        await conn.run_sync(step)
                await conn.execute(
                    update(schema_version_table)
                    .where(schema_version_table.c.id == 1)
                    .values(version=SCHEMA_VERSION)
                )
            await conn.commit()
            if name == "sqlite":
                await conn.exec_driver_sql("PRAGMA journal_mode=WAL")
                await conn.commit()
