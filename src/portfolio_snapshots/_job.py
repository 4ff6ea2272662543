"""`SnapshotJob`: the async job that computes and stores snapshots.

It streams portfolios in batches, prices each batch in one call, values them and stores the
snapshots, with retries for transient faults and bounded concurrency.

The unit of I/O is a batch; the unit of correctness and of failure is a portfolio-day. A
portfolio that cannot be valued is reported in the run's failures and the run goes on.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from typing import TYPE_CHECKING, TypeVar

from portfolio_snapshots._calculator import PriceTable, SnapshotCalculator
from portfolio_snapshots._errors import InvalidDateRangeError, PortfolioNotFoundError
from portfolio_snapshots._report import RunKind, RunReport, SnapshotFailure
from portfolio_snapshots._retry import RetryPolicy

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from uuid import UUID

    from portfolio_snapshots._domain import Portfolio, PortfolioSnapshot
    from portfolio_snapshots._ports import MarketData, PortfolioRepository, SnapshotRepository

T = TypeVar("T")

_ONE_DAY = dt.timedelta(days=1)


def utc_now() -> dt.datetime:
    """Return the current time as an aware UTC datetime: the job's default clock."""
    return dt.datetime.now(dt.UTC)


def date_range(start: dt.date, end: dt.date) -> list[dt.date]:
    """Return every calendar date from `start` to `end` inclusive (empty if start > end)."""
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


class _Tally:
    """The mutable counts of one run; frozen into a `RunReport` at the end."""

    __slots__ = ("failures", "retried", "skipped", "succeeded")

    def __init__(self) -> None:
        self.succeeded = 0
        self.skipped = 0
        self.retried = 0
        self.failures: list[SnapshotFailure] = []

    def fail(self, portfolio_id: UUID, day: dt.date, error: BaseException, attempts: int) -> None:
        self.failures.append(
            SnapshotFailure(portfolio_id, day, type(error).__name__, _message(error), attempts)
        )


