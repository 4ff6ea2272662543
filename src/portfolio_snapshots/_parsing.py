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
from portfolio_snapshots._errors import InvalidPortfolioError, InvalidPriceError

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


def _maybe_uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None
