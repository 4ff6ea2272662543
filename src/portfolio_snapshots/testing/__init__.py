"""The testing kit for host applications: fault injection, fake time and conformance tests.

- Fault-injecting wrappers for every port (`FaultyMarketData`, ...), scripted by a `Fault`.
- `FakeClock`, `FakeSleep` and `instant_retry`: time under the test's control.
- The conformance suite (`SnapshotRepositoryContract`, `MarketDataContract`, ... and the
  ``check_*`` functions) to run on a host's own adapters.
- Hypothesis strategies, in the submodule `portfolio_snapshots.testing.strategies`, which
  is the only part that needs Hypothesis. This package imports without pytest or Hypothesis.

See ``docs/testing.md`` for a guided tour.
"""

from __future__ import annotations

from portfolio_snapshots._public import publish as _publish
from portfolio_snapshots.testing._clock import FakeClock, FakeSleep, instant_retry
from portfolio_snapshots.testing._conformance import (
    MarketDataContract,
    RunLedgerContract,
    RunLockContract,
    SnapshotRepositoryContract,
    check_market_data,
    check_run_ledger,
    check_run_lock,
    check_snapshot_repository,
)
from portfolio_snapshots.testing._faults import (
    Fault,
    FaultyMarketData,
    FaultyPortfolioRepository,
    FaultyRunLedger,
    FaultyRunLock,
    FaultySnapshotRepository,
)

__all__ = [
    "FakeClock",
    "FakeSleep",
    "Fault",
    "FaultyMarketData",
    "FaultyPortfolioRepository",
    "FaultyRunLedger",
    "FaultyRunLock",
    "FaultySnapshotRepository",
    "MarketDataContract",
    "RunLedgerContract",
    "RunLockContract",
    "SnapshotRepositoryContract",
    "check_market_data",
    "check_run_ledger",
    "check_run_lock",
    "check_snapshot_repository",
    "instant_retry",
]

_publish(__name__, globals(), __all__)
