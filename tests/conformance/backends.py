"""The backends every conformance test runs against: one `Backend` entry per adapter family.

To add a backend, append one entry to `BACKENDS`: a readable id (it names the test in
pytest's output, e.g. ``TestSnapshotRepository::test_...[sqlite]``), a factory per port it
implements (None for a port it does not), the marks it needs, such as
``(pytest.mark.postgres,)`` for a backend that needs a server, and the names of the pytest
fixtures that must be active while it runs (``("pg_dsn",)``; each must be visible from
``test_contracts.py``). Each factory returns an async context manager that yields a fresh,
empty store and cleans it up on exit; a store implementing several ports may be passed as
the factory of each. The shipped SQL stores come from `storage.backends.STORAGE_BACKENDS`:
a new SQL store or driver is added there, and reaches both suites.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import pytest

from portfolio_snapshots import InMemorySnapshotRepository, RunLedger, RunLock, SnapshotRepository
from portfolio_snapshots.adapters.memory import InMemoryRunLedger, InMemoryRunLock
from storage.backends import STORAGE_BACKENDS

SnapshotFactory = Callable[[], AbstractAsyncContextManager[SnapshotRepository]]
LedgerFactory = Callable[[], AbstractAsyncContextManager[RunLedger]]
LockFactory = Callable[[], AbstractAsyncContextManager[RunLock]]


@dataclasses.dataclass(frozen=True)
class Backend:
    """One storage backend and the factories of the ports it implements.

    `test_contracts.py` runs `SnapshotRepositoryContract` on every backend with a
    `snapshot_factory`, `RunLedgerContract` on every one with a `ledger_factory` and
    `RunLockContract` on every one with a `lock_factory`.
    """

    id: str
    snapshot_factory: SnapshotFactory | None = None
    ledger_factory: LedgerFactory | None = None
    lock_factory: LockFactory | None = None
    marks: tuple[pytest.MarkDecorator, ...] = ()
    fixtures: tuple[str, ...] = ()


BACKENDS: list[Backend] = [
    Backend(
        "memory",
        snapshot_factory=lambda: contextlib.nullcontext(InMemorySnapshotRepository()),
        ledger_factory=lambda: contextlib.nullcontext(InMemoryRunLedger()),
        lock_factory=lambda: contextlib.nullcontext(InMemoryRunLock()),
    ),
    # Each SQL store implements the three ports; those on PostgreSQL need the pg_dsn fixture.
    *(
        Backend(
            name,
            factory,
            factory,
            factory,
            marks=marks,
            fixtures=("pg_dsn",) if pytest.mark.postgres in marks else (),
        )
        for name, factory, marks in STORAGE_BACKENDS
    ),
]
