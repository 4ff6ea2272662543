"""The conformance suite, run on every backend listed in `backends.BACKENDS`.

Each contract class takes its factory from a fixture parametrized over the backends, so a new
backend is one entry in `backends.py`; the test ids name it (``[memory]``, ``[sqlite]``).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest
from backends import BACKENDS, Backend, LedgerFactory, LockFactory, SnapshotFactory

from portfolio_snapshots.history import SnapshotTotals
from portfolio_snapshots.testing import (
    RunLedgerContract,
    RunLockContract,
    SnapshotRepositoryContract,
)

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from portfolio_snapshots import RunLedger, RunLock, SnapshotRepository


def _activate(request: pytest.FixtureRequest) -> Backend:
    """Return the backend of this parameter, after activating the fixtures it needs."""
    backend: Backend = request.param
    for name in backend.fixtures:
        request.getfixturevalue(name)
    return backend


@pytest.fixture(
    params=[
        pytest.param(b, id=b.id, marks=b.marks) for b in BACKENDS if b.snapshot_factory is not None
    ]
)
def snapshot_factory(request: pytest.FixtureRequest) -> SnapshotFactory:
    """Return the factory of one backend's snapshot repository."""
    factory = _activate(request).snapshot_factory
    assert factory is not None
    return factory


@pytest.fixture(
    params=[
        pytest.param(b, id=b.id, marks=b.marks) for b in BACKENDS if b.ledger_factory is not None
    ]
)
def ledger_factory(request: pytest.FixtureRequest) -> LedgerFactory:
    """Return the factory of one backend's run ledger."""
    factory = _activate(request).ledger_factory
    assert factory is not None
    return factory


@pytest.fixture(
    params=[pytest.param(b, id=b.id, marks=b.marks) for b in BACKENDS if b.lock_factory is not None]
)
def lock_factory(request: pytest.FixtureRequest) -> LockFactory:
    """Return the factory of one backend's run lock."""
    factory = _activate(request).lock_factory
    assert factory is not None
    return factory


class TestSnapshotRepository(SnapshotRepositoryContract):
    """`SnapshotRepositoryContract` on every backend with a snapshot repository."""

    factory: SnapshotFactory

    @pytest.fixture(autouse=True)
    def _backend(self, snapshot_factory: SnapshotFactory) -> None:
        self.factory = snapshot_factory

    def make_repository(self) -> AbstractAsyncContextManager[SnapshotRepository]:
        """Open a fresh store of the backend under test."""
        return self.factory()


class TestRunLedger(RunLedgerContract):
    """`RunLedgerContract` on every backend with a run ledger."""

    factory: LedgerFactory

    @pytest.fixture(autouse=True)
    def _backend(self, ledger_factory: LedgerFactory) -> None:
        self.factory = ledger_factory

    def make_ledger(self) -> AbstractAsyncContextManager[RunLedger]:
        """Open a fresh store of the backend under test."""
        return self.factory()


class TestRunLock(RunLockContract):
    """`RunLockContract` on every backend with a run lock."""

    factory: LockFactory

    @pytest.fixture(autouse=True)
    def _backend(self, lock_factory: LockFactory) -> None:
        self.factory = lock_factory

    def make_lock(self) -> AbstractAsyncContextManager[RunLock]:
        """Open a fresh store of the backend under test."""
        return self.factory()


def test_every_shipped_snapshot_store_offers_snapshot_totals(
    snapshot_factory: SnapshotFactory,
) -> None:
    """Every shipped snapshot repository reads totals for charts, so no totals check is skipped."""

    async def offers() -> bool:
        async with snapshot_factory() as repo:
            return isinstance(repo, SnapshotTotals)

    assert asyncio.run(offers())
