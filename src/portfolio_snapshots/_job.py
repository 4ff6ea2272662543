"""`SnapshotJob`: the async job that computes and stores snapshots.

It streams portfolios in batches, prices each batch in one call, values them and stores the
snapshots, with retries for transient faults and bounded concurrency. With a `RunLedger` and a
`RunLock` it also gives every run a key, so a run is never done twice at once, a finished run
is not redone, and an interrupted one resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import json
import os
import random
import socket
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, TypeVar

from portfolio_snapshots._calculator import PriceTable, SnapshotCalculator
from portfolio_snapshots._domain import RunState
from portfolio_snapshots._errors import (
    InvalidDateRangeError,
    LeaseLostError,
    PortfolioNotFoundError,
)
from portfolio_snapshots._events import (
    EventHook,
    LeaseLost,
    LoggingEvents,
    PortfolioFailed,
    RetryScheduled,
    RunFinished,
    RunStarted,
)
from portfolio_snapshots._report import RunKind, RunReport, RunStatus, SnapshotFailure
from portfolio_snapshots._retry import RetryPolicy
from portfolio_snapshots._time import date_range, utc_now

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from uuid import UUID

    from portfolio_snapshots._domain import Lease, Portfolio, PortfolioSnapshot
    from portfolio_snapshots._ports import (
        MarketData,
        PortfolioRepository,
        RunLedger,
        RunLock,
        SnapshotRepository,
    )

T = TypeVar("T")

#: One unit of work: a portfolio's state at the end of a date, and that date.
_Item = tuple["Portfolio", dt.date]


def _message(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    notes = getattr(error, "__notes__", None)
    return f"{text} ({'; '.join(notes)})" if notes else text


def params_hash(params: Mapping[str, object]) -> str:
    """Return the stable hash of a run's parameters that the `RunLedger` compares."""
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclasses.dataclass(frozen=True, slots=True)
class _Spec:
    """What a run is: its kind, dates, key and the parameters its key stands for."""

    kind: RunKind
    start: dt.date
    end: dt.date
    key: str
    params: Mapping[str, object]


class _Run:
    """The mutable state of one run: counts, failures, the lease; frozen into a report."""

    __slots__ = (
        "attempt",
        "events",
        "failures",
        "key",
        "lease",
        "renewed_at",
        "resume",
        "retried",
        "skipped",
        "succeeded",
    )

    def __init__(self, key: str | None, events: EventHook) -> None:
        self.key = key
        self.events = events
        self.succeeded = 0
        self.skipped = 0
        self.retried = 0
        self.failures: list[SnapshotFailure] = []
        self.lease: Lease | None = None
        self.renewed_at: dt.datetime | None = None
        self.attempt = 1
        self.resume = False

    @property
    def fence(self) -> int | None:
        return None if self.lease is None else self.lease.fence

    def fail(self, portfolio_id: UUID, day: dt.date, error: BaseException, attempts: int) -> None:
        failure = SnapshotFailure(
            portfolio_id, day, type(error).__name__, _message(error), attempts
        )
        self.failures.append(failure)
        self.events(
            PortfolioFailed(
                self.key,
                portfolio_id,
                day,
                failure.error_type,
                failure.message,
                attempts,
            )
        )


