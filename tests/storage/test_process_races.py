"""Races between OS processes on one database, a crash mid-run, and an unreachable database.

Each worker is ``race_worker.py`` run with this interpreter: a whole process with its own
connections, as two replicas of a host would be. Workers are released together through a go
file and watched by polling (the row count, the ready files), never by sleeping for a guessed
time; every worker is killed and reaped when a test ends, passing or failing.

Eight concurrent upserts of the same keys on PostgreSQL are covered in-process by
``test_sqlalchemy_store.py::test_concurrent_upserts_of_the_same_keys``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import signal
import sqlite3
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from portfolio_snapshots import (
    InMemoryMarketData,
    InMemoryPortfolioRepository,
    Portfolio,
    RetryPolicy,
    SnapshotJob,
    SqliteSnapshotStore,
    TransientError,
)
from portfolio_snapshots.adapters.sqlalchemy import SqlAlchemySnapshotStore
from portfolio_snapshots.errors import DatabaseUnavailableError
from portfolio_snapshots.events import RetryScheduled, RunEvent
from portfolio_snapshots.testing import instant_retry
from storage.pg_server import asyncpg_url, create_test_schema, drop_test_schema, free_port

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

WORKER = Path(__file__).with_name("race_worker.py")
DAY = dt.date(2025, 1, 2)  # race_worker.DAY
START_TIMEOUT = 60.0  # seconds for a worker to import, open the store and say it is ready
RUN_TIMEOUT = 120.0  # seconds for a released worker to finish its run
POLL = 0.02


@dataclasses.dataclass(frozen=True)
class Database:
    """A database the workers share: an SQLite file, or a schema of the test PostgreSQL."""

    backend: str
    location: str  # the SQLite file, or the asyncpg URL
    schema: str | None = None

    def worker_args(self) -> list[str]:
        """Return the race_worker arguments that point it at this database."""
        if self.backend == "sqlite":
            return ["--sqlite", self.location]
        return ["--postgres", self.location, "--schema", str(self.schema)]

    async def prepare(self) -> None:
        """Create the schema once, so the parent can count rows from the start."""
        if self.backend == "sqlite":
            await (await SqliteSnapshotStore.open(self.location)).close()
        else:
            store = await SqlAlchemySnapshotStore.open(
                self.location, connect_args={"server_settings": {"search_path": self.schema}}
            )
            await store.close()

    async def rows(self, sql: str) -> list[tuple[Any, ...]]:
        """Run a read-only query on a connection of our own and return its rows."""
        if self.backend == "sqlite":
            reader = sqlite3.connect(self.location, timeout=10)
            try:
                return [tuple(r) for r in reader.execute(sql).fetchall()]
            finally:
                reader.close()
        engine = create_async_engine(
            self.location, connect_args={"server_settings": {"search_path": self.schema}}
        )
        try:
            async with engine.connect() as conn:
                return [tuple(r) for r in await conn.execute(text(sql))]
        finally:
            await engine.dispose()

    async def wait_disconnected(self, name: str) -> None:
        """Wait until the server has closed worker `name`'s sessions (PostgreSQL only).

        After a SIGKILL the server may still be reading a COMMIT the worker sent just before
        it died; counting rows only once its sessions are gone makes the count final.
        """
        if self.backend != "postgres":
            return
        sql = (
            "SELECT count(*) FROM pg_stat_activity "  # noqa: S608 - our own test names
            f"WHERE application_name = '{self.schema}-{name}'"
        )

        async def gone() -> bool:
            return await self.rows(sql) == [(0,)]

        await wait_until(gone, f"the sessions of {name} to end", [], START_TIMEOUT)

    async def count(self) -> int:
        """Return the number of stored snapshots."""
        [(n,)] = await self.rows("SELECT count(*) FROM ps_snapshots")
        assert isinstance(n, int)
        return n


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An empty, migrated database on each backend: a new SQLite file or a new PG schema."""
    if request.param == "sqlite":
        db = Database("sqlite", str(tmp_path / "shared.db"))
        asyncio.run(db.prepare())
        yield db
        return
    dsn: str = request.getfixturevalue("pg_dsn")
    schema = asyncio.run(create_test_schema(dsn))
    try:
        db = Database("postgres", asyncpg_url(dsn), schema)
        asyncio.run(db.prepare())
        yield db
    finally:
        asyncio.run(drop_test_schema(dsn, schema))


