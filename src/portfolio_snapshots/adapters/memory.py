"""In-memory reference adapters: the documented fakes for host tests, honouring every contract.

They keep everything in dicts in the current process and never suspend inside a write, so each
`upsert_many` is atomic with respect to cancellation, like a database transaction.
"""

from __future__ import annotations

import bisect
import copy
import dataclasses
import datetime as dt
from types import MappingProxyType
from typing import TYPE_CHECKING

from portfolio_snapshots._dated import DatedValues
from portfolio_snapshots._domain import (
    DEFAULT_CURRENCY,
    DailyTotals,
    FxQuote,
    Lease,
    PortfolioSnapshot,
    PriceQuote,
    RunRecord,
    RunState,
)
from portfolio_snapshots._errors import LeaseLostError, RunKeyConflictError
from portfolio_snapshots._fx import check_fx_quote, resolve_rate

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
    from decimal import Decimal
    from uuid import UUID

    from portfolio_snapshots._domain import Portfolio
    from portfolio_snapshots._ledger import Transaction

__all__ = [
    "InMemoryFxRates",
    "InMemoryMarketData",
    "InMemoryPortfolioRepository",
    "InMemoryRunLedger",
    "InMemoryRunLock",
    "InMemorySnapshotRepository",
    "InMemoryTransactionSource",
]


class InMemoryPortfolioRepository:
    """A `PortfolioRepository` over portfolios held in memory, with dated versions.

    A portfolio added without a date exists on every date with that state; `put` with
    ``since=`` records a state in force from the end of that date until the next version, so
    backfills see the holdings of each past day.

    Args:
        portfolios: Portfolios in force on every date.
    """

    def __init__(self, portfolios: Iterable[Portfolio] = ()) -> None:
        self._versions: DatedValues[UUID, Portfolio] = DatedValues()
        for p in portfolios:
            self.put(p)

    def put(self, portfolio: Portfolio, *, since: dt.date | None = None) -> None:
        """Record `portfolio`'s state from the end of `since` on (from always when None)."""
        self._versions.put(portfolio.id, dt.date.min if since is None else since, portfolio)

    def __len__(self) -> int:
        """Return the number of portfolios known, whatever their dates."""
        return len(self._versions)

    async def iter_portfolios(self, as_of: dt.date) -> AsyncIterator[Portfolio]:
        """Yield each portfolio that exists on `as_of`, in the state in force then."""
        for state in self._versions.latest_of_all(as_of):
            yield state

    async def get_portfolio(self, portfolio_id: UUID, as_of: dt.date) -> Portfolio | None:
        """Return the portfolio's state in force on `as_of`, or None."""
        return self._versions.latest(portfolio_id, as_of)


class InMemoryMarketData:
    """A `MarketData` (and `PriceHistory`) over a dated price history held in memory.

    `get_prices` answers with the latest quote dated on or before `as_of`;
    `get_price_history` with every close of a date range. It counts its calls in
    `request_count`, so a host's test can check that prices are fetched in batches.

    Args:
        quotes: The initial price history.
    """

    def __init__(self, quotes: Iterable[PriceQuote] = ()) -> None:
        self._quotes: DatedValues[str, PriceQuote] = DatedValues()
        self.request_count = 0
        for q in quotes:
            self.add(q)

    def add(self, quote: PriceQuote) -> None:
        """Add `quote`, replacing any quote of the same ticker and date."""
        self._quotes.put(quote.ticker, quote.as_of, quote)

    def add_price(
        self, ticker: str, as_of: dt.date, price: Decimal, currency: str = DEFAULT_CURRENCY
    ) -> None:
        """Add the close of `ticker` on `as_of`."""
        self.add(PriceQuote(ticker, price, as_of, currency))

    async def get_prices(self, tickers: Collection[str], as_of: dt.date) -> dict[str, PriceQuote]:
        """Return the latest quote on or before `as_of` for each ticker that has one."""
        self.request_count += 1
        latest = self._quotes.latest
        found = {ticker: latest(ticker, as_of) for ticker in tickers}
        return {ticker: quote for ticker, quote in found.items() if quote is not None}

    async def get_price_history(
        self, tickers: Collection[str], start: dt.date, end: dt.date
    ) -> dict[str, list[PriceQuote]]:
        """Return every close dated from `start` to `end` inclusive, by ticker, by date."""
        self.request_count += 1
        between = self._quotes.between
        found = {ticker: between(ticker, start, end) for ticker in tickers}
        return {ticker: quotes for ticker, quotes in found.items() if quotes}


