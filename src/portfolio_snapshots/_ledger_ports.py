"""Optional capabilities of a `PortfolioRepository`, for valuing the past as it was.

A repository may offer more than the `PortfolioRepository` port; the job checks with
``isinstance`` (the protocols are `runtime_checkable`) and uses what is there:

- `PortfolioHistory`: every day of a backfill range in one pass, instead of one
  ``get_portfolio`` call per day.
- `PortfolioDayStream`: the daily stream, with the portfolios that could not be built
  reported instead of silently left out.

Both yield `PortfolioDay` values, which say of one portfolio on one date one of three things:
here is its state, it did not exist yet, or its state cannot be built (and why). A failure is
thus data, reported per portfolio-day, and never stops the stream of the others.
`LedgerPortfolioRepository` implements both.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import TYPE_CHECKING, Protocol, runtime_checkable
from uuid import UUID

from portfolio_snapshots._domain import Portfolio

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


@dataclasses.dataclass(frozen=True, slots=True)
class PortfolioDay:
    """One portfolio on one date, as the history capabilities yield it.

    Exactly one of three cases:

    - `portfolio` is set: the portfolio's state at the end of `as_of`; value it.
    - `error` is set: the state cannot be built (an invalid ledger, a failed read); record a
      failure for ``(portfolio_id, as_of)`` and go on with the others.
    - neither is set: the portfolio did not exist yet on `as_of`; skip the date.

    Attributes:
        portfolio_id: The portfolio.
        as_of: The date.
        portfolio: The state at the end of `as_of`, when it could be built.
        error: Why the state could not be built, when it could not.
    """

    portfolio_id: UUID
    as_of: dt.date
    portfolio: Portfolio | None = None
    error: Exception | None = None


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
