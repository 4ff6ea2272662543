"""The transaction ledger: what happened to a portfolio, and its state replayed from it.

Pure: no I/O, no clock. A `Transaction` records one event (a trade, a cash movement, a split)
on one UTC date; `replay` rebuilds cash and holdings at the end of any date, and
`LedgerReplayer` walks a date range in one pass over a sorted ledger, for backfills.

Semantics (see ``docs/history.md``):

- The state of a date is the state at the end of that date: every transaction dated on or
  before it has taken effect.
- Within one date, SPLITs apply first, to the quantity held at the end of the day before (the
  split date is the ex-date: trades dated that day are already in post-split units); the
  other transactions of the day then apply in any order, since the end-of-day state does not
  depend on it. A day's sales of a ticker may not exceed what was available that day (the
  quantity held after the splits plus the day's purchases): the position is never clamped.
  The state keeps every SPLIT applied (`LedgerState.splits`), so that a close dated before a
  split and used after it can be put in post-split units (see ``_splits.py``).
- Cash is kept in the portfolio's base currency only; a transaction in another currency is a
  `TransactionCurrencyError` (SPLITs move no cash and are exempt).
- Arithmetic is exact (`exact_context`): no amount is ever rounded by a replay.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import itertools
import re
from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import TYPE_CHECKING, cast
from uuid import UUID

from portfolio_snapshots._decimal import EXACT
from portfolio_snapshots._domain import DEFAULT_CURRENCY, Portfolio
from portfolio_snapshots._errors import (
    FutureTransactionError,
    InvalidDateRangeError,
    InvalidTransactionError,
    OversoldPositionError,
    TransactionCurrencyError,
    UnknownTransactionKindError,
    UnsortedLedgerError,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

_ZERO = Decimal(0)
_ONE_DAY = dt.timedelta(days=1)

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


_KINDS = frozenset(k.value for k in TransactionKind)
_TRADES = frozenset({TransactionKind.BUY, TransactionKind.SELL})
_CASH_IN = frozenset({TransactionKind.DEPOSIT, TransactionKind.DIVIDEND, TransactionKind.INTEREST})
_CONTRIBUTIONS = frozenset({TransactionKind.DEPOSIT, TransactionKind.WITHDRAWAL})


@dataclasses.dataclass(frozen=True, slots=True)
class Transaction:
    """One event of a portfolio's ledger, effective at the end of `trade_date`.

    The date field is named ``trade_date`` (not ``date``, which would shadow the type): it is
    the UTC calendar date on which the event changes holdings and cash, the trade date for
    trades (settlement is not modelled). Like the other values, a transaction does not
    validate itself; `validate_transaction` (called by every replay) and `parse_transaction`
    (for untrusted data) do.

    Fields used per kind, and the effect on cash (every other field must be left unset:
    None, or a zero `fee`):

    ============  =============================  ==========================================
    kind          fields                         effect
    ============  =============================  ==========================================
    BUY           ticker, quantity, price, fee   holdings += quantity;
                                                 cash -= quantity * price + fee
    SELL          ticker, quantity, price, fee   holdings -= quantity;
                                                 cash += quantity * price - fee
    DEPOSIT       amount                         cash += amount; a contribution
    WITHDRAWAL    amount                         cash -= amount; a negative contribution
    DIVIDEND      amount (ticker optional)       cash += amount
    FEE           amount (ticker optional)       cash -= amount
    INTEREST      amount (ticker optional)       cash += amount
    SPLIT         ticker, ratio                  quantity held *= ratio from trade_date on;
                                                 no cash
    ============  =============================  ==========================================

    Amounts, quantities, prices and fees are non-negative: the kind gives the sign (a
    negative interest charge is a FEE). Quantities are positive; a price may be zero (shares
    received for nothing); a ratio is positive (2 for a 2-for-1 split, 0.1 for 1-for-10).

    Attributes:
        portfolio_id: The portfolio the event belongs to.
        trade_date: The UTC date from whose end the event is in effect.
        kind: What the event does.
        ticker: The instrument traded or split; informational for cash kinds.
        quantity: Units bought or sold (BUY, SELL).
        price: Price of one unit, in `currency` (BUY, SELL).
        amount: Cash moved, in `currency` (DEPOSIT, WITHDRAWAL, DIVIDEND, FEE, INTEREST).
        currency: The ISO 4217 code of `price`, `amount` and `fee`: the portfolio's base
            currency.
        fee: Commission paid on a trade, in `currency` (BUY, SELL); zero otherwise.
        ratio: New units per old unit (SPLIT).
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


