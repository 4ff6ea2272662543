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
    """A quote parses exactly, zero included; a negative price is rejected naming the ticker."""
    quote = parse_price_quote({"ticker": "A", "price": "1.50", "as_of": "2026-11-27"})
    assert quote == PriceQuote("A", Decimal("1.50"), dt.date(2026, 11, 27))
    zero = parse_price_quote({"ticker": "A", "price": "0", "as_of": "2026-11-27"})
    assert zero.price == Decimal(0)
    for negative in ("-0.01", "-0"):
        with pytest.raises(InvalidPriceError) as info:
            parse_price_quote({"ticker": "A", "price": negative, "as_of": "2026-11-27"})
        assert (info.value.ticker, info.value.field) == ("A", "price")


@pytest.mark.parametrize(
    ("holdings", "reason"),
    [
        ({" AAPL": "1"}, "white space"),
        ({"AAPL ": "1"}, "white space"),
        ({"": "1"}, "non-empty"),
        ({"   ": "1"}, "non-empty"),
        ({"AA\x00PL": "1"}, "printable"),
        ({"A" * 65: "1"}, "at most 64"),
        ({"A": "1E+99999999"}, "finite"),
        ({"A": "1E+18"}, "below 1E+18"),
        ({"A": "1E-19"}, "at most 18 decimal places"),
    ],
)
def test_parse_portfolio_refuses_bad_tickers_and_outsized_quantities(
    holdings: dict[str, object], reason: str
) -> None:
    """Blank, padded, control-character or overlong tickers and outsized amounts are refused."""
    with pytest.raises(InvalidPortfolioError) as info:
        parse_portfolio({"id": str(PID), "cash_balance": "1", "holdings": holdings})
    assert info.value.field is not None
    assert info.value.field.startswith("holdings")
    assert reason in str(info.value)


def test_parse_portfolio_takes_amounts_up_to_the_stated_bounds() -> None:
    """Just below 1E+18 with 18 places is accepted exactly, as the docs state."""
    big, fine = "999999999999999999.999999999999999999", "0.000000000000000001"
    got = parse_portfolio({"id": str(PID), "cash_balance": big, "holdings": {"A": fine}})
    assert (got.cash_balance, got.holdings["A"]) == (Decimal(big), Decimal(fine))


@pytest.mark.parametrize("as_of", [1_700_000_000, 1_700_000_000.0, "2024-01-31T10:00:00"])
def test_parse_price_quote_refuses_timestamps_and_datetimes_as_dates(as_of: object) -> None:
    """A quote's date is a UTC calendar date: a Unix timestamp or a datetime is refused."""
    with pytest.raises(InvalidPriceError) as info:
        parse_price_quote({"ticker": "A", "price": "1", "as_of": as_of})
    assert info.value.field == "as_of"


@pytest.mark.parametrize("currency", ["", "usd", "US", "USDX", None])
def test_parse_price_quote_refuses_currencies_that_are_not_iso_codes(currency: object) -> None:
    """A currency is three upper-case letters; anything else names the field."""
    with pytest.raises(InvalidPriceError) as info:
        parse_price_quote(
            {"ticker": "A", "price": "1", "as_of": "2024-01-31", "currency": currency}
        )
    assert info.value.field == "currency"
