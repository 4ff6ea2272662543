"""Shards: a stable partition of the portfolios, sharded runs and their keys, merged reports."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import os
import subprocess
import sys
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portfolio_snapshots import (
    InMemoryMarketData,
    InMemoryPortfolioRepository,
    InMemorySnapshotRepository,
    Portfolio,
    RunKeyConflictError,
    RunReport,
    SnapshotFailure,
    SnapshotJob,
)
from portfolio_snapshots.adapters.memory import InMemoryRunLedger
from portfolio_snapshots.errors import InvalidInputError
from portfolio_snapshots.shards import Shard, ShardedPortfolios, merge_reports, shard_number
from portfolio_snapshots.testing import FakeClock

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

TODAY = dt.date(2026, 11, 27)
NOW = dt.datetime(2026, 11, 27, 23, tzinfo=dt.UTC)


def ids(n: int) -> list[uuid.UUID]:
    return [uuid.UUID(int=i + 1) for i in range(n)]


def market() -> InMemoryMarketData:
    prices = InMemoryMarketData()
    for n in range(8):
        prices.add_price("AAA", TODAY - dt.timedelta(days=n), Decimal(10 + n))
    return prices


def make_job(portfolios: object, snapshots: InMemorySnapshotRepository) -> SnapshotJob:
    return SnapshotJob(
        portfolios=portfolios,  # type: ignore[arg-type]
        snapshots=snapshots,
        market_data=market(),
        ledger=InMemoryRunLedger(),
        clock=FakeClock(NOW),
        batch_size=3,
    )


def people(n: int) -> list[Portfolio]:
    return [Portfolio(pid, Decimal(i), {"AAA": Decimal(1)}) for i, pid in enumerate(ids(n))]


def book(n: int) -> InMemoryPortfolioRepository:
    return InMemoryPortfolioRepository(people(n))


# --- the partition ------------------------------------------------------------------------


@given(st.sets(st.uuids(), max_size=60), st.integers(min_value=1, max_value=12))
def test_shards_are_disjoint_and_cover_every_id(portfolio_ids: set[uuid.UUID], count: int) -> None:
    """For any ids and any count, each id is in exactly one of the count shards."""
    shards = Shard.all(count)
    for portfolio_id in portfolio_ids:
        assert sum(s.contains(portfolio_id) for s in shards) == 1
    parts = [{i for i in portfolio_ids if s.contains(i)} for s in shards]
    assert set().union(*parts) == portfolio_ids
    assert sum(len(p) for p in parts) == len(portfolio_ids)


def test_the_shard_of_an_id_is_the_same_in_another_process() -> None:
    """A fresh interpreter with another hash seed puts every id in the same shard."""
    sample = ids(50) + [uuid.UUID(bytes=bytes(range(i, i + 16))) for i in range(50)]
    here = [shard_number(i) % 7 for i in sample]
    code = (
        "import sys, uuid\n"
        "from portfolio_snapshots.shards import shard_number\n"
        "print([shard_number(uuid.UUID(a)) % 7 for a in sys.argv[1:]])\n"
    )
    there = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code, *map(str, sample)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    ).stdout
    assert there.strip() == str(here)
    assert len(set(here)) == 7  # the ids spread over every shard


@pytest.mark.parametrize(
    ("index", "count"), [(0, 0), (-1, 2), (2, 2), (True, 2), (0, 2.0), ("0", 2)]
)
def test_a_shard_outside_its_range_or_not_an_int_is_refused(index: object, count: object) -> None:
    """Shard(index, count) needs ints with 0 <= index < count."""
    with pytest.raises(InvalidInputError, match="Shard"):
        Shard(index, count)  # type: ignore[arg-type]


def test_a_shard_is_a_frozen_value_with_a_derived_key() -> None:
    """Shards compare by value, cannot be changed, and derive their run key from a parent."""
    shard = Shard(2, 4)
    assert shard == Shard(2, 4)
    assert str(shard) == "2/4"
    assert shard.key("daily:2026-11-27") == "daily:2026-11-27/shard-2-of-4"
    with pytest.raises(dataclasses.FrozenInstanceError):
        shard.index = 3  # type: ignore[misc]


# --- sharded runs -------------------------------------------------------------------------


def test_the_shards_of_a_daily_run_snapshot_every_portfolio_once() -> None:
    """Three sharded runs store every portfolio once, each under its derived key."""
    snapshots = InMemorySnapshotRepository()
    job = make_job(book(40), snapshots)
    reports = [asyncio.run(job.run_daily(TODAY, shard=s)) for s in Shard.all(3)]
    assert [r.key for r in reports] == [f"daily:{TODAY}/shard-{i}-of-3" for i in range(3)]
    assert all(r.succeeded > 0 for r in reports)
    assert sum(r.succeeded for r in reports) == 40
    assert len(snapshots) == 40
    merged = merge_reports(reports, key=f"daily:{TODAY}")
    assert (merged.succeeded, merged.failed, merged.key) == (40, 0, f"daily:{TODAY}")


def test_a_finished_shard_is_not_redone() -> None:
    """Running a shard's key again returns its stored report as already_succeeded."""
    job = make_job(book(10), InMemorySnapshotRepository())
    first = asyncio.run(job.run_daily(TODAY, shard=Shard(1, 2)))
    again = asyncio.run(job.run_daily(TODAY, shard=Shard(1, 2)))
    assert first.status == "completed"
    assert (again.status, again.succeeded) == ("already_succeeded", first.succeeded)


