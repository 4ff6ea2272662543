"""`SnapshotJob`: the async job that computes and stores snapshots.

It streams portfolios in batches, prices each batch in one call, values them and stores the
snapshots, with retries for transient faults and bounded concurrency. With a `RunLedger` and a
`RunLock` it also gives every run a key, so a run is never done twice at once, a finished run
is not redone, and an interrupted one resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
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

from portfolio_snapshots._calculator import DEFAULT_MAX_PRICE_AGE, PriceTable, SnapshotCalculator
from portfolio_snapshots._dated import DatedValues
from portfolio_snapshots._domain import MissingDataPolicy, RunState
from portfolio_snapshots._errors import (
    InvalidDateRangeError,
    InvalidInputError,
    LeaseLostError,
    PortfolioNotFoundError,
    RunAlreadyRunningError,
    SnapshotFailedError,
)
from portfolio_snapshots._events import (
    BatchFinished,
    BatchStarted,
    EventHook,
    LeaseLost,
    LoggingEvents,
    PortfolioFailed,
    RetryScheduled,
    RunFinished,
    RunStarted,
)
from portfolio_snapshots._fx import pairs_with_inverses
from portfolio_snapshots._ports import (
    FxRateHistory,
    PortfolioDayStream,
    PortfolioHistory,
    PriceHistory,
)
from portfolio_snapshots._report import (
    RunKind,
    RunReport,
    RunStatus,
    SnapshotFailure,
    failure_kind,
)
from portfolio_snapshots._retry import RetryPolicy
from portfolio_snapshots._time import date_range, utc_now

if TYPE_CHECKING:
    from collections.abc import (
        AsyncIterator,
        Awaitable,
        Callable,
        Iterable,
        Iterator,
        Sequence,
        Sized,
    )
    from uuid import UUID

    from portfolio_snapshots._domain import FxQuote, Lease, Portfolio, PortfolioSnapshot, PriceQuote
    from portfolio_snapshots._ports import (
        FxRates,
        MarketData,
        PortfolioRepository,
        RunLedger,
        RunLock,
        SnapshotRepository,
    )
    from portfolio_snapshots._ratelimit import TokenBucket

T = TypeVar("T")
B = TypeVar("B", bound="Sized")
K = TypeVar("K")
V = TypeVar("V")

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
        "tables",
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
        #: The day's checked closes and rates, shared by the run's batches (see _price_day).
        self.tables: dict[dt.date, PriceTable] = {}

    @property
    def fence(self) -> int | None:
        return None if self.lease is None else self.lease.fence

    def fail(self, portfolio_id: UUID, day: dt.date, error: BaseException, attempts: int) -> None:
        failure = SnapshotFailure(
            portfolio_id,
            day,
            type(error).__name__,
            _message(error),
            attempts,
            failure_kind(error, attempts),
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
                failure.kind,
            )
        )

    def fail_all(
        self, keys: Iterable[tuple[UUID, dt.date]], error: BaseException, attempts: int
    ) -> None:
        """Record `error` for each ``(portfolio_id, day)`` of `keys`."""
        for portfolio_id, day in keys:
            self.fail(portfolio_id, day, error, attempts)


class SnapshotJob:
    """Computes and stores daily portfolio snapshots.

    Args:
        portfolios: Where portfolios come from.
        snapshots: Where snapshots go.
        market_data: Where prices come from. When it also offers `PriceHistory`, backfills
            fetch each batch's closes once for the whole range.
        fx_rates: Where exchange rates come from, for positions priced in another currency
            than their portfolio's (None: such a position fails with `CurrencyMismatchError`).
            When it also offers `FxRateHistory`, backfills fetch rates once per range.
        missing_data: What to do with a close or rate older than `max_price_age`: fail that
            portfolio-day (the default) or carry the last one forward, marked ``stale``.
        max_price_age: How old a close or rate may be (7 days by default; None: any age).
        rate_limit: A `TokenBucket` every market-data and FX request waits for (None: no
            limit), for providers that cap requests per second.
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
        fx_rates: FxRates | None = None,
        missing_data: MissingDataPolicy = MissingDataPolicy.FAIL,
        max_price_age: dt.timedelta | None = DEFAULT_MAX_PRICE_AGE,
        rate_limit: TokenBucket | None = None,
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
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if lease_ttl <= dt.timedelta(0):
            raise ValueError(f"lease_ttl must be positive, got {lease_ttl}")
        self.portfolios = portfolios
        self.snapshots = snapshots
        self.market_data = market_data
        self.fx_rates = fx_rates
        self.missing_data = MissingDataPolicy(missing_data)
        self.max_price_age = max_price_age
        self.rate_limit = rate_limit
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
        self._running_keys: set[str] = set()

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

        async def work(run: _Run) -> None:
            await self._run_batches(self._daily_batches(day, run), self._process_batch, run)

        return await self._run(spec, work)

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

        Each day is valued as it was: the holdings the repository reports for that date (in
        one pass when it offers `PortfolioHistory`), at closes and FX rates on or before that
        date (fetched once for the whole range when the adapters offer `PriceHistory` and
        `FxRateHistory`).

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
        await self._require_known(portfolio_id)
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
        return await self._run(
            spec, self._backfill_work([portfolio_id], start, end, only_missing=only_missing)
        )

    async def backfill_all(
        self,
        start: dt.date,
        end: dt.date,
        *,
        only_missing: bool = False,
        key: str | None = None,
    ) -> RunReport:
        """Snapshot every portfolio active on `end`, for every day from `start` to `end`.

        Portfolios are taken in batches, each batch's holdings replayed for the whole range
        and its prices fetched once per batch of tickers (not once per day), then written in
        batches of ``batch_size``.

        Args:
            start: The first date.
            end: The last date (today at the latest).
            only_missing: Compute only the portfolio-days that have no stored snapshot yet.
            key: The run key; ``backfill-all:<start>:<end>`` by default.

        Returns:
            The run's report.

        Raises:
            InvalidDateRangeError: `start` is after `end`, or `end` is in the future.
            RunKeyConflictError: `key` was used before with other parameters.
            LeaseLostError: The lease was lost mid-run; the run stopped writing.
        """
        self._check_range(start, end)
        spec = _Spec(
            "backfill_all",
            start,
            end,
            key or f"backfill-all:{start.isoformat()}:{end.isoformat()}",
            {
                "kind": "backfill_all",
                "start": start.isoformat(),
                "end": end.isoformat(),
                "only_missing": only_missing,
            },
        )

        async def ids(run: _Run) -> AsyncIterator[UUID]:
            async for item in self._active(end, run):
                if isinstance(item, tuple):
                    yield item[0].id
                else:
                    yield item

        async def work(run: _Run) -> None:
            per_batch = self._portfolios_per_backfill_batch(start, end)
            await self._run_batches(
                _chunks(ids(run), per_batch),
                lambda pids, r: self._backfill_batch(pids, start, end, only_missing, r),
                run,
            )

        return await self._run(spec, work)

    async def recompute_since(
        self, portfolio_id: UUID, day: dt.date, *, key: str | None = None
    ) -> RunReport:
        """Rewrite a portfolio's snapshots from `day` to its latest stored one.

        For when its transactions changed after the fact (a late or corrected trade): every
        stored day from `day` on is valued again, as it was, and replaced. A day that now
        fails keeps its old snapshot and is reported. Nothing stored means nothing to do.

        Args:
            portfolio_id: The portfolio.
            day: The first date to rewrite.
            key: The run key; by default one unique to this call
                (``recompute:<portfolio>:<day>:<end>:<started at>``), so a later change is
                recomputed again.

        Returns:
            The run's report.

        Raises:
            InvalidDateRangeError: `day` is in the future.
            PortfolioNotFoundError: The repository does not know the portfolio.
        """
        today = self.today()
        if day > today:
            raise InvalidDateRangeError("the date is in the future", start=day, end=today)
        await self._require_known(portfolio_id)
        probe = _Run(None, self.events)
        stored = await self._call(
            "existing_dates",
            lambda: self.snapshots.existing_dates(portfolio_id, day, today),
            probe,
        )
        end = max(stored, default=day)
        spec = _Spec(
            "recompute",
            day,
            end,
            key
            or f"recompute:{portfolio_id}:{day.isoformat()}:{end.isoformat()}:"
            f"{self.now().isoformat()}",
            {
                "kind": "recompute",
                "portfolio_id": str(portfolio_id),
                "start": day.isoformat(),
                "end": end.isoformat(),
            },
        )
        if not stored:
            return await self._run(spec, _nothing)
        return await self._run(
            spec, self._backfill_work([portfolio_id], day, end, only_missing=False)
        )

    # --- the run skeleton ---------------------------------------------------------------

    def _check_range(self, start: dt.date, end: dt.date) -> None:
        today = self.today()
        if start > end:
            raise InvalidDateRangeError("start is after end", start=start, end=end)
        if end > today:
            raise InvalidDateRangeError(
                f"end is in the future (today is {today.isoformat()} UTC)", start=start, end=end
            )

    async def _run_unguarded(
        self, spec: _Spec, work: Callable[[_Run], Awaitable[None]]
    ) -> RunReport:
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
            await work(run)
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

    # --- batches ------------------------------------------------------------------------

    async def _run_batches(
        self,
        batches: AsyncIterator[B],
        process: Callable[[B, _Run], Awaitable[None]],
        run: _Run,
    ) -> None:
        """Process `batches`, at most `concurrency` at a time, with backpressure."""
        slots = asyncio.Semaphore(self.concurrency)

        async def guarded(batch: B) -> None:
            try:
                with _announced(run, len(batch)):
                    await process(batch, run)
            finally:
                slots.release()

        try:
            async with asyncio.TaskGroup() as group:
                async for batch in batches:
                    await slots.acquire()
                    group.create_task(guarded(batch))
        except ExceptionGroup as group_error:
            # Batches catch their own failures; what escapes is a lost lease or a bug in the
            # job itself. Raise it as itself, not wrapped.
            raise group_error.exceptions[0] from None

    async def _active(
        self, day: dt.date, run: _Run
    ) -> AsyncIterator[tuple[Portfolio, dt.date] | UUID]:
        """Stream the portfolios active on `day`; ids of those that cannot be built.

        With a repository offering `PortfolioDayStream`, a portfolio whose state cannot be
        built is recorded as a failure of `day` and its id is still yielded (a backfill may
        build its other days); otherwise `iter_portfolios` is used.
        """
        repo = self.portfolios
        if isinstance(repo, PortfolioDayStream):
            async for entry in repo.iter_portfolio_days(day):
                if entry.portfolio is not None:
                    yield entry.portfolio, day
                else:
                    if entry.error is not None:
                        run.fail(entry.portfolio_id, day, entry.error, 1)
                    else:
                        run.skipped += 1
                    yield entry.portfolio_id
        else:
            async for portfolio in repo.iter_portfolios(day):
                yield portfolio, day

    async def _daily_batches(self, day: dt.date, run: _Run) -> AsyncIterator[list[_Item]]:
        """Cut the day's portfolios into batches (inline: this loop sees every portfolio)."""
        size = self.batch_size
        batch: list[_Item] = []
        async for item in self._active(day, run):
            if isinstance(item, tuple):
                batch.append(item)
                if len(batch) >= size:
                    yield batch
                    batch = []
        if batch:
            yield batch

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
            table = await self._price_day(portfolios, day, run)
            if table is not None:
                self._value(portfolios, table, run, valued)
        await self._write(valued, run)

    def _value(
        self,
        portfolios: list[Portfolio],
        table: PriceTable,
        run: _Run,
        valued: list[PortfolioSnapshot],
    ) -> None:
        snapshots, failed = self.calculator.value_many(portfolios, table)
        valued.extend(snapshots)
        for p, reason in failed:
            run.fail(p.id, table.day, reason, 1)

    async def _write(self, valued: list[PortfolioSnapshot], run: _Run) -> None:
        """Store `valued` in writes of at most `batch_size`, each fenced and atomic."""
        for i in range(0, len(valued), self.batch_size):
            chunk = valued[i : i + self.batch_size]
            await self._ensure_lease(run)
            attempts = [1]
            fence = run.fence
            try:
                await self._call(
                    "upsert_many",
                    lambda: self.snapshots.upsert_many(chunk, fence=fence),  # noqa: B023
                    run,
                    attempts,
                )
            except LeaseLostError:
                raise
            except Exception as error:  # noqa: BLE001 - fails this write's portfolios only
                for s in chunk:
                    run.fail(s.portfolio_id, s.snapshot_date, error, attempts[0])
            else:
                run.succeeded += len(chunk)

    async def _drop_stored(self, batch: list[_Item], run: _Run) -> list[_Item]:
        """On a resumed run, leave out the portfolio-days an earlier attempt stored."""
        keys = [(p.id, day) for p, day in batch]
        attempts = [1]
        try:
            stored = await self._call(
                "existing_keys", lambda: self.snapshots.existing_keys(keys), run, attempts
            )
        except Exception as error:  # noqa: BLE001 - fails this batch's portfolios only
            run.fail_all(((p.id, day) for p, day in batch), error, attempts[0])
            return []
        run.skipped += len(stored)
        return [(p, day) for p, day in batch if (p.id, day) not in stored]

    def _table(
        self,
        quotes: Mapping[str, PriceQuote],
        day: dt.date,
        rates: Mapping[tuple[str, str], FxQuote] | None,
    ) -> PriceTable:
        return PriceTable(
            quotes,
            day,
            max_price_age=self.max_price_age,
            carry_forward=self.missing_data is MissingDataPolicy.CARRY_FORWARD,
            fx_rates=rates,
        )

    async def _price_day(
        self, portfolios: list[Portfolio], day: dt.date, run: _Run
    ) -> PriceTable | None:
        """Return the run's price table for `day`, completed for these portfolios.

        Each ticker's close (and each FX pair's rate) is asked for once per run and date: a
        batch asks, in one call, only for the tickers no earlier batch asked for, so every
        portfolio of a run is valued at the same prices.

        Returns None, after recording the failure of every portfolio, if a call fails for good.
        """
        table = run.tables.get(day)
        if table is None:
            table = run.tables[day] = self._table({}, day, None if self.fx_rates is None else {})
        # Zero quantities need no price, but leaving them in costs less than filtering them.
        tickers = {t for p in portfolios for t in p.holdings}
        needed = tickers - table.asked
        attempts = [1]
        try:
            if needed:
                quotes = await self._market(
                    "get_prices", lambda: self.market_data.get_prices(needed, day), run, attempts
                )
                table.add_quotes(quotes, asked=needed)
            await self._complete_rates(table, tickers, portfolios, run, attempts)
        except Exception as error:  # noqa: BLE001 - fails this batch's portfolios only
            run.fail_all(((p.id, day) for p in portfolios), error, attempts[0])
            return None
        return table

    async def _market(
        self,
        operation: str,
        fn: Callable[[], Awaitable[T]],
        run: _Run,
        attempts: list[int] | None = None,
    ) -> T:
        """Like `_call`, for market-data requests: each attempt waits for the rate limit."""
        limit = self.rate_limit
        if limit is None:
            return await self._call(operation, fn, run, attempts)

        async def limited() -> T:
            await limit.acquire()
            return await fn()

        return await self._call(operation, limited, run, attempts)

    # --- backfills ----------------------------------------------------------------------

    async def _require_known(self, portfolio_id: UUID) -> None:
        """Raise `PortfolioNotFoundError` unless the repository knows the portfolio today.

        A portfolio whose state today cannot be built (an invalid ledger) is known: its days
        are reported one by one by the run.
        """
        probe = _Run(None, self.events)
        today = self.today()
        try:
            known = await self._call(
                "get_portfolio", lambda: self.portfolios.get_portfolio(portfolio_id, today), probe
            )
        except InvalidInputError:
            return
        if known is None:
            raise PortfolioNotFoundError(portfolio_id)

    def _portfolios_per_backfill_batch(self, start: dt.date, end: dt.date) -> int:
        days = (end - start).days + 1
        return max(1, min(self.batch_size, self.batch_size * _BACKFILL_DAYS_PER_ITEM // days))

    def _backfill_work(
        self, portfolio_ids: list[UUID], start: dt.date, end: dt.date, *, only_missing: bool
    ) -> Callable[[_Run], Awaitable[None]]:
        async def work(run: _Run) -> None:
            with _announced(run, len(portfolio_ids)):
                await self._backfill_batch(portfolio_ids, start, end, only_missing, run)

        return work

    async def _backfill_batch(
        self,
        portfolio_ids: list[UUID],
        start: dt.date,
        end: dt.date,
        only_missing: bool,
        run: _Run,
    ) -> None:
        """Replay, price once for the range, value and store a batch of portfolios."""
        await self._ensure_lease(run)
        by_day: dict[dt.date, list[Portfolio]] = {}
        for pid in portfolio_ids:
            skip: frozenset[dt.date] = frozenset()
            if only_missing or run.resume:
                attempts = [1]
                try:
                    skip = await self._call(
                        "existing_dates",
                        lambda: self.snapshots.existing_dates(pid, start, end),  # noqa: B023
                        run,
                        attempts,
                    )
                except Exception as error:  # noqa: BLE001 - fails this portfolio's days only
                    for day in date_range(start, end):
                        run.fail(pid, day, error, attempts[0])
                    continue
                run.skipped += len(skip)
            for day, state in await self._states(pid, start, end, skip, run):
                by_day.setdefault(day, []).append(state)
        if not by_day:
            return
        valued: list[PortfolioSnapshot] = []
        if isinstance(self.market_data, PriceHistory) and len(by_day) > 1:
            await self._value_with_history(by_day, run, valued)
        else:
            for day in sorted(by_day):
                table = await self._price_day(by_day[day], day, run)
                if table is not None:
                    self._value(by_day[day], table, run, valued)
        await self._write(valued, run)

    async def _states(
        self,
        portfolio_id: UUID,
        start: dt.date,
        end: dt.date,
        skip: frozenset[dt.date],
        run: _Run,
    ) -> list[tuple[dt.date, Portfolio]]:
        """Return the portfolio's state on each day to value; failures and absences recorded."""
        repo = self.portfolios
        if isinstance(repo, PortfolioHistory):
            return await self._states_from_history(
                repo, portfolio_id, start, end, skip=skip, run=run
            )
        states: list[tuple[dt.date, Portfolio]] = []
        for day in date_range(start, end):
            if day not in skip:
                portfolio = await self._portfolio_on(portfolio_id, day, run)
                if portfolio is not None:
                    states.append((day, portfolio))
        return states

    async def _states_from_history(
        self,
        repo: PortfolioHistory,
        portfolio_id: UUID,
        start: dt.date,
        end: dt.date,
        *,
        skip: frozenset[dt.date],
        run: _Run,
    ) -> list[tuple[dt.date, Portfolio]]:
        """Read the whole range in one pass (retried until it starts yielding)."""
        attempts = [1]
        try:
            days = await self._call(
                "portfolio_history",
                lambda: _collect(repo.portfolio_history(portfolio_id, start, end)),
                run,
                attempts,
            )
        except Exception as error:  # noqa: BLE001 - fails this portfolio's days only
            for day in date_range(start, end):
                if day not in skip:
                    run.fail(portfolio_id, day, error, attempts[0])
            return []
        states: list[tuple[dt.date, Portfolio]] = []
        for entry in days:
            if entry.as_of in skip:
                continue
            if entry.portfolio is not None:
                states.append((entry.as_of, entry.portfolio))
            elif entry.error is not None:
                run.fail(portfolio_id, entry.as_of, entry.error, 1)
            else:
                run.skipped += 1
        return states

    async def _portfolio_on(self, portfolio_id: UUID, day: dt.date, run: _Run) -> Portfolio | None:
        """Return the state on `day`; None (a failure recorded, or a day skipped) otherwise."""
        attempts = [1]
        try:
            portfolio = await self._call(
                "get_portfolio",
                lambda: self.portfolios.get_portfolio(portfolio_id, day),
                run,
                attempts,
            )
        except Exception as error:  # noqa: BLE001 - one failing day must not stop the run
            run.fail(portfolio_id, day, error, attempts[0])
            return None
        if portfolio is None:
            run.skipped += 1
        return portfolio

    async def _value_with_history(
        self,
        by_day: dict[dt.date, list[Portfolio]],
        run: _Run,
        valued: list[PortfolioSnapshot],
    ) -> None:
        """Fetch the batch's closes (and rates) once for the whole range, then value each day."""
        days = sorted(by_day)
        first, last = days[0], days[-1]
        # Unchanged days share one Portfolio value: look at each distinct one once.
        everyone = list({id(p): p for ps in by_day.values() for p in ps}.values())
        tickers = {t for p in everyone for t, q in p.holdings.items() if q}
        attempts = [1]
        try:
            prices = await self._series(
                "prices",
                lambda: self.market_data.get_prices(tickers, first),
                lambda: self.market_data.get_price_history(tickers, first, last),  # type: ignore[attr-defined]
                run,
                attempts,
            )
            rates: DatedValues[tuple[str, str], FxQuote] | None = None
            pairs = _fx_pairs(prices.last_values(), everyone)
            if pairs and self.fx_rates is not None:
                fx, wanted = self.fx_rates, pairs_with_inverses(pairs)
                attempts[0] = 1
                if isinstance(fx, FxRateHistory):
                    rates = await self._series(
                        "rates",
                        lambda: fx.get_rates(wanted, first),
                        lambda: fx.get_rate_history(wanted, first, last),
                        run,
                        attempts,
                    )
        except Exception as error:  # noqa: BLE001 - fails this batch's portfolio-days only
            keys = ((p.id, day) for day in days for p in by_day[day])
            run.fail_all(keys, error, attempts[0])
            return
        for day in days:
            portfolios = by_day[day]
            if rates is None and pairs and self.fx_rates is not None:
                table = await self._price_day_rates(
                    portfolios, day, prices.latest_of_each(day), run
                )
                if table is None:
                    continue
            else:
                table = self._table(
                    prices.latest_of_each(day),
                    day,
                    None if rates is None else rates.latest_of_each(day),
                )
            self._value(portfolios, table, run, valued)

    async def _price_day_rates(
        self,
        portfolios: list[Portfolio],
        day: dt.date,
        quotes: Mapping[str, PriceQuote],
        run: _Run,
    ) -> PriceTable | None:
        """Fetch one day's FX rates for known closes (an FX source without history)."""
        table = self._table(quotes, day, {})
        attempts = [1]
        try:
            await self._complete_rates(table, quotes.keys(), portfolios, run, attempts)
        except Exception as error:  # noqa: BLE001 - fails this day's portfolios only
            run.fail_all(((p.id, day) for p in portfolios), error, attempts[0])
            return None
        return table

    async def _complete_rates(
        self,
        table: PriceTable,
        tickers: Iterable[str],
        portfolios: list[Portfolio],
        run: _Run,
        attempts: list[int],
    ) -> None:
        """Ask, in one call, for the FX rates `table` lacks to convert these portfolios."""
        fx = self.fx_rates
        if fx is None:
            return
        bases = {p.currency for p in portfolios}
        pairs = {(q, b) for q in table.currencies(tickers) for b in bases if q != b}
        wanted = pairs_with_inverses(pairs) - table.asked_pairs
        if wanted:
            attempts[0] = 1
            day = table.day
            rates = await self._market(
                "get_rates", lambda: fx.get_rates(wanted, day), run, attempts
            )
            table.add_rates(rates, asked=wanted)

    async def _series(
        self,
        what: str,
        seed: Callable[[], Awaitable[Mapping[K, V]]],
        history: Callable[[], Awaitable[Mapping[K, Sequence[V]]]],
        run: _Run,
        attempts: list[int],
    ) -> DatedValues[K, V]:
        """Build dated series from the latest value on or before the range and its history."""
        before = await self._market(f"get_{what}", seed, run, attempts)
        attempts[0] = 1
        during = await self._market(f"get_{what[:-1]}_history", history, run, attempts)
        return _series(before, during)

    # --- host conveniences --------------------------------------------------------------

    def forced_key(self, key: str, recompute_id: str | None = None) -> str:
        """Return a run key that recomputes what `key` stands for, even after it succeeded.

        A key that succeeded is not run again: repeating it returns the stored report, with
        its old timestamps. To recompute on purpose (a corrected price, a fixed ledger), run
        under ``<key>:force:<recompute_id>``: a key of its own for the same parameters, so
        the recompute takes its own lease, is remembered like any run, and is itself safe to
        repeat: the same id returns the first recompute's report, a new id recomputes again.
        Writes replace the stored snapshots (upserts), so nothing is duplicated.

        Args:
            key: The key of the run to repeat (``daily:2026-11-27``,
                ``backfill:<portfolio>:<start>:<end>``, ...).
            recompute_id: What tells this recompute from others, such as a client's request
                id; by default the job clock's current time (ISO 8601, UTC), new on every call.

        Returns:
            The key, ``<key>:force:<recompute_id>``.
        """
        return f"{key}:force:{recompute_id or self.now().isoformat()}"

    async def snapshot_one(
        self,
        portfolio_id: UUID,
        day: dt.date | None = None,
        *,
        force: bool = False,
        recompute_id: str | None = None,
    ) -> PortfolioSnapshot:
        """Snapshot one portfolio for one day; return the snapshot or raise that day's error.

        It runs ``backfill(portfolio_id, day, day)`` under that call's default key
        (``backfill:<portfolio>:<day>:<day>``), so it shares the ledger and the lease with
        every other run: a day that already succeeded is read back, not recomputed, unless
        `force` is set.

        Args:
            portfolio_id: The portfolio.
            day: The date; today's UTC date by default.
            force: Recompute even if the day's run already succeeded, under
                `forced_key` of the default key and `recompute_id`.
            recompute_id: With `force`, what tells this recompute from others (see
                `forced_key`).

        Returns:
            The stored snapshot of the day.

        Raises:
            SnapshotFailedError: The day could not be snapshotted; its `kind` says why
                (``missing_data``, ``transient``, ...), its `failure` holds the details.
            RunAlreadyRunningError: Another holder is running the same key right now.
            PortfolioNotFoundError: The repository does not know the portfolio, or it did
                not exist yet on `day`.
            InvalidDateRangeError: `day` is in the future.
            RunKeyConflictError: The forced key was used before with other parameters.
            LeaseLostError: The lease was lost mid-run.
        """
        day = self.today() if day is None else day
        key = f"backfill:{portfolio_id}:{day.isoformat()}:{day.isoformat()}"
        if force:
            key = self.forced_key(key, recompute_id)
        report = await self.backfill(portfolio_id, day, day, key=key)
        if report.status == "already_running":
            raise RunAlreadyRunningError(key)
        if report.failures:
            raise SnapshotFailedError(report.failures[0])
        probe = _Run(None, self.events)
        snapshot = await self._call(
            "get_snapshot", lambda: self.snapshots.get_snapshot(portfolio_id, day), probe
        )
        if snapshot is None:
            error = PortfolioNotFoundError(portfolio_id)
            error.add_note(f"it has no snapshot on {day.isoformat()}: it did not exist yet")
            raise error
        return snapshot

    async def catch_up(
        self, through: dt.date | None = None, *, max_days: int = 7
    ) -> list[RunReport]:
        """Run the daily runs missed while the host was down (call it at start-up).

        Looks back from `through` through the ledger's ``daily:<date>`` records for the newest
        daily run that succeeded, and runs `run_daily` for each later day, oldest first,
        under its usual key: replicas that catch up together, and a scheduler firing the
        same day, share its lease, so each day is done once. A day whose run failed part of
        its portfolios resumes and redoes only those; a day already done is skipped without
        a run. At most `max_days` days are looked at (all of them when none succeeded, as on
        a first deployment).

        Args:
            through: The last day to cover; by default yesterday's UTC date, the day a run
                fired at 00:00 UTC snapshots.
            max_days: How many days back to look, `through` included.

        Returns:
            The reports of the runs made, oldest day first (empty when nothing was missed).

        Raises:
            ValueError: The job has no ledger, so it cannot know which runs succeeded, or
                `max_days` is less than 1.
            InvalidDateRangeError: `through` is in the future.
        """
        ledger = self.ledger
        if ledger is None:
            raise ValueError("catch_up needs a job with a ledger, to know which runs succeeded")
        if max_days < 1:
            raise ValueError(f"max_days must be at least 1, got {max_days}")
        last = self.today() - dt.timedelta(days=1) if through is None else through
        if last > self.today():
            raise InvalidDateRangeError("the date is in the future", start=last, end=last)
        probe = _Run(None, self.events)
        missed: list[dt.date] = []
        for back in range(max_days):
            day = last - dt.timedelta(days=back)
            key = f"daily:{day.isoformat()}"
            record = await self._call("ledger_get", lambda: ledger.get(key), probe)  # noqa: B023
            if record is not None and record.state is RunState.SUCCEEDED:
                break
            missed.append(day)
        return [await self.run_daily(day) for day in reversed(missed)]

    async def _run(self, spec: _Spec, work: Callable[[_Run], Awaitable[None]]) -> RunReport:
        """`_run_unguarded`, one run of a key at a time in this job when it has a lock.

        The lock hands a key it already holds back to the same owner (a new lease), so two
        runs of one key in one job (the scheduler's and an admin's, say) would both run; the
        second returns ``already_running`` instead, as it would on another replica.
        """
        if self.lock is None:
            return await self._run_unguarded(spec, work)
        if spec.key in self._running_keys:
            run = _Run(spec.key, self.events)
            return self._finish(self._report(spec, self.now(), run, status="already_running"))
        self._running_keys.add(spec.key)
        try:
            return await self._run_unguarded(spec, work)
        finally:
            self._running_keys.discard(spec.key)


def _series(before: Mapping[K, V], during: Mapping[K, Sequence[V]]) -> DatedValues[K, V]:
    """Dated values per key from the latest value before a range and the range's values."""
    series: DatedValues[K, V] = DatedValues()
    for key, value in before.items():
        series.put(key, _as_of(value), value)
    for key, values in during.items():
        for value in values:
            series.put(key, _as_of(value), value)
    return series


def _as_of(value: object) -> dt.date:
    return value.as_of  # type: ignore[attr-defined, no-any-return]


def _fx_pairs(
    quotes: Iterable[PriceQuote], portfolios: Iterable[Portfolio]
) -> frozenset[tuple[str, str]]:
    """The conversions the quotes may need: each quote currency into each portfolio's."""
    quoted = {q.currency for q in quotes}
    bases = {p.currency for p in portfolios}
    return frozenset((q, b) for q in quoted for b in bases if q != b)


async def _chunks(items: AsyncIterator[T], size: int) -> AsyncIterator[list[T]]:
    batch: list[T] = []
    async for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


async def _collect(items: AsyncIterator[T]) -> list[T]:
    return [item async for item in items]


async def _nothing(_run: _Run) -> None:
    return None


#: A backfill batch holds about ``batch_size * 20`` portfolio-days: as many portfolios as fit.
_BACKFILL_DAYS_PER_ITEM = 20


@contextlib.contextmanager
def _announced(run: _Run, portfolios: int) -> Iterator[None]:
    """Emit `BatchStarted` and `BatchFinished` around one batch's work, in its task."""
    run.events(BatchStarted(run.key, portfolios))
    error_type: str | None = None
    try:
        yield
    except BaseException as error:
        error_type = type(error).__name__
        raise
    finally:
        run.events(BatchFinished(run.key, portfolios, error_type))
