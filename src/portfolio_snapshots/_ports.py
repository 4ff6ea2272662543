"""The ports: what the job needs from the host, as narrow `typing.Protocol`s.

Each protocol states its contract: keys, ordering, what "missing" looks like, and which errors
are transient. Adapters satisfy a protocol structurally; they do not inherit from it. Every
protocol is `runtime_checkable`, so ``isinstance(adapter, SnapshotRepository)`` checks that
the methods exist (not their signatures; mypy and pyright check those).

Transient faults: an adapter raises `TransientError` (or `ConnectionError` / `TimeoutError`)
for faults that may pass on a later attempt, and anything else for faults that will not. The
job retries the former according to its `RetryPolicy`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import AsyncIterator, Collection, Mapping, Sequence
    from uuid import UUID

    from portfolio_snapshots._domain import Portfolio, PortfolioSnapshot, PriceQuote


@runtime_checkable
class PortfolioRepository(Protocol):
    """Where the host's portfolios live.

    Contract:
        - Holdings and cash are those at the end of the UTC date `as_of`.
        - `iter_portfolios` yields every portfolio active on `as_of`, each exactly once, in any
          order, streaming: it must not load every portfolio into memory at once.
        - `get_portfolio` returns None for an id it does not know, or that did not exist yet on
          `as_of`; it never raises for a missing portfolio.
        - The values returned are not validated by the repository; the calculator rejects
          invalid ones (negative quantities, floats, ...) portfolio by portfolio.
    """

    def iter_portfolios(self, as_of: dt.date) -> AsyncIterator[Portfolio]:
        """Stream every portfolio active on `as_of`, with its state at the end of that date."""
        ...

    async def get_portfolio(self, portfolio_id: UUID, as_of: dt.date) -> Portfolio | None:
        """Return the portfolio's state at the end of `as_of`, or None if unknown then."""
        ...


@runtime_checkable
class MarketData(Protocol):
    """Closing prices.

    Contract:
        - `get_prices` returns, for each ticker it can price, the latest close dated on or
          before `as_of` (never after), keyed by ticker; the quote's `as_of` is the date of
          that close.
        - A ticker with no price is absent from the mapping: no error, no zero, no None.
        - One call serves many tickers; the job sends each batch's unique tickers at once.
    """

    async def get_prices(
        self, tickers: Collection[str], as_of: dt.date
    ) -> Mapping[str, PriceQuote]:
        """Return the latest quote on or before `as_of` for each ticker that has one."""
        ...


@runtime_checkable
class SnapshotRepository(Protocol):
    """Where snapshots are stored.

    Contract:
        - The key is ``(portfolio_id, snapshot_date)``: `upsert_many` inserts new keys and
          replaces stored ones, so writing the same snapshot twice leaves one.
        - `upsert_many` is atomic: either the whole batch is stored or none of it is (a
          cancelled or failed call leaves the previous rows as they were).
        - Reads return exactly what was written (Decimals compare equal, positions in order).
        - `list_snapshots` returns the snapshots with ``start <= snapshot_date <= end`` in
          ascending date order; `existing_dates` returns the dates of those snapshots.
    """

    async def upsert_many(self, snapshots: Sequence[PortfolioSnapshot]) -> None:
        """Insert or replace `snapshots` atomically, keyed by (portfolio_id, snapshot_date)."""
        ...

    async def get_snapshot(self, portfolio_id: UUID, day: dt.date) -> PortfolioSnapshot | None:
        """Return the stored snapshot of `portfolio_id` on `day`, or None."""
        ...

    async def list_snapshots(
        self, portfolio_id: UUID, start: dt.date, end: dt.date
    ) -> Sequence[PortfolioSnapshot]:
        """Return the snapshots of `portfolio_id` from `start` to `end` inclusive, by date."""
        ...

    async def existing_dates(
        self, portfolio_id: UUID, start: dt.date, end: dt.date
    ) -> frozenset[dt.date]:
        """Return the dates from `start` to `end` inclusive that have a stored snapshot."""
        ...
