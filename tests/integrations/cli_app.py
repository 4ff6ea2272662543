"""The host app the CLI tests name with ``--app cli_app:app``: the demo's world, configurable.

Environment:
    CLI_TEST_DB: the SQLite file (required).
    CLI_TEST_MODE: ``ok`` (default); ``partial`` (a fourth portfolio holds a ticker without
        any price); ``unreachable`` (the run ledger is down); ``busy`` (another owner holds
        the lease of today's daily run); ``bug`` (the factory fails with a plain bug).
    CLI_TEST_WRITE_DELAY: seconds each snapshot write waits first (default 0).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING

from portfolio_snapshots import RetryPolicy, SnapshotJob, SqliteSnapshotStore
from portfolio_snapshots.adapters.ledger import LedgerPortfolioRepository
from portfolio_snapshots.adapters.memory import InMemoryTransactionSource
from portfolio_snapshots.errors import DatabaseUnavailableError
from portfolio_snapshots.history import Transaction, TransactionKind
from portfolio_snapshots.integrations.cli.demo import (
    demo_fx_rates,
    demo_market_data,
    demo_today,
    demo_transactions,
)
from portfolio_snapshots.testing import Fault, FaultyRunLedger, FaultySnapshotRepository

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from portfolio_snapshots import RunLedger, SnapshotRepository

#: A portfolio whose only stock has no price at all (CLI_TEST_MODE=partial).
GHOST = uuid.UUID("00000000-0000-4000-8000-00000000d0aa")
TODAY = demo_today()
NOW = dt.datetime.combine(TODAY, dt.time(22), tzinfo=dt.UTC)


def _transactions(mode: str) -> list[Transaction]:
    txs = demo_transactions()
    if mode == "partial":
        day = dt.date(2025, 6, 2)
        txs += [
            Transaction(GHOST, day, TransactionKind.DEPOSIT, amount=Decimal(1000)),
            Transaction(GHOST, day, TransactionKind.BUY, "GHOST", Decimal(1), Decimal(10)),
        ]
    return txs


@contextlib.asynccontextmanager
async def app() -> AsyncIterator[SnapshotJob]:
    """Yield the job the environment describes; close its store on exit."""
    mode = os.environ.get("CLI_TEST_MODE", "ok")
    if mode == "bug":
        raise RuntimeError("a bug in the host's factory")
    delay = float(os.environ.get("CLI_TEST_WRITE_DELAY", "0"))
    async with await SqliteSnapshotStore.open(os.environ["CLI_TEST_DB"]) as store:
        snapshots: SnapshotRepository = store
        if delay:
            snapshots = FaultySnapshotRepository(
                store, Fault(delay=delay, methods=frozenset({"upsert_many"}))
            )
        ledger: RunLedger = store
        if mode == "unreachable":
            ledger = FaultyRunLedger(store, Fault(fail_rate=1.0, error=DatabaseUnavailableError))
        if mode == "busy":
            await store.acquire(f"daily:{TODAY}", "another-replica", dt.timedelta(hours=1), NOW)
        yield SnapshotJob(
            portfolios=LedgerPortfolioRepository(InMemoryTransactionSource(_transactions(mode))),
            snapshots=snapshots,
            market_data=demo_market_data(),
            fx_rates=demo_fx_rates(),
            ledger=ledger,
            lock=store,
            clock=lambda: NOW,
            retry=RetryPolicy(max_attempts=2, initial_delay=0.01, jitter=0),
            batch_size=25,
            owner="cli-test",
        )
