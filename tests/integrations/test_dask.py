"""The Dask integration on a real `LocalCluster` of 2 worker processes, over SQLite and PostgreSQL.

One cluster serves the module (started once, closed also when a test fails). Each worker builds
its job from ``dask_app:make_job``, which reads the test's configuration from a JSON file.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, cast

import pytest
from dask_app import CONFIG_ENV, DAY, open_store, portfolio_ids
from distributed import Client, LocalCluster

from portfolio_snapshots.integrations import dask as on_dask
from portfolio_snapshots.shards import Shard
from storage.pg_server import fresh_schema

if TYPE_CHECKING:
    from collections.abc import Iterator

    from portfolio_snapshots import RunReport

FACTORY = "dask_app:make_job"
HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The file the workers read their configuration from, named in their environment."""
    path = tmp_path_factory.mktemp("dask") / "config.json"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CONFIG_ENV, str(path))
        patch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), str(HERE.parent)]))
        yield path


@pytest.fixture(scope="module")
def client(config_file: Path) -> Iterator[Client]:
    """A client of a 2-process LocalCluster, closed with its cluster however the tests end."""
    with (
        LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            memory_limit="400MiB",
            dashboard_address=":0",
            silence_logs=50,
        ) as cluster,
        Client(cluster) as dask_client,  # type: ignore[no-untyped-call]
    ):
        yield dask_client


def configure(config_file: Path, /, **config: object) -> None:
    settings = {"portfolios": 100, "delay": 0.01, "lease_ttl": 30.0, **config}
    config_file.write_text(json.dumps(settings))


def stored(config: dict[str, object], count: int) -> int:
    """How many of the `count` portfolios have a snapshot of DAY in the store."""

    async def check() -> int:
        async with await open_store(config) as store:
            found = 0
            for pid in portfolio_ids(count):
                found += len(await store.existing_dates(pid, DAY, DAY))
            return found

    return asyncio.run(check())


def processing(client: Client) -> dict[str, list[str]]:
    """The keys of the tasks each worker is running."""
    return cast("dict[str, list[str]]", client.processing())  # type: ignore[no-untyped-call]


def sqlite_config(tmp_path: Path) -> dict[str, object]:
    return {"store": "sqlite", "path": str(tmp_path / "store.sqlite3")}


def prepare(config: dict[str, object]) -> None:
    """Create the store's schema once, before the workers open it at the same time."""

    async def create() -> None:
        async with await open_store(config):
            pass

    asyncio.run(create())


def test_a_daily_run_on_two_workers_snapshots_each_portfolio_once(
    client: Client, config_file: Path, tmp_path: Path
) -> None:
    """Four shards over two worker processes store every portfolio once; the merge adds up."""
    config = sqlite_config(tmp_path)
    configure(config_file, **config)
    prepare(config)
    report = on_dask.run_daily(client, FACTORY, DAY, shards=4)
    assert (report.succeeded, report.failed, report.status) == (100, 0, "completed")
    assert report.key == f"daily:{DAY}"
    assert [p.key for p in report.parts] == [Shard(i, 4).key(f"daily:{DAY}") for i in range(4)]
    assert all(p.succeeded > 0 for p in report.parts)
    assert stored(config, 100) == 100
    again = on_dask.run_daily(client, FACTORY, DAY, shards=4)
    assert (again.status, again.succeeded) == ("already_succeeded", 100)


@pytest.mark.postgres
def test_a_daily_run_on_two_workers_over_postgresql(
    client: Client, config_file: Path, pg_dsn: str
) -> None:
    """Over PostgreSQL too, every portfolio is stored once and the merged report adds up."""

    async def enter(stack: contextlib.AsyncExitStack) -> tuple[str, dict[str, object]]:
        return await stack.enter_async_context(fresh_schema(pg_dsn))

    stack = contextlib.AsyncExitStack()
    url, connect_args = asyncio.run(enter(stack))
    try:
        config: dict[str, object] = {"store": "postgres", "url": url, "connect_args": connect_args}
        configure(config_file, **config)
        prepare(config)
        report = on_dask.run_daily(client, FACTORY, DAY, shards=2)
        assert (report.succeeded, report.failed, len(report.parts)) == (100, 0, 2)
        assert stored(config, 100) == 100
    finally:
        asyncio.run(stack.aclose())


