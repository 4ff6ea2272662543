"""Validation of untrusted input (JSON, HTTP bodies, CSV rows) into domain values.

This is where pydantic earns its place: at the boundary, once. Amounts must arrive as strings,
integers or Decimals; a float is rejected, since it has already lost the exact value.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

import pydantic

from portfolio_snapshots._domain import DEFAULT_CURRENCY, Portfolio, PriceQuote
from portfolio_snapshots._errors import (
    InvalidPortfolioError,
    InvalidPriceError,
    InvalidTransactionError,
    UnknownTransactionKindError,
)
from portfolio_snapshots._ledger import Transaction, TransactionKind, validate_transaction

if TYPE_CHECKING:
    from collections.abc import Mapping


def _reject_float(value: object) -> object:
    if isinstance(value, float):
        # pydantic turns ValueError (not TypeError) into a validation error
        raise ValueError(  # noqa: TRY004
            "floats are not accepted for amounts; send a string such as '12.34'"
        )
    return value


ExactDecimal = Annotated[
    Decimal, pydantic.BeforeValidator(_reject_float), pydantic.Field(allow_inf_nan=False)
]
Currency = Annotated[str, pydantic.Field(pattern=r"^[A-Z]{3}$")]
Ticker = Annotated[str, pydantic.Field(min_length=1, max_length=64)]


class _PortfolioIn(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    id: uuid.UUID
    cash_balance: ExactDecimal
    holdings: dict[Ticker, Annotated[ExactDecimal, pydantic.Field(ge=0)]] = {}
    currency: Currency = DEFAULT_CURRENCY


class _QuoteIn(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    ticker: Ticker
    price: Annotated[ExactDecimal, pydantic.Field(gt=0)]
    as_of: dt.date
    currency: Currency = DEFAULT_CURRENCY


def _first_problem(error: pydantic.ValidationError) -> tuple[str, str, object]:
    problem = error.errors()[0]
    field = ".".join(str(p) for p in problem["loc"]) or "value"
    return field, problem["msg"], problem.get("input")


def parse_portfolio(data: Mapping[str, object]) -> Portfolio:
    """Validate untrusted data into a `Portfolio`.

    Args:
        data: ``{"id", "cash_balance", "holdings", "currency"}``; amounts as strings or ints.

    Returns:
        The portfolio.

    Raises:
        InvalidPortfolioError: A field is missing or invalid; `field` names it.
    """
    try:
        model = _PortfolioIn.model_validate(data)
    except pydantic.ValidationError as error:
        field, msg, value = _first_problem(error)
        raw_id = data.get("id")
        pid = raw_id if isinstance(raw_id, uuid.UUID) else _maybe_uuid(raw_id)
        raise InvalidPortfolioError(msg, portfolio_id=pid, field=field, value=value) from None
    return Portfolio(model.id, model.cash_balance, dict(model.holdings), model.currency)


def parse_price_quote(data: Mapping[str, object]) -> PriceQuote:
    """Validate untrusted data into a `PriceQuote`.

    Args:
        data: ``{"ticker", "price", "as_of", "currency"}``; the price as a string or int.

    Returns:
        The quote.

    Raises:
        InvalidPriceError: A field is missing or invalid; `field` names it.
    """
    try:
        model = _QuoteIn.model_validate(data)
    except pydantic.ValidationError as error:
        field, msg, value = _first_problem(error)
        ticker = data.get("ticker")
        raise InvalidPriceError(
            msg, field=field, ticker=ticker if isinstance(ticker, str) else None, value=value
        ) from None
    return PriceQuote(model.ticker, model.price, model.as_of, model.currency)


def provider_price(value: object, *, ticker: str, as_of: dt.date, allow_float: bool) -> Decimal:
    """Return a price a provider's function returned, as an exact Decimal.

    Decimals pass as they are; ints and strings (``"190.12"``) are read exactly. A float has
    already lost the exact price (0.1 is not 1/10), so it is refused unless `allow_float`,
    which converts it through its shortest repr (``190.12`` becomes ``Decimal("190.12")``).

    Raises:
        InvalidPriceError: A float (unless `allow_float`), a bool, or a value that is not a
            number; the message says which (it says "float" for a float).
    """
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        if allow_float:
            return Decimal(repr(value))
        raise InvalidPriceError(
            f"the price source returned a float for {as_of.isoformat()}; a float has lost the "
            "exact price: return a Decimal or a string, or pass allow_float=True to convert "
            "floats through their shortest repr",
            ticker=ticker,
            field="price",
            value=value,
        )
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, str):
        try:
            return Decimal(value.strip())
        except ArithmeticError:
            pass
    raise InvalidPriceError(
        f"the price source returned {type(value).__name__} for {as_of.isoformat()}, "
        "not a number: return a Decimal or a string such as '190.12'",
        ticker=ticker,
        field="price",
        value=value,
    )


def provider_day(value: object, *, ticker: str) -> dt.date:
    """Return the date of a close a provider's history returned.

    Raises:
        InvalidPriceError: The value is not a `datetime.date` (a datetime says nothing of
            which UTC date its close belongs to).
    """
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    raise InvalidPriceError(
        "the price source dated a close with something other than a date: give each close's "
        "UTC date as a datetime.date (a datetime does not say which date it closes)",
        ticker=ticker,
        field="as_of",
        value=value,
    )


def _maybe_uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _date_only(value: object) -> object:
    if isinstance(value, dt.datetime) or not isinstance(value, (str, dt.date)):
        # a timestamp or a datetime says nothing of which UTC date was meant
        raise ValueError(  # noqa: TRY004 - pydantic turns ValueError into a validation error
            "send the UTC date as an ISO 8601 string such as '2024-01-31'"
        )
    return value


TradeDate = Annotated[dt.date, pydantic.BeforeValidator(_date_only)]


class _TransactionIn(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    portfolio_id: uuid.UUID
    trade_date: TradeDate
    ticker: Ticker | None = None
    quantity: ExactDecimal | None = None
    price: ExactDecimal | None = None
    amount: ExactDecimal | None = None
    currency: Currency = DEFAULT_CURRENCY
    fee: ExactDecimal = Decimal(0)
    ratio: ExactDecimal | None = None


def _maybe_date(value: object) -> dt.date | None:
    if type(value) is dt.date:
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            return None
    return None


def _kind(raw: object, pid: uuid.UUID | None, day: dt.date | None) -> TransactionKind:
    if raw is None:
        raise InvalidTransactionError(
            "is required", portfolio_id=pid, trade_date=day, field="kind", value=None
        )
    if isinstance(raw, str):
        try:
            return TransactionKind(raw.strip().lower())
        except ValueError:
            pass
    raise UnknownTransactionKindError(
        f"unknown transaction kind; expected one of {', '.join(TransactionKind)}",
        portfolio_id=pid,
        trade_date=day,
        field="kind",
        value=raw,
    )


def parse_transaction(data: Mapping[str, object], *, today: dt.date | None = None) -> Transaction:
    """Validate an untrusted ledger row into a `Transaction`.

    Args:
        data: ``{"portfolio_id", "trade_date", "kind", "ticker", "quantity", "price",
            "amount", "currency", "fee", "ratio"}``: ids and dates as strings (ISO 8601) or
            values, amounts as strings or ints, `kind` a `TransactionKind` value in any case
            (``"buy"``, ``"BUY"``). Fields a kind does not use may be omitted.
        today: The current UTC date; when given, a transaction dated after it is rejected.

    Returns:
        The transaction, checked by `validate_transaction`.

    Raises:
        UnknownTransactionKindError: `kind` is not a `TransactionKind` value.
        FutureTransactionError: The transaction is dated after `today`.
        InvalidTransactionError: Any other field is missing or invalid (a float amount, a
            non-finite number, a negative quantity, a split ratio of zero or less, a
            currency that is not three upper-case letters, an unknown field); `field` and
            `value` name it.
    """
    raw_id = data.get("portfolio_id")
    pid = raw_id if isinstance(raw_id, uuid.UUID) else _maybe_uuid(raw_id)
    day = _maybe_date(data.get("trade_date"))
    kind = _kind(data.get("kind"), pid, day)
    try:
        model = _TransactionIn.model_validate({k: v for k, v in data.items() if k != "kind"})
    except pydantic.ValidationError as error:
        problem = error.errors()[0]
        field = ".".join(str(p) for p in problem["loc"]) or "value"
        raise InvalidTransactionError(
            problem["msg"],
            portfolio_id=pid,
            trade_date=day,
            kind=kind,
            field=field,
            value=problem.get("input"),
        ) from None
    tx = Transaction(
        portfolio_id=model.portfolio_id,
        trade_date=model.trade_date,
        kind=kind,
        ticker=model.ticker,
        quantity=model.quantity,
        price=model.price,
        amount=model.amount,
        currency=model.currency,
        fee=model.fee,
        ratio=model.ratio,
    )
    validate_transaction(tx, today=today)
    return tx
