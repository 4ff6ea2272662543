"""The transaction ledger: what happened to a portfolio, and its state replayed from it.

Pure: no I/O, no clock. A `Transaction` records one event (a trade, a cash movement, a
transfer of units, a split) on one UTC date; `replay` rebuilds cash, holdings and the books
(`Accounting`: cost basis, realized gain, income, fees, taxes, transfers) at the end of any
date, and `LedgerReplayer` walks a date range in one pass over a sorted ledger, for backfills.

Semantics (see ``docs/history.md`` and ``docs/analytics.md``):

- The state of a date is the state at the end of that date: every transaction dated on or
  before it has taken effect.
- Within one date, SPLITs apply first, to the quantity held at the end of the day before (the
  split date is the ex-date: trades dated that day are already in post-split units); then the
  day's acquisitions (BUY, TRANSFER_IN) of a ticker, as one lot; then its disposals (SELL
  before TRANSFER_OUT). The end-of-day state does not depend on the order of a day's
  transactions. A day's disposals of a ticker may not exceed what was available that day
  (the quantity held after the splits plus the day's acquisitions): the position is never
  clamped. The state keeps every SPLIT applied (`LedgerState.splits`), so that a close dated
  before a split and used after it can be put in post-split units (see ``_splits.py``).
- Cash is kept per currency: a transaction in another currency than the base moves that
  currency's cash (`LedgerState.foreign_cash`). Its `fx_rate` converts its amounts into the
  base currency for the books; without one, the figures it affects are unknown (None) from
  then on, never guessed. Deposits, withdrawals and transfers must carry it.
- Cost basis by average cost (the default) or first-in, first-out (`CostBasisMethod`).
- Arithmetic is exact (`EXACT`). The only roundings are two divisions that may not terminate,
  both to 18 decimal places with ROUND_HALF_EVEN (`scale`): a quantity times a split's ratio
  (1-for-3), and the part of a cost that leaves with part of a position.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import decimal
import enum
import itertools
import re
from collections.abc import Mapping
from decimal import Decimal
from fractions import Fraction
from types import MappingProxyType
from typing import TYPE_CHECKING, Final, cast
from uuid import UUID

from portfolio_snapshots._decimal import EXACT
from portfolio_snapshots._domain import DEFAULT_CURRENCY, Accounting, Portfolio
from portfolio_snapshots._errors import (
    ConflictingSplitError,
    FutureTransactionError,
    InvalidDateRangeError,
    InvalidInputError,
    InvalidTransactionError,
    OversoldPositionError,
    TransactionCurrencyError,
    UnknownTransactionKindError,
    UnsortedLedgerError,
)
from portfolio_snapshots._splits import scale

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

_ZERO = Decimal(0)
_ONE_DAY = dt.timedelta(days=1)
#: Split units (``split_new``, ``split_old``) are below this.
_MAX_SPLIT_UNITS: Final = 10**18

_CURRENCY = re.compile(r"[A-Z]{3}")


class TransactionKind(enum.StrEnum):
    """What a `Transaction` does; its value is the lower-case name (``"buy"``, ...)."""

    BUY = "buy"
    SELL = "sell"
    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"
    DIVIDEND = "dividend"
    FEE = "fee"
    INTEREST = "interest"
    SPLIT = "split"
    TAX = "tax"
    TAX_REFUND = "tax_refund"
    TRANSFER_IN = "transfer_in"
    TRANSFER_OUT = "transfer_out"
    EXCHANGE = "exchange"


class CostBasisMethod(enum.StrEnum):
    """How a replay takes the cost basis of the units that leave a position.

    Its value is the lower-case name. See ``docs/analytics.md`` for worked examples.

    Attributes:
        AVERAGE: Average cost (the default, as Ghostfolio and Wealthfolio do): units leaving
            take ``cost * quantity / held`` of the position's cost basis.
        FIFO: First in, first out (as Portfolio Performance does for capital gains): units
            leave from the oldest lot first; a day's acquisitions of a ticker form one lot.
    """

    AVERAGE = "average"
    FIFO = "fifo"


_KINDS = frozenset(k.value for k in TransactionKind)
_TRADES = frozenset({TransactionKind.BUY, TransactionKind.SELL})
_TRANSFERS = frozenset({TransactionKind.TRANSFER_IN, TransactionKind.TRANSFER_OUT})
_UNIT_KINDS = _TRADES | _TRANSFERS
_CASH_IN = frozenset(
    {
        TransactionKind.DEPOSIT,
        TransactionKind.DIVIDEND,
        TransactionKind.INTEREST,
        TransactionKind.TAX_REFUND,
    }
)
#: Kinds counted in the base currency whatever their own: a foreign one needs its fx_rate.
_BOOKED_IN_BASE = frozenset(
    {
        TransactionKind.DEPOSIT,
        TransactionKind.WITHDRAWAL,
        TransactionKind.TRANSFER_IN,
        TransactionKind.TRANSFER_OUT,
    }
)
_NOT_SPLIT = ("split_new", "split_old")
_NOT_EXCHANGE = ("to_currency", "to_amount")


@dataclasses.dataclass(frozen=True, slots=True)
class Transaction:
    """One event of a portfolio's ledger, effective at the end of `trade_date`.

    The date field is named ``trade_date`` (not ``date``, which would shadow the type): it is
    the UTC calendar date on which the event changes holdings and cash, the trade date for
    trades (settlement is not modelled). Like the other values, a transaction does not
    validate itself; `validate_transaction` (called by every replay) and `parse_transaction`
    (for untrusted data) do.

    Fields used per kind, and the effect (every other field must be left unset: None, or a
    zero `fee`); cash moves in `currency`, the books (`Accounting`) count in the base
    currency:

    ============  ==============================  =========================================
    kind          fields                          effect
    ============  ==============================  =========================================
    BUY           ticker, quantity, price, fee    holdings += quantity;
                                                  cash -= quantity * price + fee;
                                                  cost basis += quantity * price;
                                                  fees += fee
    SELL          ticker, quantity, price, fee    holdings -= quantity;
                                                  cash += quantity * price - fee; realized
                                                  gain += quantity * price - cost of the
                                                  units sold; fees += fee
    DEPOSIT       amount                          cash += amount; a contribution
    WITHDRAWAL    amount                          cash -= amount; a negative contribution
    DIVIDEND      amount (ticker optional)        cash += amount; dividends += amount
                                                  (and the ticker's, when given)
    FEE           amount (ticker optional)        cash -= amount; fees += amount
    INTEREST      amount (ticker optional)        cash += amount; interest += amount
    TAX           amount (ticker optional)        cash -= amount; taxes += amount
    TAX_REFUND    amount (ticker optional)        cash += amount; taxes -= amount
    TRANSFER_IN   ticker, quantity, price,        holdings += quantity; no cash; cost
                  amount (optional)               basis += amount (quantity * price when
                                                  unset); a flow of quantity * price
    TRANSFER_OUT  ticker, quantity, price         holdings -= quantity; no cash; the cost
                                                  of the units leaves, no gain is realized;
                                                  a flow of -quantity * price
    EXCHANGE      amount, to_currency, to_amount  cash in `currency` -= amount; cash in
                                                  `to_currency` += to_amount
    SPLIT         ticker, and ratio or            quantity held *= new / old from
                  split_new and split_old         trade_date on; no cash, no cost
    ============  ==============================  =========================================

    Amounts, quantities, prices and fees are non-negative: the kind gives the sign (a
    negative interest charge is a FEE). Quantities are positive; a price may be zero (shares
    received for nothing); a ratio is positive (2 for a 2-for-1 split, 0.1 for 1-for-10), and
    ``split_new``/``split_old`` are positive ints (1 and 3 for a 1-for-3 reverse split, which
    no Decimal ratio states exactly).

    Attributes:
        portfolio_id: The portfolio the event belongs to.
        trade_date: The UTC date from whose end the event is in effect.
        kind: What the event does.
        ticker: The instrument traded, transferred or split; informational for cash kinds
            (a DIVIDEND's ticker counts its dividends per position).
        quantity: Units bought, sold or transferred.
        price: Price of one unit, in `currency` (BUY, SELL); for a transfer, the value of one
            unit on `trade_date`, the flow the transfer is for returns.
        amount: Cash moved, in `currency` (DEPOSIT, WITHDRAWAL, DIVIDEND, FEE, INTEREST, TAX,
            TAX_REFUND, EXCHANGE); for a TRANSFER_IN, the cost basis the units carry over.
        currency: The ISO 4217 code of `price`, `amount` and `fee`, and the currency whose
            cash moves: the base currency by default.
        fee: Commission paid on a trade, in `currency` (BUY, SELL); zero otherwise.
        ratio: New units per old unit (SPLIT), as a Decimal.
        fx_rate: Units of the portfolio's base currency per unit of `currency`: the rate
            the transaction was booked at, for its amounts in the books. Required for a
            DEPOSIT, WITHDRAWAL or transfer in another currency; without it, another kind in
            another currency makes the figures it affects unknown. 1 or unset in the base
            currency; unset for SPLIT and EXCHANGE.
        split_new: New units for `split_old` old units (SPLIT), instead of `ratio`.
        split_old: Old units giving `split_new` new units (SPLIT).
        to_currency: The currency an EXCHANGE buys.
        to_amount: The cash an EXCHANGE receives, in `to_currency`.
    """

    portfolio_id: UUID
    trade_date: dt.date
    kind: TransactionKind
    ticker: str | None = None
    quantity: Decimal | None = None
    price: Decimal | None = None
    amount: Decimal | None = None
    currency: str = DEFAULT_CURRENCY
    fee: Decimal = _ZERO
    ratio: Decimal | None = None
    fx_rate: Decimal | None = None
    split_new: int | None = None
    split_old: int | None = None
    to_currency: str | None = None
    to_amount: Decimal | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class LedgerState:
    """A portfolio's state at the end of one date, as replayed from its ledger.

    Attributes:
        as_of: The date whose end the state describes.
        cash: Cash held in `currency`; negative when the ledger spent more than it held.
        holdings: Quantity held per ticker; positions sold out are absent. Read-only.
        net_contributions: Deposits minus withdrawals dated on or before `as_of`, in
            `currency`.
        external_flow: The flows dated `as_of` itself: deposits minus withdrawals, plus the
            value of the units transferred in, minus that of the units transferred out.
        currency: The base currency of every amount.
        opened_on: The date of the portfolio's first transaction, or None when it had none on
            or before `as_of` (the portfolio did not exist yet).
        splits: The SPLITs dated on or before `as_of`, per ticker, as ``(ex_date, ratio)``
            pairs in date order, one per day (a day's splits multiplied), the ratio an exact
            `Fraction`, whether the ticker was held at the time or not (units bought after
            an ex-date are in post-split units too); None when there were none. Read-only.
        foreign_cash: Cash held in other currencies than `currency`, per ISO 4217 code
            (zero balances left out), or None when there is none. Read-only.
        accounting: The books to the end of `as_of` (cost basis, realized gain, income,
            fees, taxes, transfers), in `currency`; a figure a foreign transaction without
            its `fx_rate` made unknown is None. Set by every replay.
    """

    as_of: dt.date
    cash: Decimal
    holdings: Mapping[str, Decimal]
    net_contributions: Decimal
    external_flow: Decimal
    currency: str = DEFAULT_CURRENCY
    opened_on: dt.date | None = None
    splits: Mapping[str, tuple[tuple[dt.date, Fraction], ...]] | None = None
    foreign_cash: Mapping[str, Decimal] | None = None
    accounting: Accounting | None = None

    def to_portfolio(self, portfolio_id: UUID) -> Portfolio:
        """Return the state as the `Portfolio` of `portfolio_id`, with its flows and books.

        The holdings, splits, foreign cash and accounting are the state's own read-only
        values, shared, not copied.
        """
        return Portfolio(
            portfolio_id,
            self.cash,
            self.holdings,
            self.currency,
            self.net_contributions,
            self.external_flow,
            self.splits,
            self.foreign_cash,
            self.accounting,
        )


def _fail(
    tx: Transaction, reason: str, *, field: str | None, value: object, kind: str | None = None
) -> InvalidTransactionError:
    # the transaction is untrusted: name only the facts that have the right type
    raw_ticker: object = tx.ticker
    raw_id: object = tx.portfolio_id
    raw_day: object = tx.trade_date
    ticker = raw_ticker if isinstance(raw_ticker, str) else None
    pid = raw_id if isinstance(raw_id, UUID) else None
    day = raw_day if isinstance(raw_day, dt.date) else None
    return InvalidTransactionError(
        reason,
        portfolio_id=pid,
        trade_date=day,
        kind=kind,
        field=field,
        ticker=ticker,
        value=value,
    )


def _check_date(tx: Transaction) -> dt.date:
    day: object = tx.trade_date
    if type(day) is not dt.date:
        raise _fail(tx, "must be a date (a UTC calendar date)", field="trade_date", value=day)
    return tx.trade_date


def _check_kind(tx: Transaction) -> TransactionKind:
    kind: object = tx.kind
    if isinstance(kind, TransactionKind):
        return kind
    if isinstance(kind, str) and kind in _KINDS:
        return TransactionKind(kind)
    raise UnknownTransactionKindError(
        f"unknown transaction kind; expected one of {', '.join(TransactionKind)}",
        portfolio_id=tx.portfolio_id,
        trade_date=tx.trade_date,
        field="kind",
        value=kind,
    )


def _number(tx: Transaction, kind: TransactionKind, field: str, *, positive: bool) -> Decimal:
    value = getattr(tx, field)
    if value is None:
        reason = "is required"
    elif type(value) is not Decimal:
        reason = "must be a Decimal (a float has already lost the exact value)"
    elif not value.is_finite():
        reason = "must be finite"
    elif positive and value <= 0:
        reason = "must be above zero"
    elif value < 0:
        reason = "must not be negative"
    else:
        return value
    raise _fail(tx, reason, field=field, value=value, kind=kind)


def _unset(tx: Transaction, kind: TransactionKind, *fields: str) -> None:
    for field in fields:
        value = getattr(tx, field)
        if value is not None:
            raise _fail(tx, f"does not apply to a {kind}", field=field, value=value, kind=kind)


def _ticker(tx: Transaction, kind: TransactionKind, *, required: bool) -> None:
    ticker = tx.ticker
    if ticker is None and not required:
        return
    if type(ticker) is not str or not ticker:
        reason = "is required" if ticker is None else "must be a non-empty string"
        raise _fail(tx, reason, field="ticker", value=ticker, kind=kind)


def _units(tx: Transaction, kind: TransactionKind, field: str) -> int:
    value: object = getattr(tx, field)
    if value is None:
        reason = "is required with split_new and split_old (new units for old units)"
    elif type(value) is not int:
        reason = "must be an int (1 and 3 for a 1-for-3 reverse split)"
    elif not 0 < value < _MAX_SPLIT_UNITS:
        reason = f"must be above zero and below {_MAX_SPLIT_UNITS}"
    else:
        return value
    raise _fail(tx, reason, field=field, value=value, kind=kind)


def _no_fee(tx: Transaction, kind: TransactionKind) -> None:
    if type(tx.fee) is not Decimal or tx.fee != 0:
        raise _fail(
            tx,
            f"does not apply to a {kind}; record a separate FEE",
            field="fee",
            value=tx.fee,
            kind=kind,
        )


def _check_rate(tx: Transaction, kind: TransactionKind, base: str | None) -> None:
    """Check `fx_rate` against the transaction's currency and the portfolio's base."""
    rate = tx.fx_rate
    if rate is None:
        if base is not None and tx.currency != base and kind in _BOOKED_IN_BASE:
            raise TransactionCurrencyError(
                portfolio_id=tx.portfolio_id,
                trade_date=tx.trade_date,
                kind=kind,
                expected=base,
                actual=tx.currency,
            )
        return
    if kind is TransactionKind.SPLIT or kind is TransactionKind.EXCHANGE:
        _unset(tx, kind, "fx_rate")
    _number(tx, kind, "fx_rate", positive=True)
    if base is not None and tx.currency == base and rate != 1:
        raise _fail(
            tx,
            f"must be 1 or unset for a transaction in the base currency {base}",
            field="fx_rate",
            value=rate,
            kind=kind,
        )


def validate_transaction(
    tx: Transaction,
    *,
    currency: str | None = None,
    portfolio_id: UUID | None = None,
    today: dt.date | None = None,
) -> TransactionKind:
    """Check one transaction against the rules of its kind (see `Transaction`).

    Args:
        tx: The transaction.
        currency: The portfolio's base currency; when given, a DEPOSIT, WITHDRAWAL or
            transfer in another currency must carry `fx_rate`, and one in the base currency
            may only carry an `fx_rate` of 1.
        portfolio_id: When given, the transaction must belong to this portfolio.
        today: The current UTC date; when given, a transaction dated after it is rejected.

    Returns:
        The transaction's kind, as a `TransactionKind` (a plain string equal to one of its
        values is accepted).

    Raises:
        InvalidTransactionError: A field is missing, of the wrong type (a float where a
            Decimal belongs), non-finite, negative, zero where it must be positive (a
            quantity, a split ratio, an `fx_rate`), set for a kind it does not apply to, or
            a currency is not three upper-case letters; `field` and `value` name it.
        UnknownTransactionKindError: `kind` is not a `TransactionKind`.
        FutureTransactionError: The transaction is dated after `today`.
        TransactionCurrencyError: A DEPOSIT, WITHDRAWAL or transfer in another currency
            than `currency` has no `fx_rate`.
    """
    raw_id: object = tx.portfolio_id
    if not isinstance(raw_id, UUID):
        raise _fail(tx, "must be a UUID", field="portfolio_id", value=tx.portfolio_id)
    if portfolio_id is not None and tx.portfolio_id != portfolio_id:
        raise _fail(
            tx,
            f"belongs to another portfolio than the ledger's ({portfolio_id})",
            field="portfolio_id",
            value=tx.portfolio_id,
        )
    day = _check_date(tx)
    kind = _check_kind(tx)
    if today is not None and day > today:
        raise FutureTransactionError(
            portfolio_id=tx.portfolio_id, trade_date=day, kind=kind, today=today
        )
    code = tx.currency
    if type(code) is not str or not _CURRENCY.fullmatch(code):
        raise _fail(
            tx,
            "must be an ISO 4217 code: three upper-case letters",
            field="currency",
            value=code,
            kind=kind,
        )
    _check_rate(tx, kind, currency)
    if kind in _UNIT_KINDS:
        _check_units_kind(tx, kind)
        return kind
    _no_fee(tx, kind)
    if kind is TransactionKind.SPLIT:
        _check_split(tx, kind)
    elif kind is TransactionKind.EXCHANGE:
        _check_exchange(tx, kind)
    else:
        _ticker(tx, kind, required=False)
        _number(tx, kind, "amount", positive=False)
        _unset(tx, kind, "quantity", "price", "ratio", *_NOT_SPLIT, *_NOT_EXCHANGE)
    return kind


def _check_units_kind(tx: Transaction, kind: TransactionKind) -> None:
    """Check a BUY, SELL, TRANSFER_IN or TRANSFER_OUT."""
    _ticker(tx, kind, required=True)
    _number(tx, kind, "quantity", positive=True)
    _number(tx, kind, "price", positive=False)
    if kind in _TRADES:
        _number(tx, kind, "fee", positive=False)
    else:
        _no_fee(tx, kind)
    if kind is TransactionKind.TRANSFER_IN and tx.amount is not None:
        _number(tx, kind, "amount", positive=False)
    else:
        _unset(tx, kind, "amount")
    _unset(tx, kind, "ratio", *_NOT_SPLIT, *_NOT_EXCHANGE)


def _check_split(tx: Transaction, kind: TransactionKind) -> None:
    """Check a SPLIT: a Decimal ratio, or two ints (new units for old units)."""
    _ticker(tx, kind, required=True)
    _unset(tx, kind, "quantity", "price", "amount", *_NOT_EXCHANGE)
    if tx.ratio is not None:
        _number(tx, kind, "ratio", positive=True)
        if tx.split_new is not None or tx.split_old is not None:
            field = "split_new" if tx.split_new is not None else "split_old"
            raise _fail(
                tx,
                "give either ratio or split_new and split_old, not both",
                field=field,
                value=getattr(tx, field),
                kind=kind,
            )
    elif tx.split_new is None and tx.split_old is None:
        raise _fail(
            tx,
            "is required (or split_new and split_old: new units for old units)",
            field="ratio",
            value=None,
            kind=kind,
        )
    else:
        _units(tx, kind, "split_new")
        _units(tx, kind, "split_old")


def _check_exchange(tx: Transaction, kind: TransactionKind) -> None:
    """Check an EXCHANGE: an amount out of `currency`, one into another `to_currency`."""
    _unset(tx, kind, "ticker", "quantity", "price", "ratio", *_NOT_SPLIT)
    _number(tx, kind, "amount", positive=False)
    _number(tx, kind, "to_amount", positive=False)
    target: object = tx.to_currency
    if type(target) is not str or not _CURRENCY.fullmatch(target):
        reason = (
            "is required"
            if target is None
            else "must be an ISO 4217 code: three upper-case letters"
        )
        raise _fail(tx, reason, field="to_currency", value=target, kind=kind)
    if target == tx.currency:
        raise _fail(
            tx,
            "must differ from currency: an exchange moves cash between two currencies",
            field="to_currency",
            value=target,
            kind=kind,
        )


def _split_ratio(tx: Transaction) -> Fraction:
    """Return a validated SPLIT's ratio, new units per old unit, as an exact `Fraction`.

    Args:
        tx: A SPLIT that `validate_transaction` accepted.

    Returns:
        ``Fraction(split_new, split_old)``, or the Decimal `ratio` read exactly.
    """
    ratio = tx.ratio
    if ratio is not None:
        return Fraction(ratio)
    return Fraction(cast("int", tx.split_new), cast("int", tx.split_old))


def _plus(total: Decimal | None, amount: Decimal | None) -> Decimal | None:
    """Add `amount` to `total`; an unknown term makes the sum unknown."""
    if total is None or amount is None:
        return None
    return total + amount


def _share(cost: Decimal, part: Decimal, whole: Decimal) -> Decimal:
    """Return ``cost * part / whole`` (see `scale`: exact, or 18 places when it must be)."""
    a, b = part.as_integer_ratio()
    c, d = whole.as_integer_ratio()
    return scale(cost, a * d, b * c)


class _Day:
    """What one date's trades and transfers do to each ticker, gathered before it applies."""

    __slots__ = ("acquired", "acquired_cost", "moved", "proceeds", "sold")

    def __init__(self) -> None:
        self.acquired = _ZERO
        self.acquired_cost: Decimal | None = _ZERO
        self.sold = _ZERO
        self.proceeds: Decimal | None = _ZERO
        self.moved = _ZERO


class _Book:
    """The running state of one replay: mutated day by day, read as `LedgerState` values."""

    __slots__ = (
        "accounting",
        "cash",
        "cost",
        "currency",
        "dividends",
        "fees",
        "fifo",
        "flow",
        "flow_day",
        "foreign",
        "foreign_view",
        "fresh",
        "holdings",
        "interest",
        "lots",
        "net_contributions",
        "net_transfers",
        "opened_on",
        "portfolio_id",
        "realized",
        "splits",
        "splits_view",
        "taxes",
        "ticker_dividends",
        "ticker_realized",
        "today",
        "view",
    )

    def __init__(
        self,
        currency: str,
        portfolio_id: UUID | None,
        today: dt.date | None,
        method: CostBasisMethod,
    ) -> None:
        self.currency = currency
        self.portfolio_id = portfolio_id
        self.today = today
        self.fifo = check_cost_basis_method(method) is CostBasisMethod.FIFO
        self.cash = _ZERO
        self.foreign: dict[str, Decimal] = {}
        self.holdings: dict[str, Decimal] = {}
        # cost basis of the units held, per ticker held: None when not known
        self.cost: dict[str, Decimal | None] = {}
        # FIFO only: per ticker held, its lots [quantity, cost or None], oldest first
        self.lots: dict[str, collections.deque[_Lot]] = {}
        self.realized: Decimal | None = _ZERO
        self.ticker_realized: dict[str, Decimal] | None = {}
        self.dividends: Decimal | None = _ZERO
        self.ticker_dividends: dict[str, Decimal] | None = {}
        self.interest: Decimal | None = _ZERO
        self.fees: Decimal | None = _ZERO
        self.taxes: Decimal | None = _ZERO
        self.net_transfers = _ZERO
        self.net_contributions = _ZERO
        self.flow = _ZERO
        self.flow_day: dt.date | None = None
        self.opened_on: dt.date | None = None
        self.splits: dict[str, tuple[tuple[dt.date, Fraction], ...]] = {}
        # read-only views handed out by `state`, rebuilt only after a day changed the book
        self.fresh = False
        self.view: Mapping[str, Decimal] = MappingProxyType({})
        self.foreign_view: Mapping[str, Decimal] | None = None
        self.accounting = Accounting()
        self.splits_view: Mapping[str, tuple[tuple[dt.date, Fraction], ...]] | None = None

    def _record_split(self, ticker: str, day: dt.date, ratio: Fraction) -> None:
        """Keep one entry per ticker and day: a day's splits in one ratio, in any order."""
        before = self.splits.get(ticker, ())
        if before and before[-1][0] == day:
            before, ratio = before[:-1], before[-1][1] * ratio
        self.splits[ticker] = (*before, (day, ratio))
        self.splits_view = None

    def _split(self, day: dt.date, tx: Transaction) -> None:
        ticker = cast("str", tx.ticker)
        ratio = _split_ratio(tx)
        held = self.holdings.get(ticker)
        if held is not None:
            n, d = ratio.numerator, ratio.denominator
            after = scale(held, n, d)
            if not after:
                raise _fail(
                    tx,
                    f"leaves less than 1E-18 of the {held} units held: record the cash in "
                    "lieu as a SELL the day before",
                    field="ratio" if tx.ratio is not None else "split_new",
                    value=ratio,
                    kind=TransactionKind.SPLIT,
                )
            self.holdings[ticker] = after
            if self.fifo:
                _split_lots(self.lots[ticker], n, d, after)
        self._record_split(ticker, day, ratio)

    def apply_day(self, day: dt.date, txs: list[Transaction]) -> None:  # noqa: C901, PLR0912, PLR0915 - one pass over the day, by kind
        """Apply every transaction dated `day`: the splits first, then the rest, at once."""
        checked = [(tx, self._validate(tx)) for tx in txs]
        base = self.currency
        cash = self.cash
        foreign = self.foreign
        contributed = transferred = _ZERO
        tickers: dict[str, _Day] = {}
        with decimal.localcontext(EXACT):
            for tx, kind in checked:
                if kind is TransactionKind.SPLIT:
                    self._split(day, tx)
            for tx, kind in checked:
                if kind is TransactionKind.SPLIT:
                    continue
                code = tx.currency
                rate = None if code == base else tx.fx_rate
                if kind in _UNIT_KINDS:
                    ticker = cast("str", tx.ticker)
                    quantity = cast("Decimal", tx.quantity)
                    gross = quantity * cast("Decimal", tx.price)
                    moves = tickers.get(ticker)
                    if moves is None:
                        moves = tickers[ticker] = _Day()
                    if kind is TransactionKind.BUY:
                        delta = -(gross + tx.fee)
                        moves.acquired += quantity
                        moves.acquired_cost = _plus(
                            moves.acquired_cost, _in_base(gross, code, base, rate)
                        )
                    elif kind is TransactionKind.SELL:
                        delta = gross - tx.fee
                        moves.sold += quantity
                        moves.proceeds = _plus(moves.proceeds, _in_base(gross, code, base, rate))
                    else:
                        # a foreign transfer carries its rate (validated): its value is known
                        value = gross if rate is None else gross * rate
                        if kind is TransactionKind.TRANSFER_IN:
                            basis = gross if tx.amount is None else tx.amount
                            moves.acquired += quantity
                            moves.acquired_cost = _plus(
                                moves.acquired_cost, basis if rate is None else basis * rate
                            )
                            transferred += value
                        else:
                            moves.moved += quantity
                            transferred -= value
                        continue
                    if tx.fee:
                        self.fees = _plus(self.fees, _in_base(tx.fee, code, base, rate))
                elif kind is TransactionKind.EXCHANGE:
                    delta = -cast("Decimal", tx.amount)
                    target = cast("str", tx.to_currency)
                    received = cast("Decimal", tx.to_amount)
                    if target == base:
                        cash += received
                    else:
                        foreign[target] = foreign.get(target, _ZERO) + received
                else:
                    amount = cast("Decimal", tx.amount)
                    delta = amount if kind in _CASH_IN else -amount
                    booked = _in_base(amount, code, base, rate)
                    if kind is TransactionKind.DEPOSIT:
                        contributed += cast("Decimal", booked)  # validated: known
                    elif kind is TransactionKind.WITHDRAWAL:
                        contributed -= cast("Decimal", booked)
                    elif kind is TransactionKind.DIVIDEND:
                        self.dividends = _plus(self.dividends, booked)
                        if tx.ticker is not None and self.ticker_dividends is not None:
                            self._add_dividend(tx.ticker, booked)
                    elif kind is TransactionKind.INTEREST:
                        self.interest = _plus(self.interest, booked)
                    elif kind is TransactionKind.FEE:
                        self.fees = _plus(self.fees, booked)
                    elif kind is TransactionKind.TAX:
                        self.taxes = _plus(self.taxes, booked)
                    else:  # TAX_REFUND
                        self.taxes = _plus(self.taxes, None if booked is None else -booked)
                if code == base:
                    cash += delta
                else:
                    foreign[code] = foreign.get(code, _ZERO) + delta
            for ticker, moves in tickers.items():
                self._move_units(day, ticker, moves)
            if foreign:
                for code in [c for c, balance in foreign.items() if not balance]:
                    del foreign[code]
            self.net_contributions += contributed
            self.net_transfers += transferred
            self.flow = contributed + transferred
        self.cash = cash
        self.flow_day = day
        self.fresh = False
        if self.opened_on is None:
            self.opened_on = day

    def _add_dividend(self, ticker: str, amount: Decimal | None) -> None:
        per_ticker = cast("dict[str, Decimal]", self.ticker_dividends)
        if amount is None:
            self.ticker_dividends = None
        else:
            per_ticker[ticker] = per_ticker.get(ticker, _ZERO) + amount

    def _move_units(self, day: dt.date, ticker: str, moves: _Day) -> None:
        """Apply a day's acquisitions of `ticker` as one lot, then its disposals."""
        held = self.holdings.get(ticker, _ZERO)
        if moves.acquired:
            held += moves.acquired
            self.holdings[ticker] = held
            if self.fifo:
                lots = self.lots.get(ticker)
                if lots is None:
                    lots = self.lots[ticker] = collections.deque()
                lots.append(_Lot(moves.acquired, moves.acquired_cost))
            self.cost[ticker] = _plus(self.cost.get(ticker, _ZERO), moves.acquired_cost)
        sold, moved = moves.sold, moves.moved
        out = sold + moved
        if not out:
            return
        if out > held:
            raise OversoldPositionError(
                portfolio_id=self.portfolio_id,
                trade_date=day,
                ticker=ticker,
                sold=out,
                available=held,
                kind="sell" if sold else "transfer_out",
            )
        if self.fifo:
            removed, left = _take_fifo(self.lots[ticker], sold, moved)
        else:
            removed, left = _take_average(self.cost[ticker], sold, moved, held)
        if out == held:
            del self.holdings[ticker]
            del self.cost[ticker]
            if self.fifo:
                del self.lots[ticker]
        else:
            self.holdings[ticker] = held - out
            self.cost[ticker] = left
        if sold:
            self._realize(ticker, moves.proceeds, removed)

    def _realize(self, ticker: str, proceeds: Decimal | None, removed: Decimal | None) -> None:
        """Count the gain of a day's sales of `ticker`: proceeds less the cost they took."""
        gain = None if proceeds is None or removed is None else proceeds - removed
        self.realized = _plus(self.realized, gain)
        per_ticker = self.ticker_realized
        if per_ticker is not None:
            if gain is None:
                self.ticker_realized = None
            else:
                per_ticker[ticker] = per_ticker.get(ticker, _ZERO) + gain

    def _validate(self, tx: Transaction) -> TransactionKind:
        kind = validate_transaction(
            tx, currency=self.currency, portfolio_id=self.portfolio_id, today=self.today
        )
        if self.portfolio_id is None:
            self.portfolio_id = tx.portfolio_id
        return kind

    def state(self, as_of: dt.date) -> LedgerState:
        """Return the state at the end of `as_of` (no transaction after it applied)."""
        if not self.fresh:
            self.view = MappingProxyType(dict(self.holdings))
            self.foreign_view = MappingProxyType(dict(self.foreign)) if self.foreign else None
            self.accounting = self._accounting()
            self.fresh = True
        splits = self.splits_view
        if splits is None and self.splits:
            splits = self.splits_view = MappingProxyType(dict(self.splits))
        return LedgerState(
            as_of,
            self.cash,
            self.view,
            self.net_contributions,
            self.flow if self.flow_day == as_of else _ZERO,
            self.currency,
            self.opened_on,
            splits,
            self.foreign_view,
            self.accounting,
        )

    def _accounting(self) -> Accounting:
        realized, dividends = self.ticker_realized, self.ticker_dividends
        return Accounting(
            cost_basis=MappingProxyType({t: c for t, c in self.cost.items() if c is not None}),
            realized_gain=self.realized,
            dividends=self.dividends,
            interest=self.interest,
            fees=self.fees,
            taxes=self.taxes,
            net_transfers=self.net_transfers,
            position_realized=None if realized is None else MappingProxyType(dict(realized)),
            position_dividends=None if dividends is None else MappingProxyType(dict(dividends)),
        )


def _in_base(amount: Decimal, code: str, base: str, rate: Decimal | None) -> Decimal | None:
    """Return `amount` (in `code`) in `base`: None when it is not zero and no rate is known."""
    if code == base:
        return amount
    if rate is not None:
        return amount * rate
    return _ZERO if not amount else None


class _Lot:
    """Units acquired on one date (FIFO): how many are left, and what they cost (or None)."""

    __slots__ = ("cost", "quantity")

    def __init__(self, quantity: Decimal, cost: Decimal | None) -> None:
        self.quantity = quantity
        self.cost = cost


def _take_average(
    cost: Decimal | None, sold: Decimal, moved: Decimal, held: Decimal
) -> tuple[Decimal | None, Decimal | None]:
    """Take the cost of `sold` and `moved` units of `held`, by average cost.

    Returns:
        The cost the sold units take (what the realized gain is measured against) and the
        cost left with the units still held; None when the position's cost is unknown.
    """
    if cost is None:
        return None, None
    out = sold + moved
    taken = cost if out == held else _share(cost, out, held)
    if not moved:
        return taken, cost - taken
    removed = taken - _share(cost, moved, held) if sold else _ZERO
    return removed, cost - taken


def _take_fifo(
    lots: collections.deque[_Lot], sold: Decimal, moved: Decimal
) -> tuple[Decimal | None, Decimal | None]:
    """Take `sold` units, then `moved` units, from the oldest lots.

    Returns:
        The cost the sold units take, and the cost of the lots left (None when unknown).
    """
    removed = _consume(lots, sold) if sold else _ZERO
    if moved:
        _consume(lots, moved)
    left: Decimal | None = _ZERO
    for lot in lots:
        left = _plus(left, lot.cost)
    return removed, left


def _consume(lots: collections.deque[_Lot], quantity: Decimal) -> Decimal | None:
    """Take `quantity` from the oldest lots; return their cost (None when one is unknown).

    The lots hold at least `quantity` (the caller checked the position).
    """
    removed: Decimal | None = _ZERO
    while quantity and lots:
        lot = lots[0]
        size, cost = lot.quantity, lot.cost
        if size <= quantity:
            lots.popleft()
            quantity -= size
            removed = _plus(removed, cost)
        else:
            part = None if cost is None else _share(cost, quantity, size)
            lot.quantity = size - quantity
            lot.cost = None if cost is None or part is None else cost - part
            removed = _plus(removed, part)
            quantity = _ZERO
    return removed


def _split_lots(lots: collections.deque[_Lot], n: int, d: int, held: Decimal) -> None:
    """Scale the lots' quantities by ``n / d`` so that they still add up to `held`.

    Each lot is scaled like the position (see `scale`); when rounding makes them differ from
    `held`, the largest lot takes the difference, and a lot scaled to nothing hands its cost
    to the largest one.
    """
    total = _ZERO
    for lot in lots:
        lot.quantity = scale(lot.quantity, n, d)
        total += lot.quantity
    if total == held:
        return
    largest = max(lots, key=lambda lot: lot.quantity)
    largest.quantity += held - total
    for lot in [lot for lot in lots if not lot.quantity]:
        largest.cost = _plus(largest.cost, lot.cost)
        lots.remove(lot)


def check_cost_basis_method(method: object) -> CostBasisMethod:
    """Return `method` as a `CostBasisMethod` (its value ``"fifo"`` is accepted too).

    Raises:
        InvalidInputError: `method` is neither a `CostBasisMethod` nor one's value.
    """
    if isinstance(method, CostBasisMethod):
        return method
    if not isinstance(method, str):
        raise InvalidInputError(
            f"cost_basis_method must be one of {', '.join(CostBasisMethod)}, got {method!r}"
        )
    try:
        return CostBasisMethod(str(method))
    except ValueError:
        raise InvalidInputError(
            f"cost_basis_method must be one of {', '.join(CostBasisMethod)}, got {method!r}"
        ) from None


def ledger_splits(
    transactions: Iterable[Transaction],
) -> dict[str, tuple[tuple[dt.date, Fraction], ...]]:
    """Return the SPLITs of one or more ledgers, per ticker, for `unadjust_splits`.

    A split is the market's event: every portfolio holding the ticker records it. This
    gathers the ledgers' SPLIT transactions (other kinds are skipped) into one history per
    ticker, so that a host wrapping a split-adjusted price source lists each split once:
    ``unadjust_splits(provider, ledger_splits(transactions))``. A ledger's splits of one
    ticker on one date are multiplied, as a replay applies them.

    Args:
        transactions: The transactions of one portfolio or of many, in any order.

    Returns:
        Per ticker, ``(ex_date, ratio)`` pairs in ascending date order, each ratio an exact
        `Fraction` (``Fraction(1, 3)`` for a 1-for-3 reverse split).

    Raises:
        InvalidTransactionError: A SPLIT is invalid (see `validate_transaction`).
        ConflictingSplitError: Two ledgers record different ratios for one ticker and date.
    """
    per_ledger: dict[tuple[UUID, str, dt.date], Fraction] = {}
    for tx in transactions:
        if tx.kind != TransactionKind.SPLIT:
            continue
        validate_transaction(tx)
        key = (tx.portfolio_id, cast("str", tx.ticker), tx.trade_date)
        per_ledger[key] = per_ledger.get(key, Fraction(1)) * _split_ratio(tx)
    merged: dict[tuple[str, dt.date], Fraction] = {}
    for (pid, ticker, day), ratio in per_ledger.items():
        seen = merged.setdefault((ticker, day), ratio)
        if seen != ratio:
            raise ConflictingSplitError(
                portfolio_id=pid, trade_date=day, ticker=ticker, ratios=(seen, ratio)
            )
    history: dict[str, list[tuple[dt.date, Fraction]]] = {}
    for (ticker, day), ratio in sorted(merged.items()):
        history.setdefault(ticker, []).append((day, ratio))
    return {ticker: tuple(events) for ticker, events in history.items()}


def _by_date(tx: Transaction) -> dt.date:
    return tx.trade_date


def replay(
    transactions: Iterable[Transaction],
    as_of: dt.date,
    *,
    currency: str = DEFAULT_CURRENCY,
    portfolio_id: UUID | None = None,
    today: dt.date | None = None,
    cost_basis_method: CostBasisMethod = CostBasisMethod.AVERAGE,
) -> LedgerState:
    """Rebuild a portfolio's state at the end of `as_of` from its whole ledger.

    The transactions may come in any order; those dated after `as_of` are ignored (and not
    validated). For every date of a range, prefer `LedgerReplayer`, which makes one pass.

    Args:
        transactions: The portfolio's transactions.
        as_of: The date whose end-of-day state to rebuild.
        currency: The portfolio's base currency.
        portfolio_id: The portfolio's id; every transaction must carry it. When None, every
            transaction must carry the id of the first one applied.
        today: The current UTC date; when given, a transaction dated after it is an error.
        cost_basis_method: How units leaving a position take its cost basis.

    Returns:
        The state; ``opened_on`` is None when no transaction is dated on or before `as_of`.

    Raises:
        InvalidTransactionError: A transaction on or before `as_of` is invalid (see
            `validate_transaction`), or sells more than available (`OversoldPositionError`).
        InvalidInputError: `cost_basis_method` is not a `CostBasisMethod`.
    """
    book = _Book(currency, portfolio_id, today, cost_basis_method)
    relevant = [tx for tx in transactions if _check_date(tx) <= as_of]
    relevant.sort(key=_by_date)
    for day, group in itertools.groupby(relevant, key=_by_date):
        book.apply_day(day, list(group))
    return book.state(as_of)


class LedgerReplayer:
    """Replays a ledger sorted by date incrementally, one pass for any number of dates.

    Each call to `advance` consumes the transactions dated up to the requested date, so
    walking a backfill range costs one pass over the ledger, not one replay per day. The
    state it returns for a date equals ``replay(transactions, date)``, errors included.

    Once `advance` has raised, the replayer is spent: every later call raises the same error,
    since no later state can be known.

    Args:
        transactions: The portfolio's transactions in ascending `trade_date` order (the order
            within a date does not matter); consumed lazily.
        currency: The portfolio's base currency.
        portfolio_id: The portfolio's id; every transaction must carry it (when None, the id
            of the first transaction applied).
        today: The current UTC date; when given, a transaction dated after it is an error.
        cost_basis_method: How units leaving a position take its cost basis.

    Raises:
        InvalidInputError: `cost_basis_method` is not a `CostBasisMethod`.
    """

    __slots__ = ("_as_of", "_book", "_error", "_last_date", "_pending", "_source")

    def __init__(
        self,
        transactions: Iterable[Transaction],
        *,
        currency: str = DEFAULT_CURRENCY,
        portfolio_id: UUID | None = None,
        today: dt.date | None = None,
        cost_basis_method: CostBasisMethod = CostBasisMethod.AVERAGE,
    ) -> None:
        self._source: Iterator[Transaction] | None = iter(transactions)
        self._book = _Book(currency, portfolio_id, today, cost_basis_method)
        self._pending: Transaction | None = None
        self._last_date: dt.date | None = None
        self._as_of: dt.date | None = None
        self._error: Exception | None = None

    @property
    def as_of(self) -> dt.date | None:
        """The date of the latest state returned, or None before the first `advance`."""
        return self._as_of

    def advance(self, day: dt.date) -> LedgerState:
        """Return the state at the end of `day`, consuming the transactions up to it.

        Args:
            day: The date; not before the date of the previous call.

        Returns:
            The state at the end of `day`, equal to ``replay(transactions, day)``.

        Raises:
            InvalidDateRangeError: `day` is before the previous call's date.
            InvalidTransactionError: A transaction dated on or before `day` is invalid or
                oversells (see `replay`), or the transactions are out of date order
                (`UnsortedLedgerError`).
        """
        if self._error is not None:
            raise self._error
        if self._as_of is not None and day < self._as_of:
            raise InvalidDateRangeError(
                "a ledger replay only moves forward", start=self._as_of, end=day
            )
        try:
            self._consume_until(day)
        except InvalidTransactionError as error:
            self._error = error
            raise
        self._as_of = day
        return self._book.state(day)

    def states(self, start: dt.date, end: dt.date) -> Iterator[LedgerState]:
        """Yield the state at the end of every date from `start` to `end` inclusive.

        Args:
            start: The first date; not before the date of a previous `advance`.
            end: The last date.

        Yields:
            One state per calendar date, in ascending order.

        Raises:
            InvalidDateRangeError: `start` is after `end`.
            InvalidTransactionError: As `advance`, when the walk reaches the bad date; the
                states of the dates before it have been yielded.
        """
        if start > end:
            raise InvalidDateRangeError("start is after end", start=start, end=end)
        day = start
        while day <= end:
            yield self.advance(day)
            day += _ONE_DAY

    def _peek(self) -> Transaction | None:
        if self._pending is None and self._source is not None:
            tx = next(self._source, None)
            if tx is None:
                self._source = None
                return None
            day = _check_date(tx)
            if self._last_date is not None and day < self._last_date:
                raise UnsortedLedgerError(
                    portfolio_id=self._book.portfolio_id,
                    trade_date=day,
                    previous_date=self._last_date,
                )
            self._last_date = day
            self._pending = tx
        return self._pending

    def _consume_until(self, day: dt.date) -> None:
        group: list[Transaction] = []
        group_day: dt.date | None = None
        while (tx := self._peek()) is not None and tx.trade_date <= day:
            self._pending = None
            if group_day is not None and tx.trade_date != group_day:
                self._book.apply_day(group_day, group)
                group = []
            group_day = tx.trade_date
            group.append(tx)
        if group_day is not None:
            self._book.apply_day(group_day, group)


def replay_range(
    transactions: Iterable[Transaction],
    start: dt.date,
    end: dt.date,
    *,
    currency: str = DEFAULT_CURRENCY,
    portfolio_id: UUID | None = None,
    today: dt.date | None = None,
    cost_basis_method: CostBasisMethod = CostBasisMethod.AVERAGE,
) -> Iterator[LedgerState]:
    """Yield the state at the end of every date from `start` to `end`, in one pass.

    A shorthand for ``LedgerReplayer(transactions, ...).states(start, end)``; the
    transactions must be sorted by date.

    Args:
        transactions: The portfolio's transactions in ascending `trade_date` order.
        start: The first date.
        end: The last date.
        currency: The portfolio's base currency.
        portfolio_id: The portfolio's id (see `LedgerReplayer`).
        today: The current UTC date; when given, a transaction dated after it is an error.
        cost_basis_method: How units leaving a position take its cost basis.

    Returns:
        An iterator of one `LedgerState` per date; it raises as `LedgerReplayer.states`.

    Raises:
        InvalidInputError: `cost_basis_method` is not a `CostBasisMethod`.
    """
    replayer = LedgerReplayer(
        transactions,
        currency=currency,
        portfolio_id=portfolio_id,
        today=today,
        cost_basis_method=cost_basis_method,
    )
    return replayer.states(start, end)
