from __future__ import annotations

import asyncio
import os
import subprocess
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from storage.pg_server import REQUIRE_ENV, SCRIPT, PgServer, asyncpg_url, missing_binaries

if TYPE_CHECKING:
    from pathlib import Path

#: Skipped where the PostgreSQL programs are missing, except where a PostgreSQL server is
#: required (CI sets PORTFOLIO_SNAPSHOTS_REQUIRE_PG=1): there the tests run and fail loudly.
needs_binaries = pytest.mark.skipif(
    bool(missing_binaries()) and os.environ.get(REQUIRE_ENV) != "1",
    reason="the PostgreSQL programs are not installed",
)


def script(command: str, directory: Path, port: int = 54399) -> subprocess.CompletedProcess[str]:
    """Run scripts/pg-test-server with its state in `directory`."""
    return subprocess.run(  # noqa: S603 - our own script
        ["bash", str(SCRIPT), command],  # noqa: S607 - bash from PATH is intended
        env={**os.environ, "PG_TEST_DIR": str(directory), "PG_TEST_PORT": str(port)},
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )


@needs_binaries
def test_stop_and_status_without_a_server(tmp_path: Path) -> None:
    """Stopping a server that does not run succeeds; status says it is stopped."""
    directory = tmp_path / "none"
    assert script("stop", directory).returncode == 0
    assert script("stop", directory).returncode == 0
    status = script("status", directory)
    assert (status.returncode, status.stdout.strip()) == (3, "stopped")
    assert not directory.exists()


def test_usage_on_an_unknown_command(tmp_path: Path) -> None:
    """An unknown command prints the usage and exits 2."""
    result = script("restart-everything", tmp_path)
    assert result.returncode == 2
    assert "Usage" in result.stderr


@pytest.mark.postgres
@needs_binaries
def test_start_is_idempotent_and_stop_cleans_up() -> None:
    """A second start reuses the running server; stop removes the server and its directory."""
    server = PgServer.prepare()
    try:
        dsn = server.start()
        assert server.start() == dsn
        status = script("status", server.directory, server.port)
        assert status.stdout.strip() == "running"

        async def select_one() -> object:
            engine = create_async_engine(asyncpg_url(dsn))
            try:
                async with engine.connect() as conn:
                    return (await conn.execute(text("SELECT 1"))).scalar_one()
            finally:
                await engine.dispose()

        assert asyncio.run(select_one()) == 1
    finally:
        server.stop()
    assert not server.directory.exists()
    assert script("status", server.directory, server.port).returncode == 3
