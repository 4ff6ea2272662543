"""What a run tells while it works: event values, the hook protocols, and a logging hook.

Pass ``events=`` to `SnapshotJob` (any callable that takes one `RunEvent`) to feed logging,
metrics or tracing; `LoggingEvents` is the default. `RetryHook` is the hook a `RetryPolicy`
calls before it sleeps for another attempt.
"""

from __future__ import annotations

from portfolio_snapshots._events import (
    BatchFinished,
    BatchStarted,
    CleanupFailed,
    EventHook,
    LeaseLost,
    LeaseReleased,
    LoggingEvents,
    PortfolioFailed,
    RetryScheduled,
    RunEvent,
    RunFinished,
    RunProgress,
    RunStarted,
)
from portfolio_snapshots._public import publish as _publish
from portfolio_snapshots._retry import RetryHook

__all__ = [
    "BatchFinished",
    "BatchStarted",
    "CleanupFailed",
    "EventHook",
    "LeaseLost",
    "LeaseReleased",
    "LoggingEvents",
    "PortfolioFailed",
    "RetryHook",
    "RetryScheduled",
    "RunEvent",
    "RunFinished",
    "RunProgress",
    "RunStarted",
]

_publish(__name__, globals(), __all__)
