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
    from datetime import timedelta
    from uuid import UUID

    from portfolio_snapshots._domain import (
        DailyTotals,
        FxQuote,
        Lease,
        Portfolio,
        PortfolioDay,
        PortfolioSnapshot,
        PriceQuote,
        RunRecord,
        RunState,
    )
    from portfolio_snapshots._ledger import Transaction
    from portfolio_snapshots._shards import Shard


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
          that close, and its `ticker` the key (a quote for another ticker is refused).
        - A ticker with no price is absent from the mapping: no error, no zero, no None.
        - One call serves many tickers; the job sends each batch's unique tickers at once.
    """

    async def get_prices(
        self, tickers: Collection[str], as_of: dt.date
    ) -> Mapping[str, PriceQuote]:
        """Return the latest quote on or before `as_of` for each ticker that has one."""
        ...


@runtime_checkable
class PriceHistory(Protocol):
    """An optional capability of a `MarketData` adapter: a date range of closes in one call.

    Backfills use it, when the adapter has it, so a backfill of D days over T tickers asks
    for prices once per batch of tickers instead of D times.

    Contract:
        - `get_price_history` returns, for each ticker, every close dated from `start` to
          `end` inclusive, in ascending date order, with the same price convention as
          `MarketData.get_prices`; tickers without any close in the range are absent.
    """

    async def get_price_history(
        self, tickers: Collection[str], start: dt.date, end: dt.date
    ) -> Mapping[str, Sequence[PriceQuote]]:
        """Return the closes of each ticker dated from `start` to `end` inclusive, by date."""
        ...


@runtime_checkable
class SnapshotRepository(Protocol):
    """Where snapshots are stored.

    Contract:
        - The key is ``(portfolio_id, snapshot_date)``: `upsert_many` inserts new keys and
          replaces stored ones, so writing the same snapshot twice leaves one. A batch that
          holds the same key twice stores the later one.
        - `upsert_many` is atomic: either the whole batch is stored or none of it is (a
          cancelled or failed call leaves the previous rows as they were). Concurrent calls
          with the same keys never fail with a duplicate-key error.
        - Fencing: each row remembers the fence it was written with (0 for an unfenced
          write). A write with a `fence` leaves alone, silently, every stored row whose fence
          is greater: that row was written under a newer lease. An unfenced write
          (``fence=None``, the host writing on purpose) always replaces and stores fence 0.
        - Reads return exactly what was written (Decimals compare equal, positions in order).
        - `list_snapshots` returns the snapshots with ``start <= snapshot_date <= end`` in
          ascending date order; `existing_dates` returns the dates of those snapshots;
          `existing_keys` returns which of the given keys are stored.
    """

    async def upsert_many(
        self, snapshots: Sequence[PortfolioSnapshot], *, fence: int | None = None
    ) -> None:
        """Insert or replace `snapshots` atomically, keyed by (portfolio_id, snapshot_date).

        With a `fence`, rows stored under a greater fence are kept as they are.
        """
        ...

    async def existing_keys(
        self, keys: Collection[tuple[UUID, dt.date]]
    ) -> frozenset[tuple[UUID, dt.date]]:
        """Return the ``(portfolio_id, snapshot_date)`` keys among `keys` that are stored."""
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


@runtime_checkable
class SnapshotTotals(Protocol):
    """An optional capability of a `SnapshotRepository`: totals without positions, for charts.

    Contract:
        - `list_totals` returns one `DailyTotals` per stored snapshot of `portfolio_id` with
          ``start <= snapshot_date <= end``, in ascending date order, each equal to
          ``DailyTotals.of`` of the snapshot `list_snapshots` returns for that day.
        - `totals_on` returns the totals of those `portfolio_ids` that have a snapshot on
          `day`, in ascending portfolio id order (each id once, however often it is given).
        - Neither reads nor decodes positions: they are the fast path of a value chart and an
          overview of many portfolios.
    """

    async def list_totals(
        self, portfolio_id: UUID, start: dt.date, end: dt.date
    ) -> Sequence[DailyTotals]:
        """Return the totals of `portfolio_id` from `start` to `end` inclusive, by date."""
        ...

    async def totals_on(
        self, day: dt.date, portfolio_ids: Collection[UUID]
    ) -> Sequence[DailyTotals]:
        """Return the totals on `day` of those `portfolio_ids` that have a snapshot, by id."""
        ...


@runtime_checkable
class RunLedger(Protocol):
    """Remembers every run key: its parameters, its state and its report.

    Contract:
        - `start` is atomic: it creates the record in state RUNNING with ``attempts == 1``
          when the key is new; for a known key with the same `params_hash` it returns a
          SUCCEEDED record unchanged, and sets any other back to RUNNING with ``attempts``
          increased by one (a resume); for a known key with another hash it raises
          `RunKeyConflictError` and changes nothing.
        - `finish` records the final state and report of the latest attempt (a copy: later
          changes to the caller's mapping do not reach the ledger); for a key that was never
          started it raises `KeyError`.
        - `get` returns None for an unknown key.
    """

    async def start(self, key: str, params_hash: str, now: dt.datetime) -> RunRecord:
        """Create or resume the run `key`, or return it unchanged when it already succeeded."""
        ...

    async def finish(
        self, key: str, state: RunState, report: Mapping[str, object], now: dt.datetime
    ) -> RunRecord:
        """Record that the latest attempt of `key` ended in `state` with `report`."""
        ...

    async def get(self, key: str) -> RunRecord | None:
        """Return the record of `key`, or None."""
        ...


@runtime_checkable
class RecentRuns(Protocol):
    """An optional capability of a `RunLedger`: its latest runs, for operators' tools.

    Contract:
        - `recent_runs` returns at most `limit` records (none for a `limit` below one), the
          most recently started attempt first; records started at the same instant come in
          key order. Each record is what `RunLedger.get` returns for its key.
    """

    async def recent_runs(self, limit: int) -> Sequence[RunRecord]:
        """Return the `limit` most recently started runs, latest first."""
        ...


@runtime_checkable
class RunLock(Protocol):
    """Leases that let one holder at a time run a key, with fencing tokens.

    Contract:
        - `acquire` returns a new `Lease` when the key is free or its lease has expired at
          `now`, with a fence greater than every fence this store handed out before (for any
          key); it returns None when another owner holds an unexpired lease. An owner that
          acquires a key it already holds gets a new lease (a new fence).
        - `renew` extends a lease that is still held, unexpired, with the same fence; otherwise
          it raises `LeaseLostError`.
        - `release` frees the key if `lease` still holds it, and does nothing otherwise.
        - A lease is expired from the instant ``now >= expires_at``.
        - Times are the caller's (UTC, from the job's clock), so tests can drive expiry.
    """

    async def acquire(self, key: str, owner: str, ttl: timedelta, now: dt.datetime) -> Lease | None:
        """Take the lease on `key` for `ttl`, or return None if someone else holds it."""
        ...

    async def renew(self, lease: Lease, ttl: timedelta, now: dt.datetime) -> Lease:
        """Extend `lease` by `ttl` from `now`, or raise `LeaseLostError`."""
        ...

    async def release(self, lease: Lease) -> None:
        """Give `lease` up if it is still held."""
        ...


@runtime_checkable
class PortfolioHistory(Protocol):
    """A repository that can rebuild one portfolio's states over a date range in one pass.

    Contract:
        - `portfolio_history` yields one `PortfolioDay` per calendar date from `start` to
          `end` inclusive, in ascending order; each state equals what ``get_portfolio``
          would return for that date (None becomes a `PortfolioDay` with neither field set).
        - All I/O happens before the first item is yielded: an error raised then (a
          transient one included) means nothing was yielded, and the caller may retry the
          whole call under its policy. Once items flow, a failure is reported in the
          items, never raised: a date whose state cannot be built, and every date after it,
          carry the error.
        - It raises `PortfolioNotFoundError` (before yielding) for a portfolio it does not
          know at all, and `InvalidDateRangeError` when `start` is after `end`.
    """

    def portfolio_history(
        self, portfolio_id: UUID, start: dt.date, end: dt.date
    ) -> AsyncIterator[PortfolioDay]:
        """Yield the portfolio's state at the end of each date from `start` to `end`."""
        ...


