"""What a run did: counts, failures and timing, as frozen values."""

from __future__ import annotations

import builtins
import dataclasses
import datetime as dt
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

from portfolio_snapshots import _errors
from portfolio_snapshots._errors import (
    InvalidInputError,
    MissingFxRateError,
    MissingPriceError,
    PortfolioNotFoundError,
    TransientError,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

RunKind = Literal["daily", "backfill", "backfill_all", "recompute"]

#: How a run ended: it did its work (``completed``); another holder was running the same key
#: (``already_running``: nothing done); or the key had already succeeded (``already_succeeded``:
#: the stored report is returned and nothing is done).
RunStatus = Literal["completed", "already_running", "already_succeeded"]

#: What became of a run's lease when the run ended (see `RunReport.lease`).
LeaseOutcome = Literal["released", "left_to_expire"]

#: Why a portfolio-day failed, for code that acts on it (an HTTP status, an alert): bad data
#: (``invalid_input``: a negative quantity, a float, a bad quote; the host must fix the data),
#: a price or FX rate that is not there (``missing_data``), a fault that may pass on a later
#: attempt (``transient``: the store or the provider unreachable), a portfolio the repository
#: does not know (``not_found``), or anything else (``error``: most likely a bug).
FailureKind = Literal["invalid_input", "missing_data", "transient", "not_found", "error"]

_TRANSIENT_TYPES = (TransientError, ConnectionError, TimeoutError)


def failure_kind(error: BaseException, attempts: int = 1) -> FailureKind:
    """Return the `FailureKind` of `error`, which failed a portfolio-day after `attempts`.

    An error the job's retry policy retried (``attempts > 1``) counts as transient, whatever
    its type, so adapters' own transient errors declared in a `RetryPolicy` are classified too.
    """
    return _kind_of_type(type(error), attempts)


def _kind_of_type(error_type: type[BaseException], attempts: int) -> FailureKind:
    if issubclass(error_type, InvalidInputError):
        return "invalid_input"
    if issubclass(error_type, (MissingPriceError, MissingFxRateError)):
        return "missing_data"
    if issubclass(error_type, _TRANSIENT_TYPES) or attempts > 1:
        return "transient"
    if issubclass(error_type, PortfolioNotFoundError):
        return "not_found"
    return "error"


def _kind_of_name(error_type: str, attempts: int) -> FailureKind:
    """The kind of a failure stored before kinds were recorded, from its error's class name."""
    known = getattr(_errors, error_type, None) or getattr(builtins, error_type, None)
    if isinstance(known, type) and issubclass(known, BaseException):
        return _kind_of_type(known, attempts)
    return "transient" if attempts > 1 else "error"


@dataclasses.dataclass(frozen=True, slots=True)
class SnapshotFailure:
    """One portfolio-day that could not be snapshotted, and why.

    Attributes:
        portfolio_id: The portfolio; None when an adapter handed over a portfolio whose id is
            not a UUID (the message quotes what it was).
        snapshot_date: The date.
        error_type: The class name of the error (``"MissingPriceError"``, ...).
        message: The error's message; it names the portfolio, the date and the ticker.
        attempts: How many attempts were made before giving up (1 when not retried).
        kind: Why, for code: ``invalid_input``, ``missing_data``, ``transient``,
            ``not_found`` or ``error`` (see `FailureKind`): an HTTP endpoint answers 422 for
            the first two and 503 for ``transient`` without matching messages.
    """

    portfolio_id: UUID | None
    snapshot_date: dt.date
    error_type: str
    message: str
    attempts: int
    kind: FailureKind = "error"

    def as_dict(self) -> dict[str, object]:
        """Return the failure as JSON-friendly values (ids and dates as strings)."""
        return {
            "portfolio_id": None if self.portfolio_id is None else str(self.portfolio_id),
            "snapshot_date": self.snapshot_date.isoformat(),
            "error_type": self.error_type,
            "message": self.message,
            "attempts": self.attempts,
            "kind": self.kind,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class RunReport:
    """The outcome of one run of `SnapshotJob`.

    ``processed == succeeded + failed``: every portfolio-day the run tried to value.
    ``skipped`` counts the portfolio-days it did not need to try (already stored with
    ``only_missing``, or the portfolio did not exist yet on that date).

    Attributes:
        kind: ``"daily"`` or ``"backfill"``.
        start: The first date covered.
        end: The last date covered.
        started_at: When the run started (UTC, from the job's clock).
        finished_at: When the run finished (UTC, from the job's clock).
        processed: Portfolio-days valued or attempted.
        succeeded: Portfolio-days whose snapshot is stored.
        failed: Portfolio-days that could not be snapshotted.
        skipped: Portfolio-days left alone.
        retried: Retries made of calls to the ports, over the whole run.
        failures: One entry per failed portfolio-day.
        key: The run key, when the job keeps a `RunLedger` (None otherwise).
        status: ``completed``, ``already_running`` or ``already_succeeded``.
        attempt: 1 for a first run of the key, more when it resumed an unfinished one.
        lease: What became of the run's lease: ``"released"`` (the key is free),
            ``"left_to_expire"`` (the release failed for good; the key frees itself at the
            lease's ``expires_at``), or None when the run held no lease. Known only after the
            run's record is stored, so a report a `RunLedger` returns has None.
        parts: The reports this one was merged from by `merge_reports` (one per shard, say);
            empty for the report of a single run.
    """

    kind: RunKind
    start: dt.date
    end: dt.date
    started_at: dt.datetime
    finished_at: dt.datetime
    processed: int
    succeeded: int
    failed: int
    skipped: int
    retried: int
    failures: tuple[SnapshotFailure, ...] = ()
    key: str | None = None
    status: RunStatus = "completed"
    attempt: int = 1
    lease: LeaseOutcome | None = None
    parts: tuple[RunReport, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether every portfolio-day tried was stored."""
        return self.failed == 0

    def as_dict(self) -> dict[str, object]:
        """Return the report as JSON-friendly values, for logs and HTTP responses."""
        return {
            "kind": self.kind,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "processed": self.processed,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "skipped": self.skipped,
            "retried": self.retried,
            "failures": [f.as_dict() for f in self.failures],
            "key": self.key,
            "status": self.status,
            "attempt": self.attempt,
            "lease": self.lease,
            "parts": [p.as_dict() for p in self.parts],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunReport:
        """Rebuild a report from `as_dict` output (for example one stored by a `RunLedger`).

        Raises:
            ValueError: `data` is not a report's dict.
        """
        try:
            return cls(
                kind=data["kind"],
                start=dt.date.fromisoformat(data["start"]),
                end=dt.date.fromisoformat(data["end"]),
                started_at=dt.datetime.fromisoformat(data["started_at"]),
                finished_at=dt.datetime.fromisoformat(data["finished_at"]),
                processed=int(data["processed"]),
                succeeded=int(data["succeeded"]),
                failed=int(data["failed"]),
                skipped=int(data["skipped"]),
                retried=int(data["retried"]),
                failures=tuple(
                    SnapshotFailure(
                        None if f["portfolio_id"] is None else UUID(f["portfolio_id"]),
                        dt.date.fromisoformat(f["snapshot_date"]),
                        str(f["error_type"]),
                        str(f["message"]),
                        int(f["attempts"]),
                        f.get("kind") or _kind_of_name(str(f["error_type"]), int(f["attempts"])),
                    )
                    for f in data["failures"]
                ),
                key=data.get("key"),
                status=data.get("status", "completed"),
                attempt=int(data.get("attempt", 1)),
                lease=data.get("lease"),
                parts=tuple(cls.from_dict(p) for p in data.get("parts", ())),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"not a run report: {error!r}") from error
