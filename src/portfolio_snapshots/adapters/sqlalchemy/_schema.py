"""The SQLAlchemy store's schema: column types, tables, migrations, and the engines it accepts.

Also how the drivers' temporary failures become `TransientError` subclasses (`translated`),
since every layer above talks to the database through it. Nothing here knows the store class
or the PostgreSQL write fast path; both build on this module.
"""

from __future__ import annotations

import contextlib
import datetime as dt
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
    MetaData,
    Table,
    Text,
    TypeDecorator,
    select,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.ext.asyncio import AsyncEngine

from portfolio_snapshots._errors import (
    DatabaseBusyError,
    DatabaseUnavailableError,
    InvalidInputError,
    SchemaVersionError,
)
from portfolio_snapshots.adapters._sql_codec import (
    FENCE_COUNTER_TABLE,
    LEASES_TABLE,
    RUNS_TABLE,
    SCHEMA_VERSION,
    SCHEMA_VERSION_TABLE,
    SNAPSHOTS_TABLE,
    as_utc,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from sqlalchemy import Connection
    from sqlalchemy.engine.interfaces import Dialect
    from sqlalchemy.sql.type_api import TypeEngine


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
metadata: Final = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

snapshots_table: Final = Table(
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


def transient(exc: Exception) -> Exception | None:
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
def translated() -> Iterator[None]:
    """Turn the driver's temporary failures into `TransientError` subclasses."""
    try:
        yield
    except Exception as exc:
        mapped = transient(exc)
        if mapped is None:
            raise
        raise mapped from exc


# --- migrations -----------------------------------------------------------------------------------


def _migrate_to_1(conn: Connection) -> None:
    metadata.create_all(
        conn,
        tables=[snapshots_table, runs_table, leases_table, fence_counter_table],
        checkfirst=True,
    )


#: Each step takes the schema from version i to i + 1; all pending steps run in one transaction.
MIGRATIONS: Final[tuple[Callable[[Connection], None], ...]] = (_migrate_to_1,)


async def create_schema(engine: AsyncEngine) -> None:
    """Create the tables, or migrate them to the current schema version.

    Safe to call on every start, also from several processes at once: the version row is
    locked while the migration runs, and a database at the current version is left alone.
    On SQLite it also switches the file to WAL mode. Hosts that manage their schema with
    Alembic include `metadata` in their own migrations instead, and never call this.

    Args:
        engine: The engine (PostgreSQL through asyncpg or psycopg, or SQLite through
            aiosqlite), made by ``sqlalchemy.ext.asyncio.create_async_engine``.

    Raises:
        InvalidInputError: `engine` is not an `AsyncEngine`, or not on PostgreSQL or SQLite.
        SchemaVersionError: The database's schema is newer than this library's; nothing in
            the database was changed.
    """
    name = checked_dialect(engine, "create_schema")
    where = engine.url.render_as_string(hide_password=True)
    with translated():
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