@runtime_checkable
class PortfolioDayStream(Protocol):
    """A repository whose daily stream reports the portfolios it could not build.

    Contract:
        - `iter_portfolio_days` yields one `PortfolioDay` for every portfolio active on
          `as_of`, each exactly once, in any order, streaming, like ``iter_portfolios``.
        - A portfolio whose state cannot be built is yielded with its `error` set (whatever
          the error: an invalid ledger, a transient read failure); the stream goes on with
          the others. Only a failure of the stream itself (listing the portfolios) raises.
        - A portfolio listed as active that did not exist yet on `as_of` is yielded with
          neither field set.
    """

    def iter_portfolio_days(self, as_of: dt.date) -> AsyncIterator[PortfolioDay]:
        """Stream every portfolio active on `as_of` as a `PortfolioDay`."""
        ...


@runtime_checkable
class ShardedPortfolios(Protocol):
    """A repository that can stream one shard of the portfolios, filtering in its own query.

    Optional: without it, a sharded run streams every portfolio and keeps its shard's.

    Contract:
        - `iter_shard` yields what ``iter_portfolios(as_of)`` yields, restricted to the
          portfolios whose id the shard contains (``shard.contains(portfolio.id)``),
          each exactly once, in any order, streaming. Yielding others is harmless (the job
          keeps only its shard's); leaving one out loses it.
        - Errors as for ``iter_portfolios``.
    """

    def iter_shard(self, as_of: dt.date, shard: Shard) -> AsyncIterator[Portfolio]:
        """Stream the portfolios active on `as_of` that belong to `shard`."""
        ...


