"""Observability: the events a run emits, and a default hook that logs them.

A host plugs in logging, metrics or tracing by passing ``events=`` to `SnapshotJob`: any
callable that takes one `RunEvent`. Events are frozen values; match on their type.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Protocol, TypeAlias
from uuid import UUID

from portfolio_snapshots._report import FailureKind, RunReport


@dataclasses.dataclass(frozen=True, slots=True)
class RunStarted:
    """A run took its lease (if any) and started working.

    Attributes:
        kind: ``"daily"``, ``"backfill"``, ...
        key: The run key, or None when the job keeps no ledger.
        start: The first date covered.
        end: The last date covered.
        attempt: 1 for a first run, more for a resumed one.
        fence: The lease's fencing token, or None without a lock.
    """

    kind: str
    key: str | None
    start: dt.date
    end: dt.date
    attempt: int
    fence: int | None


@dataclasses.dataclass(frozen=True, slots=True)
class RunFinished:
    """A run ended, or found it had nothing to do (``report.status`` says which).

    Attributes:
        report: The run's report.
    """

    report: RunReport


@dataclasses.dataclass(frozen=True, slots=True)
class PortfolioFailed:
    """One portfolio-day could not be snapshotted.

    Attributes:
        key: The run key, or None.
        portfolio_id: The portfolio; None when its id, as an adapter handed it, is no UUID.
        snapshot_date: The date.
        error_type: The error's class name.
        message: The error's message.
        attempts: Attempts made.
        kind: The failure's `FailureKind` (``missing_data``, ``transient``, ...).
    """

    key: str | None
    portfolio_id: UUID | None
    snapshot_date: dt.date
    error_type: str
    message: str
    attempts: int
    kind: FailureKind = "error"


@dataclasses.dataclass(frozen=True, slots=True)
class RunProgress:
    """A run's counts so far, after each write of a batch (and after a batch with none).

    The counts only grow; ``succeeded + failed + skipped`` is the number of portfolio-days
    the run is done with, for a progress bar or a metric.

    Attributes:
        key: The run key, or None.
        succeeded: Portfolio-days stored so far.
        failed: Portfolio-days that failed so far.
        skipped: Portfolio-days left alone so far (already stored, or before the portfolio
            existed).
    """

    key: str | None
    succeeded: int
    failed: int
    skipped: int


@dataclasses.dataclass(frozen=True, slots=True)
class RetryScheduled:
    """A call to a port failed transiently and will be tried again after `delay` seconds.

    Attributes:
        key: The run key, or None.
        operation: Which call (``"get_prices"``, ``"upsert_many"``, ...).
        attempt: The 1-based number of the attempt that failed.
        delay: Seconds until the next attempt.
        error_type: The error's class name.
        message: The error's message.
    """

    key: str | None
    operation: str
    attempt: int
    delay: float
    error_type: str
    message: str


@dataclasses.dataclass(frozen=True, slots=True)
class LeaseLost:
    """The run's lease expired or was taken over; the run stops without writing more.

    Attributes:
        key: The run key.
        fence: The fencing token of the lost lease.
        message: Why it was lost.
    """

    key: str
    fence: int
    message: str


@dataclasses.dataclass(frozen=True, slots=True)
class LeaseReleased:
    """A run that held a lease has ended, whichever way, and says what became of the lease.

    The release is retried under the job's `RetryPolicy` and shielded from cancellation; if
    it still fails, the lease is left to expire at its ``expires_at`` (the key is free again
    then) and `released` is False.

    Attributes:
        key: The run key.
        fence: The fencing token of the lease.
        released: Whether the key is free now (False: it frees itself at ``expires_at``).
        message: What happened, with the release's error when it failed.
    """

    key: str
    fence: int
    released: bool
    message: str


@dataclasses.dataclass(frozen=True, slots=True)
class CleanupFailed:
    """A call made after the run's work failed for good; the run's own outcome stands.

    For example the `RunLedger.finish` that records a finished run: the snapshots are
    stored, and a rerun of the key finds them and finishes the record.

    Attributes:
        key: The run key.
        operation: Which call (``"ledger_finish"``).
        error_type: The error's class name.
        message: The error's message.
    """

    key: str | None
    operation: str
    error_type: str
    message: str


@dataclasses.dataclass(frozen=True, slots=True)
class BatchStarted:
    """A batch of portfolios started: its prices are fetched, it is valued and written.

    Emitted in the task that processes the batch, before any of its work; the same task emits
    the matching `BatchFinished`, so a hook may keep per-batch state in a context variable.

    Attributes:
        key: The run key, or None.
        portfolios: Portfolios in the batch (for a backfill, each over the whole range).
    """

    key: str | None
    portfolios: int


@dataclasses.dataclass(frozen=True, slots=True)
class BatchFinished:
    """A batch ended: its portfolio-days are stored or recorded as failed.

    Attributes:
        key: The run key, or None.
        portfolios: Portfolios in the batch.
        error_type: The class name of the error that stopped the batch (a lost lease, a
            cancellation), or None when it ran to its end (failed portfolio-days included).
    """

    key: str | None
    portfolios: int
    error_type: str | None = None


RunEvent: TypeAlias = (
    RunStarted
    | RunFinished
    | PortfolioFailed
    | RetryScheduled
    | LeaseLost
    | LeaseReleased
    | CleanupFailed
    | RunProgress
    | BatchStarted
    | BatchFinished
)


class EventHook(Protocol):
    """Receives every event of a run. Must not raise; it is called inline, so keep it cheap."""

    def __call__(self, event: RunEvent, /) -> None:
        """Observe one event."""


class LoggingEvents:
    """The default hook: logs each event through the standard `logging` module.

    Messages are short sentences; the event's fields are passed as structured ``extra``
    (prefixed ``snapshot_``), ready for a JSON formatter. Levels: INFO for start and finish,
    WARNING for a failed portfolio, a retry or a lost lease, DEBUG for progress.

    Args:
        logger: Where to log; ``logging.getLogger("portfolio_snapshots")`` by default.
    """

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("portfolio_snapshots")

    def __call__(self, event: RunEvent, /) -> None:
        """Log `event` with its fields as ``extra``."""
        if isinstance(event, RunFinished):
            fields = {
                k: v
                for k, v in event.report.as_dict().items()
                if k != "failures"  # each failure was logged on its own
            }
            level, message = logging.INFO, "snapshot run finished"
        else:
            fields = {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
            level, message = _LEVELS[type(event)]
        extra = {f"snapshot_{k}": _plain(v) for k, v in fields.items()}
        extra["snapshot_event"] = type(event).__name__
        self.logger.log(level, "%s: %s", message, _summary(fields), extra=extra)


_LEVELS: dict[type, tuple[int, str]] = {
    RunStarted: (logging.INFO, "snapshot run started"),
    BatchStarted: (logging.DEBUG, "snapshot batch started"),
    BatchFinished: (logging.DEBUG, "snapshot batch finished"),
    PortfolioFailed: (logging.WARNING, "portfolio snapshot failed"),
    RetryScheduled: (logging.WARNING, "retry scheduled"),
    LeaseLost: (logging.WARNING, "run lease lost"),
    LeaseReleased: (logging.INFO, "run lease ended"),
    CleanupFailed: (logging.WARNING, "run clean-up call failed"),
    RunProgress: (logging.DEBUG, "snapshot run progress"),
}


def _plain(value: object) -> object:
    if isinstance(value, (dt.date, UUID)):
        return str(value)
    return value


def _summary(fields: dict[str, object]) -> str:
    return " ".join(f"{k}={_plain(v)}" for k, v in fields.items())
