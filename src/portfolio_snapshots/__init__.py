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
    MissingDataPolicy,
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
from portfolio_snapshots._fx import (
    FX_PRECISION,
    FxQuote,
    FxRateHistory,
    FxRates,
    InMemoryFxRates,
    pairs_with_inverses,
    resolve_rate,
)
from portfolio_snapshots._job import SnapshotJob
from portfolio_snapshots._ledger import (
    LedgerReplayer,
    LedgerState,
    Transaction,
    TransactionKind,
    replay,
    replay_range,
    validate_transaction,
)
from portfolio_snapshots._ledger_errors import (
    FutureTransactionError,
    InvalidFxRateError,
    InvalidSnapshotSeriesError,
    InvalidTransactionError,
    MissingFlowDataError,
    MissingFxRateError,
    OversoldPositionError,
    TransactionCurrencyError,
    UndefinedReturnError,
    UnknownTransactionKindError,
    UnsortedLedgerError,
)
from portfolio_snapshots._ledger_parsing import parse_transaction
from portfolio_snapshots._ledger_ports import PortfolioDay, PortfolioDayStream, PortfolioHistory
from portfolio_snapshots._parsing import parse_portfolio, parse_price_quote
from portfolio_snapshots._ports import (
    MarketData,
    PortfolioRepository,
    PriceHistory,
    RunLedger,
    RunLock,
    SnapshotRepository,
)
from portfolio_snapshots._ratelimit import TokenBucket
from portfolio_snapshots._report import RunKind, RunReport, RunStatus, SnapshotFailure
from portfolio_snapshots._retry import RetryHook, RetryPolicy
from portfolio_snapshots._returns import (
    RETURNS_PRECISION,
    FlowTiming,
    PeriodReturn,
    cumulative_time_weighted_return,
    modified_dietz_return,
    time_weighted_returns,
)
from portfolio_snapshots._time import date_range, utc_now
from portfolio_snapshots.adapters._sql_common import (
    DatabaseBusyError,
    DatabaseUnavailableError,
    SchemaVersionError,
)
from portfolio_snapshots.adapters.ledger import (
    InMemoryTransactionSource,
    LedgerPortfolioRepository,
    TransactionSource,
)
from portfolio_snapshots.adapters.memory import (
    InMemoryMarketData,
    InMemoryPortfolioRepository,
    InMemoryRunLedger,
    InMemoryRunLock,
    InMemorySnapshotRepository,
)
from portfolio_snapshots.adapters.per_ticker import PerTickerMarketData
from portfolio_snapshots.adapters.splits import unadjust_splits
from portfolio_snapshots.adapters.sqlite import SqliteSnapshotStore

__all__ = [
    "DEFAULT_MAX_PRICE_AGE",
    "FX_PRECISION",
    "ISO_4217_MINOR_UNITS",
    "RETURNS_PRECISION",
    "CurrencyMismatchError",
    "DatabaseBusyError",
    "DatabaseUnavailableError",
    "EventHook",
    "FlowTiming",
    "FutureTransactionError",
    "FxQuote",
    "FxRateHistory",
    "FxRates",
    "InMemoryFxRates",
    "InMemoryMarketData",
    "InMemoryPortfolioRepository",
    "InMemoryRunLedger",
    "InMemoryRunLock",
    "InMemorySnapshotRepository",
    "InMemoryTransactionSource",
    "InvalidDateRangeError",
    "InvalidFxRateError",
    "InvalidInputError",
    "InvalidPortfolioError",
    "InvalidPriceError",
    "InvalidSnapshotSeriesError",
    "InvalidTransactionError",
    "Lease",
    "LeaseLost",
    "LeaseLostError",
    "LedgerPortfolioRepository",
    "LedgerReplayer",
    "LedgerState",
    "LoggingEvents",
    "MarketData",
    "MissingDataPolicy",
    "MissingFlowDataError",
    "MissingFxRateError",
    "MissingPriceError",
    "OversoldPositionError",
    "PerTickerMarketData",
    "PeriodReturn",
    "Portfolio",
    "PortfolioDay",
    "PortfolioDayStream",
    "PortfolioFailed",
    "PortfolioHistory",
    "PortfolioNotFoundError",
    "PortfolioRepository",
    "PortfolioSnapshot",
    "PositionValuation",
    "PriceHistory",
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
    "TokenBucket",
    "Transaction",
    "TransactionCurrencyError",
    "TransactionKind",
    "TransactionSource",
    "TransientError",
    "UndefinedReturnError",
    "UnknownTransactionKindError",
    "UnsortedLedgerError",
    "cumulative_time_weighted_return",
    "date_range",
    "exact_context",
    "modified_dietz_return",
    "pairs_with_inverses",
    "parse_portfolio",
    "parse_price_quote",
    "parse_transaction",
    "replay",
    "replay_range",
    "resolve_rate",
    "time_weighted_returns",
    "unadjust_splits",
    "utc_now",
    "validate_transaction",
    "value_portfolio",
]


def __getattr__(name: str) -> str:
    """Read ``__version__`` lazily from the installed distribution's metadata."""
    if name == "__version__":
        from importlib.metadata import version  # noqa: PLC0415 - lazy on purpose

        return version("portfolio-snapshots")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