@dataclasses.dataclass(frozen=True, slots=True)
class LedgerState:
    """A portfolio's state at the end of one date, as replayed from its ledger.

    Attributes:
        as_of: The date whose end the state describes.
        cash: Cash held, in `currency`; negative when the ledger spent more than it held.
        holdings: Quantity held per ticker; positions sold out are absent. Read-only.
        net_contributions: Deposits minus withdrawals dated on or before `as_of`.
        external_flow: Deposits minus withdrawals dated `as_of` itself.
        currency: The base currency of every amount.
        opened_on: The date of the portfolio's first transaction, or None when it had none on
            or before `as_of` (the portfolio did not exist yet).
        splits: The SPLITs dated on or before `as_of`, per ticker, as ``(ex_date, ratio)``
            pairs in date order, one per day (a day's splits multiplied), whether the ticker
            was held at the time or not (units bought after an ex-date are in post-split
            units too); None when there were none. Read-only.
    """

    as_of: dt.date
    cash: Decimal
    holdings: Mapping[str, Decimal]
    net_contributions: Decimal
    external_flow: Decimal
    currency: str = DEFAULT_CURRENCY
    opened_on: dt.date | None = None
    splits: Mapping[str, tuple[tuple[dt.date, Decimal], ...]] | None = None

    def to_portfolio(self, portfolio_id: UUID) -> Portfolio:
        """Return the state as the `Portfolio` of `portfolio_id`, with its flows and splits.

        The holdings and splits are the state's own read-only mappings, shared, not copied.
        """
        return Portfolio(
            portfolio_id,
            self.cash,
            self.holdings,
            self.currency,
            self.net_contributions,
            self.external_flow,
            self.splits,
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
        currency: The portfolio's base currency; when given, a transaction that moves cash in
            another currency is rejected.
        portfolio_id: When given, the transaction must belong to this portfolio.
        today: The current UTC date; when given, a transaction dated after it is rejected.

    Returns:
        The transaction's kind, as a `TransactionKind` (a plain string equal to one of its
        values is accepted).

    Raises:
        InvalidTransactionError: A field is missing, of the wrong type (a float where a
            Decimal belongs), non-finite, negative, zero where it must be positive (a
            quantity, a split ratio), set for a kind it does not apply to, or the currency is
            not three upper-case letters; `field` and `value` name it.
        UnknownTransactionKindError: `kind` is not a `TransactionKind`.
        FutureTransactionError: The transaction is dated after `today`.
        TransactionCurrencyError: The transaction moves cash in a currency other than
            `currency`.
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
    if currency is not None and code != currency and kind is not TransactionKind.SPLIT:
        raise TransactionCurrencyError(
            portfolio_id=tx.portfolio_id, trade_date=day, kind=kind, expected=currency, actual=code
        )
    if kind in _TRADES:
        _ticker(tx, kind, required=True)
        _number(tx, kind, "quantity", positive=True)
        _number(tx, kind, "price", positive=False)
        _number(tx, kind, "fee", positive=False)
        _unset(tx, kind, "amount", "ratio")
        return kind
    if type(tx.fee) is not Decimal or tx.fee != 0:
        raise _fail(
            tx,
            f"does not apply to a {kind}; record a separate FEE",
            field="fee",
            value=tx.fee,
            kind=kind,
        )
    if kind is TransactionKind.SPLIT:
        _ticker(tx, kind, required=True)
        _number(tx, kind, "ratio", positive=True)
        _unset(tx, kind, "quantity", "price", "amount")
    else:
        _ticker(tx, kind, required=False)
        _number(tx, kind, "amount", positive=False)
        _unset(tx, kind, "quantity", "price", "ratio")
    return kind


def _trade(
    holdings: dict[str, Decimal], sold: dict[str, Decimal], tx: Transaction, kind: TransactionKind
) -> Decimal:
    """Apply a validated BUY or SELL to `holdings` and `sold`; return its effect on cash."""
    ticker = cast("str", tx.ticker)
    quantity = cast("Decimal", tx.quantity)
    gross = quantity * cast("Decimal", tx.price)
    if kind is TransactionKind.BUY:
        holdings[ticker] = holdings.get(ticker, _ZERO) + quantity
        return -(gross + tx.fee)
    holdings[ticker] = holdings.get(ticker, _ZERO) - quantity
    sold[ticker] = sold.get(ticker, _ZERO) + quantity
    return gross - tx.fee


def _cash(tx: Transaction, kind: TransactionKind) -> Decimal:
    """Return the effect on cash of a validated cash transaction (not a trade or a split)."""
    amount = cast("Decimal", tx.amount)
    return amount if kind in _CASH_IN else -amount


