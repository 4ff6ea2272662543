"""Errors of the history feature: transaction ledgers, FX rates and returns.

They follow `portfolio_snapshots._errors`: every error derives from `SnapshotError`, bad input
also from `ValueError` (through `InvalidInputError`), and each error carries the facts it names
as attributes. They live in their own module until the lead folds them into ``_errors.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from portfolio_snapshots._errors import InvalidInputError, InvalidPortfolioError, SnapshotError

if TYPE_CHECKING:
    import datetime as dt
    from decimal import Decimal
    from uuid import UUID


class InvalidTransactionError(InvalidPortfolioError):
    """A ledger transaction is unusable, so the portfolio's state cannot be rebuilt.

    A subclass of `InvalidPortfolioError`: the portfolio at fault cannot be valued on the
    transaction's date or any later one. `snapshot_date` (inherited) and `trade_date` both hold
    the transaction's date.

    Attributes:
        trade_date: The date of the offending transaction, when known.
        kind: The transaction's kind, when known (``"buy"``, ``"split"``, ...).
    """

    def __init__(
        self,
        reason: str,
        *,
        portfolio_id: UUID | None = None,
        trade_date: dt.date | None = None,
        kind: str | None = None,
        field: str | None = None,
        ticker: str | None = None,
        value: object = None,
    ) -> None:
        """Build the error; the message names the portfolio, date, kind, field and value."""
        suffix = f" ({kind} transaction)" if kind is not None else ""
        super().__init__(
            reason + suffix,
            portfolio_id=portfolio_id,
            snapshot_date=trade_date,
            field=field,
            ticker=ticker,
            value=value,
        )
        self.trade_date = trade_date
        self.kind = kind


class UnknownTransactionKindError(InvalidTransactionError):
    """Raw data names a transaction kind that `TransactionKind` does not have.

    `value` holds the raw kind as received.
    """


class FutureTransactionError(InvalidTransactionError):
    """A transaction is dated after "today" (UTC): the ledger records what has happened.

    Attributes:
        today: The UTC date the transaction was checked against.
    """

    def __init__(
        self,
        *,
        portfolio_id: UUID | None,
        trade_date: dt.date,
        kind: str | None,
        today: dt.date,
    ) -> None:
        """Build the error for a transaction dated `trade_date`, after `today`."""
        super().__init__(
            f"dated in the future (today is {today.isoformat()} UTC)",
            portfolio_id=portfolio_id,
            trade_date=trade_date,
            kind=kind,
            field="trade_date",
            value=trade_date,
        )
        self.today = today


class TransactionCurrencyError(InvalidTransactionError):
    """A transaction moves cash in a currency other than the portfolio's base currency.

    The ledger keeps cash in the base currency only; see ``docs/history.md``.

    Attributes:
        expected: The portfolio's base currency.
        actual: The transaction's currency.
    """

    def __init__(
        self,
        *,
        portfolio_id: UUID | None,
        trade_date: dt.date | None,
        kind: str | None,
        expected: str,
        actual: str,
    ) -> None:
        """Build the error for a transaction in `actual` in a portfolio kept in `expected`."""
        super().__init__(
            f"cash is kept in the base currency {expected}; convert the transaction first",
            portfolio_id=portfolio_id,
            trade_date=trade_date,
            kind=kind,
            field="currency",
            value=actual,
        )
        self.expected = expected
        self.actual = actual


class OversoldPositionError(InvalidTransactionError):
    """A day's sales of a ticker exceed the quantity held: the position is never clamped.

    `value` holds the quantity sold that day.

    Attributes:
        sold: The quantity of the ticker sold on `trade_date`, in all.
        available: The quantity that could be sold that day: the quantity held at the end of
            the day before (after that day's splits) plus the day's purchases.
    """

    def __init__(
        self,
        *,
        portfolio_id: UUID | None,
        trade_date: dt.date,
        ticker: str,
        sold: Decimal,
        available: Decimal,
    ) -> None:
        """Build the error for the sales of `ticker` on `trade_date`."""
        super().__init__(
            f"sells more than held (available: {available})",
            portfolio_id=portfolio_id,
            trade_date=trade_date,
            kind="sell",
            field="quantity",
            ticker=ticker,
            value=sold,
        )
        self.sold = sold
        self.available = available


class UnsortedLedgerError(InvalidTransactionError):
    """Transactions handed to an incremental replay are not in ascending date order.

    `value` holds the out-of-order date; `previous_date` the date seen before it.

    Attributes:
        previous_date: The date of the transaction that came before.
    """

    def __init__(
        self,
        *,
        portfolio_id: UUID | None,
        trade_date: dt.date,
        previous_date: dt.date,
    ) -> None:
        """Build the error for a transaction dated `trade_date` after one of `previous_date`."""
        super().__init__(
            f"transactions are not sorted by date: {trade_date.isoformat()} comes after "
            f"{previous_date.isoformat()}",
            portfolio_id=portfolio_id,
            trade_date=trade_date,
            field="trade_date",
            value=trade_date,
        )
        self.previous_date = previous_date


class InvalidFxRateError(InvalidInputError):
    """An exchange rate is unusable: zero, negative, non-finite, not a Decimal, or misdated.

    Attributes:
        base: The currency one unit of which the rate prices.
        quote: The currency the rate is expressed in.
        as_of: The date of the rate, or the date asked for when the rate is dated after it.
        value: The offending value.
    """

    def __init__(
        self, reason: str, *, base: str, quote: str, as_of: dt.date | None, value: object
    ) -> None:
        """Build the error for the pair ``base/quote``."""
        when = f" on {as_of.isoformat()}" if as_of is not None else ""
        super().__init__(f"FX rate {base}/{quote}{when}: rate={value!r}: {reason}")
        self.base = base
        self.quote = quote
        self.as_of = as_of
        self.value = value


class MissingFxRateError(SnapshotError, LookupError):
    """No rate, direct or inverse, converts `base` into `quote` on or before `as_of`.

    Attributes:
        base: The currency to convert from.
        quote: The currency to convert into.
        as_of: The date asked for.
        portfolio_id: The portfolio being valued, when known.
        ticker: The position needing the rate, when known.
    """

    def __init__(
        self,
        *,
        base: str,
        quote: str,
        as_of: dt.date,
        portfolio_id: UUID | None = None,
        ticker: str | None = None,
        detail: str | None = None,
    ) -> None:
        """Build the error for the pair ``base/quote``, naming the position when known."""
        what = detail or f"no FX rate {base}/{quote} (nor {quote}/{base}) on or before"
        where = f"portfolio {portfolio_id}: " if portfolio_id is not None else ""
        held = f"ticker {ticker!r}: " if ticker is not None else ""
        super().__init__(f"{where}{held}{what} {as_of.isoformat()}")
        self.base = base
        self.quote = quote
        self.as_of = as_of
        self.portfolio_id = portfolio_id
        self.ticker = ticker


class InvalidSnapshotSeriesError(InvalidPortfolioError):
    """A series of snapshots cannot be used to compute returns.

    For example snapshots of different portfolios or currencies, dates out of order or
    repeated, or too few snapshots. `snapshot_date` names the first snapshot at fault.
    """


class MissingFlowDataError(InvalidSnapshotSeriesError):
    """A snapshot lacks ``net_contributions`` or ``external_flow``, so flows are unknown.

    Returns need the ledger: snapshots of a repository that does not know the transactions
    cannot tell a deposit from a gain. `field` names the missing attribute.
    """


class UndefinedReturnError(InvalidSnapshotSeriesError):
    """A return's denominator (the capital at work) is zero or negative.

    For example a portfolio that holds value at the end of a day after starting it with
    nothing and receiving nothing. `value` holds the denominator.
    """
