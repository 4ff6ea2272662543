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
from fractions import Fraction
from types import MappingProxyType
from typing import TYPE_CHECKING, NamedTuple, TypeAlias, cast
from uuid import UUID

from portfolio_snapshots._decimal import EXACT

DEFAULT_CURRENCY = "USD"

#: Quote currencies in a minor unit, as exchanges and data vendors name them, with the ISO 4217
#: currency they are a fraction of and how many make one: London prices in pence (``GBp``,
#: ``GBX``), Johannesburg in cents (``ZAc``), Tel Aviv in agorot (``ILA``). A quote in one of
#: them is converted to the major unit, exactly, where it enters a valuation.
QUOTE_MINOR_UNITS: Mapping[str, tuple[str, int]] = MappingProxyType(
    {"GBp": ("GBP", 100), "GBX": ("GBP", 100), "ZAc": ("ZAR", 100), "ILA": ("ILS", 100)}
)


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
        splits: The stock splits already applied to `holdings`, per ticker: ``(ex_date,
            ratio)`` pairs in ascending ex-date order (a ledger's SPLITs dated up to the
            day), or None when the repository does not know them. A ratio is new units per
            old unit, a `Fraction` (``Fraction(1, 3)`` for a 1-for-3 reverse split, as the
            ledger records it) or a `Decimal`. A close dated before an
            ex-date and used on or after it is in the units of before the split: the
            calculator divides it by the ratios in between, so ``quantity * price`` does
            not jump on a split date that has no close yet. Treat the mapping as read-only.
        foreign_cash: Cash held in currencies other than `currency`, per ISO 4217 code, or
            None when all cash is in `currency` (then `cash_balance` is all of it). Each
            balance is valued at the snapshot date's FX rate into `currency`, and the
            snapshot keeps every balance (`PortfolioSnapshot.cash_balances`). Read-only.
        accounting: What the portfolio's books say beyond cash and holdings (cost basis,
            realized gain, income, fees and taxes to date), or None when the repository does
            not know it: the snapshot's fields for them are then None, never zero.
    """

    id: UUID
    cash_balance: Decimal
    holdings: Mapping[str, Decimal] = dataclasses.field(default_factory=dict)
    currency: str = DEFAULT_CURRENCY
    net_contributions: Decimal | None = None
    external_flow: Decimal | None = None
    splits: Mapping[str, tuple[tuple[dt.date, Fraction | Decimal], ...]] | None = None
    foreign_cash: Mapping[str, Decimal] | None = None
    accounting: Accounting | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Accounting:
    """A portfolio's books to the end of a day: what its holdings cost, gained, earned, paid.

    Every amount is in the portfolio's base currency, cumulative from the portfolio's first
    transaction to the end of the day. Each field is None when it is not known (a repository
    that knows today's holdings and their cost basis, but not the history, supplies
    `cost_basis` alone); a snapshot then says None for it, never zero.

    Conventions (those of ``docs/analytics.md``): cost basis is what the units held cost,
    excluding fees (the trade's fee is counted in `fees`); a sale realizes its proceeds
    (before fees) minus the cost basis of the units sold, by average cost unless the ledger
    is replayed first-in, first-out. So, for a ledger with no transfers and its cash in one
    currency, ``unrealized + realized + dividends + interest - fees - taxes == total value -
    net contributions`` exactly.

    Attributes:
        cost_basis: Per ticker held, what its units cost in total (zero for units received
            for nothing). A ticker held but absent makes the position's cost basis (and the
            snapshot's) None. Read-only.
        realized_gain: Gains realized by sales to date, all tickers (negative for a loss).
        dividends: Dividends received to date.
        interest: Interest received to date.
        fees: Fees paid to date, trade fees included.
        taxes: Taxes paid to date, less tax refunds (`TAX_REFUND`).
        net_transfers: The value of the units transferred in minus transferred out to date
            (`TRANSFER_IN` and `TRANSFER_OUT`): a flow for returns, not a contribution of cash.
        position_realized: Per ticker, gains realized by its sales to date. Read-only.
        position_dividends: Per ticker, dividends it paid to date. Read-only.
    """

    cost_basis: Mapping[str, Decimal] | None = None
    realized_gain: Decimal | None = None
    dividends: Decimal | None = None
    interest: Decimal | None = None
    fees: Decimal | None = None
    taxes: Decimal | None = None
    net_transfers: Decimal | None = None
    position_realized: Mapping[str, Decimal] | None = None
    position_dividends: Mapping[str, Decimal] | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class PriceQuote:
    """The closing price of one ticker on one date.

    Attributes:
        ticker: The instrument's symbol.
        price: The price of one unit, in `currency`: finite, and zero or above. Zero is a
            price (a delisted or worthless security, valued at zero and marked
            `PositionValuation.valued_at_zero`); a missing close is never a zero.
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
        price: The unit price used, in the units `quantity` is counted in on the snapshot
            date: the close of `price_date`, divided by the ratios of the portfolio's splits
            dated after it and on or before the snapshot date (see `Portfolio.splits`).
        price_date: The date of the close actually used (on or before the snapshot date).
        market_value: ``quantity * price * fx_rate`` in the portfolio's currency, rounded to
            its minor unit.
        price_currency: The currency of `price` (the portfolio's when None).
        fx_rate: Units of the portfolio's currency per unit of `price_currency`, when the
            price was converted (None when it was not).
        stale: Whether the price (or rate) was carried forward from an older close under the
            ``carry_forward`` missing-data policy.
        cost_basis: What the units held cost in total, in the portfolio's currency, when the
            portfolio's `Accounting` knows it (None otherwise, never zero for unknown).
        unrealized_gain: ``market_value - cost_basis``, when the cost basis is known.
        realized_gain: Gains realized by sales of this ticker to date, when known.
        dividends: Dividends this ticker paid to date, when known.
    """

    ticker: str
    quantity: Decimal
    price: Decimal
    price_date: dt.date
    market_value: Decimal
    price_currency: str | None = None
    fx_rate: Decimal | None = None
    stale: bool = False
    cost_basis: Decimal | None = None
    unrealized_gain: Decimal | None = None
    realized_gain: Decimal | None = None
    dividends: Decimal | None = None

    @property
    def valued_at_zero(self) -> bool:
        """Whether the position was valued at a zero close (delisted or worthless).

        The source said zero: a missing close is never valued at zero, it fails the day.
        """
        return not self.price


class CashBalance(NamedTuple):
    """Cash held in one currency, and its value in the portfolio's currency on the day.

    Attributes:
        currency: The ISO 4217 code of `amount`.
        amount: The balance, in `currency` (negative when overdrawn).
        value: ``amount * fx_rate`` in the portfolio's currency, rounded to its minor unit
            (`amount` itself for the portfolio's own currency).
        fx_rate: Units of the portfolio's currency per unit of `currency` (None for the
            portfolio's own currency).
        stale: Whether the rate was carried forward from an older one.
    """

    currency: str
    amount: Decimal
    value: Decimal
    fx_rate: Decimal | None = None
    stale: bool = False


#: Fields per position in `PortfolioSnapshot.flat_positions`: the valuation's, the first eight
#: of `PositionValuation` (ticker to stale).
POSITION_WIDTH = 8
#: Fields per position in `PortfolioSnapshot.position_books`: its cost basis, realized gain
#: and dividends. The unrealized gain is not kept: it is ``market_value - cost_basis``,
#: computed when the position is read, so the books of a day without a transaction are the
#: same objects as the day before's.
POSITION_BOOKS_WIDTH = 3
_NO_POSITION_BOOKS = (None, None, None, None)

#: A snapshot's `values`: its fields in the constructor's order, positions flattened.
SnapshotValues: TypeAlias = tuple[
    UUID,
    dt.date,
    str,
    Decimal,
    Decimal,
    Decimal,
    tuple[object, ...],
    Decimal | None,
    Decimal | None,
    bool,
    Decimal | None,
    Decimal | None,
    Decimal | None,
    Decimal | None,
    Decimal | None,
    Decimal | None,
    Decimal | None,
    Decimal | None,
    tuple[CashBalance, ...],
    tuple[object, ...],
]

#: The accounting fields of a snapshot, in the order they follow ``stale`` in `values`.
ACCOUNTING_FIELD_NAMES = (
    "cost_basis",
    "unrealized_gain",
    "realized_gain",
    "dividends",
    "interest",
    "fees",
    "taxes",
    "net_transfers",
)

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
    *ACCOUNTING_FIELD_NAMES,
    "cash_balances",
)

# The same, with the stored form of the positions: the order of `PortfolioSnapshot.values`.
_SNAPSHOT_FIELDS = (
    *("flat_positions" if name == "positions" else name for name in SNAPSHOT_FIELD_NAMES),
    "position_books",
)


def _field(index: int, doc: str) -> property:
    """A read-only property returning item `index` of a snapshot's `values`."""

    def get(snapshot: PortfolioSnapshot) -> object:
        return snapshot.values[index]

    return property(get, doc=doc)


class CalculatedValues(tuple[object, ...]):
    """The `values` of a snapshot `SnapshotCalculator` made, every market value derivable.

    The calculator gives a snapshot's fields in this tuple type (instead of a plain tuple)
    when each of its positions' market value is ``quantity x price (x fx_rate)``, exact,
    quantized half to even to the exponent of the holdings value, and not signed: exactly
    what a reader of the compact SQL layout derives when the value is left out. A writer can
    then leave every value out without computing it again. A snapshot made any other way
    (`PortfolioSnapshot`, `replace`, `from_flat`) has a plain tuple and is checked position
    by position; `from_values` keeps the tuple it is given, so the marker stays only with the
    very fields the calculator made. Equal to, and hashed as, the plain tuple of its items.
    """

    __slots__ = ()


class PortfolioSnapshot:
    """A portfolio's valuation on one date: one per (portfolio_id, snapshot_date).

    Invariants, guaranteed by the calculator: ``holdings_value`` is the exact sum of the
    positions' market values; ``total_value == cash_balance + holdings_value`` exactly;
    positions are sorted by ticker and none has a quantity of zero.

    Immutable, compared and hashed by value, like a frozen dataclass (use `replace` for a
    changed copy). Its fields live in one tuple (`values`) and the positions in it as one flat
    tuple of their fields (`flat_positions`), built as `PositionValuation` values when
    `positions` is read: a daily run creates millions of positions that are stored and never
    looked at, and flat tuples of immutable values cost neither time to build nor the garbage
    collector's attention.

    Attributes:
        portfolio_id: The portfolio valued.
        snapshot_date: The UTC date valued (holdings and prices as of the end of that date).
        currency: The currency of every amount in the snapshot.
        cash_balance: Cash held.
        holdings_value: Sum of the positions' market values.
        total_value: ``cash_balance + holdings_value``.
        positions: The valued positions, sorted by ticker (built on each read).
        flat_positions: The positions' valuation fields, position after position
            (`POSITION_WIDTH` each, ticker to stale), the form adapters store.
        position_books: The positions' accounting fields, position after position
            (`POSITION_BOOKS_WIDTH` each: cost basis, realized gain, dividends; the
            unrealized gain is computed from the cost basis when a position is read), or
            empty when no position has any (the common snapshot, which then carries
            nothing for them).
        net_contributions: Deposits minus withdrawals to date, when the ledger is known.
        external_flow: The day's deposits minus withdrawals, when the ledger is known.
        stale: Whether any position or cash balance was valued with a carried-forward price
            or rate.
        cost_basis: What the positions held cost in total, when the cost basis of every one
            is known (None otherwise: never a zero for "unknown").
        unrealized_gain: ``holdings_value - cost_basis``, when the cost basis is known.
        realized_gain: Gains realized by sales to date, when known.
        dividends: Dividends received to date, when known.
        interest: Interest received to date, when known.
        fees: Fees paid to date (trade fees included), when known.
        taxes: Taxes paid to date, when known.
        net_transfers: Value of the units transferred in minus out to date, when known.
        cash_balances: The balance in each currency with its rate and value, the portfolio's
            own currency first, when the portfolio holds cash in more than one currency
            (then ``cash_balance`` is the sum of their values); empty otherwise.
        values: Every field but `positions`, in the order of the constructor's arguments
            (`flat_positions` in the place of `positions`), then `position_books`.
    """

    __slots__ = ("values",)
    __match_args__ = SNAPSHOT_FIELD_NAMES[:7]

    values: SnapshotValues

    if TYPE_CHECKING:
        # Read-only fields for type checkers; at run time each reads one item of `values`.
        @property
        def portfolio_id(self) -> UUID: ...
        @property
        def snapshot_date(self) -> dt.date: ...
        @property
        def currency(self) -> str: ...
        @property
        def cash_balance(self) -> Decimal: ...
        @property
        def holdings_value(self) -> Decimal: ...
        @property
        def total_value(self) -> Decimal: ...
        @property
        def flat_positions(self) -> tuple[object, ...]: ...
        @property
        def net_contributions(self) -> Decimal | None: ...
        @property
        def external_flow(self) -> Decimal | None: ...
        @property
        def stale(self) -> bool: ...
        @property
        def cost_basis(self) -> Decimal | None: ...
        @property
        def unrealized_gain(self) -> Decimal | None: ...
        @property
        def realized_gain(self) -> Decimal | None: ...
        @property
        def dividends(self) -> Decimal | None: ...
        @property
        def interest(self) -> Decimal | None: ...
        @property
        def fees(self) -> Decimal | None: ...
        @property
        def taxes(self) -> Decimal | None: ...
        @property
        def net_transfers(self) -> Decimal | None: ...
        @property
        def cash_balances(self) -> tuple[CashBalance, ...]: ...
        @property
        def position_books(self) -> tuple[object, ...]: ...

    else:
        portfolio_id = _field(0, "The portfolio valued.")
        snapshot_date = _field(1, "The UTC date valued.")
        currency = _field(2, "The currency of every amount.")
        cash_balance = _field(3, "Cash held.")
        holdings_value = _field(4, "Sum of the positions' market values.")
        total_value = _field(5, "cash_balance + holdings_value.")
        flat_positions = _field(6, "The positions' fields, position after position.")
        net_contributions = _field(7, "Deposits minus withdrawals to date, or None.")
        external_flow = _field(8, "The day's deposits minus withdrawals, or None.")
        stale = _field(9, "Whether a value was carried forward.")
        cost_basis = _field(10, "What the positions held cost, or None.")
        unrealized_gain = _field(11, "holdings_value - cost_basis, or None.")
        realized_gain = _field(12, "Gains realized to date, or None.")
        dividends = _field(13, "Dividends received to date, or None.")
        interest = _field(14, "Interest received to date, or None.")
        fees = _field(15, "Fees paid to date, or None.")
        taxes = _field(16, "Taxes paid to date, or None.")
        net_transfers = _field(17, "Units transferred in minus out to date, or None.")
        cash_balances = _field(18, "Cash per currency, when more than one.")
        position_books = _field(19, "The positions' accounting fields, or empty.")

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
        cost_basis: Decimal | None = None,
        unrealized_gain: Decimal | None = None,
        realized_gain: Decimal | None = None,
        dividends: Decimal | None = None,
        interest: Decimal | None = None,
        fees: Decimal | None = None,
        taxes: Decimal | None = None,
        net_transfers: Decimal | None = None,
        cash_balances: Iterable[CashBalance] = (),
    ) -> None:
        flat, books = _split_positions(positions)
        _set_values(
            self,
            (
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
                cost_basis,
                unrealized_gain,
                realized_gain,
                dividends,
                interest,
                fees,
                taxes,
                net_transfers,
                tuple(cash_balances),
                books,
            ),
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
        cost_basis: Decimal | None = None,
        unrealized_gain: Decimal | None = None,
        realized_gain: Decimal | None = None,
        dividends: Decimal | None = None,
        interest: Decimal | None = None,
        fees: Decimal | None = None,
        taxes: Decimal | None = None,
        net_transfers: Decimal | None = None,
        cash_balances: Iterable[CashBalance] = (),
        position_books: tuple[object, ...] = (),
    ) -> PortfolioSnapshot:
        """Build a snapshot from positions already flattened (as `flat_positions` holds them).

        The fast path for adapters reading stored rows; nothing is checked, so give it only
        what a snapshot's `flat_positions` held.
        """
        return cls.from_values(
            (
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
                cost_basis,
                unrealized_gain,
                realized_gain,
                dividends,
                interest,
                fees,
                taxes,
                net_transfers,
                tuple(cash_balances),
                position_books,
            )
        )

    @classmethod
    def from_values(
        cls,
        values: SnapshotValues,
    ) -> PortfolioSnapshot:
        """Build a snapshot from a `values` tuple, unchecked: the calculator's fast path."""
        snapshot = _new(cls)
        _set_values(snapshot, values)
        return snapshot

    @property
    def positions(self) -> tuple[PositionValuation, ...]:
        """The valued positions, sorted by ticker."""
        flat, books = self.values[6], self.values[19]
        return tuple(position_at(flat, books, n) for n in range(len(flat) // POSITION_WIDTH))

    def position(self, ticker: str) -> PositionValuation | None:
        """Return the position in `ticker`, or None when the snapshot holds none."""
        flat = self.values[6]
        for n in range(len(flat) // POSITION_WIDTH):
            if flat[n * POSITION_WIDTH] == ticker:
                return position_at(flat, self.values[19], n)
        return None

    def as_dict(self) -> dict[str, object]:
        """Return the snapshot as JSON-friendly values, for APIs and logs (like `RunReport`'s).

        Ids and dates become ISO strings and every Decimal a string that reads back as the
        same Decimal (``"190.12"``): never a float, so no cent is lost on the way. A position's
        ``price_currency`` and ``fx_rate`` are None (null) when no conversion was made, and
        every accounting field (cost basis, gains, income, fees, taxes) is None (null) when
        it is not known.
        """
        return {
            "portfolio_id": str(self.portfolio_id),
            "snapshot_date": self.snapshot_date.isoformat(),
            "currency": self.currency,
            "cash_balance": str(self.cash_balance),
            "holdings_value": str(self.holdings_value),
            "total_value": str(self.total_value),
            "positions": [
                {
                    "ticker": p.ticker,
                    "quantity": str(p.quantity),
                    "price": str(p.price),
                    "price_date": p.price_date.isoformat(),
                    "market_value": str(p.market_value),
                    "price_currency": p.price_currency,
                    "fx_rate": _text(p.fx_rate),
                    "stale": p.stale,
                    "cost_basis": _text(p.cost_basis),
                    "unrealized_gain": _text(p.unrealized_gain),
                    "realized_gain": _text(p.realized_gain),
                    "dividends": _text(p.dividends),
                }
                for p in self.positions
            ],
            "net_contributions": _text(self.net_contributions),
            "external_flow": _text(self.external_flow),
            "stale": self.stale,
            **{name: _text(getattr(self, name)) for name in ACCOUNTING_FIELD_NAMES},
            "cash_balances": [
                {
                    "currency": c.currency,
                    "amount": str(c.amount),
                    "value": str(c.value),
                    "fx_rate": _text(c.fx_rate),
                    "stale": c.stale,
                }
                for c in self.cash_balances
            ],
        }

    def replace(self, **changes: object) -> PortfolioSnapshot:
        """Return a copy with the given fields changed (``positions=`` included)."""
        values: dict[str, object] = dict(zip(_SNAPSHOT_FIELDS, self.values, strict=True))
        if "positions" in changes:
            values["flat_positions"], values["position_books"] = _split_positions(
                changes.pop("positions")  # type: ignore[arg-type]
            )
        if "cash_balances" in changes:
            changes["cash_balances"] = tuple(changes["cash_balances"])  # type: ignore[arg-type]
        unknown = set(changes) - set(_SNAPSHOT_FIELDS)
        if unknown:
            raise TypeError(f"PortfolioSnapshot has no field {min(unknown)!r}")
        values.update(changes)
        return PortfolioSnapshot.from_flat(**values)  # type: ignore[arg-type]

    __replace__ = replace  # copy.replace() on Python 3.13+

    def __eq__(self, other: object) -> bool:
        """Compare every field, like a dataclass."""
        if not isinstance(other, PortfolioSnapshot) or other.__class__ is not self.__class__:
            return NotImplemented
        return self.values == other.values

    def __hash__(self) -> int:
        """Hash every field, like a frozen dataclass."""
        return hash(self.values)

    def __repr__(self) -> str:
        """Show every field, positions built."""
        fields = ", ".join(
            f"{name}={value!r}"
            for name, value in zip(_SNAPSHOT_FIELDS, self.values, strict=True)
            if name not in {"flat_positions", "position_books"}
        )
        return f"PortfolioSnapshot({fields}, positions={self.positions!r})"

    def __setattr__(self, name: str, value: object) -> None:
        """Refuse: snapshots are immutable."""
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        """Refuse: snapshots are immutable."""
        raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")

    def __reduce__(self) -> tuple[object, ...]:
        """Pickle through `from_values`."""
        return (PortfolioSnapshot.from_values, (self.values,))


def _split_positions(
    positions: Iterable[PositionValuation],
) -> tuple[tuple[object, ...], tuple[object, ...]]:
    """Return the flat valuation fields and the flat accounting fields (empty when none).

    A position's unrealized gain is not kept (`position_at` computes it from its market
    value and cost basis).
    """
    rows: tuple[object, ...] = tuple(positions)
    width = POSITION_WIDTH + 4
    if any(not isinstance(p, tuple) or len(p) != width for p in rows):
        raise ValueError("positions must be PositionValuation values")
    valid = cast("tuple[PositionValuation, ...]", rows)
    flat = tuple(itertools.chain.from_iterable(p[:POSITION_WIDTH] for p in valid))
    books = tuple(
        itertools.chain.from_iterable((p.cost_basis, p.realized_gain, p.dividends) for p in valid)
    )
    if all(field is None for field in books):
        books = ()
    return flat, books


def position_at(flat: tuple[object, ...], books: tuple[object, ...], n: int) -> PositionValuation:
    """Build position `n` of a snapshot from its flat fields and books.

    Its unrealized gain is ``market_value - cost_basis``, exact, when the cost basis is known.
    """
    i = n * POSITION_WIDTH
    fields = flat[i : i + POSITION_WIDTH]
    if not books:
        return _new_position(PositionValuation, fields + _NO_POSITION_BOOKS)
    cost, realized, dividends = books[n * POSITION_BOOKS_WIDTH : (n + 1) * POSITION_BOOKS_WIDTH]
    gain = None if cost is None else EXACT.subtract(fields[4], cost)  # type: ignore[arg-type]
    return _new_position(PositionValuation, (*fields, cost, gain, realized, dividends))


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


_new = object.__new__
_new_position = tuple.__new__
# The slot's own setter bypasses the frozen __setattr__: it is how snapshots are filled.
_set_values = PortfolioSnapshot.__dict__["values"].__set__


class RunState(enum.StrEnum):
    """Where a run stands in the `RunLedger`."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class DailyTotals(NamedTuple):
    """A stored snapshot's totals, without its positions: one point of a value chart.

    What `SnapshotTotals` reads: the columns a chart or an overview needs, read without
    decoding any position. A named tuple, as `PositionValuation` is: a chart of ten years
    builds thousands at once.

    Attributes:
        portfolio_id: The portfolio valued.
        snapshot_date: The UTC date valued.
        currency: The currency of every amount.
        total_value: ``cash_balance + holdings_value``.
        cash_balance: Cash held.
        holdings_value: Sum of the positions' market values.
        net_contributions: Deposits minus withdrawals to date, when the ledger was known.
        stale: Whether any position was valued with a carried-forward price or rate.
        external_flow: The day's deposits minus withdrawals (and transfers), when known.
        cost_basis: What the positions held cost, when known.
        unrealized_gain: ``holdings_value - cost_basis``, when known.
        realized_gain: Gains realized to date, when known.
        dividends: Dividends received to date, when known.
        interest: Interest received to date, when known.
        fees: Fees paid to date, when known.
        taxes: Taxes paid to date, when known.
        net_transfers: Value of the units transferred in minus out to date, when known.
    """

    portfolio_id: UUID
    snapshot_date: dt.date
    currency: str
    total_value: Decimal
    cash_balance: Decimal
    holdings_value: Decimal
    net_contributions: Decimal | None
    stale: bool
    external_flow: Decimal | None = None
    cost_basis: Decimal | None = None
    unrealized_gain: Decimal | None = None
    realized_gain: Decimal | None = None
    dividends: Decimal | None = None
    interest: Decimal | None = None
    fees: Decimal | None = None
    taxes: Decimal | None = None
    net_transfers: Decimal | None = None

    @classmethod
    def of(cls, snapshot: PortfolioSnapshot) -> DailyTotals:
        """Return the totals of `snapshot`.

        Args:
            snapshot: A snapshot.

        Returns:
            Its totals, equal to what a store's `SnapshotTotals` reads back for it.
        """
        values = snapshot.values
        pid, day, currency, cash, holdings, total, _, net, flow, stale = values[:10]
        return cls(pid, day, currency, total, cash, holdings, net, stale, flow, *values[10:18])


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


@dataclasses.dataclass(frozen=True, slots=True)
class FxQuote:
    """The rate of one currency pair on one date.

    Attributes:
        base: The ISO 4217 code of the currency priced (one unit of it).
        quote: The ISO 4217 code of the currency the rate is expressed in.
        rate: Units of `quote` per unit of `base`; positive and finite.
        as_of: The date of the rate (on or before the date it is used for).
    """

    base: str
    quote: str
    rate: Decimal
    as_of: dt.date

    @property
    def pair(self) -> tuple[str, str]:
        """The ``(base, quote)`` pair."""
        return (self.base, self.quote)
