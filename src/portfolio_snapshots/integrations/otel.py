"""Spans and metrics of every run through the OpenTelemetry API (extra ``otel``).

``SnapshotJob(..., events=OpenTelemetryEvents())`` is all the wiring: the host's configured
tracer and meter providers (the global ones by default) receive

- a span ``portfolio_snapshots.run`` per run (a child of whatever span is current when the run
  starts, such as the HTTP request that triggered it), with one child span
  ``portfolio_snapshots.batch`` per batch; failed portfolio-days, retries and a lost lease
  are events on them;
- counters ``portfolio_snapshots.portfolio_days.stored``, ``.failed`` (by ``error.type`` and
  ``portfolio_snapshots.failure.kind``), ``portfolio_snapshots.retries`` (by operation) and
  ``portfolio_snapshots.runs`` (by kind and status), and the histogram
  ``portfolio_snapshots.run.duration`` in seconds (by kind).

Only the API is used: without an SDK configured, everything is a no-op.
"""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING

try:
    from opentelemetry import metrics, trace
except ImportError as error:  # pragma: no cover - depends on the installed extra
    raise ImportError(
        "portfolio_snapshots.integrations.otel needs the OpenTelemetry API: "
        "pip install 'portfolio-snapshots[otel]'"
    ) from error

from portfolio_snapshots.events import (
    BatchFinished,
    BatchStarted,
    LeaseLost,
    LoggingEvents,
    PortfolioFailed,
    RetryScheduled,
    RunFinished,
    RunStarted,
)

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.util.types import AttributeValue

    from portfolio_snapshots.events import EventHook, RunEvent

__all__ = ["OpenTelemetryEvents"]

_SCOPE = "portfolio_snapshots"
_DEFAULT = LoggingEvents()