def test_a_key_given_for_a_shard_is_kept_and_guards_its_parameters() -> None:
    """A key given is used as it is; reusing it for another shard is a conflict."""
    job = make_job(book(10), InMemorySnapshotRepository())
    report = asyncio.run(job.run_daily(TODAY, shard=Shard(0, 2), key="mine"))
    assert report.key == "mine"
    with pytest.raises(RunKeyConflictError):
        asyncio.run(job.run_daily(TODAY, shard=Shard(1, 2), key="mine"))


def test_the_shards_of_a_backfill_cover_every_portfolio_day_once() -> None:
    """Two sharded backfill_all runs store every portfolio for every day, once."""
    snapshots = InMemorySnapshotRepository()
    job = make_job(book(12), snapshots)
    start = TODAY - dt.timedelta(days=2)
    reports = [asyncio.run(job.backfill_all(start, TODAY, shard=s)) for s in Shard.all(2)]
    assert [r.key for r in reports] == [
        f"backfill-all:{start}:{TODAY}/shard-{i}-of-2" for i in range(2)
    ]
    assert sum(r.succeeded for r in reports) == 36
    assert len(snapshots) == 36


class ShardingRepository(InMemoryPortfolioRepository):
    """Filters shards itself, and records which streams were opened."""

    def __init__(self, portfolios: list[Portfolio]) -> None:
        super().__init__(portfolios)
        self.opened: list[str] = []
        self.everyone = portfolios

    def iter_portfolios(self, as_of: dt.date) -> AsyncIterator[Portfolio]:
        self.opened.append("all")
        return super().iter_portfolios(as_of)

    async def iter_shard(self, as_of: dt.date, shard: Shard) -> AsyncIterator[Portfolio]:
        self.opened.append(str(shard))
        for portfolio in self.everyone:
            if shard.contains(portfolio.id):
                yield portfolio


def test_a_repository_that_filters_shards_is_asked_for_its_shard_only() -> None:
    """With ShardedPortfolios the job opens the shard's stream, not the whole one."""
    repo = ShardingRepository([Portfolio(i, Decimal(1), {"AAA": Decimal(1)}) for i in ids(20)])
    assert isinstance(repo, ShardedPortfolios)
    snapshots = InMemorySnapshotRepository()
    job = make_job(repo, snapshots)
    reports = [asyncio.run(job.run_daily(TODAY, shard=s)) for s in Shard.all(2)]
    assert repo.opened == ["0/2", "1/2"]
    assert sum(r.succeeded for r in reports) == 20
    assert len(snapshots) == 20