def _message(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    notes = getattr(error, "__notes__", None)
    return f"{text} ({'; '.join(notes)})" if notes else text


class SnapshotJob:
    """Computes and stores daily portfolio snapshots.

    Args:
        portfolios: Where portfolios come from.
        snapshots: Where snapshots go.
        market_data: Where prices come from.
        calculator: Values portfolios (a default `SnapshotCalculator` otherwise).
        retry: Retry policy for every call to a port (the default `RetryPolicy` otherwise).
        clock: Returns the current time as an aware datetime; "today" is its UTC date.
        sleep: Waits between retries (`asyncio.sleep` by default).
        rng: Source of retry jitter (a fresh `random.Random` by default).
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
        clock: Callable[[], dt.datetime] = utc_now,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        rng: random.Random | None = None,
        batch_size: int = 500,
        concurrency: int = 4,
    ) -> None:
        """Wire the job; see the class docstring for the arguments."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.portfolios = portfolios
        self.snapshots = snapshots
        self.market_data = market_data
        self.calculator = calculator or SnapshotCalculator()
        self.retry = retry or RetryPolicy()
        self.batch_size = batch_size
        self.concurrency = concurrency
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

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

    async def run_daily(self, on: dt.date | None = None) -> RunReport:
        """Snapshot every active portfolio for one date.

        Args:
            on: The date to snapshot; today's UTC date by default.

        Returns:
            The run's report; failed portfolios are listed in its failures.

        Raises:
            InvalidDateRangeError: `on` is in the future.
        """
        started = self.now()
        day = started.date() if on is None else on
        if day > started.date():
            raise InvalidDateRangeError("the date is in the future", start=day, end=day)
        tally = _Tally()

        async def items() -> AsyncIterator[tuple[Portfolio, dt.date]]:
            async for portfolio in self.portfolios.iter_portfolios(day):
                yield portfolio, day

        await self._run_items(items(), tally)
        return self._report("daily", day, day, started, tally)

    async def backfill(
        self, portfolio_id: UUID, start: dt.date, end: dt.date, *, only_missing: bool = False
    ) -> RunReport:
        """Snapshot one portfolio for every calendar day from `start` to `end` inclusive.

        Each day is valued as it was: the holdings the repository reports for that date, at
        prices on or before that date.

        Args:
            portfolio_id: The portfolio.
            start: The first date.
            end: The last date (today at the latest).
            only_missing: Compute only the dates that have no stored snapshot yet.

        Returns:
            The run's report. Days before the portfolio existed count as skipped.

        Raises:
            InvalidDateRangeError: `start` is after `end`, or `end` is in the future.
            PortfolioNotFoundError: The repository does not know the portfolio; raised before
                any work is done.
        """
        started = self.now()
        if start > end:
            raise InvalidDateRangeError("start is after end", start=start, end=end)
        if end > started.date():
            raise InvalidDateRangeError(
                f"end is in the future (today is {started.date().isoformat()} UTC)",
                start=start,
                end=end,
            )
        tally = _Tally()
        known = await self._call(lambda: self.portfolios.get_portfolio(portfolio_id, end), tally)
        if known is None:
            raise PortfolioNotFoundError(portfolio_id)
        days = date_range(start, end)
        if only_missing:
            stored = await self._call(
                lambda: self.snapshots.existing_dates(portfolio_id, start, end), tally
            )
            tally.skipped += sum(1 for d in days if d in stored)
            days = [d for d in days if d not in stored]

        async def items() -> AsyncIterator[tuple[Portfolio, dt.date]]:
            for day in days:
                if day == end:
                    portfolio: Portfolio | None = known
                else:
                    portfolio = await self._portfolio_on(portfolio_id, day, tally)
                if portfolio is None:
                    tally.skipped += 1
                else:
                    yield portfolio, day

        await self._run_items(items(), tally)
        return self._report("backfill", start, end, started, tally)

    async def _portfolio_on(
        self, portfolio_id: UUID, day: dt.date, tally: _Tally
    ) -> Portfolio | None:
        attempts = [1]
        try:
            return await self._call(
                lambda: self.portfolios.get_portfolio(portfolio_id, day), tally, attempts
            )
        except Exception as error:  # noqa: BLE001 - one failing day must not stop the run
            tally.fail(portfolio_id, day, error, attempts[0])
            return None

    def _report(
        self, kind: RunKind, start: dt.date, end: dt.date, started: dt.datetime, tally: _Tally
    ) -> RunReport:
        failed = len(tally.failures)
        return RunReport(
            kind=kind,
            start=start,
            end=end,
            started_at=started,
            finished_at=self.now(),
            processed=tally.succeeded + failed,
            succeeded=tally.succeeded,
            failed=failed,
            skipped=tally.skipped,
            retried=tally.retried,
            failures=tuple(tally.failures),
        )

    async def _call(
        self,
        fn: Callable[[], Awaitable[T]],
        tally: _Tally,
        attempts: list[int] | None = None,
    ) -> T:
        """Await ``fn()`` under the retry policy, counting retries into `tally`.

        `attempts`, when given, is a one-item list updated with the attempts made, so a caller
        can report it when the call fails for good.
        """

        def on_retry(attempt: int, _delay: float, _error: BaseException) -> None:
            tally.retried += 1
            if attempts is not None:
                attempts[0] = attempt + 1

        return await self.retry.call(fn, sleep=self._sleep, rng=self._rng, on_retry=on_retry)

    async def _run_items(
        self, items: AsyncIterator[tuple[Portfolio, dt.date]], tally: _Tally
    ) -> None:
        """Cut `items` into batches and process them, at most `concurrency` at a time."""
        slots = asyncio.Semaphore(self.concurrency)

        async def guarded(batch: list[tuple[Portfolio, dt.date]]) -> None:
            try:
                await self._process_batch(batch, tally)
            finally:
                slots.release()

        async with asyncio.TaskGroup() as group:
            batch: list[tuple[Portfolio, dt.date]] = []
            async for item in items:
                batch.append(item)
                if len(batch) >= self.batch_size:
                    await slots.acquire()
                    group.create_task(guarded(batch))
                    batch = []
            if batch:
                await slots.acquire()
                group.create_task(guarded(batch))

    async def _value_day(
        self,
        portfolios: list[Portfolio],
        day: dt.date,
        tally: _Tally,
        valued: list[PortfolioSnapshot],
    ) -> None:
        """Price `portfolios` for `day` in one call and append their snapshots to `valued`."""
        tickers = {t for p in portfolios for t, q in p.holdings.items() if q}
        attempts = [1]
        try:
            quotes = await self._call(
                lambda: self.market_data.get_prices(tickers, day), tally, attempts
            )
        except Exception as error:  # noqa: BLE001 - fails this batch's portfolios only
            for p in portfolios:
                tally.fail(p.id, day, error, attempts[0])
            return
        snapshots, failed = self.calculator.value_many(portfolios, PriceTable(quotes, day))
        valued.extend(snapshots)
        for p, reason in failed:
            tally.fail(p.id, day, reason, 1)

    async def _process_batch(self, batch: list[tuple[Portfolio, dt.date]], tally: _Tally) -> None:
        """Price, value and store one batch; every failure is recorded per portfolio-day."""
        by_day: dict[dt.date, list[Portfolio]] = {}
        for portfolio, day in batch:
            by_day.setdefault(day, []).append(portfolio)
        valued: list[PortfolioSnapshot] = []
        for day, portfolios in by_day.items():
            await self._value_day(portfolios, day, tally, valued)
        if not valued:
            return
        attempts = [1]
        try:
            await self._call(lambda: self.snapshots.upsert_many(valued), tally, attempts)
        except Exception as error:  # noqa: BLE001 - fails this batch's portfolios only
            for s in valued:
                tally.fail(s.portfolio_id, s.snapshot_date, error, attempts[0])
        else:
            tally.succeeded += len(valued)
