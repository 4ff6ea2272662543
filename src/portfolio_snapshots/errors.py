"""Every exception portfolio-snapshots raises, in one hierarchy under `SnapshotError`.

- `TransientError` and its subclasses are faults worth retrying (the job's `RetryPolicy`
  retries them, with `ConnectionError` and `TimeoutError`).
- `InvalidInputError` and its subclasses describe bad input; they also derive from
  `ValueError`, and are never retried.
- `DatabaseAccessError` (a refused login, a database or SQLite file that is not there) and
  `SchemaVersionError` are storage faults that asking again cannot cure: never retried.
- `LookupError` subclasses (`PortfolioNotFoundError`, `MissingPriceError`,
  `MissingFxRateError`) say that something asked for is not there.

Each error carries the facts it names (portfolio, date, ticker, field, value) as attributes, so
a host can act on them without parsing messages. The errors a host catches first are also
exported from `portfolio_snapshots` itself.
"""

from __future__ import annotations

from portfolio_snapshots._errors import (
    ConflictingSplitError,
    CurrencyMismatchError,
    DatabaseAccessError,
    DatabaseBusyError,
    DatabaseUnavailableError,
    FutureTransactionError,
    InvalidDateRangeError,
    InvalidFxRateError,
    InvalidInputError,
    InvalidPortfolioError,
    InvalidPriceError,
    InvalidSnapshotSeriesError,
    InvalidTransactionError,
    LeaseLostError,
    MalformedFileError,
    MissingFlowDataError,
    MissingFxRateError,
    MissingPriceError,
    OversoldPositionError,
    PortfolioNotFoundError,
    RunAlreadyRunningError,
    RunKeyConflictError,
    SchemaVersionError,
    SnapshotError,
    SnapshotFailedError,
    TransactionCurrencyError,
    TransientError,
    UndefinedReturnError,
    UnknownTransactionKindError,
    UnsortedLedgerError,
)
from portfolio_snapshots._public import publish as _publish

__all__ = [
    "ConflictingSplitError",
    "CurrencyMismatchError",
    "DatabaseAccessError",
    "DatabaseBusyError",
    "DatabaseUnavailableError",
    "FutureTransactionError",
    "InvalidDateRangeError",
    "InvalidFxRateError",
    "InvalidInputError",
    "InvalidPortfolioError",
    "InvalidPriceError",
    "InvalidSnapshotSeriesError",
    "InvalidTransactionError",
    "LeaseLostError",
    "MalformedFileError",
    "MissingFlowDataError",
    "MissingFxRateError",
    "MissingPriceError",
    "OversoldPositionError",
    "PortfolioNotFoundError",
    "RunAlreadyRunningError",
    "RunKeyConflictError",
    "SchemaVersionError",
    "SnapshotError",
    "SnapshotFailedError",
    "TransactionCurrencyError",
    "TransientError",
    "UndefinedReturnError",
    "UnknownTransactionKindError",
    "UnsortedLedgerError",
]

_publish(__name__, globals(), __all__)
