"""OpenTelemetryEvents with the real OpenTelemetry SDK: spans per run and batch, and metrics."""

import asyncio
import datetime as dt
import uuid
from collections.abc import Collection, Mapping
from decimal import Decimal
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from portfolio_snapshots import (
    InMemoryMarketData,
    InMemoryPortfolioRepository,
    InMemorySnapshotRepository,
    Portfolio,
    PriceQuote,
    SnapshotJob,
    TransientError,
)
from portfolio_snapshots.adapters.memory import InMemoryRunLedger, InMemoryRunLock
from portfolio_snapshots.events import RunEvent, RunFinished
from portfolio_snapshots.integrations.otel import OpenTelemetryEvents
from portfolio_snapshots.testing import FakeClock, instant_retry

NOW = dt.datetime(2026, 11, 27, 0, 0, 5, tzinfo=dt.UTC)
DAY = dt.date(2026, 11, 26)
GOOD = [uuid.UUID(int=i) for i in (1, 2)]
BAD = uuid.UUID(int=9)  # holds a ticker without a price


class Telemetry:
    """An SDK tracer and meter provider that keep everything in memory."""

    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def hook(self, **options: Any) -> OpenTelemetryEvents:
        return OpenTelemetryEvents(
            tracer_provider=self.tracer_provider, meter_provider=self.meter_provider, **options
        )

    def finished(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans.get_finished_spans() if s.name == name]

    def points(self, metric: str) -> list[tuple[dict[str, object], Any]]:
        data = self.reader.get_metrics_data()
        assert data is not None
        return [
            (dict(point.attributes or {}), point)
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for found in scope.metrics
            if found.name == metric
            for point in found.data.data_points
        ]

    def total(self, metric: str) -> int:
        return sum(point.value for _, point in self.points(metric))


class SlowFlakyMarket:
    """Fails its first request transiently; each request moves the job's clock 2 seconds."""

    def __init__(self, inner: InMemoryMarketData, clock: FakeClock) -> None:
        self.inner = inner
        self.clock = clock
        self.calls = 0

    async def get_prices(
        self, tickers: Collection[str], as_of: dt.date
    ) -> Mapping[str, PriceQuote]:
        self.calls += 1
        self.clock.advance(dt.timedelta(seconds=2))
        if self.calls == 1:
            raise TransientError("provider busy")
        return await self.inner.get_prices(tickers, as_of)


def make_job(events: Any, *, flaky: bool = False, **options: Any) -> SnapshotJob:
    market = InMemoryMarketData()
    market.add_price("AAA", DAY, Decimal("10.00"))
    clock = FakeClock(NOW)
    return SnapshotJob(
        portfolios=InMemoryPortfolioRepository(
            [Portfolio(p, Decimal(1), {"AAA": Decimal(1)}) for p in GOOD]
            + [Portfolio(BAD, Decimal(1), {"NOPE": Decimal(1)})]
        ),
        snapshots=InMemorySnapshotRepository(),
        market_data=SlowFlakyMarket(market, clock) if flaky else market,
        clock=clock,
        retry=instant_retry(),
        events=events,
        **options,
    )


def test_a_run_is_a_span_with_one_child_span_per_batch() -> None:
    """Each run records a run span, each batch a child of it; failures are span events."""
    telemetry = Telemetry()
    job = make_job(telemetry.hook(also=None), batch_size=1)
    asyncio.run(job.run_daily(DAY))
    (run,) = telemetry.finished("portfolio_snapshots.run")
    batches = telemetry.finished("portfolio_snapshots.batch")
    assert len(batches) == 3
    assert run.context is not None
    assert all(b.parent is not None and b.parent.span_id == run.context.span_id for b in batches)
    assert run.attributes is not None
    assert run.attributes["portfolio_snapshots.run.kind"] == "daily"
    assert run.attributes["portfolio_snapshots.run.succeeded"] == 2
    assert run.attributes["portfolio_snapshots.run.failed"] == 1
    assert run.status.status_code is StatusCode.ERROR
    failed = [e for b in batches for e in b.events if e.name == "portfolio failed"]
    assert len(failed) == 1
    assert failed[0].attributes is not None
    assert failed[0].attributes["portfolio_snapshots.portfolio_id"] == str(BAD)
    assert failed[0].attributes["portfolio_snapshots.failure.kind"] == "missing_data"


