"""Validation of untrusted input (JSON, HTTP bodies, CSV rows) into domain values.

This is where pydantic earns its place: at the boundary, once. Amounts must arrive as strings,
integers or Decimals; a float is rejected, since it has already lost the exact value.

The rules of a single value (`ticker_problem`, `amount_problem`, `currency_problem`) are
plain functions, shared by the parsers here and by the checks the job makes on the values
adapters hand it, so a value is refused the same way whichever door it comes through.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Mapping as MappingABC
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Final

import pydantic

from portfolio_snapshots._domain import (
    DEFAULT_CURRENCY,
    QUOTE_MINOR_UNITS,
    Portfolio,
    PriceQuote,
)
from portfolio_snapshots._errors import (
    InvalidInputError,
    InvalidPortfolioError,
    InvalidPriceError,
    InvalidTransactionError,
    UnknownTransactionKindError,
)
from portfolio_snapshots._ledger import Transaction, TransactionKind, validate_transaction

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping


#: The largest magnitude an amount or a quantity may have: below ``10**MAX_INTEGER_DIGITS``.
MAX_INTEGER_DIGITS: Final = 18
#: The most decimal places an amount, a quantity, a price or a rate may have.
MAX_PLACES: Final = 18
#: The longest ticker accepted.
MAX_TICKER_LENGTH: Final = 64

_CURRENCY = re.compile(r"[A-Z]{3}")
#: Codes `currency_problem` found well-formed, so that each is matched once per process.
_WELL_FORMED: set[str] = set()


def ticker_problem(value: object) -> str | None:
    """Say what is wrong with `value` as a ticker, or return None when it is a good one.

    A ticker is a non-empty `str` of at most `MAX_TICKER_LENGTH` printable characters with no
    white space at either end. ``" AAPL"`` and a ticker holding a NUL character are refused,
    not stripped: a host that sends them has a bug worth seeing.
    """
    if type(value) is not str:
        return f"a ticker must be a str, got {type(value).__name__}"
    if not value or value.strip() != value:
        return "a ticker must be non-empty, with no white space at either end"
    if len(value) > MAX_TICKER_LENGTH:
        return f"a ticker has at most {MAX_TICKER_LENGTH} characters"
    if not value.isprintable():
        return "a ticker must be printable (no control characters)"
    return None


def amount_problem(value: object) -> str | None:
    """Say what is wrong with `value` as an amount or a quantity, or return None.

    An amount is a finite `Decimal` below ``10**MAX_INTEGER_DIGITS`` in magnitude with at
    most `MAX_PLACES` decimal places (``1E+99999999`` would take hundreds of megabytes once
    rounded to cents). Its sign is the caller's business.
    """
    if type(value) is not Decimal:
        return f"must be a Decimal, got {type(value).__name__}"
    if not value.is_finite():
        return "must be finite"
    if value and value.adjusted() >= MAX_INTEGER_DIGITS:
        return f"must be below 1E+{MAX_INTEGER_DIGITS} in magnitude"
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MAX_PLACES:
        return f"must have at most {MAX_PLACES} decimal places"
    return None


def currency_problem(value: object) -> str | None:
    """Say what is wrong with `value` as an ISO 4217 code (three upper-case letters), or None."""
    if value.__class__ is str and value in _WELL_FORMED:
        return None  # every quote of a backfill's range asks again: one set lookup
    if type(value) is not str or _CURRENCY.fullmatch(value) is None:
        return "a currency must be an ISO 4217 code: three upper-case letters such as 'USD'"
    _WELL_FORMED.add(value)  # at most 26 ** 3 codes
    return None


def portfolio_problem(
    portfolio: object, known_currencies: set[str]
) -> tuple[str, str, object] | None:
    """Say what makes `portfolio` unusable as an adapter handed it, or return None.

    The job's cheap check of each portfolio a repository yields, before anything else looks
    at it: the value is a `Portfolio`, its id a `UUID`, its holdings a mapping and its
    currency an ISO 4217 code. Amounts and tickers are checked where they are used (the
    calculator refuses bad quantities and cash; a bad ticker has no price), so a good
    portfolio pays for four type checks here.

    Args:
        portfolio: What the adapter handed over.
        known_currencies: Currency codes already found well-formed (the caller's memo, so
            each code is checked once per run); a good new one is added.

    Returns:
        ``(field, reason, value)`` of the first problem found, or None.
    """
    if not isinstance(portfolio, Portfolio):
        return "portfolio", f"must be a Portfolio, got {type(portfolio).__name__}", portfolio
    portfolio_id: object = portfolio.id
    if not isinstance(portfolio_id, uuid.UUID):  # a subclass (asyncpg hands one) is a UUID
        return "id", f"must be a UUID, got {type(portfolio_id).__name__}", portfolio_id
    holdings: object = portfolio.holdings
    if holdings.__class__ is not dict and not isinstance(holdings, MappingABC):
        return "holdings", f"must be a mapping, got {type(holdings).__name__}", holdings
    currency = portfolio.currency
    if currency not in known_currencies:
        reason = currency_problem(currency)
        if reason is not None:
            return "currency", reason, currency
        known_currencies.add(currency)
    return None


def date_argument(name: str, value: object) -> dt.date:
    """Return `value` when it is a `date` (not a datetime); raise `InvalidInputError` otherwise.

    For the job's public methods: a datetime says nothing of which UTC date was meant.

    Raises:
        InvalidInputError: `value` is a datetime, or not a date at all; the message names
            the argument.
    """
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.datetime):
        raise InvalidInputError(
            f"{name} must be a date, got a datetime ({value!r}): pass its UTC date, "
            f"for example {name}=moment.astimezone(datetime.UTC).date()"
        )
    raise InvalidInputError(f"{name} must be a datetime.date, got {type(value).__name__} {value!r}")


def quote_currency_problem(value: object) -> str | None:
    """Say what is wrong with `value` as a quote's currency, or None.

    An ISO 4217 code, or a minor unit of `QUOTE_MINOR_UNITS` (``"GBp"``: pence).
    """
    if value in QUOTE_MINOR_UNITS:
        return None
    return currency_problem(value)


def _check(problem: Callable[[object], str | None]) -> Callable[[object], object]:
    """Turn a ``*_problem`` rule into a pydantic after-validator."""

    def validate(value: object) -> object:
        reason = problem(value)
        if reason is not None:
            raise ValueError(reason)  # pydantic turns ValueError into a validation error
        return value

    return validate


def _reject_float(value: object) -> object:
    if isinstance(value, float):
        # pydantic turns ValueError (not TypeError) into a validation error
        raise ValueError(  # noqa: TRY004
            "floats are not accepted for amounts; send a string such as '12.34'"
        )
    return value


ExactDecimal = Annotated[
    Decimal,
    pydantic.BeforeValidator(_reject_float),
    pydantic.Field(allow_inf_nan=False),
    pydantic.AfterValidator(_check(amount_problem)),
]
Currency = Annotated[str, pydantic.AfterValidator(_check(currency_problem))]
QuoteCurrency = Annotated[str, pydantic.AfterValidator(_check(quote_currency_problem))]
Ticker = Annotated[str, pydantic.AfterValidator(_check(ticker_problem))]


def _date_only(value: object) -> object:
    if isinstance(value, str):
        # only a calendar date: pydantic's own parsing would take a timestamp's digits
        # ("1764201600") or a datetime's text with a zero time as a date
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    elif isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    # a timestamp or a datetime says nothing of which UTC date was meant
    raise ValueError("send the UTC date as an ISO 8601 string such as '2024-01-31'")


#: A UTC calendar date, sent as an ISO 8601 string or a `date`; never a datetime or a number.
UtcDate = Annotated[dt.date, pydantic.BeforeValidator(_date_only)]


class _PortfolioIn(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    id: uuid.UUID
    cash_balance: ExactDecimal
    holdings: dict[Ticker, Annotated[ExactDecimal, pydantic.Field(ge=0)]] = {}
    currency: Currency = DEFAULT_CURRENCY


def price_problem(value: object) -> str | None:
    """Say what is wrong with `value` as a close (a finite Decimal, zero or above), or None.

    Zero is a price (a delisted or worthless security); a negative zero is refused, since a
    source sending one has lost the sign of something.
    """
    if isinstance(value, Decimal) and value.is_signed():
        return "a price must be zero or above"
    return None


class _QuoteIn(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    ticker: Ticker
    price: Annotated[ExactDecimal, pydantic.AfterValidator(_check(price_problem))]
    as_of: UtcDate
    currency: QuoteCurrency = DEFAULT_CURRENCY


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
        raw_id = _item(data, "id")
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
        ticker = _item(data, "ticker")
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


def _item(data: object, key: str) -> object:
    """Return ``data[key]``, or None when `data` is no mapping (a parser is handed anything)."""
    return data.get(key) if isinstance(data, MappingABC) else None


def _maybe_uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _whole_number(value: object) -> object:
    """Accept an int or a string of digits (a split's units); refuse floats and bools."""
    if isinstance(value, str) and value.strip().isdigit() and value.strip().isascii():
        return int(value.strip())
    if type(value) is int:
        return value
    # pydantic turns ValueError (not TypeError) into a validation error
    raise ValueError("must be a whole number, as an int or a string of digits such as '3'")


#: A split's units (``split_new``, ``split_old``): a whole number; its sign is checked later.
SplitUnits = Annotated[int, pydantic.BeforeValidator(_whole_number), pydantic.Strict()]


class _TransactionIn(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    portfolio_id: uuid.UUID
    trade_date: UtcDate
    ticker: Ticker | None = None
    quantity: ExactDecimal | None = None
    price: ExactDecimal | None = None
    amount: ExactDecimal | None = None
    currency: Currency = DEFAULT_CURRENCY
    fee: ExactDecimal = Decimal(0)
    ratio: ExactDecimal | None = None
    fx_rate: ExactDecimal | None = None
    split_new: SplitUnits | None = None
    split_old: SplitUnits | None = None
    to_currency: Currency | None = None
    to_amount: ExactDecimal | None = None


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
            "amount", "currency", "fee", "ratio", "fx_rate", "split_new", "split_old",
            "to_currency", "to_amount"}``: ids and dates as strings (ISO 8601) or values,
            amounts and rates as strings or ints, a split's units as ints or strings of
            digits, `kind` a `TransactionKind` value in any case (``"buy"``,
            ``"TRANSFER_IN"``). Fields a kind does not use may be omitted.
        today: The current UTC date; when given, a transaction dated after it is rejected.

    Returns:
        The transaction, checked by `validate_transaction`.

    Raises:
        UnknownTransactionKindError: `kind` is not a `TransactionKind` value.
        FutureTransactionError: The transaction is dated after `today`.
        InvalidTransactionError: Any other field is missing or invalid (a float amount, a
            non-finite number, a negative quantity, a split ratio of zero or less, split
            units that are not whole numbers above zero, a currency that is not three
            upper-case letters, an unknown field); `field` and `value` name it.
    """
    if not isinstance(data, MappingABC):
        raise InvalidTransactionError(
            f"a transaction must be a mapping, got {type(data).__name__}", field="value", value=data
        )
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
        fx_rate=model.fx_rate,
        split_new=model.split_new,
        split_old=model.split_old,
        to_currency=model.to_currency,
        to_amount=model.to_amount,
    )
    validate_transaction(tx, today=today)
    return tx
