"""Value types: what a portfolio holds, what a price is, what a snapshot records.

All money and quantities are `decimal.Decimal`; all dates are UTC calendar dates. The values are
immutable and cheap to build: they do not validate themselves on construction, because most of
them are produced by the calculator from data that was already checked. Untrusted data is
checked where it enters (see `parse_portfolio` and the calculator's checks on every portfolio it
values).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Mapping
from decimal import Decimal
from typing import NamedTuple
from uuid import UUID

DEFAULT_CURRENCY = "USD"


@dataclasses.dataclass(frozen=True, slots=True)
class Portfolio:
    """A portfolio's state at the end of one day: cash and holdings.

    Attributes:
        id: The portfolio's id in the host application.
        cash_balance: Cash held, in `currency`.
        holdings: Quantity held per ticker. Quantities may be fractional; a quantity of zero
            is allowed and simply not valued. Treat the mapping as read-only.
        currency: The ISO 4217 code the portfolio is valued in (its base currency).
        net_contributions: Deposits minus withdrawals up to the end of the day, when the
            repository knows the ledger (None otherwise).
        external_flow: The day's deposits minus withdrawals, when known (None otherwise).
    """

    id: UUID
    cash_balance: Decimal
    holdings: Mapping[str, Decimal] = dataclasses.field(default_factory=dict)
    currency: str = DEFAULT_CURRENCY
    net_contributions: Decimal | None = None
    external_flow: Decimal | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class PriceQuote:
    """The closing price of one ticker on one date.

    Attributes:
        ticker: The instrument's symbol.
        price: The price of one unit, in `currency`. Must be positive and finite.
        as_of: The date of the close this price is.
        currency: The ISO 4217 code of `price`.
    """

    ticker: str
    price: Decimal
    as_of: dt.date
    currency: str = DEFAULT_CURRENCY


class PositionValuation(NamedTuple):
    """One position of a snapshot: how much was held and at what price it was valued.

    A named tuple rather than a dataclass because a daily run builds millions of them: it is
    immutable, typed and about three times cheaper to create.

    Attributes:
        ticker: The instrument's symbol.
        quantity: The quantity held.
        price: The unit price used.
        price_date: The date of the price actually used (on or before the snapshot date).
        market_value: ``quantity * price * fx_rate`` in the portfolio's currency, rounded to
            its minor unit.
        price_currency: The currency of `price` (the portfolio's when None).
        fx_rate: Units of the portfolio's currency per unit of `price_currency`, when the
            price was converted (None when it was not).
        stale: Whether the price (or rate) was carried forward from an older close under the
            ``carry_forward`` missing-data policy.
    """

    ticker: str
    quantity: Decimal
    price: Decimal
    price_date: dt.date
    market_value: Decimal
    price_currency: str | None = None
    fx_rate: Decimal | None = None
    stale: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class PortfolioSnapshot:
    """A portfolio's valuation on one date: one per (portfolio_id, snapshot_date).

    Invariants, guaranteed by the calculator: ``holdings_value`` is the exact sum of the
    positions' market values; ``total_value == cash_balance + holdings_value`` exactly;
    positions are sorted by ticker and none has a quantity of zero.

    Attributes:
        portfolio_id: The portfolio valued.
        snapshot_date: The UTC date valued (holdings and prices as of the end of that date).
        currency: The currency of every amount in the snapshot.
        cash_balance: Cash held.
        holdings_value: Sum of the positions' market values.
        total_value: ``cash_balance + holdings_value``.
        positions: The valued positions, sorted by ticker.
        net_contributions: Deposits minus withdrawals to date, when the ledger is known.
        external_flow: The day's deposits minus withdrawals, when the ledger is known.
        stale: Whether any position was valued with a carried-forward price or rate.
    """

    portfolio_id: UUID
    snapshot_date: dt.date
    currency: str
    cash_balance: Decimal
    holdings_value: Decimal
    total_value: Decimal
    positions: tuple[PositionValuation, ...] = ()
    net_contributions: Decimal | None = None
    external_flow: Decimal | None = None
    stale: bool = False

    def position(self, ticker: str) -> PositionValuation | None:
        """Return the position in `ticker`, or None when the snapshot holds none."""
        for p in self.positions:
            if p.ticker == ticker:
                return p
        return None


class RunState(enum.StrEnum):
    """Where a run stands in the `RunLedger`."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclasses.dataclass(frozen=True, slots=True)
class RunRecord:
    """What the `RunLedger` knows of one run key.

    Attributes:
        key: The run key (``daily:2026-11-27``, ``backfill:<portfolio>:<start>:<end>``, ...).
        params_hash: A hash of the run's parameters; reusing a key with others is an error.
        state: Running, succeeded or failed.
        attempts: How many times a run of this key was started.
        started_at: When the latest attempt started (UTC).
        finished_at: When the latest attempt finished (UTC), or None while it runs.
        report: The JSON-friendly report of the latest finished attempt (`RunReport.as_dict`).
    """

    key: str
    params_hash: str
    state: RunState
    attempts: int
    started_at: dt.datetime
    finished_at: dt.datetime | None = None
    report: Mapping[str, object] | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Lease:
    """The right to run one key, for a while.

    Attributes:
        key: The run key the lease is for.
        owner: Who holds it (one id per job instance).
        fence: The fencing token: strictly greater for every new acquisition in the same lock
            store, so a write made under an older lease can be told apart and refused.
        expires_at: When the lease lapses unless renewed (UTC).
    """

    key: str
    owner: str
    fence: int
    expires_at: dt.datetime


class MissingDataPolicy(enum.StrEnum):
    """What a run does with a close or FX rate older than its ``max_price_age``.

    ``FAIL`` (the default) treats it as missing: that portfolio-day fails with a clear error
    and nothing is stored for it. ``CARRY_FORWARD`` values with the last known close or rate
    and marks the position and the snapshot ``stale``, so a chart can show it. Either way, a
    ticker that has no price at all fails: a missing price is never valued at zero.
    """

    FAIL = "fail"
    CARRY_FORWARD = "carry_forward"
