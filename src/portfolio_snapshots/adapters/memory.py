"""In-memory reference adapters: the documented fakes for host tests, honouring every contract.

They keep everything in dicts in the current process and never suspend inside a write, so each
`upsert_many` is atomic with respect to cancellation, like a database transaction.
"""

from __future__ import annotations

import bisect
import datetime as dt
from typing import TYPE_CHECKING

from portfolio_snapshots._domain import DEFAULT_CURRENCY, PriceQuote

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Collection, Iterable, Sequence
    from decimal import Decimal
    from uuid import UUID

    from portfolio_snapshots._domain import Portfolio, PortfolioSnapshot

__all__ = ["InMemoryMarketData", "InMemoryPortfolioRepository", "InMemorySnapshotRepository"]


class _Versions:
    """States of one portfolio, each in force from its date on, sorted by date."""

    __slots__ = ("dates", "states")

    def __init__(self) -> None:
        self.dates: list[dt.date] = []
        self.states: list[Portfolio] = []

    def put(self, since: dt.date, state: Portfolio) -> None:
        i = bisect.bisect_left(self.dates, since)
        if i < len(self.dates) and self.dates[i] == since:
            self.states[i] = state
        else:
            self.dates.insert(i, since)
            self.states.insert(i, state)

    def at(self, as_of: dt.date) -> Portfolio | None:
        i = bisect.bisect_right(self.dates, as_of)
        return self.states[i - 1] if i else None


class InMemoryPortfolioRepository:
    """A `PortfolioRepository` over portfolios held in memory, with dated versions.

    A portfolio added without a date exists on every date with that state; `put` with
    ``since=`` records a state in force from the end of that date until the next version, so
    backfills see the holdings of each past day.

    Args:
        portfolios: Portfolios in force on every date.
    """

    def __init__(self, portfolios: Iterable[Portfolio] = ()) -> None:
        """Hold `portfolios`; see the class docstring."""
        self._versions: dict[UUID, _Versions] = {}
        for p in portfolios:
            self.put(p)

    def put(self, portfolio: Portfolio, *, since: dt.date | None = None) -> None:
        """Record `portfolio`'s state from the end of `since` on (from always when None)."""
        versions = self._versions.get(portfolio.id)
        if versions is None:
            versions = self._versions[portfolio.id] = _Versions()
        versions.put(dt.date.min if since is None else since, portfolio)

    def __len__(self) -> int:
        """Return the number of portfolios known, whatever their dates."""
        return len(self._versions)

    async def iter_portfolios(self, as_of: dt.date) -> AsyncIterator[Portfolio]:
        """Yield each portfolio that exists on `as_of`, in the state in force then."""
        for versions in list(self._versions.values()):
            state = versions.at(as_of)
            if state is not None:
                yield state

    async def get_portfolio(self, portfolio_id: UUID, as_of: dt.date) -> Portfolio | None:
        """Return the portfolio's state in force on `as_of`, or None."""
        versions = self._versions.get(portfolio_id)
        return None if versions is None else versions.at(as_of)


class InMemoryMarketData:
    """A `MarketData` over a dated price history held in memory.

    `get_prices` answers with the latest quote dated on or before `as_of`. It counts its calls
    in `request_count`, so a host's test can check that prices are fetched in batches.

    Args:
        quotes: The initial price history.
    """

    def __init__(self, quotes: Iterable[PriceQuote] = ()) -> None:
        """Hold `quotes`; see the class docstring."""
        self._dates: dict[str, list[dt.date]] = {}
        self._quotes: dict[str, list[PriceQuote]] = {}
        self.request_count = 0
        for q in quotes:
            self.add(q)

    def add(self, quote: PriceQuote) -> None:
        """Add `quote`, replacing any quote of the same ticker and date."""
        dates = self._dates.setdefault(quote.ticker, [])
        quotes = self._quotes.setdefault(quote.ticker, [])
        i = bisect.bisect_left(dates, quote.as_of)
        if i < len(dates) and dates[i] == quote.as_of:
            quotes[i] = quote
        else:
            dates.insert(i, quote.as_of)
            quotes.insert(i, quote)

    def add_price(
        self, ticker: str, as_of: dt.date, price: Decimal, currency: str = DEFAULT_CURRENCY
    ) -> None:
        """Add the close of `ticker` on `as_of`."""
        self.add(PriceQuote(ticker, price, as_of, currency))

    async def get_prices(self, tickers: Collection[str], as_of: dt.date) -> dict[str, PriceQuote]:
        """Return the latest quote on or before `as_of` for each ticker that has one."""
        self.request_count += 1
        found: dict[str, PriceQuote] = {}
        for ticker in tickers:
            dates = self._dates.get(ticker)
            if dates:
                i = bisect.bisect_right(dates, as_of)
                if i:
                    found[ticker] = self._quotes[ticker][i - 1]
        return found


class InMemorySnapshotRepository:
    """A `SnapshotRepository` in memory, keyed by (portfolio_id, snapshot_date)."""

    def __init__(self) -> None:
        """Start empty."""
        self._rows: dict[UUID, dict[dt.date, PortfolioSnapshot]] = {}

    def __len__(self) -> int:
        """Return the number of snapshots stored."""
        return sum(len(days) for days in self._rows.values())

    def all(self) -> list[PortfolioSnapshot]:
        """Return every stored snapshot, ordered by portfolio id then date (for tests)."""
        rows = self._rows
        return [rows[pid][d] for pid in sorted(rows) for d in sorted(rows[pid])]

    async def upsert_many(self, snapshots: Sequence[PortfolioSnapshot]) -> None:
        """Insert or replace `snapshots`; atomic, as the method never suspends."""
        keyed = [(s.portfolio_id, s.snapshot_date, s) for s in snapshots]  # fail before writing
        rows = self._rows
        for pid, day, s in keyed:
            days = rows.get(pid)
            if days is None:
                days = rows[pid] = {}
            days[day] = s

    async def get_snapshot(self, portfolio_id: UUID, day: dt.date) -> PortfolioSnapshot | None:
        """Return the snapshot of `portfolio_id` on `day`, or None."""
        return self._rows.get(portfolio_id, {}).get(day)

    async def list_snapshots(
        self, portfolio_id: UUID, start: dt.date, end: dt.date
    ) -> list[PortfolioSnapshot]:
        """Return the snapshots of `portfolio_id` from `start` to `end` inclusive, by date."""
        days = self._rows.get(portfolio_id, {})
        return [days[d] for d in sorted(d for d in days if start <= d <= end)]

    async def existing_dates(
        self, portfolio_id: UUID, start: dt.date, end: dt.date
    ) -> frozenset[dt.date]:
        """Return the dates from `start` to `end` inclusive that have a snapshot."""
        return frozenset(d for d in self._rows.get(portfolio_id, {}) if start <= d <= end)
