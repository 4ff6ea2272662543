"""One error per fault, whichever driver: a refused login, a missing database, no server.

Each fault is made for real: against the PostgreSQL the tests start (through asyncpg and
psycopg), a role given the wrong password, a role that may not log in, a database name that
does not exist, and a port where nothing listens; on SQLite (`SqliteSnapshotStore`, and
`SqlAlchemySnapshotStore` over aiosqlite), a path in a directory that does not exist, a
directory, and a file that is not an SQLite database. Every case checks the exact error type,
whether the job's `RetryPolicy` retries it, and that no password shows in the message.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import sqlite3
import threading
import uuid
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import URL, make_url, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import create_async_engine

from portfolio_snapshots import RetryPolicy, SqliteSnapshotStore
from portfolio_snapshots.adapters._sql_codec import sqlite_error
from portfolio_snapshots.adapters.sqlalchemy import SqlAlchemySnapshotStore, create_schema
from portfolio_snapshots.adapters.sqlalchemy._schema import translate
from portfolio_snapshots.errors import (
    DatabaseAccessError,
    DatabaseBusyError,
    DatabaseUnavailableError,
    SnapshotError,
)
from storage.pg_server import asyncpg_url, free_port
from storage.samples import DAY, NOW, PID, plain_snapshot

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator
    from pathlib import Path

TTL = dt.timedelta(minutes=5)
DRIVERS = ("asyncpg", "psycopg")

#: The PostgreSQL faults: the error each must raise, and the SQLSTATE it names (if any).
PG_FAULTS: dict[str, tuple[type[SnapshotError], str | None]] = {
    "wrong_password": (DatabaseAccessError, "28P01"),
    "role_may_not_log_in": (DatabaseAccessError, "28000"),
    "missing_database": (DatabaseAccessError, "3D000"),
    "nothing_listens_on_the_port": (DatabaseUnavailableError, None),
}


@dataclasses.dataclass(frozen=True)
class Logins:
    """Roles made on the test server for these tests, and where the server is."""

    host: str
    port: int
    database: str
    role: str
    password: str
    no_login_role: str

    def url(self, driver: str, fault: str) -> tuple[URL, str]:
        """Return the URL that makes `fault` on `driver`, and the password it holds."""
        role, password, port, database = self.role, self.password, self.port, self.database
        if fault == "wrong_password":
            password = f"Wr0ng-{uuid.uuid4().hex}"
        elif fault == "role_may_not_log_in":
            role = self.no_login_role
        elif fault == "missing_database":
            database = f"no_such_db_{uuid.uuid4().hex[:12]}"
        elif fault == "nothing_listens_on_the_port":
            port = free_port()
        url = URL.create(
            f"postgresql+{driver}",
            username=role,
            password=password,
            host=self.host,
            port=port,
            database=database,
        )
        return url, password


async def _admin(dsn: str, *statements: str) -> None:
    engine = create_async_engine(asyncpg_url(dsn))
    try:
        async with engine.begin() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


async def _accepts(url: URL) -> bool:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except sa_exc.DBAPIError:
        return False
    finally:
        await engine.dispose()
    return True


@pytest.fixture(scope="module")
def logins(pg_dsn: str) -> Iterator[Logins]:
    """Two roles with a password on the test server (one may not log in), dropped afterwards."""
    server = make_url(asyncpg_url(pg_dsn))
    suffix = uuid.uuid4().hex[:12]
    found = Logins(
        host=server.host or "127.0.0.1",
        port=server.port or 5432,
        database=server.database or "postgres",
        role=f"ps_conn_{suffix}",
        password=f"Right-{uuid.uuid4().hex}",
        no_login_role=f"ps_nologin_{suffix}",
    )
    asyncio.run(
        _admin(
            pg_dsn,
            f"CREATE ROLE {found.role} LOGIN PASSWORD '{found.password}'",
            f"CREATE ROLE {found.no_login_role} NOLOGIN PASSWORD '{found.password}'",
        )
    )
    try:
        wrong, _ = found.url("asyncpg", "wrong_password")
        if asyncio.run(_accepts(wrong)):
            pytest.fail(
                f"the server at {found.host}:{found.port} accepts any password for "
                f"{found.role}: these tests need one that checks passwords for roles other "
                "than the superuser, as scripts/pg-test-server's does"
            )
        yield found
    finally:
        asyncio.run(
            _admin(
                pg_dsn,
                f"DROP ROLE IF EXISTS {found.role}",
                f"DROP ROLE IF EXISTS {found.no_login_role}",
            )
        )


def check(error: BaseException, expected: type[SnapshotError], password: str) -> None:
    """Assert `error` is exactly `expected`, retried only if transient, and holds no `password`."""
    assert type(error) is expected, f"{type(error).__name__}: {error}"
    assert RetryPolicy().is_transient(error) is (expected is DatabaseUnavailableError)
    if password:
        assert password not in str(error)
        assert password not in repr(error)


def check_access(error: BaseException, database: str, sqlstate: str | None) -> None:
    """Assert a `DatabaseAccessError` names `database` and `sqlstate`, and what to check."""
    assert isinstance(error, DatabaseAccessError)
    assert error.database == database
    assert error.sqlstate == sqlstate
    assert database in str(error)
    assert "check " in str(error)


def database_of(url: URL) -> str:
    """Return how the store names the database of `url`: the URL without its password."""
    return f"{url.drivername}://{url.username}@{url.host}:{url.port}/{url.database}"


# --- PostgreSQL, through asyncpg and psycopg ------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("fault", list(PG_FAULTS))
@pytest.mark.parametrize("driver", DRIVERS)
def test_open_raises_the_same_error_for_a_fault_on_every_postgres_driver(
    logins: Logins, driver: str, fault: str
) -> None:
    """SqlAlchemySnapshotStore.open raises the fault's own error, the same on both drivers."""
    expected, sqlstate = PG_FAULTS[fault]
    url, password = logins.url(driver, fault)

    async def main() -> None:
        with pytest.raises(SnapshotError) as caught:
            await SqlAlchemySnapshotStore.open(url)
        check(caught.value, expected, password)
        if expected is DatabaseAccessError:
            check_access(caught.value, database_of(url), sqlstate)

    asyncio.run(main())