class _Book:
    """The running state of one replay: mutated day by day, read as `LedgerState` values."""

    __slots__ = (
        "cash",
        "currency",
        "flow",
        "flow_day",
        "holdings",
        "net_contributions",
        "opened_on",
        "portfolio_id",
        "splits",
        "splits_view",
        "today",
        "view",
    )

    def __init__(self, currency: str, portfolio_id: UUID | None, today: dt.date | None) -> None:
        self.currency = currency
        self.portfolio_id = portfolio_id
        self.today = today
        self.cash = _ZERO
        self.holdings: dict[str, Decimal] = {}
        self.view: Mapping[str, Decimal] | None = None
        self.net_contributions = _ZERO
        self.flow = _ZERO
        self.flow_day: dt.date | None = None
        self.opened_on: dt.date | None = None
        self.splits: dict[str, tuple[tuple[dt.date, Decimal], ...]] = {}
        self.splits_view: Mapping[str, tuple[tuple[dt.date, Decimal], ...]] | None = None

    def _record_split(self, ticker: str, day: dt.date, ratio: Decimal) -> None:
        """Keep one entry per ticker and day: a day's splits in one ratio, in any order."""
        before = self.splits.get(ticker, ())
        if before and before[-1][0] == day:
            before, ratio = before[:-1], before[-1][1] * ratio
        self.splits[ticker] = (*before, (day, ratio))
        self.splits_view = None

    def apply_day(self, day: dt.date, txs: list[Transaction]) -> None:
        """Apply every transaction dated `day`: the splits first, then the rest, at once."""
        checked = [(tx, self._validate(tx)) for tx in txs]
        holdings = self.holdings
        cash = self.cash
        flow = _ZERO
        sold: dict[str, Decimal] = {}
        with decimal.localcontext(EXACT):
            for tx, kind in checked:
                if kind is TransactionKind.SPLIT:
                    ticker, ratio = cast("str", tx.ticker), cast("Decimal", tx.ratio)
                    if ticker in holdings:
                        holdings[ticker] *= ratio
                    self._record_split(ticker, day, ratio)
            for tx, kind in checked:
                if kind in _TRADES:
                    cash += _trade(holdings, sold, tx, kind)
                elif kind is not TransactionKind.SPLIT:
                    delta = _cash(tx, kind)
                    cash += delta
                    if kind in _CONTRIBUTIONS:
                        flow += delta
            self._check_sales(day, sold)
            for ticker in [t for t, q in holdings.items() if not q]:
                del holdings[ticker]
            self.net_contributions += flow
        self.cash = cash
        self.flow = flow
        self.flow_day = day
        self.view = None
        if self.opened_on is None:
            self.opened_on = day

    def _validate(self, tx: Transaction) -> TransactionKind:
        kind = validate_transaction(
            tx, currency=self.currency, portfolio_id=self.portfolio_id, today=self.today
        )
        if self.portfolio_id is None:
            self.portfolio_id = tx.portfolio_id
        return kind

    def _check_sales(self, day: dt.date, sold: dict[str, Decimal]) -> None:
        for ticker, quantity in sold.items():
            left = self.holdings[ticker]
            if left < 0:
                raise OversoldPositionError(
                    portfolio_id=self.portfolio_id,
                    trade_date=day,
                    ticker=ticker,
                    sold=quantity,
                    available=left + quantity,
                )

    def state(self, as_of: dt.date) -> LedgerState:
        """Return the state at the end of `as_of` (no transaction after it applied)."""
        view = self.view
        if view is None:
            view = self.view = MappingProxyType(dict(self.holdings))
        splits = self.splits_view
        if splits is None and self.splits:
            splits = self.splits_view = MappingProxyType(dict(self.splits))
        return LedgerState(
            as_of,
            self.cash,
            view,
            self.net_contributions,
            self.flow if self.flow_day == as_of else _ZERO,
            self.currency,
            self.opened_on,
            splits,
        )


def _by_date(tx: Transaction) -> dt.date:
    return tx.trade_date


def replay(
    transactions: Iterable[Transaction],
    as_of: dt.date,
    *,
    currency: str = DEFAULT_CURRENCY,
    portfolio_id: UUID | None = None,
    today: dt.date | None = None,
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

    Returns:
        The state; ``opened_on`` is None when no transaction is dated on or before `as_of`.

    Raises:
        InvalidTransactionError: A transaction on or before `as_of` is invalid (see
            `validate_transaction`), or sells more than available (`OversoldPositionError`).
    """
    relevant = [tx for tx in transactions if _check_date(tx) <= as_of]
    relevant.sort(key=_by_date)
    book = _Book(currency, portfolio_id, today)
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
    """

    __slots__ = ("_as_of", "_book", "_error", "_last_date", "_pending", "_source")

    def __init__(
        self,
        transactions: Iterable[Transaction],
        *,
        currency: str = DEFAULT_CURRENCY,
        portfolio_id: UUID | None = None,
        today: dt.date | None = None,
    ) -> None:
        self._source: Iterator[Transaction] | None = iter(transactions)
        self._book = _Book(currency, portfolio_id, today)
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

    Returns:
        An iterator of one `LedgerState` per date; it raises as `LedgerReplayer.states`.
    """
    replayer = LedgerReplayer(
        transactions, currency=currency, portfolio_id=portfolio_id, today=today
    )
    return replayer.states(start, end)