def test_a_run_inside_a_host_span_is_its_child() -> None:
    """A run started while the host's request span is current nests under it."""
    telemetry = Telemetry()
    job = make_job(telemetry.hook(also=None))
    tracer = telemetry.tracer_provider.get_tracer("host")

    async def request() -> None:
        with tracer.start_as_current_span("POST /snapshots/daily"):
            await job.run_daily(DAY)

    asyncio.run(request())
    (run,) = telemetry.finished("portfolio_snapshots.run")
    (host,) = telemetry.finished("POST /snapshots/daily")
    assert host.context is not None
    assert run.parent is not None
    assert run.parent.span_id == host.context.span_id


def test_metrics_count_stored_failed_retries_and_the_run_duration() -> None:
    """Counters add stored and failed portfolio-days and retries; the duration is recorded."""
    telemetry = Telemetry()
    job = make_job(telemetry.hook(also=None), flaky=True)
    asyncio.run(job.run_daily(DAY))
    assert telemetry.total("portfolio_snapshots.portfolio_days.stored") == 2
    ((failed_attributes, failed),) = telemetry.points("portfolio_snapshots.portfolio_days.failed")
    assert failed.value == 1
    assert failed_attributes == {
        "error.type": "MissingPriceError",
        "portfolio_snapshots.failure.kind": "missing_data",
    }
    ((retry_attributes, retries),) = telemetry.points("portfolio_snapshots.retries")
    assert (retry_attributes["portfolio_snapshots.operation"], retries.value) == ("get_prices", 1)
    ((_, duration),) = telemetry.points("portfolio_snapshots.run.duration")
    assert (duration.count, duration.sum) == (1, 4.0)  # two requests, 2 s each on the job's clock


def test_a_repeated_run_is_counted_as_a_run_but_its_days_are_not_counted_twice() -> None:
    """An already-succeeded run adds to the runs counter by status, not to stored days."""
    telemetry = Telemetry()
    job = make_job(telemetry.hook(also=None), ledger=InMemoryRunLedger(), lock=InMemoryRunLock())
    job.portfolios = InMemoryPortfolioRepository(
        [Portfolio(p, Decimal(1), {"AAA": Decimal(1)}) for p in GOOD]
    )
    asyncio.run(job.run_daily(DAY))
    asyncio.run(job.run_daily(DAY))
    assert telemetry.total("portfolio_snapshots.portfolio_days.stored") == 2
    statuses = {
        attributes["portfolio_snapshots.run.status"]: point.value
        for attributes, point in telemetry.points("portfolio_snapshots.runs")
    }
    assert statuses == {"completed": 1, "already_succeeded": 1}
    assert len(telemetry.finished("portfolio_snapshots.run")) == 2


def test_concurrent_runs_keep_their_own_spans() -> None:
    """Two runs at once in one process: each batch span is the child of its own run's span."""
    telemetry = Telemetry()
    hook = telemetry.hook(also=None)
    jobs = [make_job(hook, batch_size=1, concurrency=2) for _ in range(2)]

    async def both() -> None:
        await asyncio.gather(jobs[0].run_daily(DAY), jobs[1].backfill(GOOD[0], DAY, DAY))

    asyncio.run(both())
    runs = telemetry.finished("portfolio_snapshots.run")
    assert len(runs) == 2
    run_ids = {r.context.span_id for r in runs if r.context is not None}
    batches = telemetry.finished("portfolio_snapshots.batch")
    assert len(batches) == 4
    by_parent = [b.parent.span_id for b in batches if b.parent is not None]
    assert set(by_parent) == run_ids
    assert sorted(by_parent.count(i) for i in run_ids) == [1, 3]


def test_the_hook_passes_every_event_on() -> None:
    """Every event also reaches the `also` hook, so logging keeps working beside tracing."""
    telemetry = Telemetry()
    seen: list[RunEvent] = []
    job = make_job(telemetry.hook(also=seen.append))
    asyncio.run(job.run_daily(DAY))
    assert isinstance(seen[-1], RunFinished)
    assert len(seen) >= 4
