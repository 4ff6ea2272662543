"""portfolio-snapshots: daily portfolio valuation snapshots for host applications.

This module holds the core a host needs first: the values, the ports, the job and its
calculator, retry policy and report, the shipped stores, and the errors a host catches. The
rest lives in public submodules:

- `portfolio_snapshots.errors`: every exception, one hierarchy under `SnapshotError`;
- `portfolio_snapshots.events`: what a run emits, for logging, metrics and tracing;
- `portfolio_snapshots.history`: transaction ledgers, FX rates and returns;
- `portfolio_snapshots.adapters.*`: the shipped adapters (in-memory, SQLite, SQLAlchemy,
  ledger, splits, per-ticker market data);
- `portfolio_snapshots.testing`: fault injection, a fake clock, Hypothesis strategies and the
  conformance suite for a host's own adapters;
- `portfolio_snapshots.integrations.*`: thin integrations, each with its own extra.

Everything in a module whose name starts with an underscore is private. See ``docs/index.md``
for a map of the package.
"""

from __future__ import annotations

from portfolio_snapshots import errors, events, history  # noqa: F401 - `ps.history` works after `import portfolio_snapshots`
from portfolio_snapshots._calculator import (
    DEFAULT_MAX_PRICE_AGE,
    ISO_4217_MINOR_UNITS,
    SnapshotCalculator,
    value_portfolio,
)
from portfolio_snapshots._domain import (
    QUOTE_MINOR_UNITS,
    Lease,
    MissingDataPolicy,
    Portfolio,
    PortfolioSnapshot,
    PositionValuation,
    PriceQuote,
    RunRecord,
    RunState,
)
from portfolio_snapshots._job import SnapshotJob
from portfolio_snapshots._parsing import parse_portfolio, parse_price_quote
from portfolio_snapshots._ports import (
    MarketData,
    PortfolioRepository,
    PriceHistory,
    RecentRuns,
    RunLedger,
    RunLock,
    SnapshotRepository,
)
from portfolio_snapshots._public import publish as _publish
from portfolio_snapshots._ratelimit import TokenBucket
from portfolio_snapshots._report import RunKind, RunReport, RunStatus, SnapshotFailure
from portfolio_snapshots._retry import RetryPolicy
from portfolio_snapshots._time import date_range, utc_now
from portfolio_snapshots.adapters.memory import (
    InMemoryMarketData,
    InMemoryPortfolioRepository,
    InMemorySnapshotRepository,
)
from portfolio_snapshots.adapters.sqlite import SqliteSnapshotStore
from portfolio_snapshots.errors import (
    DatabaseUnavailableError,
    InvalidInputError,
    MissingPriceError,
    PortfolioNotFoundError,
    RunKeyConflictError,
    SnapshotError,
    TransientError,
)

__all__ = [
    "DEFAULT_MAX_PRICE_AGE",
    "ISO_4217_MINOR_UNITS",
    "QUOTE_MINOR_UNITS",
    "DatabaseUnavailableError",
    "InMemoryMarketData",
    "InMemoryPortfolioRepository",
    "InMemorySnapshotRepository",
    "InvalidInputError",
    "Lease",
    "MarketData",
    "MissingDataPolicy",
    "MissingPriceError",
    "Portfolio",
    "PortfolioNotFoundError",
    "PortfolioRepository",
    "PortfolioSnapshot",
    "PositionValuation",
    "PriceHistory",
    "PriceQuote",
    "RecentRuns",
    "RetryPolicy",
    "RunKeyConflictError",
    "RunKind",
    "RunLedger",
    "RunLock",
    "RunRecord",
    "RunReport",
    "RunState",
    "RunStatus",
    "SnapshotCalculator",
    "SnapshotError",
    "SnapshotFailure",
    "SnapshotJob",
    "SnapshotRepository",
    "SqliteSnapshotStore",
    "TokenBucket",
    "TransientError",
    "date_range",
    "parse_portfolio",
    "parse_price_quote",
    "utc_now",
    "value_portfolio",
]

#: The names whose home is this module (the others are re-exported from their public homes).
_HOME = sorted(
    set(__all__)
    - set(errors.__all__)
    - {
        "InMemoryMarketData",
        "InMemoryPortfolioRepository",
        "InMemorySnapshotRepository",
        "SqliteSnapshotStore",
    }
)
_publish(__name__, globals(), _HOME)


def __getattr__(name: str) -> str:
    """Read ``__version__`` lazily from the installed distribution's metadata."""
    if name == "__version__":
        from importlib.metadata import version  # noqa: PLC0415 - lazy on purpose

        return version("portfolio-snapshots")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