@pytest.mark.postgres
@pytest.mark.parametrize("fault", list(PG_FAULTS))
@pytest.mark.parametrize("driver", DRIVERS)
def test_a_store_built_on_an_engine_raises_the_error_on_first_use(
    logins: Logins, driver: str, fault: str
) -> None:
    """Building on an engine connects nothing; each first call raises the fault's error."""
    expected, sqlstate = PG_FAULTS[fault]
    url, password = logins.url(driver, fault)

    async def main() -> None:
        engine = create_async_engine(url)
        try:
            store = SqlAlchemySnapshotStore(engine)
            calls: list[Callable[[], Awaitable[object]]] = [
                lambda: create_schema(engine),
                lambda: store.get_snapshot(PID, DAY),
                lambda: store.upsert_many([plain_snapshot(PID, DAY)]),
                lambda: store.upsert_many([plain_snapshot(PID, DAY)], fence=3),
                lambda: store.start("run", "hash", NOW),
                lambda: store.acquire("run", "me", TTL, NOW),
            ]
            for call in calls:
                with pytest.raises(SnapshotError) as caught:
                    await call()
                check(caught.value, expected, password)
                if expected is DatabaseAccessError:
                    check_access(caught.value, database_of(url), sqlstate)
        finally:
            await engine.dispose()

    asyncio.run(main())


