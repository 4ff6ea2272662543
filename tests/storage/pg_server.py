"""A PostgreSQL server for the storage tests: the `pg_dsn` fixture, and a fresh schema per test.

``PORTFOLIO_SNAPSHOTS_PG_DSN`` (a ``postgresql://`` URL) points the tests at a server the caller
runs. Without it, `pg_dsn` starts a server once per session and stops it at the end, also when
tests fail or the run is interrupted (SIGTERM or Ctrl-C). When the PostgreSQL programs are
missing, the tests that need the server are skipped, unless ``PORTFOLIO_SNAPSHOTS_REQUIRE_PG=1``
makes them fail instead (CI sets it). While the fixture is active the variable is set, so code
that reads it (the factories in `storage.backends`) finds the server.

To use the fixture outside tests/storage, import it into a conftest:
``from storage.pg_server import pg_dsn``.

`PgServer.start` runs ``scripts/pg-test-server start`` on a free port in a directory of its own,
so it never touches a server a developer started by hand; `PgServer.stop` stops it and deletes
the directory. Each directory records the pid of the test run that owns it, so a later run
stops and deletes the servers of runs that were killed before they could clean up.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from types import FrameType

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "pg-test-server"
DSN_ENV = "PORTFOLIO_SNAPSHOTS_PG_DSN"
REQUIRE_ENV = "PORTFOLIO_SNAPSHOTS_REQUIRE_PG"
_PREFIX = "portfolio-snapshots-pg-test-"
_SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")


def missing_binaries() -> list[str]:
    """Return the PostgreSQL programs the script needs and cannot find (empty when all are)."""
    versioned = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    missing = [
        name
        for name in (*_SERVER_BINARIES, "psql")
        if shutil.which(name) is None and not any((d / name).exists() for d in versioned)
    ]
    if shutil.which("bash") is None:
        missing.append("bash")
    return missing


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def asyncpg_url(dsn: str) -> str:
    """Return `dsn` (``postgresql://...``) as an SQLAlchemy URL for the asyncpg driver."""
    for scheme in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if dsn.startswith(scheme):
            return "postgresql+asyncpg://" + dsn.removeprefix(scheme)
    raise ValueError(f"{DSN_ENV} must be a postgresql:// URL, got {dsn!r}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _run_script(command: str, directory: Path, port: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PG_TEST_DIR": str(directory), "PG_TEST_PORT": str(port)}
    return subprocess.run(  # noqa: S603 - our own script, fixed arguments
        ["bash", str(SCRIPT), command],  # noqa: S607 - bash from PATH is intended
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )


class PgServer:
    """One throwaway server started by this test run."""

    def __init__(self, directory: Path, port: int, dsn: str) -> None:
        """Remember the server; use `start`."""
        self.directory = directory
        self.port = port
        self.dsn = dsn
        self._stopped = False

    @classmethod
    def reap_abandoned(cls) -> None:
        """Stop and delete the servers of earlier test runs whose process is gone."""
        for directory in Path(tempfile.gettempdir()).glob(_PREFIX + "*"):
            try:
                pid = int((directory / "owner.pid").read_text())
                port = int((directory / "port").read_text())
            except (OSError, ValueError):
                continue
            if not _pid_alive(pid):
                _run_script("stop", directory, port)

    @classmethod
    def prepare(cls) -> PgServer:
        """Choose a free port and make the server's directory, owned by this process."""
        cls.reap_abandoned()
        directory = Path(tempfile.mkdtemp(prefix=_PREFIX))
        port = free_port()
        (directory / "owner.pid").write_text(str(os.getpid()))
        (directory / "port").write_text(str(port))
        return cls(directory, port, "")

    def start(self) -> str:
        """Start the server; return its DSN.

        Raises:
            RuntimeError: The script failed; the message holds its output.
        """
        result = _run_script("start", self.directory, self.port)
        if result.returncode != 0:
            raise RuntimeError(
                f"scripts/pg-test-server start failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}"
            )
        line = result.stdout.strip().splitlines()[-1]
        self.dsn = line.removeprefix(f"export {DSN_ENV}=")
        return self.dsn

    def stop(self) -> None:
        """Stop the server and delete its directory; a second call does nothing."""
        if self._stopped:
            return
        self._stopped = True
        _run_script("stop", self.directory, self.port)
        shutil.rmtree(self.directory, ignore_errors=True)


async def create_test_schema(dsn: str) -> str:
    """Create an empty schema with a random name in the database at `dsn`; return its name."""
    schema = f"t_{uuid.uuid4().hex}"
    admin = create_async_engine(asyncpg_url(dsn))
    try:
        async with admin.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    finally:
        await admin.dispose()
    return schema


async def drop_test_schema(dsn: str, schema: str) -> None:
    """Drop `schema` and everything in it."""
    admin = create_async_engine(asyncpg_url(dsn))
    try:
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        await admin.dispose()


def psycopg_url(dsn: str) -> str:
    """Return `dsn` (``postgresql://...``) as an SQLAlchemy URL for the psycopg 3 driver."""
    return "postgresql+psycopg://" + dsn.split("://", 1)[1]


def psycopg_connect_args(asyncpg_args: dict[str, object]) -> dict[str, object]:
    """Turn asyncpg ``connect_args`` setting server settings into psycopg's ``options``."""
    settings = asyncpg_args.get("server_settings", {})
    assert isinstance(settings, dict)
    return {"options": " ".join(f"-c {name}={value}" for name, value in settings.items())}


def search_path(schema: str) -> dict[str, object]:
    """Return the asyncpg ``connect_args`` that make `schema` the only schema searched."""
    return {"server_settings": {"search_path": schema}}


@contextlib.asynccontextmanager
async def fresh_schema(dsn: str) -> AsyncIterator[tuple[str, dict[str, object]]]:
    """Create an empty PostgreSQL schema for one test and drop it afterwards.

    Yields:
        The asyncpg URL and the ``connect_args`` that put the schema on the search path.
    """
    schema = await create_test_schema(dsn)
    try:
        yield asyncpg_url(dsn), search_path(schema)
    finally:
        await drop_test_schema(dsn, schema)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """Turn SIGTERM into KeyboardInterrupt, so pytest tears the fixtures down before exiting."""
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """A ``postgresql://`` DSN of a server the tests may create schemas in."""
    given = os.environ.get(DSN_ENV)
    if given:
        yield given
        return
    missing = missing_binaries()
    if missing:
        reason = (
            f"PostgreSQL is not available: {', '.join(missing)} not found; install the "
            f"PostgreSQL server package, or set {DSN_ENV}"
        )
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{reason} ({REQUIRE_ENV}=1)")
        pytest.skip(reason)
    server = PgServer.prepare()
    # Stop the server however the run ends: normally or on failure (finally), on SIGTERM
    # (turned into KeyboardInterrupt, which pytest answers by tearing fixtures down), and at
    # interpreter exit. A killed run leaves it behind; the next run's `prepare` reaps it.
    atexit.register(server.stop)
    previous = None
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    ):
        previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        os.environ[DSN_ENV] = server.start()
        yield server.dsn
    finally:
        os.environ.pop(DSN_ENV, None)
        try:
            server.stop()
        finally:
            atexit.unregister(server.stop)
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
