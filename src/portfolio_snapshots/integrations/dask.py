"""Fan a run out over a Dask cluster: one task per shard, the reports merged into one.

Extra ``dask`` (``dask[distributed]``). The host names its job factory by import path
(``module:attribute``, as the command line's ``--app`` takes it: a `SnapshotJob`, or a sync or
async callable returning one or a context manager yielding one), so each worker builds its own
adapters and connections. Each shard's task has a deterministic key derived from its run key,
so a task submitted again while the first is known to the scheduler is not run twice.

Retries are the library's, not Dask's: no task is submitted with ``retries`` (which retries
every exception). When a worker dies, the scheduler runs its task again elsewhere; the run
key's ledger record and lease make that second run resume the shard, writing nothing twice.
A task that finds its shard's key leased by another holder (the dead worker's lease, until
it expires, or a live duplicate) waits and asks again, for up to twice the job's
``lease_ttl``; it then reports ``already_succeeded`` when the other holder finished, or
``already_running`` when it still holds the key.

The job needs a `RunLedger` and a `RunLock` (the shipped SQL stores are both) for those
guarantees; without them a task run twice simply does its shard twice (snapshots are
upserts: the store ends the same, the reports count the work twice).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Literal

from portfolio_snapshots._job import SnapshotJob
from portfolio_snapshots.errors import InvalidInputError
from portfolio_snapshots.integrations._loading import import_app, open_job
from portfolio_snapshots.shards import Shard, merge_reports

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Iterable
    from uuid import UUID

    from distributed import Client

    from portfolio_snapshots import RunReport

__all__ = ["DEFAULT_POLL", "backfill_all", "backfill_each", "run_daily", "run_task"]

_Method = Literal["run_daily", "backfill_all", "backfill"]
#: The default poll while another holder has the shard's key, in seconds.
DEFAULT_POLL = 0.5


def run_daily(
    client: Client,
    factory: str,
    on: dt.date,
    *,
    shards: int,
    key: str | None = None,
    poll: float = DEFAULT_POLL,
) -> RunReport:
    """Run the daily snapshot of `on` as `shards` tasks on the cluster; merge their reports.

    Args:
        client: A `distributed.Client` connected to the cluster.
        factory: ``module:attribute`` of the host's job (or factory of one), importable on
            every worker.
        on: The date to snapshot.
        shards: How many shards (tasks) to cut the run into.
        key: The run's key (``daily:<date>`` by default); each shard's key is derived from
            it (``<key>/shard-<i>-of-<n>``) and so is its task's.
        poll: Seconds between two asks for a shard's key held by another holder.

    Returns:
        The merged report (`merge_reports`), its ``parts`` the shards' reports in index
        order; a part with ``attempt > 1`` is a shard that resumed after an interruption.

    Raises:
        InvalidInputError: `shards` is not a positive int, or `factory` is malformed.
        Exception: What a shard's run raised (a lost lease, an unreachable store...), as
            Dask raises a failed task's error.
    """
    parent = key or SnapshotJob.daily_key(on)
    return _fan_out(
        client,
        factory,
        [("run_daily", {"on": on, "shard": s, "key": s.key(parent)}) for s in Shard.all(shards)],
        parent,
        poll,
    )


def backfill_all(
    client: Client,
    factory: str,
    start: dt.date,
    end: dt.date,
    *,
    shards: int,
    only_missing: bool = False,
    key: str | None = None,
    poll: float = DEFAULT_POLL,
) -> RunReport:
    """Run ``backfill_all(start, end)`` as `shards` tasks on the cluster; merge their reports.

    Args:
        client: A `distributed.Client` connected to the cluster.
        factory: ``module:attribute`` of the host's job (or factory of one).
        start: The first date.
        end: The last date.
        shards: How many shards (tasks) to cut the run into.
        only_missing: Compute only the portfolio-days that have no stored snapshot yet.
        key: The run's key (`SnapshotJob.backfill_all_key` by default); each shard's key is
            derived from it.
        poll: Seconds between two asks for a shard's key held by another holder.

    Returns:
        The merged report, its ``parts`` the shards' reports in index order.

    Raises:
        InvalidInputError: `shards` is not a positive int, or `factory` is malformed.
        Exception: What a shard's run raised.
    """
    parent = key or SnapshotJob.backfill_all_key(start, end, only_missing=only_missing)
    calls: list[tuple[_Method, dict[str, object]]] = [
        (
            "backfill_all",
            {
                "start": start,
                "end": end,
                "only_missing": only_missing,
                "shard": s,
                "key": s.key(parent),
            },
        )
        for s in Shard.all(shards)
    ]
    return _fan_out(client, factory, calls, parent, poll)


def backfill_each(
    client: Client,
    factory: str,
    portfolio_ids: Iterable[UUID],
    start: dt.date,
    end: dt.date,
    *,
    only_missing: bool = False,
    poll: float = DEFAULT_POLL,
) -> RunReport:
    """Backfill each portfolio from `start` to `end`, one task per portfolio; merge reports.

    Each task runs ``backfill(portfolio_id, start, end)`` under its default run key
    (``backfill:<portfolio>:<start>:<end>``), which is also its task's key.

    Args:
        client: A `distributed.Client` connected to the cluster.
        factory: ``module:attribute`` of the host's job (or factory of one).
        portfolio_ids: The portfolios (a repeated id is backfilled once).
        start: The first date.
        end: The last date.
        only_missing: Compute only the dates that have no stored snapshot yet.
        poll: Seconds between two asks for a key held by another holder.

    Returns:
        The merged report (kind ``backfill``), its ``parts`` in the order of the ids.

    Raises:
        InvalidInputError: No portfolio id was given, or `factory` is malformed.
        Exception: What a backfill raised (`PortfolioNotFoundError` for an unknown id...).
    """
    unique = list(dict.fromkeys(portfolio_ids))
    if not unique:
        raise InvalidInputError("backfill_each needs at least one portfolio id")
    calls: list[tuple[_Method, dict[str, object]]] = [
        (
            "backfill",
            {
                "portfolio_id": pid,
                "start": start,
                "end": end,
                "only_missing": only_missing,
                "key": SnapshotJob.backfill_key(pid, start, end, only_missing=only_missing),
            },
        )
        for pid in unique
    ]
    return _fan_out(client, factory, calls, None, poll)


def _fan_out(
    client: Client,
    factory: str,
    calls: list[tuple[_Method, dict[str, object]]],
    parent: str | None,
    poll: float,
) -> RunReport:
    """Submit one task per call, keyed by its run key; gather and merge the reports."""
    import_app(factory, option="factory")  # a malformed path fails here, not on a worker
    futures = [
        client.submit(
            run_task,
            factory,
            method,
            arguments,
            poll,
            key=f"portfolio-snapshots:{arguments['key']}",
        )
        for method, arguments in calls
    ]
    reports: list[RunReport] = [future.result() for future in futures]
    return merge_reports(reports, key=parent)


def run_task(factory: str, method: _Method, arguments: dict[str, object], poll: float) -> RunReport:
    """Run one shard (or one backfill) on a worker: build the job, run, close the job.

    While another holder has the run's key, ask again every `poll` seconds, for up to twice
    the job's ``lease_ttl`` (a dead holder's lease expires within one).

    Args:
        factory: ``module:attribute`` of the host's job (or factory of one).
        method: The `SnapshotJob` method to call.
        arguments: Its keyword arguments, the run key among them.
        poll: Seconds between two asks for a key held elsewhere.

    Returns:
        The run's report.
    """
    return asyncio.run(_run(factory, method, arguments, poll))


async def _run(
    factory: str, method: _Method, arguments: dict[str, object], poll: float
) -> RunReport:
    async with open_job(import_app(factory, option="factory")) as job:
        run = getattr(job, method)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2 * job.lease_ttl.total_seconds()
        while True:
            report: RunReport = await run(**arguments)
            if report.status != "already_running" or loop.time() >= deadline:
                return report
            await asyncio.sleep(poll)
