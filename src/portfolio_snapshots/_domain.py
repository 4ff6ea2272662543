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
import itertools
from collections.abc import Iterable, Mapping
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


#: Fields per position in `PortfolioSnapshot.flat_positions`: those of `PositionValuation`.
POSITION_WIDTH = len(PositionValuation._fields)

#: The fields of a snapshot as users see them (``positions`` built from ``flat_positions``).
SNAPSHOT_FIELD_NAMES = (
    "portfolio_id",
    "snapshot_date",
    "currency",
    "cash_balance",
    "holdings_value",
    "total_value",
    "positions",
    "net_contributions",
    "external_flow",
    "stale",
)

_SNAPSHOT_FIELDS = (
    "portfolio_id",
    "snapshot_date",
    "currency",
    "cash_balance",
    "holdings_value",
    "total_value",
    "flat_positions",
    "net_contributions",
    "external_flow",
    "stale",
)


class PortfolioSnapshot:
    """A portfolio's valuation on one date: one per (portfolio_id, snapshot_date).

    Invariants, guaranteed by the calculator: ``holdings_value`` is the exact sum of the
    positions' market values; ``total_value == cash_balance + holdings_value`` exactly;
    positions are sorted by ticker and none has a quantity of zero.

    Immutable, compared and hashed by value, like a frozen dataclass (use `replace` for a
    changed copy). The positions are kept as one flat tuple of their fields
    (`flat_positions`) and built as `PositionValuation` values when `positions` is read: a
    daily run creates millions of positions that are stored and never looked at, and a flat
    tuple of immutable values costs neither time to build nor the garbage collector's
    attention.

    Attributes:
        portfolio_id: The portfolio valued.
        snapshot_date: The UTC date valued (holdings and prices as of the end of that date).
        currency: The currency of every amount in the snapshot.
        cash_balance: Cash held.
        holdings_value: Sum of the positions' market values.
        total_value: ``cash_balance + holdings_value``.
        positions: The valued positions, sorted by ticker (built on each read).
        flat_positions: The positions' fields, position after position
            (`POSITION_WIDTH` each), the form adapters store.
        net_contributions: Deposits minus withdrawals to date, when the ledger is known.
        external_flow: The day's deposits minus withdrawals, when the ledger is known.
        stale: Whether any position was valued with a carried-forward price or rate.
    """

    __slots__ = _SNAPSHOT_FIELDS
    __match_args__ = (
        "portfolio_id",
        "snapshot_date",
        "currency",
        "cash_balance",
        "holdings_value",
        "total_value",
        "positions",
    )

    portfolio_id: UUID
    snapshot_date: dt.date
    currency: str
    cash_balance: Decimal
    holdings_value: Decimal
    total_value: Decimal
    flat_positions: tuple[object, ...]
    net_contributions: Decimal | None
    external_flow: Decimal | None
    stale: bool

    def __init__(  # noqa: PLR0917 - the snapshot's fields, positional like a dataclass
        self,
        portfolio_id: UUID,
        snapshot_date: dt.date,
        currency: str,
        cash_balance: Decimal,
        holdings_value: Decimal,
        total_value: Decimal,
        positions: Iterable[PositionValuation] = (),
        net_contributions: Decimal | None = None,
        external_flow: Decimal | None = None,
        stale: bool = False,
    ) -> None:
        """Build a snapshot; see the class docstring for the fields."""
        flat = tuple(itertools.chain.from_iterable(positions))
        if len(flat) % POSITION_WIDTH:
            raise ValueError("positions must be PositionValuation values")
        _fill(
            self,
            portfolio_id,
            snapshot_date,
            currency,
            cash_balance,
            holdings_value,
            total_value,
            flat,
            net_contributions,
            external_flow,
            stale,
        )

    @classmethod
    def from_flat(  # noqa: PLR0917 - the snapshot's fields, positional like the constructor
        cls,
        portfolio_id: UUID,
        snapshot_date: dt.date,
        currency: str,
        cash_balance: Decimal,
        holdings_value: Decimal,
        total_value: Decimal,
        flat_positions: tuple[object, ...],
        net_contributions: Decimal | None = None,
        external_flow: Decimal | None = None,
        stale: bool = False,
    ) -> PortfolioSnapshot:
        """Build a snapshot from positions already flattened (as `flat_positions` holds them).

        The fast path for the calculator and for adapters reading stored rows; nothing is
        checked, so give it only what a snapshot's `flat_positions` held.
        """
        snapshot = _new(cls)
        _fill(
            snapshot,
            portfolio_id,
            snapshot_date,
            currency,
            cash_balance,
            holdings_value,
            total_value,
            flat_positions,
            net_contributions,
            external_flow,
            stale,
        )
        return snapshot

    @property
    def positions(self) -> tuple[PositionValuation, ...]:
        """The valued positions, sorted by ticker."""
        flat = self.flat_positions
        return tuple(
            _new_position(PositionValuation, flat[i : i + POSITION_WIDTH])
            for i in range(0, len(flat), POSITION_WIDTH)
        )

    def position(self, ticker: str) -> PositionValuation | None:
        """Return the position in `ticker`, or None when the snapshot holds none."""
        flat = self.flat_positions
        for i in range(0, len(flat), POSITION_WIDTH):
            if flat[i] == ticker:
                return _new_position(PositionValuation, flat[i : i + POSITION_WIDTH])
        return None

    def replace(self, **changes: object) -> PortfolioSnapshot:
        """Return a copy with the given fields changed (``positions=`` included)."""
        values: dict[str, object] = {f: getattr(self, f) for f in _SNAPSHOT_FIELDS}
        if "positions" in changes:
            values["flat_positions"] = tuple(
                itertools.chain.from_iterable(changes.pop("positions"))  # type: ignore[arg-type]
            )
        unknown = set(changes) - set(_SNAPSHOT_FIELDS)
        if unknown:
            raise TypeError(f"PortfolioSnapshot has no field {min(unknown)!r}")
        values.update(changes)
        return PortfolioSnapshot.from_flat(**values)  # type: ignore[arg-type]

    __replace__ = replace  # copy.replace() on Python 3.13+

    def _key(self) -> tuple[object, ...]:
        return tuple(getattr(self, f) for f in _SNAPSHOT_FIELDS)

    def __eq__(self, other: object) -> bool:
        """Compare every field, like a dataclass."""
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        """Hash every field, like a frozen dataclass."""
        return hash(self._key())

    def __repr__(self) -> str:
        """Show every field, positions built."""
        fields = ", ".join(
            f"{f}={getattr(self, f)!r}" for f in _SNAPSHOT_FIELDS if f != "flat_positions"
        )
        return f"PortfolioSnapshot({fields}, positions={self.positions!r})"

    def __setattr__(self, name: str, value: object) -> None:
        """Refuse: snapshots are immutable."""
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        """Refuse: snapshots are immutable."""
        raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")

    def __reduce__(self) -> tuple[object, ...]:
        """Pickle through `from_flat`."""
        return (PortfolioSnapshot.from_flat, self._key())


_new = object.__new__
_new_position = tuple.__new__
# The slots' own setters bypass the frozen __setattr__; they are how snapshots are filled.
_SETTERS = tuple(PortfolioSnapshot.__dict__[f].__set__ for f in _SNAPSHOT_FIELDS)


def _fill(  # noqa: PLR0917 - every field, positionally, on the hot path
    snapshot: PortfolioSnapshot,
    portfolio_id: UUID,
    snapshot_date: dt.date,
    currency: str,
    cash_balance: Decimal,
    holdings_value: Decimal,
    total_value: Decimal,
    flat_positions: tuple[object, ...],
    net_contributions: Decimal | None,
    external_flow: Decimal | None,
    stale: bool,
) -> None:
    s0, s1, s2, s3, s4, s5, s6, s7, s8, s9 = _SETTERS
    s0(snapshot, portfolio_id)
    s1(snapshot, snapshot_date)
    s2(snapshot, currency)
    s3(snapshot, cash_balance)
    s4(snapshot, holdings_value)
    s5(snapshot, total_value)
    s6(snapshot, flat_positions)
    s7(snapshot, net_contributions)
    s8(snapshot, external_flow)
    s9(snapshot, stale)


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