@pytest.mark.postgres
@pytest.mark.parametrize("fault", ["wrong_password", "nothing_listens_on_the_port"])
@pytest.mark.parametrize("driver", DRIVERS)
def test_the_retry_policy_gives_up_at_once_on_a_refused_login_only(
    logins: Logins, driver: str, fault: str
) -> None:
    """Under the default policy a refused login is tried once; an absent server three times."""
    expected, _ = PG_FAULTS[fault]
    url, _ = logins.url(driver, fault)
    attempts: list[int] = []

    async def no_sleep(_: float) -> None:
        return None

    async def main() -> None:
        engine = create_async_engine(url)
        try:
            store = SqlAlchemySnapshotStore(engine)

            async def attempt() -> object:
                attempts.append(1)
                return await store.get_snapshot(PID, DAY)

            with pytest.raises(expected):
                await RetryPolicy().call(attempt, sleep=no_sleep)
        finally:
            await engine.dispose()

    asyncio.run(main())
    assert len(attempts) == (1 if expected is DatabaseAccessError else RetryPolicy().max_attempts)


@pytest.mark.postgres
@pytest.mark.parametrize(("driver", "sqlstate"), [("asyncpg", "28P01"), ("psycopg", None)])
def test_a_url_without_the_password_the_server_asks_for_is_a_refused_login(
    logins: Logins, driver: str, sqlstate: str | None
) -> None:
    """No password for a role that needs one is a DatabaseAccessError on both drivers.

    asyncpg reports the server's 28P01; libpq stops before asking the server, with no SQLSTATE.
    """
    url = URL.create(
        f"postgresql+{driver}",
        username=logins.role,
        host=logins.host,
        port=logins.port,
        database=logins.database,
    )

    async def main() -> None:
        with pytest.raises(SnapshotError) as caught:
            await SqlAlchemySnapshotStore.open(url)
        check(caught.value, DatabaseAccessError, logins.password)
        check_access(caught.value, database_of(url), sqlstate)

    asyncio.run(main())


# --- SQLite: the standard library store, and SQLAlchemy over aiosqlite ----------------------------


def _missing_directory(tmp_path: Path) -> Path:
    return tmp_path / "no-such-directory" / "snapshots.db"


def _a_directory(tmp_path: Path) -> Path:
    return tmp_path


def _not_an_sqlite_file(tmp_path: Path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"these are notes, not an SQLite database\n" * 200)
    return path


def join_aiosqlite_workers() -> None:
    """Wait for the worker threads of aiosqlite connections that failed to open.

    aiosqlite stops such a thread without awaiting it; should the event loop close first, the
    thread fails with "Event loop is closed" (omnilib/aiosqlite issue 241), which pytest
    reports against the next test. Joining before the loop closes lets each finish.
    """
    for thread in threading.enumerate():
        if thread.name.endswith("(_connection_worker_thread)"):
            thread.join(timeout=10)


SQLITE_FAULTS: dict[str, Callable[[Path], Path]] = {
    "directory_does_not_exist": _missing_directory,
    "path_is_a_directory": _a_directory,
    "file_is_not_an_sqlite_database": _not_an_sqlite_file,
}


@pytest.mark.parametrize("fault", list(SQLITE_FAULTS))
def test_sqlite_store_refuses_an_unusable_file_with_an_access_error(
    tmp_path: Path, fault: str
) -> None:
    """SqliteSnapshotStore.open raises DatabaseAccessError, naming the path, and leaves it be."""
    path = SQLITE_FAULTS[fault](tmp_path)
    before = path.read_bytes() if path.is_file() else None

    async def main() -> None:
        with pytest.raises(SnapshotError) as caught:
            await SqliteSnapshotStore.open(path)
        check(caught.value, DatabaseAccessError, "")
        check_access(caught.value, str(path), None)
        assert caught.value.__cause__ is not caught.value

    asyncio.run(main())
    assert (path.read_bytes() if path.is_file() else None) == before
    assert not _missing_directory(tmp_path).parent.exists()