class OpenTelemetryEvents:
    """An events hook that records spans and metrics of every run.

    Spans are kept in context variables of the task that runs them: the job emits a run's
    (and a batch's) start and end from the same task, so concurrent runs never mix.

    Args:
        tracer_provider: Where spans go; the global provider by default.
        meter_provider: Where metrics go; the global provider by default.
        also: Another hook that receives every event too: `LoggingEvents` (the job's
            default) unless given; None for none.
    """

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        also: EventHook | None = _DEFAULT,
    ) -> None:
        self._tracer = trace.get_tracer(_SCOPE, tracer_provider=tracer_provider)
        meter = metrics.get_meter(_SCOPE, meter_provider=meter_provider)
        self._stored = meter.create_counter(
            "portfolio_snapshots.portfolio_days.stored",
            unit="{portfolio_day}",
            description="Portfolio-days whose snapshot was stored",
        )
        self._failed = meter.create_counter(
            "portfolio_snapshots.portfolio_days.failed",
            unit="{portfolio_day}",
            description="Portfolio-days that could not be snapshotted",
        )
        self._retries = meter.create_counter(
            "portfolio_snapshots.retries",
            unit="{retry}",
            description="Retries of calls to the ports",
        )
        self._runs = meter.create_counter(
            "portfolio_snapshots.runs", unit="{run}", description="Runs ended, by status"
        )
        self._duration = meter.create_histogram(
            "portfolio_snapshots.run.duration",
            unit="s",
            description="How long completed runs took, by the job's clock",
        )
        self._also = also
        self._run: contextvars.ContextVar[trace.Span | None] = contextvars.ContextVar(
            f"portfolio_snapshots_run_span_{id(self)}", default=None
        )
        self._batch: contextvars.ContextVar[trace.Span | None] = contextvars.ContextVar(
            f"portfolio_snapshots_batch_span_{id(self)}", default=None
        )

    def __call__(self, event: RunEvent, /) -> None:
        """Record `event` as span data and metrics, then pass it on to `also`."""
        if isinstance(event, RunStarted):
            self._start_run(event)
        elif isinstance(event, RunFinished):
            self._finish_run(event)
        elif isinstance(event, BatchStarted):
            self._batch.set(
                self._tracer.start_span(
                    "portfolio_snapshots.batch",
                    context=self._parent(),
                    attributes={"portfolio_snapshots.batch.portfolios": event.portfolios},
                )
            )
        elif isinstance(event, BatchFinished):
            self._finish_batch(event)
        elif isinstance(event, PortfolioFailed):
            attributes: dict[str, AttributeValue] = {
                "error.type": event.error_type,
                "portfolio_snapshots.failure.kind": event.kind,
            }
            self._failed.add(1, attributes)
            self._current().add_event(
                "portfolio failed",
                {
                    **attributes,
                    "portfolio_snapshots.portfolio_id": str(event.portfolio_id),
                    "portfolio_snapshots.date": event.snapshot_date.isoformat(),
                    "portfolio_snapshots.attempts": event.attempts,
                    "exception.message": event.message,
                },
            )
        elif isinstance(event, RetryScheduled):
            self._retries.add(
                1,
                {"portfolio_snapshots.operation": event.operation, "error.type": event.error_type},
            )
            self._current().add_event(
                "retry scheduled",
                {
                    "portfolio_snapshots.operation": event.operation,
                    "portfolio_snapshots.attempt": event.attempt,
                    "portfolio_snapshots.delay_s": event.delay,
                    "error.type": event.error_type,
                },
            )
        elif isinstance(event, LeaseLost):
            self._lease_lost(event)
        if self._also is not None:
            self._also(event)

    def _parent(self) -> Context | None:
        run = self._run.get()
        return None if run is None else trace.set_span_in_context(run)

    def _current(self) -> trace.Span:
        return self._batch.get() or self._run.get() or trace.INVALID_SPAN

    def _start_run(self, event: RunStarted) -> None:
        stale = self._run.get()
        if stale is not None:  # a run in this task ended by an exception: close its span
            stale.set_status(trace.StatusCode.ERROR, "the run ended without finishing")
            stale.end()
        attributes: dict[str, AttributeValue] = {
            "portfolio_snapshots.run.kind": event.kind,
            "portfolio_snapshots.run.start": event.start.isoformat(),
            "portfolio_snapshots.run.end": event.end.isoformat(),
            "portfolio_snapshots.run.attempt": event.attempt,
        }
        if event.key is not None:
            attributes["portfolio_snapshots.run.key"] = event.key
        if event.fence is not None:
            attributes["portfolio_snapshots.run.fence"] = event.fence
        self._run.set(self._tracer.start_span("portfolio_snapshots.run", attributes=attributes))

    def _finish_run(self, event: RunFinished) -> None:
        report = event.report
        span = self._run.get()
        self._run.set(None)
        if span is None:  # nothing started: another holder runs the key, or it succeeded
            span = self._tracer.start_span(
                "portfolio_snapshots.run",
                attributes={"portfolio_snapshots.run.kind": report.kind},
            )
        span.set_attributes(
            {
                "portfolio_snapshots.run.status": report.status,
                "portfolio_snapshots.run.processed": report.processed,
                "portfolio_snapshots.run.succeeded": report.succeeded,
                "portfolio_snapshots.run.failed": report.failed,
                "portfolio_snapshots.run.skipped": report.skipped,
                "portfolio_snapshots.run.retried": report.retried,
            }
        )
        if report.key is not None:
            span.set_attribute("portfolio_snapshots.run.key", report.key)
        if report.failed:
            span.set_status(trace.StatusCode.ERROR, f"{report.failed} portfolio-days failed")
        span.end()
        kind = {"portfolio_snapshots.run.kind": report.kind}
        self._runs.add(1, {**kind, "portfolio_snapshots.run.status": report.status})
        if report.status == "completed":  # a stored report's counts were counted when it ran
            self._stored.add(report.succeeded, kind)
            seconds = (report.finished_at - report.started_at).total_seconds()
            self._duration.record(seconds, kind)

    def _finish_batch(self, event: BatchFinished) -> None:
        span = self._batch.get()
        self._batch.set(None)
        if span is None:
            return
        if event.error_type is not None:
            span.set_status(trace.StatusCode.ERROR, f"stopped by {event.error_type}")
        span.end()

    def _lease_lost(self, event: LeaseLost) -> None:
        span = self._run.get()
        self._run.set(None)
        if span is None:
            return
        span.add_event("lease lost", {"exception.message": event.message})
        span.set_status(trace.StatusCode.ERROR, "the run's lease was lost")
        span.end()