# A stored snapshot: its values but the portfolio id (an object the collector tracks), then
# its fence; so it starts with its date. A plain tuple of immutable values, like a database
# row: the collector untracks it, so a store holding millions of snapshots costs it nothing.
_Row = tuple[object, ...]
# A portfolio's stored days: the row of its one day (a daily run stores one day of each of
# millions of portfolios), or, once it has a second day, a dict of rows by date. A dict per
# portfolio is a container the collector tracks: after a daily run it would put millions of
# objects before each full collection, and start one in the middle of the run.
_Days = _Row | dict[dt.date, _Row]
_NO_DAYS: Mapping[dt.date, _Row] = MappingProxyType({})


def _by_date(days: _Days | None) -> Mapping[dt.date, _Row]:
    """The rows of a portfolio's stored days, by date."""
    if days is None:
        return _NO_DAYS
    if isinstance(days, tuple):
        return {days[0]: days}  # type: ignore[dict-item]
    return days


def _totals(portfolio_id: UUID, row: _Row) -> DailyTotals:
    # The row's positions stay a flat tuple: nothing is decoded.
    return DailyTotals.of(_from_row(portfolio_id, row))


def _from_row(portfolio_id: UUID, row: _Row) -> PortfolioSnapshot:
    return PortfolioSnapshot.from_values((portfolio_id, *row[:-1]))  # type: ignore[arg-type]


class InMemorySnapshotRepository:
    """A `SnapshotRepository` in memory, keyed by (portfolio_id, snapshot_date), with fencing.

    It offers `SnapshotTotals` too, as every shipped store does.

    Rows are kept as plain tuples and turned back into `PortfolioSnapshot` values on read, as a
    database adapter would, so reads return equal values, not the very objects written.
    """

    def __init__(self) -> None:
        """Start empty."""
        self._rows: dict[UUID, _Days] = {}

    def _days(self, portfolio_id: UUID) -> Mapping[dt.date, _Row]:
        return _by_date(self._rows.get(portfolio_id))

    def __len__(self) -> int:
        """Return the number of snapshots stored."""
        return sum(1 if isinstance(days, tuple) else len(days) for days in self._rows.values())

    def all(self) -> list[PortfolioSnapshot]:
        """Return every stored snapshot, ordered by portfolio id then date (for tests)."""
        found = []
        for pid in sorted(self._rows):
            days = self._days(pid)
            found += [_from_row(pid, days[d]) for d in sorted(days)]
        return found

    async def upsert_many(
        self, snapshots: Sequence[PortfolioSnapshot], *, fence: int | None = None
    ) -> None:
        """Insert or replace `snapshots`; atomic, as the method never suspends."""
        token = (0 if fence is None else fence,)
        # Encode the whole batch before writing anything, so a bad element writes nothing:
        # each row is the snapshot's values but the id, then the fence (see `_Row`).
        encoded = [s.values[1:] + token for s in snapshots]
        rows = self._rows
        for s, row in zip(snapshots, encoded, strict=True):
            pid, day = s.values[0], s.values[1]
            days = rows.get(pid)
            if days is None:  # the portfolio's first day: its row
                rows[pid] = row
                continue
            if isinstance(days, tuple):
                if days[0] == day:  # unless stored under a newer fence, replaced
                    if fence is None or days[-1] <= fence:  # type: ignore[operator]
                        rows[pid] = row
                    continue
                # Its second day: a dict from now on.
                days = rows[pid] = {days[0]: days}  # type: ignore[dict-item]
            if fence is not None:
                stored = days.get(day)
                if stored is not None and stored[-1] > fence:  # type: ignore[operator]
                    continue
            days[day] = row

    async def get_snapshot(self, portfolio_id: UUID, day: dt.date) -> PortfolioSnapshot | None:
        """Return the snapshot of `portfolio_id` on `day`, or None."""
        row = self._days(portfolio_id).get(day)
        return None if row is None else _from_row(portfolio_id, row)

    async def list_snapshots(
        self, portfolio_id: UUID, start: dt.date, end: dt.date
    ) -> list[PortfolioSnapshot]:
        """Return the snapshots of `portfolio_id` from `start` to `end` inclusive, by date."""
        days = self._days(portfolio_id)
        return [
            _from_row(portfolio_id, days[d]) for d in sorted(d for d in days if start <= d <= end)
        ]

    async def existing_dates(
        self, portfolio_id: UUID, start: dt.date, end: dt.date
    ) -> frozenset[dt.date]:
        """Return the dates from `start` to `end` inclusive that have a snapshot."""
        return frozenset(d for d in self._days(portfolio_id) if start <= d <= end)

    async def existing_keys(
        self, keys: Collection[tuple[UUID, dt.date]]
    ) -> frozenset[tuple[UUID, dt.date]]:
        """Return the keys among `keys` that have a snapshot."""
        return frozenset((pid, d) for pid, d in keys if d in self._days(pid))

    async def list_totals(
        self, portfolio_id: UUID, start: dt.date, end: dt.date
    ) -> list[DailyTotals]:
        """Return the totals of `portfolio_id` from `start` to `end` inclusive, by date."""
        days = self._days(portfolio_id)
        return [
            _totals(portfolio_id, days[d]) for d in sorted(d for d in days if start <= d <= end)
        ]

    async def totals_on(self, day: dt.date, portfolio_ids: Collection[UUID]) -> list[DailyTotals]:
        """Return the totals on `day` of those `portfolio_ids` that have a snapshot, by id."""
        found = []
        for pid in sorted(set(portfolio_ids)):
            row = self._days(pid).get(day)
            if row is not None:
                found.append(_totals(pid, row))
        return found