@runtime_checkable
class FxRates(Protocol):
    """Exchange rates.

    Contract:
        - `get_rates` returns, for each requested ``(base, quote)`` pair it can answer, the
          latest rate dated on or before `as_of` (never after), keyed by the pair exactly as
          requested; the quote's `base` and `quote` are the pair's and its `as_of` is the
          date of the rate.
        - A pair with no rate is absent from the mapping: no error, no zero, no None.
        - An adapter that stores one direction of a pair may answer the other with
          `invert_quote`; callers that cannot rely on it request both directions
          (`pairs_with_inverses`) and pick with `resolve_rate`.
        - Identity pairs (``("USD", "USD")``) need not be asked for: `resolve_rate` answers
          them.
        - One call serves many pairs; transient faults raise `TransientError` (or
          `ConnectionError` / `TimeoutError`).
    """

    async def get_rates(
        self, pairs: Collection[tuple[str, str]], as_of: dt.date
    ) -> Mapping[tuple[str, str], FxQuote]:
        """Return the latest rate on or before `as_of` for each pair that has one."""
        ...


@runtime_checkable
class FxRateHistory(Protocol):
    """An optional capability of an `FxRates` adapter: a date range of rates in one call.

    Backfills use it, when the adapter has it, to ask for each pair's rates once for the whole
    range instead of once per day.

    Contract:
        - `get_rate_history` returns, for each requested pair, every rate stored under that
          exact pair dated from `start` to `end` inclusive, in ascending date order; pairs
          without any are absent. Inverse pairs are not derived here: callers ask for both
          directions (`pairs_with_inverses`).
    """

    async def get_rate_history(
        self, pairs: Collection[tuple[str, str]], start: dt.date, end: dt.date
    ) -> Mapping[tuple[str, str], Sequence[FxQuote]]:
        """Return the rates of each pair dated from `start` to `end` inclusive, by date."""
        ...


@runtime_checkable
class TransactionSource(Protocol):
    """Where the host's transactions live.

    Contract:
        - `transactions` returns every transaction of the portfolio dated on or before
          `until`, in ascending `trade_date` order (the order within a date does not
          matter); an empty sequence for a portfolio it does not know. Amounts are Decimals
          in the portfolio's base currency.
        - `active_portfolio_ids` yields the id of every portfolio active on `as_of`, each
          exactly once, in any order, streaming.
        - `base_currency` returns the ISO 4217 code the portfolio is kept in, or None for a
          portfolio it does not know.
        - Transient faults raise `TransientError` (or `ConnectionError` / `TimeoutError`).
    """

    async def transactions(self, portfolio_id: UUID, until: dt.date) -> Sequence[Transaction]:
        """Return the portfolio's transactions dated on or before `until`, by date."""
        ...

    def active_portfolio_ids(self, as_of: dt.date) -> AsyncIterator[UUID]:
        """Stream the id of every portfolio active on `as_of`."""
        ...

    async def base_currency(self, portfolio_id: UUID) -> str | None:
        """Return the portfolio's base currency, or None if the portfolio is unknown."""
        ...
