import datetime as dt
import uuid
from decimal import Decimal

import pytest

from portfolio_snapshots import Portfolio, PriceQuote, parse_portfolio, parse_price_quote
from portfolio_snapshots.errors import InvalidPortfolioError, InvalidPriceError

PID = uuid.UUID(int=3)


def test_parse_portfolio_accepts_strings_and_ints_exactly() -> None:
    """Amounts given as strings or ints become exact Decimals."""
    got = parse_portfolio(
        {
            "id": str(PID),
            "cash_balance": "10.10",
            "holdings": {"A": "0.1", "B": 3},
            "currency": "EUR",
        }
    )
    assert got == Portfolio(PID, Decimal("10.10"), {"A": Decimal("0.1"), "B": Decimal(3)}, "EUR")


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"id": str(PID), "cash_balance": 10.1}, "cash_balance"),
        ({"id": str(PID), "cash_balance": "NaN"}, "cash_balance"),
        ({"id": str(PID), "cash_balance": "1", "holdings": {"A": "-1"}}, "holdings.A"),
        ({"id": str(PID), "cash_balance": "1", "currency": "usd"}, "currency"),
        ({"id": "not-a-uuid", "cash_balance": "1"}, "id"),
        ({"id": str(PID)}, "cash_balance"),
    ],
)
def test_parse_portfolio_rejects_bad_fields_by_name(data: dict[str, object], field: str) -> None:
    """Floats, NaN, negative quantities, bad currencies and ids are errors naming the field."""
    with pytest.raises(InvalidPortfolioError) as info:
        parse_portfolio(data)
    assert info.value.field == field
    assert field in str(info.value)


def test_parse_price_quote() -> None:
    """A quote parses exactly; a zero price is rejected naming the ticker."""
    quote = parse_price_quote({"ticker": "A", "price": "1.50", "as_of": "2026-11-27"})
    assert quote == PriceQuote("A", Decimal("1.50"), dt.date(2026, 11, 27))
    with pytest.raises(InvalidPriceError) as info:
        parse_price_quote({"ticker": "A", "price": "0", "as_of": "2026-11-27"})
    assert (info.value.ticker, info.value.field) == ("A", "price")
