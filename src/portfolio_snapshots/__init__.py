"""portfolio-snapshots: daily portfolio valuation snapshots for host applications.

The public API is what this module exports; everything in a module whose name starts with an
underscore is private. See the README for a quick start.
"""

from __future__ import annotations

from portfolio_snapshots._calculator import (
    DEFAULT_MAX_PRICE_AGE,
    ISO_4217_MINOR_UNITS,
    PriceTable,
    SnapshotCalculator,
    value_portfolio,
)
from portfolio_snapshots._decimal import exact_context
from portfolio_snapshots._domain import (
    Lease,
    Portfolio,
    PortfolioSnapshot,
    PositionValuation,
    PriceQuote,
    RunRecord,
    RunState,
)
from portfolio_snapshots._errors import (
    CurrencyMismatchError,
    InvalidDateRangeError,
    InvalidInputError,
    InvalidPortfolioError,
    InvalidPriceError,
    LeaseLostError,
    MissingPriceError,
    PortfolioNotFoundError,
    RunKeyConflictError,
    SnapshotError,
    TransientError,
)
from portfolio_snapshots._events import (
    EventHook,
    LeaseLost,
    LoggingEvents,
    PortfolioFailed,
    RetryScheduled,
    RunEvent,
    RunFinished,
    RunStarted,
)
from portfolio_snapshots._job import SnapshotJob
from portfolio_snapshots._parsing import parse_portfolio, parse_price_quote
from portfolio_snapshots._ports import (
    MarketData,
    PortfolioRepository,
    RunLedger,
    RunLock,
    SnapshotRepository,
)
from portfolio_snapshots._report import RunKind, RunReport, RunStatus, SnapshotFailure
from portfolio_snapshots._retry import RetryHook, RetryPolicy
from portfolio_snapshots._time import date_range, utc_now
from portfolio_snapshots.adapters._sql_common import (
    DatabaseBusyError,
    DatabaseUnavailableError,
    SchemaVersionError,
)
from portfolio_snapshots.adapters.memory import (
    InMemoryMarketData,
    InMemoryPortfolioRepository,
    InMemoryRunLedger,
    InMemoryRunLock,
    InMemorySnapshotRepository,
)
from portfolio_snapshots.adapters.per_ticker import PerTickerMarketData
from portfolio_snapshots.adapters.sqlite import SqliteSnapshotStore

__all__ = [
    "DEFAULT_MAX_PRICE_AGE",
    "ISO_4217_MINOR_UNITS",
    "CurrencyMismatchError",
    "DatabaseBusyError",
    "DatabaseUnavailableError",
    "EventHook",
    "InMemoryMarketData",
    "InMemoryPortfolioRepository",
    "InMemoryRunLedger",
    "InMemoryRunLock",
    "InMemorySnapshotRepository",
    "InvalidDateRangeError",
    "InvalidInputError",
    "InvalidPortfolioError",
    "InvalidPriceError",
    "Lease",
    "LeaseLost",
    "LeaseLostError",
    "LoggingEvents",
    "MarketData",
    "MissingPriceError",
    "PerTickerMarketData",
    "Portfolio",
    "PortfolioFailed",
    "PortfolioNotFoundError",
    "PortfolioRepository",
    "PortfolioSnapshot",
    "PositionValuation",
    "PriceQuote",
    "PriceTable",
    "RetryHook",
    "RetryPolicy",
    "RetryScheduled",
    "RunEvent",
    "RunFinished",
    "RunKeyConflictError",
    "RunKind",
    "RunLedger",
    "RunLock",
    "RunRecord",
    "RunReport",
    "RunStarted",
    "RunState",
    "RunStatus",
    "SchemaVersionError",
    "SnapshotCalculator",
    "SnapshotError",
    "SnapshotFailure",
    "SnapshotJob",
    "SnapshotRepository",
    "SqliteSnapshotStore",
    "TransientError",
    "date_range",
    "exact_context",
    "parse_portfolio",
    "parse_price_quote",
    "utc_now",
    "value_portfolio",
]


def __getattr__(name: str) -> str:
    """Read ``__version__`` lazily from the installed distribution's metadata."""
    if name == "__version__":
        from importlib.metadata import version  # noqa: PLC0415 - lazy on purpose

        return version("portfolio-snapshots")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