class SnapshotJob:
    """Computes and stores daily portfolio snapshots.

    Args:
        portfolios: Where portfolios come from.
        snapshots: Where snapshots go.
        market_data: Where prices come from.
        calculator: Values portfolios (a default `SnapshotCalculator` otherwise).
        retry: Retry policy for every call to a port (the default `RetryPolicy` otherwise).
        ledger: Remembers run keys, so a succeeded run is not redone and an unfinished one
            resumes; None to keep no ledger (every call does its work).
        lock: Leases run keys, so one holder at a time runs a key, and fences its writes;
            None for no lease (fine for one process with one job at a time).
        lease_ttl: How long a lease lasts without renewal. The job renews it as it makes
            progress (before each batch and each write), so a run that stalls for longer
            loses it; choose well above the time one batch takes.
        events: Receives every event of a run (`LoggingEvents` by default).
        clock: Returns the current time as an aware datetime; "today" is its UTC date.
        sleep: Waits between retries (`asyncio.sleep` by default).
        rng: Source of retry jitter and of the owner id (a fresh `random.Random` by default).
        owner: The id this job holds leases under (host name, process id and a random part by
            default).
        batch_size: Portfolio-days per batch: one price request and one write per batch.
        concurrency: Batches in flight at once.
    """

    def __init__(
        self,
        *,
        portfolios: PortfolioRepository,
        snapshots: SnapshotRepository,
        market_data: MarketData,
        calculator: SnapshotCalculator | None = None,
        retry: RetryPolicy | None = None,
        ledger: RunLedger | None = None,
        lock: RunLock | None = None,
        lease_ttl: dt.timedelta = dt.timedelta(minutes=5),
        events: EventHook | None = None,
        clock: Callable[[], dt.datetime] = utc_now,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        rng: random.Random | None = None,
        owner: str | None = None,
        batch_size: int = 500,
        concurrency: int = 4,
    ) -> None:
        """Wire the job; see the class docstring for the arguments."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if lease_ttl <= dt.timedelta(0):
            raise ValueError(f"lease_ttl must be positive, got {lease_ttl}")
        self.portfolios = portfolios
        self.snapshots = snapshots
        self.market_data = market_data
        self.calculator = calculator or SnapshotCalculator()
        self.retry = retry or RetryPolicy()
        self.ledger = ledger
        self.lock = lock
        self.lease_ttl = lease_ttl
        self.events: EventHook = events or LoggingEvents()
        self.batch_size = batch_size
        self.concurrency = concurrency
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.owner = owner or (
            f"{socket.gethostname()}:{os.getpid()}:"
            f"{uuid.UUID(int=self._rng.getrandbits(128), version=4).hex[:12]}"
        )

    def now(self) -> dt.datetime:
        """Return the clock's current time in UTC.

        Raises:
            ValueError: The clock returned a naive datetime.
        """
        now = self._clock()
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("the job's clock must return an aware datetime, got a naive one")
        return now.astimezone(dt.UTC)

    def today(self) -> dt.date:
        """Return today's date in UTC, from the injected clock (never the machine's zone)."""
        return self.now().date()

    # --- public runs --------------------------------------------------------------------

    async def run_daily(self, on: dt.date | None = None, *, key: str | None = None) -> RunReport:
        """Snapshot every active portfolio for one date.

        Args:
            on: The date to snapshot; today's UTC date by default.
            key: The run key; ``daily:<date>`` by default.

        Returns:
            The run's report; failed portfolios are listed in its failures. With a lock, a
            run whose key another holder is running returns at once with status
            ``already_running``; with a ledger, a key that already succeeded returns its
            stored report with status ``already_succeeded``.

        Raises:
            InvalidDateRangeError: `on` is in the future.
            RunKeyConflictError: `key` was used before with other parameters.
            LeaseLostError: The lease was lost mid-run; the run stopped writing.
        """
        today = self.today()
        day = today if on is None else on
        if day > today:
            raise InvalidDateRangeError("the date is in the future", start=day, end=day)
        spec = _Spec(
            "daily",
            day,
            day,
            key or f"daily:{day.isoformat()}",
            {"kind": "daily", "date": day.isoformat()},
        )

        async def items(_run: _Run) -> AsyncIterator[_Item]:
            async for portfolio in self.portfolios.iter_portfolios(day):
                yield portfolio, day

        return await self._run(spec, items)

    async def backfill(
        self,
        portfolio_id: UUID,
        start: dt.date,
        end: dt.date,
        *,
        only_missing: bool = False,
        key: str | None = None,
    ) -> RunReport:
        """Snapshot one portfolio for every calendar day from `start` to `end` inclusive.

        Each day is valued as it was: the holdings the repository reports for that date, at
        prices on or before that date.

        Args:
            portfolio_id: The portfolio.
            start: The first date.
            end: The last date (today at the latest).
            only_missing: Compute only the dates that have no stored snapshot yet.
            key: The run key; ``backfill:<portfolio>:<start>:<end>`` by default.

        Returns:
            The run's report. Days before the portfolio existed count as skipped.

        Raises:
            InvalidDateRangeError: `start` is after `end`, or `end` is in the future.
            PortfolioNotFoundError: The repository does not know the portfolio; raised before
                any work is done.
            RunKeyConflictError: `key` was used before with other parameters.
            LeaseLostError: The lease was lost mid-run; the run stopped writing.
        """
        self._check_range(start, end)
        probe = _Run(None, self.events)
        known = await self._call(
            "get_portfolio", lambda: self.portfolios.get_portfolio(portfolio_id, end), probe
        )
        if known is None:
            raise PortfolioNotFoundError(portfolio_id)
        spec = _Spec(
            "backfill",
            start,
            end,
            key or f"backfill:{portfolio_id}:{start.isoformat()}:{end.isoformat()}",
            {
                "kind": "backfill",
                "portfolio_id": str(portfolio_id),
                "start": start.isoformat(),
                "end": end.isoformat(),
                "only_missing": only_missing,
            },
        )

        async def items(run: _Run) -> AsyncIterator[_Item]:
            days = date_range(start, end)
            if only_missing or run.resume:
                stored = await self._call(
                    "existing_dates",
                    lambda: self.snapshots.existing_dates(portfolio_id, start, end),
                    run,
                )
                run.skipped += sum(1 for d in days if d in stored)
                days = [d for d in days if d not in stored]
            for day in days:
                portfolio = (
                    known if day == end else await self._portfolio_on(portfolio_id, day, run)
                )
                if portfolio is None:
                    run.skipped += 1
                else:
                    yield portfolio, day

        return await self._run(spec, items)

    # --- the run skeleton ---------------------------------------------------------------

    def _check_range(self, start: dt.date, end: dt.date) -> None:
        today = self.today()
        if start > end:
            raise InvalidDateRangeError("start is after end", start=start, end=end)
        if end > today:
            raise InvalidDateRangeError(
                f"end is in the future (today is {today.isoformat()} UTC)", start=start, end=end
            )

    async def _run(self, spec: _Spec, items: Callable[[_Run], AsyncIterator[_Item]]) -> RunReport:
        """Take the lease, consult the ledger, do the work, record and report it."""
        started = self.now()
        run = _Run(spec.key if self.ledger or self.lock else None, self.events)
        if self.lock is not None:
            lock = self.lock
            run.lease = await self._call(
                "acquire",
                lambda: lock.acquire(spec.key, self.owner, self.lease_ttl, self.now()),
                run,
            )
            if run.lease is None:
                return self._finish(self._report(spec, started, run, status="already_running"))
            run.renewed_at = self.now()
        try:
            if self.ledger is not None:
                ledger = self.ledger
                record = await self._call(
                    "ledger_start",
                    lambda: ledger.start(spec.key, params_hash(spec.params), self.now()),
                    run,
                )
                if record.state is RunState.SUCCEEDED and record.report is not None:
                    stored = RunReport.from_dict(record.report)
                    return self._finish(dataclasses.replace(stored, status="already_succeeded"))
                run.attempt = record.attempts
                run.resume = record.attempts > 1
            self.events(
                RunStarted(spec.kind, run.key, spec.start, spec.end, run.attempt, run.fence)
            )
            await self._run_items(items(run), run)
            report = self._report(spec, started, run)
            if self.ledger is not None:
                ledger = self.ledger
                state = RunState.SUCCEEDED if report.failed == 0 else RunState.FAILED
                await self._ensure_lease(run, force=True)
                await self._call(
                    "ledger_finish",
                    lambda: ledger.finish(spec.key, state, report.as_dict(), self.now()),
                    run,
                )
            return self._finish(report)
        except LeaseLostError as error:
            if run.lease is not None:
                self.events(LeaseLost(run.lease.key, run.lease.fence, str(error)))
            raise
        finally:
            if self.lock is not None and run.lease is not None:
                # Free the key at once, also when cancelled, so a rerun need not wait for the
                # TTL; a lease another holder took meanwhile is left alone by `release`.
                await self.lock.release(run.lease)

    def _finish(self, report: RunReport) -> RunReport:
        self.events(RunFinished(report))
        return report

    def _report(
        self,
        spec: _Spec,
        started: dt.datetime,
        run: _Run,
        *,
        status: RunStatus = "completed",
    ) -> RunReport:
        failed = len(run.failures)
        return RunReport(
            kind=spec.kind,
            start=spec.start,
            end=spec.end,
            started_at=started,
            finished_at=self.now(),
            processed=run.succeeded + failed,
            succeeded=run.succeeded,
            failed=failed,
            skipped=run.skipped,
            retried=run.retried,
            failures=tuple(run.failures),
            key=run.key,
            status=status,
            attempt=run.attempt,
        )

    async def _ensure_lease(self, run: _Run, *, force: bool = False) -> None:
        """Renew the lease once a third of its TTL has passed (or when `force`d).

        Raises:
            LeaseLostError: The lease expired or another holder took the key.
        """
        lease, lock = run.lease, self.lock
        if lease is None or lock is None or run.renewed_at is None:
            return
        now = self.now()
        if not force and now - run.renewed_at < self.lease_ttl / 3:
            if now >= lease.expires_at:
                raise LeaseLostError(lease.key, "the lease expired while the run worked")
            return
        run.lease = await self._call("renew", lambda: lock.renew(lease, self.lease_ttl, now), run)
        run.renewed_at = now

    async def _call(
        self,
        operation: str,
        fn: Callable[[], Awaitable[T]],
        run: _Run,
        attempts: list[int] | None = None,
    ) -> T:
        """Await ``fn()`` under the retry policy, counting and announcing retries.

        `attempts`, when given, is a one-item list updated with the attempts made, so a caller
        can report it when the call fails for good.
        """

        def on_retry(attempt: int, delay: float, error: BaseException) -> None:
            run.retried += 1
            if attempts is not None:
                attempts[0] = attempt + 1
            self.events(
                RetryScheduled(
                    run.key, operation, attempt, delay, type(error).__name__, _message(error)
                )
            )

        return await self.retry.call(fn, sleep=self._sleep, rng=self._rng, on_retry=on_retry)

    async def _portfolio_on(self, portfolio_id: UUID, day: dt.date, run: _Run) -> Portfolio | None:
        attempts = [1]
        try:
            return await self._call(
                "get_portfolio",
                lambda: self.portfolios.get_portfolio(portfolio_id, day),
                run,
                attempts,
            )
        except Exception as error:  # noqa: BLE001 - one failing day must not stop the run
            run.fail(portfolio_id, day, error, attempts[0])
            return None

    # --- batches ------------------------------------------------------------------------

    async def _run_items(self, items: AsyncIterator[_Item], run: _Run) -> None:
        """Cut `items` into batches and process them, at most `concurrency` at a time."""
        slots = asyncio.Semaphore(self.concurrency)

        async def guarded(batch: list[_Item]) -> None:
            try:
                await self._process_batch(batch, run)
            finally:
                slots.release()

        try:
            async with asyncio.TaskGroup() as group:
                batch: list[_Item] = []
                async for item in items:
                    batch.append(item)
                    if len(batch) >= self.batch_size:
                        await slots.acquire()
                        group.create_task(guarded(batch))
                        batch = []
                if batch:
                    await slots.acquire()
                    group.create_task(guarded(batch))
        except ExceptionGroup as group_error:
            # Batches catch their own failures; what escapes is a lost lease or a bug in the
            # job itself. Raise it as itself, not wrapped.
            raise group_error.exceptions[0] from None

    async def _process_batch(self, batch: list[_Item], run: _Run) -> None:
        """Price, value and store one batch; every failure is recorded per portfolio-day."""
        await self._ensure_lease(run)
        if run.resume:
            batch = await self._drop_stored(batch, run)
        by_day: dict[dt.date, list[Portfolio]] = {}
        for portfolio, day in batch:
            by_day.setdefault(day, []).append(portfolio)
        valued: list[PortfolioSnapshot] = []
        for day, portfolios in by_day.items():
            await self._value_day(portfolios, day, run, valued)
        if not valued:
            return
        await self._ensure_lease(run)
        attempts = [1]
        fence = run.fence
        try:
            await self._call(
                "upsert_many",
                lambda: self.snapshots.upsert_many(valued, fence=fence),
                run,
                attempts,
            )
        except LeaseLostError:
            raise
        except Exception as error:  # noqa: BLE001 - fails this batch's portfolios only
            for s in valued:
                run.fail(s.portfolio_id, s.snapshot_date, error, attempts[0])
        else:
            run.succeeded += len(valued)

    async def _drop_stored(self, batch: list[_Item], run: _Run) -> list[_Item]:
        """On a resumed run, leave out the portfolio-days an earlier attempt stored."""
        keys = [(p.id, day) for p, day in batch]
        attempts = [1]
        try:
            stored = await self._call(
                "existing_keys", lambda: self.snapshots.existing_keys(keys), run, attempts
            )
        except Exception as error:  # noqa: BLE001 - fails this batch's portfolios only
            for p, day in batch:
                run.fail(p.id, day, error, attempts[0])
            return []
        run.skipped += len(stored)
        return [(p, day) for p, day in batch if (p.id, day) not in stored]

    async def _value_day(
        self,
        portfolios: list[Portfolio],
        day: dt.date,
        run: _Run,
        valued: list[PortfolioSnapshot],
    ) -> None:
        """Price `portfolios` for `day` in one call and append their snapshots to `valued`."""
        tickers = {t for p in portfolios for t, q in p.holdings.items() if q}
        attempts = [1]
        try:
            quotes = await self._call(
                "get_prices", lambda: self.market_data.get_prices(tickers, day), run, attempts
            )
        except Exception as error:  # noqa: BLE001 - fails this batch's portfolios only
            for p in portfolios:
                run.fail(p.id, day, error, attempts[0])
            return
        snapshots, failed = self.calculator.value_many(portfolios, PriceTable(quotes, day))
        valued.extend(snapshots)
        for p, reason in failed:
            run.fail(p.id, day, reason, 1)