class Worker:
    """One race_worker process, its output in files (a full pipe can never block it).

    With `go`, the worker creates its `ready` file once it has opened the store, then waits
    for `go` to exist before it runs.
    """

    def __init__(
        self, database: Database, directory: Path, name: str, *args: str, go: Path | None = None
    ) -> None:
        self.name = name
        self.stdout = directory / f"{name}.out"
        self.stderr = directory / f"{name}.err"
        self.ready = directory / f"{name}.ready"
        argv = [sys.executable, str(WORKER), *database.worker_args(), f"--name={name}", *args]
        if go is not None:
            argv += [f"--ready={self.ready}", f"--go={go}"]
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.process = subprocess.Popen(argv, stdout=out, stderr=err)  # noqa: S603 - ours

    def output(self) -> str:
        """Return the end of what the worker wrote to stderr, for failure messages."""
        return self.stderr.read_text(encoding="utf-8", errors="replace")[-4000:]

    def check_alive(self, waiting_for: str) -> None:
        """Fail at once if the worker exited while the test waits for something from it."""
        code = self.process.poll()
        if code is not None:
            pytest.fail(
                f"worker {self.name} exited with {code} while waiting for {waiting_for}:\n"
                f"{self.output()}"
            )

    def report(self) -> dict[str, object]:
        """Wait for the worker to finish and return its report."""
        try:
            code = self.process.wait(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"worker {self.name} still running after {RUN_TIMEOUT} s")
        assert code == 0, f"worker {self.name} exited with {code}:\n{self.output()}"
        report: dict[str, object] = json.loads(self.stdout.read_text(encoding="utf-8"))
        return report

    def kill(self) -> int:
        """SIGKILL the worker if it still runs, reap it, and return its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        return self.process.wait(timeout=30)


@contextlib.contextmanager
def workers(database: Database, directory: Path) -> Iterator[Callable[..., Worker]]:
    """Yield ``start(name, *args, go=None)``; every worker started is killed and reaped on exit."""
    started: list[Worker] = []

    def start(name: str, *args: str, go: Path | None = None) -> Worker:
        started.append(Worker(database, directory, name, *args, go=go))
        return started[-1]

    try:
        yield start
    finally:
        for worker in started:
            worker.kill()


async def wait_until(
    condition: Callable[[], Awaitable[bool]], what: str, watched: list[Worker], seconds: float
) -> None:
    """Poll `condition` until it holds; fail after `seconds`, or when a watched worker exits."""
    try:
        async with asyncio.timeout(seconds):
            while not await condition():
                for worker in watched:
                    worker.check_alive(what)
                await asyncio.sleep(POLL)
    except TimeoutError:
        logs = "".join(f"\n--- {w.name} stderr:\n{w.output()}" for w in watched)
        pytest.fail(f"timed out after {seconds} s waiting for {what}{logs}")


def test_two_processes_racing_for_one_day_do_it_once(database: Database, tmp_path: Path) -> None:
    """Two processes released together on one day: one completes, the other stands down."""
    n = 40
    go = tmp_path / "go"

    async def main() -> list[dict[str, object]]:
        with workers(database, tmp_path) as start:
            racers = [
                start(name, f"--portfolios={n}", "--batch=5", "--delay=0.01", go=go)
                for name in ("a", "b")
            ]

            async def both_ready() -> bool:
                return all(w.ready.exists() for w in racers)

            await wait_until(both_ready, "both workers to be ready", racers, START_TIMEOUT)
            go.touch()
            return [w.report() for w in racers]

    reports = asyncio.run(main())
    statuses = sorted(str(r["status"]) for r in reports)
    assert statuses in (["already_running", "completed"], ["already_succeeded", "completed"])
    [completed] = [r for r in reports if r["status"] == "completed"]
    assert (completed["succeeded"], completed["failed"], completed["attempt"]) == (n, 0, 1)

    async def check() -> None:
        assert await database.rows(
            "SELECT count(*), count(DISTINCT portfolio_id) FROM ps_snapshots"
        ) == [(n, n)]
        assert await database.rows("SELECT DISTINCT snapshot_date FROM ps_snapshots") == [
            (DAY if database.backend == "postgres" else DAY.isoformat(),)
        ]
        assert await database.rows("SELECT state, attempts FROM ps_runs") == [("succeeded", 1)]
        assert await database.rows("SELECT count(*) FROM ps_leases") == [(0,)]

    asyncio.run(check())


def test_a_run_killed_midway_is_resumed_by_the_next_process(
    database: Database, tmp_path: Path
) -> None:
    """A SIGKILLed run keeps whole batches only; once its lease expires a rerun completes it."""
    n, batch = 60, 5

    async def main() -> tuple[int, dict[str, object], dict[str, object]]:
        with workers(database, tmp_path) as start:
            # 20 portfolios arrive (4 batches), then the stream waits for one that never
            # comes: the worker stays in the middle of its run, lease held, until killed.
            victim = start(
                "victim",
                f"--portfolios={n}",
                f"--batch={batch}",
                "--delay=0.01",
                f"--stall-after={4 * batch}",
            )

            async def some_stored() -> bool:
                return await database.count() >= batch

            await wait_until(some_stored, "a first batch to be stored", [victim], START_TIMEOUT)
            assert victim.kill() == -signal.SIGKILL
            await database.wait_disconnected("victim")
            stored = await database.count()

            # Within the dead run's lease TTL (5 minutes) the key is still taken...
            early = start("early", f"--portfolios={n}").report()
            # ...and an hour later, by the rerun's clock, the lease has expired.
            rerun = start(
                "rerun", f"--portfolios={n}", f"--batch={batch}", "--clock-offset=3600"
            ).report()
            return stored, early, rerun

    stored, early, rerun = asyncio.run(main())
    assert batch <= stored <= 4 * batch
    assert stored % batch == 0  # a batch is stored whole or not at all
    assert early["status"] == "already_running"
    assert (rerun["status"], rerun["attempt"]) == ("completed", 2)
    assert (rerun["skipped"], rerun["succeeded"], rerun["failed"]) == (stored, n - stored, 0)

    async def check() -> None:
        assert await database.rows(
            "SELECT count(*), count(DISTINCT portfolio_id) FROM ps_snapshots"
        ) == [(n, n)]
        # The killed run's rows were skipped, not rewritten: they keep its older fence.
        fences = await database.rows(
            "SELECT fence, count(*) FROM ps_snapshots GROUP BY fence ORDER BY fence"
        )
        assert [count for _, count in fences] == [stored, n - stored]
        assert await database.rows("SELECT state, attempts FROM ps_runs") == [("succeeded", 2)]
        assert await database.rows("SELECT count(*) FROM ps_leases") == [(0,)]

    asyncio.run(check())


def test_an_unreachable_database_is_retried_then_reported() -> None:
    """A closed port gives DatabaseUnavailableError, retried by the policy, then reported."""
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nowhere"
    portfolios = InMemoryPortfolioRepository(
        [Portfolio(uuid.UUID(int=i + 1), Decimal("10.00"), {}) for i in range(3)]
    )
    policy = instant_retry(RetryPolicy(max_attempts=3))
    waits: list[float] = []

    async def no_sleep(seconds: float) -> None:
        waits.append(seconds)

    def job(
        store: SqlAlchemySnapshotStore, events: list[RunEvent], *, coordinated: bool
    ) -> SnapshotJob:
        return SnapshotJob(
            portfolios=portfolios,
            market_data=InMemoryMarketData(),
            snapshots=store,
            ledger=store if coordinated else None,
            lock=store if coordinated else None,
            retry=policy,
            sleep=no_sleep,
            events=events.append,
            clock=lambda: dt.datetime(2025, 1, 3, tzinfo=dt.UTC),
            batch_size=2,
        )

    async def main() -> None:
        # Opening the store is documented to raise DatabaseUnavailableError (and to dispose
        # of the engine it made); a host that retries start-up retries that.
        with pytest.raises(DatabaseUnavailableError) as caught:
            await SqlAlchemySnapshotStore.open(url)
        assert isinstance(caught.value, TransientError)

        engine = create_async_engine(url)
        try:
            store = SqlAlchemySnapshotStore(engine)

            # As snapshots only: each batch's write is tried 3 times, then its portfolios fail.
            events: list[RunEvent] = []
            report = await job(store, events, coordinated=False).run_daily(DAY)
            assert (report.processed, report.succeeded, report.failed) == (3, 0, 3)
            assert {(f.error_type, f.attempts) for f in report.failures} == {
                ("DatabaseUnavailableError", 3)
            }
            retries = [e for e in events if isinstance(e, RetryScheduled)]
            assert sorted((e.operation, e.attempt) for e in retries) == [
                ("upsert_many", 1),
                ("upsert_many", 1),
                ("upsert_many", 2),
                ("upsert_many", 2),
            ]
            assert report.retried == 4
            assert waits == [0.0] * 4

            # As lock and ledger too: taking the lease is retried 3 times, then the transient
            # error itself is raised, since without a lease the run cannot start.
            events.clear()
            with pytest.raises(DatabaseUnavailableError):
                await job(store, events, coordinated=True).run_daily(DAY)
            assert [(e.operation, e.attempt) for e in events if isinstance(e, RetryScheduled)] == [
                ("acquire", 1),
                ("acquire", 2),
            ]
        finally:
            await engine.dispose()

    asyncio.run(main())
