"""The plain ``check_*`` functions: they pass on correct adapters and catch broken ones."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest
from backends import BACKENDS

from portfolio_snapshots import InMemorySnapshotRepository, Lease, PortfolioSnapshot, RunRecord
from portfolio_snapshots.adapters.memory import InMemoryRunLedger, InMemoryRunLock
from portfolio_snapshots.testing import (
    check_run_ledger,
    check_run_lock,
    check_snapshot_repository,
)

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import AsyncIterator, Callable, Sequence
    from uuid import UUID


def test_in_memory_adapters_pass_every_check() -> None:
    """The in-memory adapters pass all three contracts through the plain check functions."""
    check_snapshot_repository(lambda: contextlib.nullcontext(InMemorySnapshotRepository()))
    check_run_ledger(lambda: contextlib.nullcontext(InMemoryRunLedger()))
    check_run_lock(lambda: contextlib.nullcontext(InMemoryRunLock()))


def test_the_memory_backend_is_listed() -> None:
    """The backend list runs the contracts on the in-memory adapters, under a readable id."""
    memory = [b for b in BACKENDS if b.id == "memory"]
    assert len(memory) == 1
    assert memory[0].snapshot_factory is not None
    assert memory[0].ledger_factory is not None
    assert memory[0].lock_factory is not None


def test_factory_is_entered_and_exited_once_per_check() -> None:
    """Every check opens a fresh store from the factory and closes it afterwards."""
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def factory() -> AsyncIterator[InMemoryRunLock]:
        events.append("open")
        yield InMemoryRunLock()
        events.append("close")

    check_run_lock(factory)
    assert events
    assert events == ["open", "close"] * (len(events) // 2)


class _IgnoresFences(InMemorySnapshotRepository):
    async def upsert_many(
        self, snapshots: Sequence[PortfolioSnapshot], *, fence: int | None = None
    ) -> None:
        await super().upsert_many(snapshots)


class _TwoPlacesColumn(InMemorySnapshotRepository):
    """Stores cash in a column with two decimal places, like a NUMERIC(18, 2)."""

    async def upsert_many(
        self, snapshots: Sequence[PortfolioSnapshot], *, fence: int | None = None
    ) -> None:
        rounded = [
            s.replace(cash_balance=s.cash_balance.quantize(Decimal("0.01"))) for s in snapshots
        ]
        await super().upsert_many(rounded, fence=fence)


class _RowByRow(InMemorySnapshotRepository):
    """Writes each snapshot on its own, so a failing batch leaves its first rows behind."""

    async def upsert_many(
        self, snapshots: Sequence[PortfolioSnapshot], *, fence: int | None = None
    ) -> None:
        for s in snapshots:
            await super().upsert_many([s], fence=fence)


class _ListsUnsorted(InMemorySnapshotRepository):
    async def list_snapshots(
        self, portfolio_id: UUID, start: dt.date, end: dt.date
    ) -> list[PortfolioSnapshot]:
        rows = await super().list_snapshots(portfolio_id, start, end)
        return rows[::-1]


class _IgnoresHash(InMemoryRunLedger):
    async def start(self, key: str, params_hash: str, now: dt.datetime) -> RunRecord:
        known = await self.get(key)
        return await super().start(key, known.params_hash if known else params_hash, now)


class _FencePerKey(InMemoryRunLock):
    """Counts fences per key, so two keys hand out the same fence."""

    async def acquire(
        self, key: str, owner: str, ttl: dt.timedelta, now: dt.datetime
    ) -> Lease | None:
        lease = await super().acquire(key, owner, ttl, now)
        return None if lease is None else dataclasses.replace(lease, fence=1)


class _RacyLock(InMemoryRunLock):
    """Checks the key, suspends, then takes it: concurrent owners all win."""

    async def acquire(
        self, key: str, owner: str, ttl: dt.timedelta, now: dt.datetime
    ) -> Lease | None:
        held = self._leases.get(key)
        await asyncio.sleep(0)
        if held is not None and held.owner != owner and held.expires_at > now:
            return None
        self._last_fence += 1
        lease = Lease(key, owner, self._last_fence, now + ttl)
        self._leases[key] = lease
        return lease


@pytest.mark.parametrize(
    ("check", "adapter", "failing"),
    [
        pytest.param(
            check_snapshot_repository,
            _IgnoresFences,
            "test_lower_fence_leaves_rows_of_a_higher_fence",
            id="ignores-fences",
        ),
        pytest.param(
            check_snapshot_repository,
            _TwoPlacesColumn,
            "test_decimals_round_trip_exactly",
            id="rounds-cash",
        ),
        pytest.param(
            check_snapshot_repository,
            _RowByRow,
            "test_a_failing_batch_writes_nothing",
            id="not-atomic",
        ),
        pytest.param(
            check_snapshot_repository,
            _ListsUnsorted,
            "test_list_snapshots_is_inclusive_ordered_and_per_portfolio",
            id="lists-unsorted",
        ),
        pytest.param(
            check_run_ledger,
            _IgnoresHash,
            "test_another_hash_conflicts_and_changes_nothing",
            id="ignores-params-hash",
        ),
        pytest.param(
            check_run_lock,
            _FencePerKey,
            "test_expired_lease_is_taken_with_a_greater_fence",
            id="fence-not-increasing",
        ),
        pytest.param(
            check_run_lock,
            _RacyLock,
            "test_concurrent_acquire_grants_one_lease",
            id="racy-acquire",
        ),
    ],
)
def test_a_broken_adapter_fails_the_check_that_names_its_bug(
    check: Callable[[Callable[[], contextlib.nullcontext[object]]], None],
    adapter: type,
    failing: str,
) -> None:
    """Each deliberately broken adapter fails with an AssertionError noting the right check."""
    with pytest.raises(AssertionError) as caught:
        check(lambda: contextlib.nullcontext(adapter()))
    notes = "\n".join(getattr(caught.value, "__notes__", []))
    assert failing in notes, (notes, str(caught.value))
    assert str(caught.value)


def test_a_factory_that_is_not_implemented_says_so() -> None:
    """A contract subclass without its factory fails with NotImplementedError naming it."""
    from portfolio_snapshots.testing import RunLockContract

    class TestForgotFactory(RunLockContract):
        pass

    with pytest.raises(NotImplementedError, match="make_lock"):
        TestForgotFactory().test_acquire_a_free_key()
