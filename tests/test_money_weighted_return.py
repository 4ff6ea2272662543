"""The money-weighted return (XIRR) of a stored series, against closed forms and properties."""

import datetime as dt
import decimal
import uuid
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portfolio_snapshots import PortfolioSnapshot
from portfolio_snapshots.errors import UndefinedReturnError
from portfolio_snapshots.history import (
    MWR_PLACES,
    FlowTiming,
    annualize,
    cumulative_time_weighted_return,
    money_weighted_return,
)

PID = uuid.UUID(int=42)
D0 = dt.date(2024, 1, 1)
PLACE = Decimal(1).scaleb(-MWR_PLACES)


def snap(
    days: int, value: str | Decimal, contributions: str | Decimal, flow: str | Decimal = "0"
) -> PortfolioSnapshot:
    """A cash-only snapshot `days` after D0, with its ledger fields."""
    total = Decimal(value)
    on = D0 + dt.timedelta(days=days)
    return PortfolioSnapshot(
        PID, on, "USD", total, Decimal(0), total, (), Decimal(contributions), Decimal(flow)
    )


def test_two_flows_a_year_apart_give_their_simple_rate() -> None:
    """100 in, 110 out a year later: 10 % over the year, per year, and annualized."""
    got = money_weighted_return([snap(0, "100", "100", "100"), snap(365, "110", "100")])
    assert (got.period_return, got.annual_rate, got.annualized, got.days) == (
        Decimal("0.1"),
        Decimal("0.1"),
        Decimal("0.1"),
        365,
    )


def test_two_flows_two_years_apart_equal_the_closed_form() -> None:
    """100 in, 121 out after 730 days: (121 / 100) ** (365 / 730) - 1 = 10 % a year."""
    got = money_weighted_return([snap(0, "100", "100", "100"), snap(730, "121", "100")])
    assert got.period_return == Decimal("0.21")
    assert got.annual_rate == Decimal("0.1")
    assert got.annualized == Decimal("0.1")


def test_closing_an_account_at_a_gain_returns_the_gain() -> None:
    """Deposit 100 and buy; next day sell at 110 and withdraw it all: +10 % over the range."""
    got = money_weighted_return(
        [snap(0, "100", "100", "100"), snap(1, "0", "-10", "-110")],
    )
    assert got.period_return == Decimal("0.1")
    assert got.annualized is None  # one day: a yearly rate would extrapolate absurdly
    assert got.annual_rate > Decimal(10**15)


def test_a_deposit_midway_is_weighted_by_the_time_it_was_at_work() -> None:
    """100 at the start, 100 more at the start of day 182, 220 at day 365.

    With p the return over the year, the flows' present value is
    ``-100 - 100 * (1 + p) ** (-181 / 365) + 220 / (1 + p)``: zero at the result, to within
    what rounding p to 12 places moves it.
    """
    series = [snap(0, "100", "100", "100"), snap(181, "104", "100"), snap(182, "205", "200", "100")]
    series.append(snap(365, "220", "200"))
    got = money_weighted_return(series, flow_timing=FlowTiming.START_OF_DAY)
    with decimal.localcontext(decimal.Context(prec=40)):
        growth = 1 + got.period_return
        value = -100 - 100 * growth ** (Decimal(-181) / 365) + 220 / growth
    assert abs(value) < Decimal("1e-9")
    # more than the 10 % of money at work all year: the second 100 worked half the year
    assert got.period_return > Decimal("0.1")


def test_a_series_that_never_gives_back_has_no_rate_and_names_the_day() -> None:
    """Money paid in and nothing left at the end: no rate exists, UndefinedReturnError."""
    with pytest.raises(UndefinedReturnError) as caught:
        money_weighted_return([snap(0, "100", "100", "100"), snap(10, "0", "100")])
    assert caught.value.portfolio_id == PID
    assert caught.value.snapshot_date == D0 + dt.timedelta(days=10)


@given(
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal(10**6), places=2),
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal(10**6), places=2),
    st.integers(min_value=1, max_value=3650),
)
def test_without_flows_the_money_weighted_return_is_the_time_weighted_one(
    start: Decimal, end: Decimal, days: int
) -> None:
    """With no flow between the ends, both returns are end / start - 1 (to 12 places)."""
    series = [snap(0, start, start, start), snap(days, end, start)]
    got = money_weighted_return(series)
    expected = cumulative_time_weighted_return(series)
    assert abs(got.period_return - expected) <= 2 * PLACE * max(Decimal(1), abs(expected))
    assert got.days == days
    assert (got.annualized is None) == (days < 365)


def test_annualize_compounds_a_range_return_to_a_year() -> None:
    """21 % over 730 days is 10 % a year; a range must have days and a return above -100 %."""
    assert annualize(Decimal("0.21"), 730) == Decimal("0.1")
    assert annualize(Decimal("0.1"), 365) == Decimal("0.1")
    with pytest.raises(ValueError, match="days"):
        annualize(Decimal("0.1"), 0)
    with pytest.raises(ValueError, match="-100"):
        annualize(Decimal(-1), 365)