def test_a_backfill_and_single_backfills_fan_out_and_merge(
    client: Client, config_file: Path, tmp_path: Path
) -> None:
    """backfill_all over 3 shards and backfill_each over 5 ids store every portfolio-day once."""
    config = sqlite_config(tmp_path)
    configure(config_file, **config, portfolios=30)
    prepare(config)
    start = DAY - dt.timedelta(days=2)
    report = on_dask.backfill_all(client, FACTORY, start, DAY, shards=3)
    assert (report.kind, report.succeeded, report.failed) == ("backfill_all", 90, 0)
    assert report.key == f"backfill-all:{start}:{DAY}"
    assert len(report.parts) == 3
    ids = portfolio_ids(30)[:5]
    each = on_dask.backfill_each(client, FACTORY, [*ids, ids[0]], start, DAY, only_missing=True)
    assert (each.kind, each.succeeded, each.skipped, len(each.parts)) == ("backfill", 0, 15, 5)
    assert [p.key for p in each.parts] == [f"backfill:{i}:{start}:{DAY}:only-missing" for i in ids]
    assert stored(config, 30) == 30


def test_the_same_shard_submitted_twice_at_once_is_done_once(
    client: Client, config_file: Path, tmp_path: Path
) -> None:
    """Two tasks of one shard at once: one does the work, the other finds it held or done."""
    config = sqlite_config(tmp_path)
    configure(config_file, **config, delay=0.05)
    prepare(config)
    shard = Shard(0, 1)
    arguments = {"on": DAY, "shard": shard, "key": shard.key(f"daily:{DAY}")}
    futures = [
        client.submit(on_dask.run_task, FACTORY, "run_daily", arguments, 0.2, key=f"twice-{n}")
        for n in range(2)
    ]
    reports: list[RunReport] = [f.result() for f in futures]
    statuses = sorted(r.status for r in reports)
    assert statuses[1] == "completed"
    assert statuses[0] in {"already_running", "already_succeeded"}
    assert [r.succeeded for r in reports if r.status == "completed"] == [100]
    assert stored(config, 100) == 100


def test_a_worker_killed_mid_run_loses_no_snapshot_and_its_shard_resumes(
    client: Client, config_file: Path, tmp_path: Path
) -> None:
    """SIGKILL a worker mid-shard: the shard runs again, resumes, and every portfolio is stored."""
    config = sqlite_config(tmp_path)
    configure(config_file, **config, portfolios=300, delay=0.1, lease_ttl=2.0)
    prepare(config)
    outcome: list[RunReport | BaseException] = []

    def run() -> None:
        try:
            outcome.append(on_dask.run_daily(client, FACTORY, DAY, shards=2, poll=0.2))
        except BaseException as error:  # noqa: BLE001 - handed to the test thread
            outcome.append(error)

    runner = threading.Thread(target=run)
    runner.start()
    try:
        victim = None
        deadline = time.monotonic() + 20
        while victim is None and time.monotonic() < deadline:
            busy = [w for w, keys in processing(client).items() if keys]
            if busy and stored(config, 300) >= 20:
                victim = busy[0]
            else:
                time.sleep(0.1)
        assert victim is not None, "no shard started"
        shard_key = processing(client)[victim][0]
        pids = cast("dict[str, int]", client.run(os.getpid))
        os.kill(pids[victim], signal.SIGKILL)
    finally:
        runner.join(timeout=40)
    assert not runner.is_alive()
    (report,) = outcome
    assert not isinstance(report, BaseException), report
    assert stored(config, 300) == 300
    assert report.failed == 0
    assert report.succeeded + report.skipped >= 300
    resumed = [p.key for p in report.parts if p.attempt > 1]
    assert resumed == [str(shard_key).removeprefix("portfolio-snapshots:")]


def test_a_malformed_factory_path_fails_before_any_task(client: Client) -> None:
    """A factory that is not module:attribute is refused in the caller, not on a worker."""
    with pytest.raises(ValueError, match="factory must be module:attribute"):
        on_dask.run_daily(client, "no-colon", DAY, shards=2)


if sys.platform == "win32":  # pragma: no cover - SIGKILL
    pytestmark = pytest.mark.skip("needs POSIX signals")