class InMemoryRunLedger:
    """A `RunLedger` in memory, which also lists its latest runs (`RecentRuns`)."""

    def __init__(self) -> None:
        """Start empty."""
        self._records: dict[str, RunRecord] = {}

    async def start(self, key: str, params_hash: str, now: dt.datetime) -> RunRecord:
        """Create or resume the run `key`, or return it unchanged when it already succeeded."""
        record = self._records.get(key)
        if record is None:
            record = RunRecord(key, params_hash, RunState.RUNNING, 1, now)
        elif record.params_hash != params_hash:
            raise RunKeyConflictError(key)
        elif record.state is RunState.SUCCEEDED:
            return record
        else:
            record = RunRecord(key, params_hash, RunState.RUNNING, record.attempts + 1, now)
        self._records[key] = record
        return record

    async def finish(
        self, key: str, state: RunState, report: Mapping[str, object], now: dt.datetime
    ) -> RunRecord:
        """Record the end of the latest attempt of `key`."""
        record = self._records.get(key)
        if record is None:
            raise KeyError(f"run key {key!r} was never started")
        # A deep copy, as a database would keep: later changes to the caller's dict don't leak.
        stored = copy.deepcopy(dict(report))
        record = dataclasses.replace(record, state=state, finished_at=now, report=stored)
        self._records[key] = record
        return record

    async def get(self, key: str) -> RunRecord | None:
        """Return the record of `key`, or None."""
        return self._records.get(key)

    async def recent_runs(self, limit: int) -> list[RunRecord]:
        """Return the `limit` most recently started runs, latest first (the `RecentRuns` way)."""
        ordered = sorted(self._records.values(), key=lambda r: r.key)
        ordered.sort(key=lambda r: r.started_at, reverse=True)
        return ordered[: max(limit, 0)]


class InMemoryRunLock:
    """A `RunLock` in memory: one lease per key, fences from one counter."""

    def __init__(self) -> None:
        """Start with every key free."""
        self._leases: dict[str, Lease] = {}
        self._last_fence = 0

    async def acquire(
        self, key: str, owner: str, ttl: dt.timedelta, now: dt.datetime
    ) -> Lease | None:
        """Take the lease on `key` unless another owner holds it unexpired."""
        held = self._leases.get(key)
        if held is not None and held.owner != owner and held.expires_at > now:
            return None
        self._last_fence += 1
        lease = Lease(key, owner, self._last_fence, now + ttl)
        self._leases[key] = lease
        return lease

    async def renew(self, lease: Lease, ttl: dt.timedelta, now: dt.datetime) -> Lease:
        """Extend `lease` if it is still held and unexpired."""
        held = self._leases.get(lease.key)
        if held is None or held.fence != lease.fence:
            raise LeaseLostError(lease.key, "the lease was taken over by another holder")
        if held.expires_at <= now:
            raise LeaseLostError(lease.key, "the lease expired before it was renewed")
        renewed = dataclasses.replace(held, expires_at=now + ttl)
        self._leases[lease.key] = renewed
        return renewed

    async def release(self, lease: Lease) -> None:
        """Free the key if `lease` still holds it."""
        held = self._leases.get(lease.key)
        if held is not None and held.fence == lease.fence:
            del self._leases[lease.key]


