"""`LedgerPortfolioRepository`: portfolios rebuilt from the host's transaction ledger.

The host keeps transactions, not daily states; this adapter replays them (see
`portfolio_snapshots._ledger`) so that every date, past ones included, is valued with the
holdings and cash of that date, and fills ``net_contributions`` and ``external_flow`` so that
returns can tell a deposit from a gain, cash held in other currencies (``foreign_cash``) and
the books (``accounting``: cost basis, realized gain, income, fees, taxes, transfers). The
host implements the small `TransactionSource` port; `InMemoryTransactionSource` is its
reference fake.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import TYPE_CHECKING

from portfolio_snapshots._domain import PortfolioDay
from portfolio_snapshots._errors import InvalidDateRangeError, PortfolioNotFoundError
from portfolio_snapshots._ledger import (
    CostBasisMethod,
    LedgerReplayer,
    LedgerState,
    check_cost_basis_method,
    replay,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from uuid import UUID

    from portfolio_snapshots._domain import Portfolio
    from portfolio_snapshots._ports import TransactionSource

__all__ = ["LedgerPortfolioRepository"]

_log = logging.getLogger("portfolio_snapshots.ledger")
_ONE_DAY = dt.timedelta(days=1)


class LedgerPortfolioRepository:
    """A `PortfolioRepository` that rebuilds each portfolio from its transactions.

    It also offers the `PortfolioHistory` and `PortfolioDayStream` capabilities. A portfolio
    exists from the date of its first transaction: before it, `get_portfolio` returns None
    and the capabilities yield a `PortfolioDay` with neither field set.

    Errors: `get_portfolio` raises them (an `InvalidTransactionError` for an invalid ledger,
    whatever the source raised for a failed read). `iter_portfolios` must go on with the other
    portfolios, and its item type has no room for a failure, so it leaves the portfolio out
    and hands the `PortfolioDay` carrying the error to `on_error` (by default, a warning on
    the ``portfolio_snapshots.ledger`` logger); `iter_portfolio_days` yields it instead, which
    is what a job that knows the capability uses.

    Args:
        source: Where the transactions come from.
        concurrency: Portfolios whose transactions are read at once while streaming.
        on_error: Told of every portfolio `iter_portfolios` leaves out because its state
            cannot be built.
        cost_basis_method: How units leaving a position take its cost basis (average cost
            by default; see `CostBasisMethod`).

    Raises:
        ValueError: `concurrency` is below 1, or `cost_basis_method` is not a
            `CostBasisMethod`.
    """

    def __init__(
        self,
        source: TransactionSource,
        *,
        concurrency: int = 8,
        on_error: Callable[[PortfolioDay], object] | None = None,
        cost_basis_method: CostBasisMethod = CostBasisMethod.AVERAGE,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self._source = source
        self._concurrency = concurrency
        self._on_error = on_error
        self._method = check_cost_basis_method(cost_basis_method)

    async def get_portfolio(self, portfolio_id: UUID, as_of: dt.date) -> Portfolio | None:
        """Return the portfolio's state at the end of `as_of`, or None if unknown then.

        Args:
            portfolio_id: The portfolio.
            as_of: The date.

        Returns:
            The state, with ``net_contributions``, ``external_flow``, ``splits``,
            ``foreign_cash`` and ``accounting`` filled; None when the source does not know
            the portfolio or it had no transaction on or before `as_of`.

        Raises:
            InvalidTransactionError: The ledger up to `as_of` is invalid (see `replay`).
        """
        currency = await self._source.base_currency(portfolio_id)
        if currency is None:
            return None
        txs = await self._source.transactions(portfolio_id, as_of)
        state = replay(
            txs,
            as_of,
            currency=currency,
            portfolio_id=portfolio_id,
            cost_basis_method=self._method,
        )
        return None if state.opened_on is None else state.to_portfolio(portfolio_id)

    async def iter_portfolio_days(self, as_of: dt.date) -> AsyncIterator[PortfolioDay]:
        """Stream every active portfolio as a `PortfolioDay` (the `PortfolioDayStream` way).

        Reads the transactions of up to `concurrency` portfolios at once. A portfolio whose
        read or replay fails is yielded with the error; the stream goes on.
        """
        chunk: list[UUID] = []
        async for portfolio_id in self._source.active_portfolio_ids(as_of):
            chunk.append(portfolio_id)
            if len(chunk) >= self._concurrency:
                for day in await self._load_many(chunk, as_of):
                    yield day
                chunk = []
        if chunk:
            for day in await self._load_many(chunk, as_of):
                yield day

    async def iter_portfolios(self, as_of: dt.date) -> AsyncIterator[Portfolio]:
        """Stream every active portfolio that can be built, with its state at `as_of`.

        A portfolio whose state cannot be built is left out and handed to `on_error`.
        """
        async for day in self.iter_portfolio_days(as_of):
            if day.portfolio is not None:
                yield day.portfolio
            elif day.error is not None:
                self._report(day)

    async def portfolio_history(
        self, portfolio_id: UUID, start: dt.date, end: dt.date
    ) -> AsyncIterator[PortfolioDay]:
        """Yield the portfolio's state at the end of each date from `start` to `end`.

        The `PortfolioHistory` capability: the source is read once, before the first item,
        and the ledger replayed in one pass. A date whose state cannot be built, and every
        later date, carry the error.

        Args:
            portfolio_id: The portfolio.
            start: The first date.
            end: The last date.

        Yields:
            One `PortfolioDay` per date, ascending.

        Raises:
            InvalidDateRangeError: `start` is after `end`.
            PortfolioNotFoundError: The source does not know the portfolio.
        """
        if start > end:
            raise InvalidDateRangeError("start is after end", start=start, end=end)
        currency = await self._source.base_currency(portfolio_id)
        if currency is None:
            raise PortfolioNotFoundError(portfolio_id)
        txs = await self._source.transactions(portfolio_id, end)
        replayer = LedgerReplayer(
            txs, currency=currency, portfolio_id=portfolio_id, cost_basis_method=self._method
        )
        error: Exception | None = None
        day = start
        portfolio: Portfolio | None = None
        while day <= end:
            state: LedgerState | None = None
            if error is None:
                try:
                    state = replayer.advance(day)
                except Exception as failure:  # noqa: BLE001 - reported in the items
                    error = failure
            if state is None:
                yield PortfolioDay(portfolio_id, day, error=error)
            elif state.opened_on is None:
                yield PortfolioDay(portfolio_id, day)
            else:
                # Most days change nothing: keep the same Portfolio value until something does.
                if (
                    portfolio is None
                    or portfolio.holdings is not state.holdings
                    or portfolio.cash_balance != state.cash
                    or portfolio.net_contributions != state.net_contributions
                    or portfolio.external_flow != state.external_flow
                    or portfolio.splits is not state.splits
                    or portfolio.accounting is not state.accounting
                    or portfolio.foreign_cash is not state.foreign_cash
                ):
                    portfolio = state.to_portfolio(portfolio_id)
                yield PortfolioDay(portfolio_id, day, portfolio)
            day += _ONE_DAY

    async def _load(self, portfolio_id: UUID, as_of: dt.date) -> PortfolioDay:
        try:
            portfolio = await self.get_portfolio(portfolio_id, as_of)
        except Exception as error:  # noqa: BLE001 - one portfolio's failure, not the stream's
            return PortfolioDay(portfolio_id, as_of, error=error)
        return PortfolioDay(portfolio_id, as_of, portfolio)

    async def _load_many(self, portfolio_ids: list[UUID], as_of: dt.date) -> list[PortfolioDay]:
        if len(portfolio_ids) == 1:
            return [await self._load(portfolio_ids[0], as_of)]
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self._load(p, as_of)) for p in portfolio_ids]
        return [task.result() for task in tasks]

    def _report(self, day: PortfolioDay) -> None:
        if self._on_error is not None:
            self._on_error(day)
        else:
            _log.warning(
                "portfolio %s left out on %s: %s: %s",
                day.portfolio_id,
                day.as_of.isoformat(),
                type(day.error).__name__,
                day.error,
            )
