"""A close carried across splits: the exact arithmetic and the calculator's use of it."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portfolio_snapshots import Portfolio, PriceQuote, value_portfolio
from portfolio_snapshots._splits import divide_price, divide_to_unit, split_factor
from portfolio_snapshots.errors import InvalidPortfolioError
from portfolio_snapshots.testing.strategies import prices, quantities

PID = uuid.UUID(int=11)
FRIDAY = dt.date(2024, 6, 7)
MONDAY = dt.date(2024, 6, 10)
RATIOS = st.sampled_from(
    [Decimal(2), Decimal(3), Decimal(10), Decimal("1.5"), Decimal("0.5"), Decimal("0.1")]
)


def _half_even(exact: Fraction, places: int) -> Decimal:
    """Round an exact fraction to `places` decimals, half-even, by integer arithmetic."""
    scaled = exact * 10**places
    floor = scaled.numerator // scaled.denominator
    rest = scaled - floor
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and floor % 2):
        floor += 1
    return Decimal(floor).scaleb(-places)


@given(
    quantities(max_value=Decimal(10**6)),
    prices(),
    st.lists(RATIOS, min_size=1, max_size=4),
    st.integers(0, 4),
)
def test_divide_to_unit_rounds_the_exact_quotient_once(
    quantity: Decimal, price: Decimal, ratios: list[Decimal], places: int
) -> None:
    """The value quantity * price / factor is rounded once, half-even, to the minor unit."""
    factor = split_factor(
        [(FRIDAY + dt.timedelta(days=i + 1), r) for i, r in enumerate(ratios)], FRIDAY, None
    )
    gross = quantity * price
    unit = Decimal(1).scaleb(-places)
    result = divide_to_unit(gross, factor, unit)
    assert result == _half_even(Fraction(gross) / Fraction(factor), places)
    assert result.as_tuple().exponent == -places


def test_divide_to_unit_breaks_exact_ties_to_even() -> None:
    """A quotient exactly half-way between two cents goes to the even one."""
    assert divide_to_unit(Decimal("0.015"), Decimal(3), Decimal("0.01")) == Decimal("0.00")
    assert divide_to_unit(Decimal("0.045"), Decimal(3), Decimal("0.01")) == Decimal("0.02")
    assert divide_to_unit(Decimal("0.075"), Decimal(1), Decimal("0.01")) == Decimal("0.08")


@given(prices(), st.lists(RATIOS, min_size=1, max_size=4))
def test_divide_price_is_exact_when_the_quotient_terminates(
    price: Decimal, ratios: list[Decimal]
) -> None:
    """A carried price is exact when it has a finite expansion, else 28 digits, half-even."""
    factor = Decimal(1)
    for ratio in ratios:
        factor *= ratio
    exact = Fraction(price) / Fraction(factor)
    result = divide_price(price, factor)
    denominator = exact.denominator
    for prime in (2, 5):
        while denominator % prime == 0:
            denominator //= prime
    if denominator == 1:
        assert Fraction(result) == exact
    else:
        with decimal.localcontext(decimal.Context(prec=28, rounding=decimal.ROUND_HALF_EVEN)):
            assert result == Decimal(exact.numerator) / Decimal(exact.denominator)


def test_a_split_on_the_close_date_or_after_the_snapshot_date_is_not_applied() -> None:
    """Only splits dated after the close and on or before the day valued divide the close."""
    splits = {
        "X": ((FRIDAY, Decimal(2)), (MONDAY, Decimal(10)), (dt.date(2024, 6, 20), Decimal(4)))
    }
    held = Portfolio(PID, Decimal(0), {"X": Decimal(20)}, splits=splits)
    quotes = {"X": PriceQuote("X", Decimal(500), FRIDAY)}
    # the close of Friday is already after Friday's split; Monday's 10-for-1 divides it
    snapshot = value_portfolio(held, quotes, MONDAY)
    (position,) = snapshot.positions
    assert (position.price, position.market_value) == (Decimal(50), Decimal("1000.00"))
    # valued on Friday itself, nothing is divided
    on_friday = value_portfolio(held, quotes, FRIDAY)
    assert on_friday.positions[0].price == Decimal(500)


def test_a_portfolio_without_splits_values_a_carried_close_as_it_is() -> None:
    """A host repository that knows no splits (None) gets the close as dated, as before."""
    held = Portfolio(PID, Decimal(0), {"X": Decimal(10)})
    snapshot = value_portfolio(held, {"X": PriceQuote("X", Decimal(1200), FRIDAY)}, MONDAY)
    assert snapshot.positions[0].price == Decimal(1200)


@pytest.mark.parametrize(
    "events",
    [
        ((MONDAY, 10.0),),
        ((MONDAY, Decimal(0)),),
        ((MONDAY, Decimal("NaN")),),
        (("2024-06-10", Decimal(10)),),
        "not pairs",
    ],
)
def test_invalid_splits_from_a_host_are_a_typed_error(events: object) -> None:
    """A split that is not a (date, positive Decimal) pair names the portfolio, day, ticker."""
    held = Portfolio(PID, Decimal(0), {"X": Decimal(10)}, splits={"X": events})  # type: ignore[dict-item]
    with pytest.raises(InvalidPortfolioError) as caught:
        value_portfolio(held, {"X": PriceQuote("X", Decimal(1200), FRIDAY)}, MONDAY)
    error = caught.value
    assert (error.portfolio_id, error.snapshot_date, error.ticker, error.field) == (
        PID,
        MONDAY,
        "X",
        "splits",
    )