class BadIds(InMemoryPortfolioRepository):
    """Streams one portfolio whose id is not a UUID, after the good ones."""

    async def iter_portfolios(self, as_of: dt.date) -> AsyncIterator[Portfolio]:
        async for portfolio in super().iter_portfolios(as_of):
            yield portfolio
        yield Portfolio("not-a-uuid", Decimal(1))  # type: ignore[arg-type]


def test_an_id_that_is_not_a_uuid_is_reported_by_one_shard_only() -> None:
    """A portfolio without a shard fails once over all the shards, in shard 0."""
    job = make_job(BadIds(people(6)), InMemorySnapshotRepository())
    reports = [asyncio.run(job.run_daily(TODAY, shard=s)) for s in Shard.all(3)]
    assert [r.failed for r in reports] == [1, 0, 0]
    assert merge_reports(reports).succeeded == 6


def test_a_shard_that_is_not_a_shard_is_refused() -> None:
    """run_daily(shard=...) takes a Shard or None."""
    job = make_job(book(1), InMemorySnapshotRepository())
    with pytest.raises(InvalidInputError, match="shard must be a Shard"):
        asyncio.run(job.run_daily(TODAY, shard=(0, 2)))  # type: ignore[arg-type]


# --- merging reports ----------------------------------------------------------------------


def report(**changes: object) -> RunReport:
    base = RunReport(
        kind="daily",
        start=TODAY,
        end=TODAY,
        started_at=NOW,
        finished_at=NOW + dt.timedelta(seconds=1),
        processed=3,
        succeeded=2,
        failed=1,
        skipped=1,
        retried=2,
        failures=(SnapshotFailure(uuid.UUID(int=1), TODAY, "MissingPriceError", "no price", 1),),
        key="k/shard-0-of-2",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_merged_reports_add_up_counts_and_keep_their_parts() -> None:
    """Counts and failures add up, times span the parts, and the parts are kept in order."""
    second = report(
        key="k/shard-1-of-2",
        started_at=NOW - dt.timedelta(seconds=5),
        finished_at=NOW + dt.timedelta(seconds=9),
        attempt=2,
        failures=(SnapshotFailure(uuid.UUID(int=2), TODAY, "X", "y", 3),),
    )
    merged = merge_reports([report(), second], key="k")
    assert (merged.processed, merged.succeeded, merged.failed) == (6, 4, 2)
    assert (merged.skipped, merged.retried, merged.attempt) == (2, 4, 2)
    assert [f.portfolio_id for f in merged.failures] == [uuid.UUID(int=1), uuid.UUID(int=2)]
    assert (merged.started_at, merged.finished_at) == (second.started_at, second.finished_at)
    assert merged.parts == (report(), second)
    assert [p.key for p in merged.parts if p.attempt > 1] == ["k/shard-1-of-2"]
    assert (merged.key, merged.status) == ("k", "completed")


def test_a_merged_report_round_trips_through_its_dict() -> None:
    """as_dict and from_dict keep the parts of a merged report."""
    merged = merge_reports([report(), report(key="k/shard-1-of-2")], key="k")
    assert RunReport.from_dict(merged.as_dict()) == merged


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (("completed", "already_succeeded"), "completed"),
        (("already_succeeded", "already_succeeded"), "already_succeeded"),
        (("completed", "already_running"), "already_running"),
    ],
)
def test_a_merged_status_says_whether_all_the_work_is_known_done(
    statuses: tuple[str, str], expected: str
) -> None:
    """A part held elsewhere makes the merge already_running; all stored, already_succeeded."""
    merged = merge_reports(report(status=s) for s in statuses)
    assert merged.status == expected


def test_merging_nothing_or_mixed_kinds_is_refused() -> None:
    """merge_reports needs at least one report, all of one kind."""
    with pytest.raises(InvalidInputError, match="at least one"):
        merge_reports([])
    with pytest.raises(InvalidInputError, match="one kind"):
        merge_reports([report(), report(kind="backfill_all")])
