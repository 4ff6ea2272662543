"""`SnapshotJob`: the async job that computes and stores snapshots.

It streams portfolios in batches, has each batch priced by the run's `Pricing`, values them
with the calculator and stores the snapshots, with retries for transient faults and bounded
concurrency. With a `RunLedger` and a `RunLock` it also gives every run a key, so a run is
never done twice at once, a finished run is not redone, and an interrupted one resumes where
it stopped.
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
from uuid import UUID

from portfolio_snapshots._calculator import DEFAULT_MAX_PRICE_AGE, SnapshotCalculator
from portfolio_snapshots._domain import MissingDataPolicy, Portfolio, RunState
from portfolio_snapshots._errors import (
    InvalidDateRangeError,
    InvalidInputError,
    InvalidPortfolioError,
    LeaseLostError,
    PortfolioNotFoundError,
    RunAlreadyRunningError,
    SnapshotFailedError,
)
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
    RunFinished,
    RunProgress,
    RunStarted,
)
from portfolio_snapshots._idset import IdSet
from portfolio_snapshots._parsing import date_argument, portfolio_problem
from portfolio_snapshots._ports import PortfolioDayStream, PortfolioHistory, ShardedPortfolios
from portfolio_snapshots._pricing import Pricing
from portfolio_snapshots._report import (
    LeaseOutcome,
    RunKind,
    RunReport,
    RunStatus,
    SnapshotFailure,
    failure_kind,
)
from portfolio_snapshots._retry import GaveUp, RetryPolicy, attempt
from portfolio_snapshots._shards import Shard
from portfolio_snapshots._time import date_range, utc_now

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sized

    from portfolio_snapshots._calculator import PriceTable
    from portfolio_snapshots._domain import Lease, PortfolioDay, PortfolioSnapshot
    from portfolio_snapshots._ports import (
        FxRates,
        MarketData,
        PortfolioRepository,
        RunLedger,
        RunLock,
        SnapshotRepository,
    )
    from portfolio_snapshots._ratelimit import TokenBucket
    from portfolio_snapshots._retry import Outcome, RetryHook

T = TypeVar("T")
B = TypeVar("B", bound="Sized")
X = TypeVar("X")


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
    """The mutable state of one run: counts, failures, the lease; frozen into a report.

    It also makes the run's calls to the ports, under the job's retry policy, counting and
    announcing every retry.
    """

    __slots__ = (
        "_retry",
        "_rng",
        "_sleep",
        "currencies",
        "events",
        "failures",
        "key",
        "lease",
        "renewed_at",
        "resume",
        "retried",
        "run_attempt",
        "skipped",
        "succeeded",
    )

    def __init__(
        self,
        key: str | None,
        events: EventHook,
        retry: RetryPolicy,
        sleep: Callable[[float], Awaitable[object]],
        rng: random.Random,
    ) -> None:
        self.key = key
        self.events = events
        self._retry = retry
        self._sleep = sleep
        self._rng = rng
        self.succeeded = 0
        self.skipped = 0
        self.retried = 0
        self.failures: list[SnapshotFailure] = []
        self.lease: Lease | None = None
        self.renewed_at: dt.datetime | None = None
        #: Which attempt at the run key this is (1 without a ledger).
        self.run_attempt = 1
        self.resume = False
        #: Currency codes of this run's portfolios already found well-formed.
        self.currencies: set[str] = set()

    @property
    def fence(self) -> int | None:
        return None if self.lease is None else self.lease.fence

    async def call(self, operation: str, fn: Callable[[], Awaitable[T]]) -> T:
        """Await ``fn()`` under the retry policy; raise its error if it fails for good."""
        return await self._retry.call(
            fn, sleep=self._sleep, rng=self._rng, on_retry=self.on_retry(operation)
        )

    async def attempt(self, operation: str, fn: Callable[[], Awaitable[T]]) -> Outcome[T]:
        """Await ``fn()`` under the retry policy; return its value or error, and the attempts."""
        return await attempt(
            self._retry, fn, sleep=self._sleep, rng=self._rng, on_retry=self.on_retry(operation)
        )

    def on_retry(self, operation: str) -> RetryHook:
        def on_retry(failed: int, delay: float, error: BaseException, /) -> None:
            self.retried += 1
            self.events(
                RetryScheduled(
                    self.key, operation, failed, delay, type(error).__name__, _message(error)
                )
            )

        return on_retry

    def fail(
        self, portfolio_id: UUID | None, day: dt.date, error: BaseException, attempts: int
    ) -> None:
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

    def progress(self) -> None:
        """Tell the counts so far (a `RunProgress` event)."""
        self.events(RunProgress(self.key, self.succeeded, len(self.failures), self.skipped))


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
        #: Releases still running after their run was cancelled (kept so they finish).
        self._cleanups: set[asyncio.Future[LeaseOutcome]] = set()
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
            TypeError: The clock returned something other than a datetime.
            ValueError: The clock returned a naive datetime.
        """
        now: object = self._clock()
        if not isinstance(now, dt.datetime):
            raise TypeError(
                f"the job's clock must return an aware datetime, got {type(now).__name__} {now!r}"
            )
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError(
                f"the job's clock must return an aware datetime, got a naive one ({now!r}): "
                "use datetime.now(datetime.UTC)"
            )
        return now.astimezone(dt.UTC)

    def today(self) -> dt.date:
        """Return today's date in UTC, from the injected clock (never the machine's zone)."""
        return self.now().date()

    # --- public runs --------------------------------------------------------------------

    async def run_daily(
        self, on: dt.date | None = None, *, shard: Shard | None = None, key: str | None = None
    ) -> RunReport:
        """Snapshot every active portfolio for one date (or those of one shard).

        Args:
            on: The date to snapshot; today's UTC date by default.
            shard: Only the portfolios of this `Shard` (None: all).
            key: The run key; ``daily:<date>`` by default, and for a shard that key with
                ``/shard-<index>-of-<count>`` appended (`Shard.key`). A key given is used as
                it is: give each shard its own (``shard.key(parent)``).

        Returns:
            The run's report; failed portfolios are listed in its failures. With a lock, a
            run whose key another holder is running returns at once with status
            ``already_running``; with a ledger, a key that already succeeded returns its
            stored report with status ``already_succeeded``.

        Raises:
            InvalidInputError: `on` is not a `datetime.date` (a datetime is refused), or
                `shard` is not a `Shard`.
            InvalidDateRangeError: `on` is in the future.
            RunKeyConflictError: `key` was used before with other parameters.
            LeaseLostError: The lease was lost mid-run; the run stopped writing.
        """
        today = self.today()
        day = today if on is None else date_argument("on", on)
        if day > today:
            raise InvalidDateRangeError("the date is in the future", start=day, end=day)
        _shard_argument(shard)
        spec = _sharded(
            _Spec(
                "daily",
                day,
                day,
                self.daily_key(day),
                {"kind": "daily", "date": day.isoformat()},
            ),
            shard,
            key,
        )

        async def work(run: _Run, pricing: Pricing) -> None:
            await self._run_batches(
                self._active_portfolios(day, run, self.batch_size, shard),
                lambda portfolios: self._daily_batch(portfolios, day, pricing, run),
                run,
            )

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
            InvalidInputError: `portfolio_id` is not a UUID, or a date is not a
                `datetime.date` (a datetime is refused).
            InvalidDateRangeError: `start` is after `end`, or `end` is in the future.
            PortfolioNotFoundError: The repository does not know the portfolio; raised before
                any work is done.
            RunKeyConflictError: `key` was used before with other parameters.
            LeaseLostError: The lease was lost mid-run; the run stopped writing.
        """
        _id_argument(portfolio_id)
        self._check_range(start, end)
        await self._require_known(portfolio_id)
        spec = _Spec(
            "backfill",
            start,
            end,
            key or self.backfill_key(portfolio_id, start, end, only_missing=only_missing),
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
        shard: Shard | None = None,
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
            shard: Only the portfolios of this `Shard` (None: all).
            key: The run key; ``backfill-all:<start>:<end>`` by default, and for a shard that
                key with ``/shard-<index>-of-<count>`` appended (`Shard.key`). A key given is
                used as it is: give each shard its own (``shard.key(parent)``).

        Returns:
            The run's report.

        Raises:
            InvalidInputError: A date is not a `datetime.date` (a datetime is refused), or
                `shard` is not a `Shard`.
            InvalidDateRangeError: `start` is after `end`, or `end` is in the future.
            RunKeyConflictError: `key` was used before with other parameters.
            LeaseLostError: The lease was lost mid-run; the run stopped writing.
        """
        self._check_range(start, end)
        _shard_argument(shard)
        spec = _sharded(
            _Spec(
                "backfill_all",
                start,
                end,
                self.backfill_all_key(start, end, only_missing=only_missing),
                {
                    "kind": "backfill_all",
                    "start": start.isoformat(),
                    "end": end.isoformat(),
                    "only_missing": only_missing,
                },
            ),
            shard,
            key,
        )

        async def work(run: _Run, pricing: Pricing) -> None:
            per_batch = self._portfolios_per_backfill_batch(start, end)
            await self._run_batches(
                self._active_ids(end, run, per_batch, shard),
                lambda pids: self._backfill_batch(
                    pids, start, end, pricing, run, only_missing=only_missing
                ),
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
            InvalidInputError: `portfolio_id` is not a UUID, or `day` is not a
                `datetime.date` (a datetime is refused).
            InvalidDateRangeError: `day` is in the future.
            PortfolioNotFoundError: The repository does not know the portfolio.
        """
        _id_argument(portfolio_id)
        today = self.today()
        if date_argument("day", day) > today:
            raise InvalidDateRangeError("the date is in the future", start=day, end=today)
        await self._require_known(portfolio_id)
        stored = await self._new_run(None).call(
            "existing_dates", lambda: self.snapshots.existing_dates(portfolio_id, day, today)
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
        date_argument("start", start)
        date_argument("end", end)
        today = self.today()
        if start > end:
            raise InvalidDateRangeError("start is after end", start=start, end=end)
        if end > today:
            raise InvalidDateRangeError(
                f"end is in the future (today is {today.isoformat()} UTC)", start=start, end=end
            )

    def _new_run(self, key: str | None) -> _Run:
        return _Run(key, self.events, self.retry, self._sleep, self._rng)

    def _pricing(self, run: _Run) -> Pricing:
        """Return a pricing component for `run`: its requests are retried and counted by it."""
        return Pricing(
            self.market_data,
            self.fx_rates,
            call=run.attempt,
            rate_limit=self.rate_limit,
            max_price_age=self.max_price_age,
            carry_forward=self.missing_data is MissingDataPolicy.CARRY_FORWARD,
            is_transient=self.retry.is_transient,
        )

    async def _run_unguarded(
        self, spec: _Spec, work: Callable[[_Run, Pricing], Awaitable[None]]
    ) -> RunReport:
        """Take the lease, consult the ledger, do the work, record and report it.

        However the run ends (done, failed, cancelled, lease lost), a lease it took is
        released, retried and shielded from cancellation, or left to expire; `LeaseReleased`
        says which, and so does the returned report's ``lease``.
        """
        started = self.now()
        run = self._new_run(spec.key if self.ledger or self.lock else None)
        if self.lock is not None:
            lock = self.lock
            run.lease = await run.call(
                "acquire", lambda: lock.acquire(spec.key, self.owner, self.lease_ttl, self.now())
            )
            if run.lease is None:
                return self._finish(self._report(spec, started, run, status="already_running"))
            run.renewed_at = self.now()
        lease: LeaseOutcome | None = None
        try:
            report = await self._work(spec, started, run, work)
        except LeaseLostError as error:
            if run.lease is not None:
                self.events(LeaseLost(run.lease.key, run.lease.fence, str(error)))
            raise
        finally:
            if self.lock is not None and run.lease is not None:
                # Free the key at once, also when cancelled, so a rerun need not wait for the
                # TTL; a lease another holder took meanwhile is left alone by `release`.
                lease = await self._release(self.lock, run.lease, run)
        return self._finish(dataclasses.replace(report, lease=lease))

    async def _work(
        self,
        spec: _Spec,
        started: dt.datetime,
        run: _Run,
        work: Callable[[_Run, Pricing], Awaitable[None]],
    ) -> RunReport:
        """Consult the ledger, do the work, and record the outcome; return the report."""
        if self.ledger is not None:
            ledger = self.ledger
            record = await run.call(
                "ledger_start",
                lambda: ledger.start(spec.key, params_hash(spec.params), self.now()),
            )
            if record.state is RunState.SUCCEEDED and record.report is not None:
                stored = RunReport.from_dict(record.report)
                return dataclasses.replace(stored, status="already_succeeded")
            run.run_attempt = record.attempts
            run.resume = record.attempts > 1
        self.events(
            RunStarted(spec.kind, run.key, spec.start, spec.end, run.run_attempt, run.fence)
        )
        await work(run, self._pricing(run))
        report = self._report(spec, started, run)
        if self.ledger is not None:
            ledger = self.ledger
            state = RunState.SUCCEEDED if report.failed == 0 else RunState.FAILED
            await self._ensure_lease(run, force=True)
            finished = await run.attempt(
                "ledger_finish",
                lambda: ledger.finish(spec.key, state, report.as_dict(), self.now()),
            )
            if isinstance(finished, GaveUp):
                if isinstance(finished.error, LeaseLostError):
                    raise finished.error
                # The snapshots are stored: the run's outcome stands, and a rerun of the key
                # finds them stored and finishes the record.
                self.events(
                    CleanupFailed(
                        run.key,
                        "ledger_finish",
                        type(finished.error).__name__,
                        _message(finished.error),
                    )
                )
        return report

    async def _release(self, lock: RunLock, lease: Lease, run: _Run) -> LeaseOutcome:
        """Release `lease` under the retry policy, shielded from cancellation; say the outcome.

        A cancellation that lands meanwhile is raised to the caller at once, while the
        release goes on to its end in a task the job keeps.
        """

        async def release() -> LeaseOutcome:
            got = await run.attempt("release", lambda: lock.release(lease))
            if isinstance(got, GaveUp):
                message = (
                    f"the release failed after {got.attempts} attempt(s) "
                    f"({type(got.error).__name__}: {_message(got.error)}); the lease is left "
                    f"to expire at {lease.expires_at.isoformat()}"
                )
                self.events(LeaseReleased(lease.key, lease.fence, released=False, message=message))
                return "left_to_expire"
            self.events(LeaseReleased(lease.key, lease.fence, released=True, message="released"))
            return "released"

        task = asyncio.ensure_future(release())
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)
        return await asyncio.shield(task)

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
            attempt=run.run_attempt,
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
        run.lease = await run.call("renew", lambda: lock.renew(lease, self.lease_ttl, now))
        run.renewed_at = now

    # --- batches ------------------------------------------------------------------------

    async def _run_batches(
        self, batches: AsyncIterator[B], process: Callable[[B], Awaitable[None]], run: _Run
    ) -> None:
        """Process `batches`, at most `concurrency` at a time, with backpressure.

        Each batch's task announces it (`BatchStarted`, `BatchFinished`) around its work.
        """
        slots = asyncio.Semaphore(self.concurrency)

        async def guarded(batch: B) -> None:
            try:
                with _announced(run, len(batch)):
                    await process(batch)
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

    def _active_portfolios(
        self, day: dt.date, run: _Run, size: int, shard: Shard | None = None
    ) -> AsyncIterator[list[Portfolio]]:
        """Stream, in batches of `size`, the portfolios active on `day` that can be valued, once.

        Each is checked as it arrives (`portfolio_problem`); one that fails the check fails its
        own portfolio-day. With a repository offering `PortfolioDayStream`, a portfolio whose
        state cannot be built is recorded as a failure of `day`, and one that did not exist yet
        as skipped. With a `shard`, only its portfolios (a repository offering
        `ShardedPortfolios` is asked for them alone). See `_once_each` for retries and repeated
        ids.
        """
        repo = self.portfolios
        known = run.currencies

        def admit(portfolio: object, portfolio_id: UUID) -> Portfolio | None:
            # The common case in a few identity checks; anything else gets the full check.
            if (
                type(portfolio) is Portfolio
                and portfolio.id is portfolio_id
                and type(portfolio.holdings) is dict
                and portfolio.currency in known
            ):
                return portfolio
            return _admitted(portfolio, portfolio_id, day, run)

        if isinstance(repo, PortfolioDayStream):

            def admit_day(entry: PortfolioDay, portfolio_id: UUID) -> Portfolio | None:
                if entry.portfolio is None:
                    _not_built(entry, day, run)
                    return None
                return admit(entry.portfolio, portfolio_id)

            return self._once_each(
                lambda: repo.iter_portfolio_days(day),
                _day_id,
                admit_day,
                day,
                run,
                size=size,
                shard=shard,
            )
        return self._once_each(
            _portfolio_stream(repo, day, shard),
            _portfolio_id,
            admit,
            day,
            run,
            size=size,
            shard=shard,
        )

    def _active_ids(
        self, day: dt.date, run: _Run, size: int, shard: Shard | None = None
    ) -> AsyncIterator[list[UUID]]:
        """Stream, in batches of `size`, the ids of the portfolios active on `day`, each once.

        A portfolio whose state on `day` cannot be built is yielded all the same and not
        recorded here: the backfill builds each of its days, `day` included, and records
        each failure once.
        """
        repo = self.portfolios
        if isinstance(repo, PortfolioDayStream):
            return self._once_each(
                lambda: repo.iter_portfolio_days(day),
                _day_id,
                lambda _e, pid: pid,
                day,
                run,
                size=size,
                shard=shard,
            )
        return self._once_each(
            _portfolio_stream(repo, day, shard),
            _portfolio_id,
            lambda _p, pid: pid,
            day,
            run,
            size=size,
            shard=shard,
        )

    async def _once_each(  # noqa: C901, PLR0912 - the hot loop over every portfolio, one frame
        self,
        open_stream: Callable[[], AsyncIterator[X]],
        id_of: Callable[[X], object],
        admit: Callable[[X, UUID], T | None],
        day: dt.date,
        run: _Run,
        *,
        size: int,
        shard: Shard | None = None,
    ) -> AsyncIterator[list[T]]:
        """Yield, in lists of `size`, what `admit` makes of each item of a stream, once each.

        The batching is done here, in the one loop over every portfolio of the run, rather
        than by another generator around it.

        With a `shard`, the items of other shards are passed over, and an item whose id is
        not a `UUID` (it has no shard) is reported by shard 0 only, so merged shard reports
        count it once.

        - An item whose portfolio id is not a `UUID` fails (its id in the report is None when
          it cannot be read as one), and so does a second item with an id already handed out
          in the same pass: the first one is kept.
        - The stream is called under the retry policy: after a transient error it is opened
          again and the items of the ids already handed out are passed over (consecutive
          failures without progress count as attempts). An error that is not transient, or
          the last attempt's, ends the run.
        """
        before: IdSet | None = None  # ids handed out by earlier passes of a re-opened stream
        current = IdSet()  # as exact as a set; past 131,072 ids, 20 bytes an id (a set: 78)
        failures = 0
        batch: list[T] = []
        while True:
            progressed = False
            try:
                async for item in open_stream():
                    found = id_of(item)
                    if type(found) is UUID and shard is None:
                        portfolio_id = found
                    else:
                        owned = _own_id(found, shard, day, run)
                        if owned is None:
                            continue
                        portfolio_id = owned
                    number = portfolio_id.int
                    if before is not None and number in before:
                        continue
                    if not current.add(number):
                        run.fail(portfolio_id, day, _repeated(portfolio_id, day), 1)
                        continue
                    progressed = True
                    admitted = admit(item, portfolio_id)
                    if admitted is not None:
                        batch.append(admitted)
                        if len(batch) >= size:
                            yield batch
                            batch = []
            except Exception as error:
                failures = 1 if progressed else failures + 1
                if failures >= self.retry.max_attempts or not self.retry.is_transient(error):
                    error.add_note(f"the portfolio stream failed after {failures} attempt(s)")
                    raise
                delay = self.retry.backoff(failures, self._rng)
                run.on_retry("iter_portfolios")(failures, delay, error)
                await self._sleep(delay)
                if before is None:
                    before = current
                else:
                    before.update(current)
                current = IdSet()
            else:
                if batch:
                    yield batch
                return

    async def _daily_batch(
        self, portfolios: list[Portfolio], day: dt.date, pricing: Pricing, run: _Run
    ) -> None:
        """Price, value and store one batch of a day; every failure is recorded per portfolio."""
        await self._ensure_lease(run)
        if run.resume:
            portfolios = await self._drop_stored(portfolios, day, run)
        valued: list[PortfolioSnapshot] = []
        if portfolios:
            self._value(portfolios, day, await pricing.for_day(portfolios, day), run, valued)
        await self._write(valued, run)

    async def _drop_stored(
        self, portfolios: list[Portfolio], day: dt.date, run: _Run
    ) -> list[Portfolio]:
        """On a resumed run, leave out the portfolios an earlier attempt stored for `day`."""
        keys = [(p.id, day) for p in portfolios]
        got = await run.attempt("existing_keys", lambda: self.snapshots.existing_keys(keys))
        if isinstance(got, GaveUp):
            run.fail_all(keys, got.error, got.attempts)
            return []
        stored = got.value
        run.skipped += len(stored)
        return [p for p in portfolios if (p.id, day) not in stored]

    def _value(
        self,
        portfolios: list[Portfolio],
        day: dt.date,
        priced: PriceTable | GaveUp,
        run: _Run,
        valued: list[PortfolioSnapshot],
    ) -> None:
        """Value `portfolios` with the day's table, or fail them all if it could not be had."""
        if isinstance(priced, GaveUp):
            run.fail_all(((p.id, day) for p in portfolios), priced.error, priced.attempts)
            return
        snapshots, failed = self.calculator.value_many(portfolios, priced)
        valued.extend(snapshots)
        for p, reason in failed:
            run.fail(p.id, day, reason, 1)

    async def _write(self, valued: list[PortfolioSnapshot], run: _Run) -> None:
        """Store `valued` in writes of at most `batch_size`, each fenced and atomic.

        Tells the progress after each write (once when there is nothing to write).
        """
        if not valued:
            run.progress()
        for i in range(0, len(valued), self.batch_size):
            await self._write_isolating(valued[i : i + self.batch_size], run)
            run.progress()

    async def _write_isolating(self, chunk: list[PortfolioSnapshot], run: _Run) -> None:
        """Write `chunk`; if the store refuses it for good, find the rows it refuses.

        A write that fails with an error that is not transient is split in halves, each
        written on its own, down to single rows: only the snapshots the store refuses fail,
        after ``2 * log2(len(chunk))`` more writes per refused row at most. A write whose
        transient error outlasted the retries fails as a whole: the store is down, and
        splitting would only multiply the calls.

        Raises:
            LeaseLostError: The lease was lost; the run stops writing.
        """
        await self._ensure_lease(run)
        fence = run.fence
        got = await run.attempt(
            "upsert_many", lambda: self.snapshots.upsert_many(chunk, fence=fence)
        )
        if not isinstance(got, GaveUp):
            run.succeeded += len(chunk)
            return
        if isinstance(got.error, LeaseLostError):
            raise got.error
        if len(chunk) == 1 or self.retry.is_transient(got.error):
            for s in chunk:
                run.fail(s.portfolio_id, s.snapshot_date, got.error, got.attempts)
            return
        middle = len(chunk) // 2
        await self._write_isolating(chunk[:middle], run)
        await self._write_isolating(chunk[middle:], run)

    # --- backfills ----------------------------------------------------------------------

    async def _require_known(self, portfolio_id: UUID) -> None:
        """Raise `PortfolioNotFoundError` unless the repository knows the portfolio today.

        A portfolio whose state today cannot be built (an invalid ledger) is known: its days
        are reported one by one by the run.
        """
        today = self.today()
        try:
            known = await self._new_run(None).call(
                "get_portfolio", lambda: self.portfolios.get_portfolio(portfolio_id, today)
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
    ) -> Callable[[_Run, Pricing], Awaitable[None]]:
        async def work(run: _Run, pricing: Pricing) -> None:
            with _announced(run, len(portfolio_ids)):
                await self._backfill_batch(
                    portfolio_ids, start, end, pricing, run, only_missing=only_missing
                )

        return work

    async def _backfill_batch(
        self,
        portfolio_ids: list[UUID],
        start: dt.date,
        end: dt.date,
        pricing: Pricing,
        run: _Run,
        *,
        only_missing: bool,
    ) -> None:
        """Replay, price once for the range, value and store a batch of portfolios."""
        await self._ensure_lease(run)
        by_day: dict[dt.date, list[Portfolio]] = {}
        for pid in portfolio_ids:
            skip: frozenset[dt.date] = frozenset()
            if only_missing or run.resume:
                got = await run.attempt(
                    "existing_dates",
                    lambda: self.snapshots.existing_dates(pid, start, end),  # noqa: B023
                )
                if isinstance(got, GaveUp):
                    for day in date_range(start, end):
                        run.fail(pid, day, got.error, got.attempts)
                    continue
                skip = got.value
                run.skipped += len(skip)
            for day, state in await self._states(pid, start, end, skip, run):
                admitted = _admitted(state, pid, day, run)
                if admitted is not None:
                    by_day.setdefault(day, []).append(admitted)
        if not by_day:
            run.progress()
            return
        valued: list[PortfolioSnapshot] = []
        async for day, priced in pricing.for_range(by_day):
            self._value(by_day[day], day, priced, run, valued)
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
        got = await run.attempt(
            "portfolio_history",
            lambda: _collect(repo.portfolio_history(portfolio_id, start, end)),
        )
        if isinstance(got, GaveUp):
            for day in date_range(start, end):
                if day not in skip:
                    run.fail(portfolio_id, day, got.error, got.attempts)
            return []
        states: list[tuple[dt.date, Portfolio]] = []
        for entry in got.value:
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
        got = await run.attempt(
            "get_portfolio", lambda: self.portfolios.get_portfolio(portfolio_id, day)
        )
        if isinstance(got, GaveUp):
            run.fail(portfolio_id, day, got.error, got.attempts)
            return None
        if got.value is None:
            run.skipped += 1
        return got.value

    # --- host conveniences --------------------------------------------------------------

    @staticmethod
    def daily_key(on: dt.date) -> str:
        """Return the run key `run_daily` uses for `on` by default: ``daily:<on>``.

        The key a host's trigger (an admin endpoint, a CLI) passes to stay in step with the
        scheduled run: a day the schedule has done is not redone, and one it is doing is
        reported ``already_running``.
        """
        return f"daily:{on.isoformat()}"

    @staticmethod
    def backfill_key(
        portfolio_id: UUID, start: dt.date, end: dt.date, *, only_missing: bool = False
    ) -> str:
        """Return the run key `backfill` uses by default.

        ``backfill:<portfolio>:<start>:<end>``, with ``:only-missing`` when only the missing
        dates are computed: the two are different runs, so neither is refused as the other
        reused with other parameters.
        """
        suffix = ":only-missing" if only_missing else ""
        return f"backfill:{portfolio_id}:{start.isoformat()}:{end.isoformat()}{suffix}"

    @staticmethod
    def backfill_all_key(start: dt.date, end: dt.date, *, only_missing: bool = False) -> str:
        """Return the run key `backfill_all` uses by default.

        ``backfill-all:<start>:<end>``, with ``:only-missing`` as for `backfill_key`.
        """
        suffix = ":only-missing" if only_missing else ""
        return f"backfill-all:{start.isoformat()}:{end.isoformat()}{suffix}"

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
        key = self.backfill_key(portfolio_id, day, day)
        if force:
            key = self.forced_key(key, recompute_id)
        report = await self.backfill(portfolio_id, day, day, key=key)
        if report.status == "already_running":
            raise RunAlreadyRunningError(key)
        if report.failures:
            raise SnapshotFailedError(report.failures[0])
        snapshot = await self._new_run(None).call(
            "get_snapshot", lambda: self.snapshots.get_snapshot(portfolio_id, day)
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
        probe = self._new_run(None)
        missed: list[dt.date] = []
        for back in range(max_days):
            day = last - dt.timedelta(days=back)
            key = self.daily_key(day)
            record = await probe.call("ledger_get", lambda: ledger.get(key))  # noqa: B023
            if record is not None and record.state is RunState.SUCCEEDED:
                break
            missed.append(day)
        return [await self.run_daily(day) for day in reversed(missed)]

    async def _run(
        self, spec: _Spec, work: Callable[[_Run, Pricing], Awaitable[None]]
    ) -> RunReport:
        """`_run_unguarded`, one run of a key at a time in this job when it has a lock.

        The lock hands a key it already holds back to the same owner (a new lease), so two
        runs of one key in one job (the scheduler's and an admin's, say) would both run; the
        second returns ``already_running`` instead, as it would on another replica.
        """
        if self.lock is None:
            return await self._run_unguarded(spec, work)
        if spec.key in self._running_keys:
            run = self._new_run(spec.key)
            return self._finish(self._report(spec, self.now(), run, status="already_running"))
        self._running_keys.add(spec.key)
        try:
            return await self._run_unguarded(spec, work)
        finally:
            self._running_keys.discard(spec.key)


def _admitted(portfolio: object, portfolio_id: UUID, day: dt.date, run: _Run) -> Portfolio | None:
    """Return `portfolio` if it passes the entry check for `portfolio_id`; else record why."""
    problem = portfolio_problem(portfolio, run.currencies)
    if problem is None:
        if isinstance(portfolio, Portfolio) and portfolio.id == portfolio_id:
            return portfolio
        answered = getattr(portfolio, "id", None)
        problem = ("id", f"the repository answered for {portfolio_id} with {answered}", answered)
    field, reason, value = problem
    error = InvalidPortfolioError(
        reason, portfolio_id=portfolio_id, snapshot_date=day, field=field, value=value
    )
    run.fail(portfolio_id, day, error, 1)
    return None


def _own_id(portfolio_id: object, shard: Shard | None, day: dt.date, run: _Run) -> UUID | None:
    """The id of a stream's item, or None when it is not a UUID or in another shard.

    An id that is not a UUID fails its item, in shard 0 only (it has no shard), so merged
    shard reports count it once.
    """
    if not isinstance(portfolio_id, UUID):  # a subclass, such as asyncpg's, is a UUID
        if shard is None or shard.index == 0:
            _bad_id(portfolio_id, day, run)
        return None
    if shard is not None and not shard.contains(portfolio_id):
        return None
    return portfolio_id


def _shard_argument(shard: object) -> None:
    if shard is not None and not isinstance(shard, Shard):
        raise InvalidInputError(f"shard must be a Shard or None, got {type(shard).__name__}")


def _sharded(spec: _Spec, shard: Shard | None, key: str | None) -> _Spec:
    """The spec of a run, or of one shard of it, under `key` or its default key.

    A shard's default key is derived from the run's (`Shard.key`), and the shard is one of
    its parameters. An unsharded run's parameters are left as they were, so keys recorded
    before shards existed still match.
    """
    if shard is None:
        return spec if key is None else dataclasses.replace(spec, key=key)
    return dataclasses.replace(
        spec, key=key or shard.key(spec.key), params={**spec.params, "shard": str(shard)}
    )


def _portfolio_stream(
    repo: PortfolioRepository, day: dt.date, shard: Shard | None
) -> Callable[[], AsyncIterator[Portfolio]]:
    """Open the repository's stream of `day`: only the shard's, when it can filter itself."""
    if shard is not None and shard.count > 1 and isinstance(repo, ShardedPortfolios):
        return lambda: repo.iter_shard(day, shard)
    return lambda: repo.iter_portfolios(day)


def _id_argument(portfolio_id: object) -> None:
    if not isinstance(portfolio_id, UUID):
        raise InvalidInputError(
            f"portfolio_id must be a uuid.UUID, got {type(portfolio_id).__name__} {portfolio_id!r}"
        )


def _portfolio_id(portfolio: object) -> object:
    return getattr(portfolio, "id", None)


def _day_id(entry: PortfolioDay) -> object:
    return getattr(entry, "portfolio_id", None)


def _bad_id(portfolio_id: object, day: dt.date, run: _Run) -> None:
    """Record a portfolio whose id is not a UUID: under the UUID it spells, or None."""
    readable: UUID | None = None
    if isinstance(portfolio_id, (str, bytes)):
        with contextlib.suppress(ValueError):
            readable = UUID(portfolio_id if isinstance(portfolio_id, str) else portfolio_id.hex())
    error = InvalidPortfolioError(
        f"the portfolio id must be a UUID, got {type(portfolio_id).__name__}",
        portfolio_id=readable,
        snapshot_date=day,
        field="id",
        value=portfolio_id,
    )
    run.fail(readable, day, error, 1)


def _repeated(portfolio_id: UUID, day: dt.date) -> InvalidPortfolioError:
    return InvalidPortfolioError(
        "the repository yielded this portfolio more than once in one stream; the first "
        "one was valued",
        portfolio_id=portfolio_id,
        snapshot_date=day,
        field="id",
        value=portfolio_id,
    )


def _not_built(entry: PortfolioDay, day: dt.date, run: _Run) -> None:
    """Record a portfolio without a state on `day`: failed if it has an error, else skipped."""
    if entry.error is not None:
        run.fail(entry.portfolio_id, day, entry.error, 1)
    else:
        run.skipped += 1


async def _collect(items: AsyncIterator[T]) -> list[T]:
    return [item async for item in items]


async def _nothing(_run: _Run, _pricing: Pricing) -> None:
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