@pytest.mark.parametrize("fault", list(SQLITE_FAULTS))
def test_sqlalchemy_on_aiosqlite_refuses_an_unusable_file_with_the_same_error(
    tmp_path: Path, fault: str
) -> None:
    """Over aiosqlite, open and a store's first call raise what SqliteSnapshotStore raises."""
    path = SQLITE_FAULTS[fault](tmp_path)
    url = f"sqlite+aiosqlite:///{path}"

    async def main() -> None:
        with pytest.raises(SnapshotError) as caught:
            await SqlAlchemySnapshotStore.open(url)
        check(caught.value, DatabaseAccessError, "")
        check_access(caught.value, str(path), None)
        engine = create_async_engine(url)
        try:
            store = SqlAlchemySnapshotStore(engine)
            for call in (
                lambda: store.get_snapshot(PID, DAY),
                lambda: store.upsert_many([plain_snapshot(PID, DAY)]),
                lambda: store.acquire("run", "me", TTL, NOW),
            ):
                with pytest.raises(SnapshotError) as caught:
                    await call()
                check(caught.value, DatabaseAccessError, "")
                check_access(caught.value, str(path), None)
        finally:
            await engine.dispose()
            join_aiosqlite_workers()

    asyncio.run(main())


def test_sqlite_messages_say_there_is_no_password_to_check(tmp_path: Path) -> None:
    """A file SQLite cannot open is explained by directory and permissions, never a password."""
    path = _missing_directory(tmp_path)

    async def main() -> None:
        with pytest.raises(DatabaseAccessError) as caught:
            await SqliteSnapshotStore.open(path)
        assert "SQLite has no password" in str(caught.value)
        assert "directory exists" in str(caught.value)

    asyncio.run(main())


def _sqlite_failure(code: int, message: str) -> sqlite3.OperationalError:
    error = sqlite3.OperationalError(message)
    error.sqlite_errorcode = code
    return error


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        (14, "unable to open database file", DatabaseAccessError),  # CANTOPEN
        (26, "file is not a database", DatabaseAccessError),  # NOTADB
        (8, "attempt to write a readonly database", DatabaseAccessError),  # READONLY
        (1032, "attempt to write a readonly database", DatabaseAccessError),  # READONLY_DBMOVED
        (3, "access permission denied", DatabaseAccessError),  # PERM
        (5, "database is locked", DatabaseBusyError),  # BUSY
        (517, "database is locked", DatabaseBusyError),  # BUSY_SNAPSHOT
        (1, "no such table: ps_snapshots", None),  # ERROR: a bug, raised as it is
    ],
)
def test_sqlite_result_codes_map_to_one_error_on_both_stores(
    code: int, message: str, expected: type[Exception] | None
) -> None:
    """Both SQLite stores classify a result code the same way, by its primary code."""
    error = _sqlite_failure(code, message)
    direct = sqlite_error(error, "/data/s.db")
    wrapped = translate(sa_exc.OperationalError("SELECT 1", None, error), "/data/s.db")
    if expected is None:
        assert direct is None
        assert wrapped is None
    else:
        assert type(direct) is expected
        assert type(wrapped) is expected


class _DriverError(Exception):
    """A driver error carrying a SQLSTATE, as SQLAlchemy's asyncpg adapter raises."""

    def __init__(self, sqlstate: str, message: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("sqlstate", "expected"),
    [
        ("28P01", DatabaseAccessError),
        ("28000", DatabaseAccessError),
        ("3D000", DatabaseAccessError),
        ("08001", DatabaseUnavailableError),
        ("57P03", DatabaseUnavailableError),
        ("42501", None),
    ],
)
def test_sqlstates_of_a_refused_connection_are_never_transient(
    sqlstate: str, expected: type[Exception] | None
) -> None:
    """Class 28 and 3D000 become DatabaseAccessError; connection classes stay transient."""
    error = sa_exc.DBAPIError(None, None, _DriverError(sqlstate, "refused"))
    mapped = translate(error, "postgresql+asyncpg://app@db:5432/app")
    if expected is None:
        assert mapped is None
        return
    assert type(mapped) is expected
    assert mapped is not None
    assert RetryPolicy().is_transient(mapped) is (expected is DatabaseUnavailableError)