class InMemoryFxRates:
    """An `FxRates` over a dated rate history held in memory: the reference fake.

    Pairs are stored as given; a request for a pair stored only the other way round is
    answered with the inverted rate (`invert_quote`), and when both directions are stored
    the more recent rate on or before the date wins (see `resolve_rate`). Identity pairs are
    answered with rate 1. `request_count` counts the calls to `get_rates`.

    Args:
        quotes: The initial rate history.
    """

    def __init__(self, quotes: Iterable[FxQuote] = ()) -> None:
        self._rates: DatedValues[tuple[str, str], FxQuote] = DatedValues()
        self.request_count = 0
        for q in quotes:
            self.add(q)

    def add(self, quote: FxQuote) -> None:
        """Add `quote`, replacing any rate of the same pair and date.

        Raises:
            InvalidFxRateError: The quote is invalid (see `check_fx_quote`).
        """
        check_fx_quote(quote)
        self._rates.put(quote.pair, quote.as_of, quote)

    def add_rate(self, base: str, quote: str, as_of: dt.date, rate: Decimal) -> None:
        """Add the rate of ``base/quote`` on `as_of` (units of `quote` per unit of `base`)."""
        self.add(FxQuote(base, quote, rate, as_of))

    async def get_rate_history(
        self, pairs: Collection[tuple[str, str]], start: dt.date, end: dt.date
    ) -> dict[tuple[str, str], list[FxQuote]]:
        """Return every rate stored under each pair, dated from `start` to `end` inclusive."""
        self.request_count += 1
        found = {pair: self._rates.between(pair, start, end) for pair in pairs}
        return {pair: quotes for pair, quotes in found.items() if quotes}

    async def get_rates(
        self, pairs: Collection[tuple[str, str]], as_of: dt.date
    ) -> dict[tuple[str, str], FxQuote]:
        """Return the latest rate on or before `as_of` for each pair, direct or inverted."""
        self.request_count += 1
        found: dict[tuple[str, str], FxQuote] = {}
        for base, code in pairs:
            available = {}
            for pair in ((base, code), (code, base)):
                latest = self._rates.latest(pair, as_of)
                if latest is not None:
                    available[pair] = latest
            resolved = resolve_rate(available, base, code, as_of)
            if resolved is not None:
                found[base, code] = resolved
        return found


class InMemoryTransactionSource:
    """A `TransactionSource` over transactions held in memory: the reference fake.

    A portfolio is known once it has a transaction or a currency; it is active on a date when
    it has a transaction on or before it. `request_count` counts the calls to `transactions`,
    so a test can check that a backfill reads the ledger once.

    Args:
        transactions: The initial transactions, in any order.
        currencies: Base currency per portfolio.
        default_currency: The base currency of portfolios not in `currencies`.
    """

    def __init__(
        self,
        transactions: Iterable[Transaction] = (),
        *,
        currencies: Mapping[UUID, str] | None = None,
        default_currency: str = DEFAULT_CURRENCY,
    ) -> None:
        self._dates: dict[UUID, list[dt.date]] = {}
        self._txs: dict[UUID, list[Transaction]] = {}
        self._currencies = dict(currencies or {})
        self._default_currency = default_currency
        self.request_count = 0
        for tx in transactions:
            self.add(tx)

    def add(self, tx: Transaction) -> None:
        """Record `tx`, after the transactions already recorded on its date."""
        dates = self._dates.setdefault(tx.portfolio_id, [])
        txs = self._txs.setdefault(tx.portfolio_id, [])
        i = bisect.bisect_right(dates, tx.trade_date)
        dates.insert(i, tx.trade_date)
        txs.insert(i, tx)

    def set_currency(self, portfolio_id: UUID, currency: str) -> None:
        """Set the base currency of `portfolio_id` (which makes it known)."""
        self._currencies[portfolio_id] = currency

    async def transactions(self, portfolio_id: UUID, until: dt.date) -> list[Transaction]:
        """Return the portfolio's transactions dated on or before `until`, by date."""
        self.request_count += 1
        dates = self._dates.get(portfolio_id, [])
        return self._txs.get(portfolio_id, [])[: bisect.bisect_right(dates, until)]

    async def active_portfolio_ids(self, as_of: dt.date) -> AsyncIterator[UUID]:
        """Yield each portfolio with a transaction on or before `as_of`."""
        for portfolio_id, dates in list(self._dates.items()):
            if dates and dates[0] <= as_of:
                yield portfolio_id

    async def base_currency(self, portfolio_id: UUID) -> str | None:
        """Return the portfolio's base currency, or None if it is unknown."""
        if portfolio_id in self._currencies:
            return self._currencies[portfolio_id]
        return self._default_currency if portfolio_id in self._dates else None
