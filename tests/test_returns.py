from __future__ import annotations

import datetime as dt
import decimal
import uuid
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portfolio_snapshots import PortfolioSnapshot, PriceQuote, value_portfolio
from portfolio_snapshots._returns import returns_context
from portfolio_snapshots.errors import (
    InvalidSnapshotSeriesError,
    MissingFlowDataError,
    UndefinedReturnError,
)
from portfolio_snapshots.history import (
    RETURNS_PRECISION,
    PeriodReturn,
    Transaction,
    TransactionKind,
    cumulative_time_weighted_return,
    modified_dietz_return,
    replay,
    time_weighted_returns,
)

PID = uuid.UUID("00000000-0000-4000-8000-00000000000a")
JAN1 = dt.date(2024, 1, 1)


def day(n: int) -> dt.date:
    """Return the n-th day of January 2024."""
    return JAN1 + dt.timedelta(days=n - 1)


def snap(
    on: dt.date, value: str | Decimal, contributions: str | Decimal, flow: str | Decimal = "0"
) -> PortfolioSnapshot:
    """Build a cash-only snapshot of the test portfolio with its ledger fields."""
    total = Decimal(value)
    return PortfolioSnapshot(
        PID, on, "USD", total, Decimal(0), total, (), Decimal(contributions), Decimal(flow)
    )


# --- worked examples ------------------------------------------------------------------------

# Four days of one portfolio; flows happen at the start of their day (the convention).
#   Jan 1: deposit 1000, invested:                  V0 = 1000.00
#   Jan 2: no flow, market +10 %:                   V1 = 1000 * 1.10           = 1100.00
#   Jan 3: deposit 500 at the start, market -2 %:   V2 = (1100 + 500) * 0.98   = 1568.00
#   Jan 4: withdraw 200 at the start, market +5 %:  V3 = (1568 - 200) * 1.05   = 1436.40
WORKED = [
    snap(day(1), "1000.00", "1000", "1000"),
    snap(day(2), "1100.00", "1000", "0"),
    snap(day(3), "1568.00", "1500", "500"),
    snap(day(4), "1436.40", "1300", "-200"),
]


def test_worked_example_daily_time_weighted_returns() -> None:
    """The daily TWR of the worked example is +10 %, -2 %, +5 %, computed by hand below."""
    # Jan 2: (1100 - 1000 - 0) / (1000 + 0)      =  100 / 1000  =  0.1
    # Jan 3: (1568 - 1100 - 500) / (1100 + 500)  =  -32 / 1600  = -0.02
    # Jan 4: (1436.4 - 1568 + 200) / (1568 - 200) = 68.4 / 1368 =  0.05
    assert time_weighted_returns(WORKED) == (
        PeriodReturn(day(1), day(2), Decimal("0.1"), Decimal(0)),
        PeriodReturn(day(2), day(3), Decimal("-0.02"), Decimal(500)),
        PeriodReturn(day(3), day(4), Decimal("0.05"), Decimal(-200)),
    )


def test_worked_example_cumulative_time_weighted_return() -> None:
    """The cumulative TWR of the worked example is 1.1 * 0.98 * 1.05 - 1 = 0.1319 exactly."""
    # 1.1 * 0.98 = 1.078; 1.078 * 1.05 = 1.1319; minus 1: 0.1319
    assert cumulative_time_weighted_return(WORKED) == Decimal("0.1319")


def test_worked_example_modified_dietz() -> None:
    """The Modified Dietz return of the worked example is 136.4 / (3800 / 3), by hand below."""
    # Period Jan 1 .. Jan 4: T = 3 days. Flows at the start of their day:
    #   +500 at the start of Jan 3, at work 2 of 3 days: weight 2/3
    #   -200 at the start of Jan 4, at work 1 of 3 days: weight 1/3
    # gain    = 1436.40 - 1000.00 - (500 - 200)        = 136.40
    # capital = 1000 + 500 * 2/3 - 200 * 1/3           = 3800/3 = 1266.666...
    # return  = 136.4 * 3 / 3800 = 409.2 / 3800        = 0.10768421052631578947368421052631...
    # to 28 significant digits: 0.1076842105263157894736842105|2631..., the 29th digit is a 2,
    # so it rounds down
    assert modified_dietz_return(WORKED) == Decimal("0.1076842105263157894736842105")


def test_worked_example_modified_dietz_over_a_gap() -> None:
    """A flow between two snapshots a gap apart is dated right after the earlier one."""
    # Jan 1: 1000 (contributions 1000). Jan 10: 1000. A deposit of 500 arrives on Jan 11,
    # seen at the Jan 31 snapshot as contributions 1500; Jan 31: 1650.
    # T = 30 days; the flow starts right after Jan 10, so it is at work 21 of 30 days: 0.7.
    # return = (1650 - 1000 - 500) / (1000 + 0.7 * 500) = 150 / 1350 = 0.1111...
    series = [
        snap(day(1), "1000", "1000", "1000"),
        snap(day(10), "1000", "1000"),
        snap(day(31), "1650", "1500"),
    ]
    assert modified_dietz_return(series) == Decimal("0.1111111111111111111111111111")
    assert time_weighted_returns(series)[1] == PeriodReturn(
        day(10), day(31), Decimal(150) / Decimal(1500), Decimal(500)
    )


def test_a_flow_is_assumed_at_the_start_of_its_day() -> None:
    """A deposit earns its day's return: 100 + 100 deposited, +10 % -> 220 is a 10 % day."""
    series = [snap(day(1), "100", "100", "100"), snap(day(2), "220", "200", "100")]
    # start-of-day: 220 / (100 + 100) - 1 = 0.1 (end-of-day would say (220 - 100) / 100 - 1)
    assert time_weighted_returns(series)[0].value == Decimal("0.1")
    assert cumulative_time_weighted_return(series) == Decimal("0.1")
    # Dietz: the deposit weighs 1 (at work the whole single day): 20 / 200
    assert modified_dietz_return(series) == Decimal("0.1")


def test_returns_are_rounded_once_to_28_digits_whatever_the_thread_context() -> None:
    """Returns are computed in returns_context (28 digits, half-even), not the thread's."""
    series = [snap(day(1), "3", "3"), snap(day(2), "4", "3")]
    with decimal.localcontext(decimal.Context(prec=3, rounding=decimal.ROUND_DOWN)):
        value = cumulative_time_weighted_return(series)
    assert value == Decimal("0.3333333333333333333333333333")
    ctx = returns_context()
    assert (ctx.prec, ctx.rounding, RETURNS_PRECISION) == (28, decimal.ROUND_HALF_EVEN, 28)


def test_nothing_at_work_and_nothing_left_is_a_zero_return() -> None:
    """A period worth zero at both ends without flows (before funding) returns zero."""
    series = [
        snap(day(1), "0", "0"),
        snap(day(2), "0", "0"),
        snap(day(3), "100", "100", "100"),
        snap(day(4), "110", "100"),
    ]
    assert [r.value for r in time_weighted_returns(series)] == [0, 0, Decimal("0.1")]
    assert cumulative_time_weighted_return(series) == Decimal("0.1")
    assert modified_dietz_return(series[:2]) == 0


def test_fewer_than_two_snapshots_have_no_periods() -> None:
    """The period series of zero or one snapshot is empty."""
    assert time_weighted_returns([]) == ()
    assert time_weighted_returns(WORKED[:1]) == ()


# --- properties -----------------------------------------------------------------------------


def _ledger_snapshots(
    transactions: list[Transaction], prices: list[Decimal]
) -> list[PortfolioSnapshot]:
    """Value the ledger at the end of each day 1..len(prices), ticker X at that day's price."""
    result = []
    for n, price in enumerate(prices, start=1):
        state = replay(transactions, day(n))
        quotes = {"X": PriceQuote("X", price, day(n))}
        result.append(value_portfolio(state.to_portfolio(PID), quotes, day(n)))
    return result


cents = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(10_000), places=2)


@given(price=cents, quantity=st.integers(1, 1000), cash=cents, days=st.integers(2, 30))
def test_no_flows_and_constant_prices_is_a_zero_return(
    price: Decimal, quantity: int, cash: Decimal, days: int
) -> None:
    """Without flows after the first day and with constant prices, every return is zero."""
    ledger = [
        Transaction(PID, day(1), TransactionKind.DEPOSIT, amount=cash + quantity * price),
        Transaction(PID, day(1), TransactionKind.BUY, "X", Decimal(quantity), price),
    ]
    series = _ledger_snapshots(ledger, [price] * days)
    assert all(r.value == 0 for r in time_weighted_returns(series))
    assert cumulative_time_weighted_return(series) == 0
    assert modified_dietz_return(series) == 0


@given(start=cents, quantity=st.integers(1, 1000), path=st.lists(cents, max_size=20))
def test_doubling_prices_without_flows_is_a_hundred_percent(
    start: Decimal, quantity: int, path: list[Decimal]
) -> None:
    """A fully invested portfolio whose price doubles, by any path, returns exactly +100 %."""
    ledger = [
        Transaction(PID, day(1), TransactionKind.DEPOSIT, amount=quantity * start),
        Transaction(PID, day(1), TransactionKind.BUY, "X", Decimal(quantity), start),
    ]
    series = _ledger_snapshots(ledger, [start, *path, 2 * start])
    assert cumulative_time_weighted_return(series) == 1
    assert modified_dietz_return(series) == 1


@st.composite
def cash_movements(draw: st.DrawFn) -> list[Transaction]:
    """Draw deposits, withdrawals (of part of the cash) and purchases at the constant price."""
    ledger = [Transaction(PID, day(1), TransactionKind.DEPOSIT, amount=draw(cents))]
    cash = ledger[0].amount or Decimal(0)
    for n in range(2, draw(st.integers(2, 20)) + 1):
        choice = draw(st.sampled_from(["deposit", "withdraw", "invest", "nothing"]))
        if choice == "deposit":
            amount = draw(cents)
            ledger.append(Transaction(PID, day(n), TransactionKind.DEPOSIT, amount=amount))
            cash += amount
        elif choice == "withdraw" and cash > 0:
            amount = (cash * draw(st.integers(1, 4)) / 4).quantize(Decimal("0.01"))
            ledger.append(Transaction(PID, day(n), TransactionKind.WITHDRAWAL, amount=amount))
            cash -= amount
        elif choice == "invest" and cash >= 1:
            quantity = Decimal(int(cash))  # the price is 1.00: buy what the cash allows
            ledger.append(Transaction(PID, day(n), TransactionKind.BUY, "X", quantity, Decimal(1)))
            cash -= quantity
        else:
            ledger.append(Transaction(PID, day(n), TransactionKind.INTEREST, amount=Decimal(0)))
    return ledger


@given(ledger=cash_movements())
def test_deposits_and_withdrawals_alone_are_not_a_gain(ledger: list[Transaction]) -> None:
    """Money moving in and out at constant prices gives zero TWR and zero Modified Dietz."""
    days = len({t.trade_date for t in ledger})
    series = _ledger_snapshots(ledger, [Decimal(1)] * days)
    assert all(r.value == 0 for r in time_weighted_returns(series))
    assert cumulative_time_weighted_return(series) == 0
    assert modified_dietz_return(series) == 0


def _rounded(exact: Fraction) -> Decimal:
    """Round an exact fraction to 28 digits, half-even: the documented result."""
    with decimal.localcontext(returns_context()):
        return Decimal(exact.numerator) / Decimal(exact.denominator)


@st.composite
def value_series(draw: st.DrawFn) -> list[PortfolioSnapshot]:
    """Draw daily snapshots with positive values and flows that keep the capital positive."""
    value = draw(cents)
    contributions = value
    series = [snap(day(1), value, contributions, value)]
    for n in range(2, draw(st.integers(2, 15)) + 1):
        flow = draw(st.decimals(min_value=-value + Decimal("0.01"), max_value=5000, places=2))
        contributions += flow
        value = draw(cents)
        series.append(snap(day(n), value, contributions, flow))
    return series


@given(series=value_series())
def test_every_return_is_the_exact_value_rounded_once(series: list[PortfolioSnapshot]) -> None:
    """Each result equals its formula evaluated in exact fractions, rounded once to 28 digits."""
    values = [Fraction(s.total_value) for s in series]
    flows = [Fraction(s.external_flow or 0) for s in series]
    growth = Fraction(1)
    for i, period in enumerate(time_weighted_returns(series), start=1):
        factor = values[i] / (values[i - 1] + flows[i])
        assert period.value == _rounded(factor - 1)
        growth *= factor
    assert cumulative_time_weighted_return(series) == _rounded(growth - 1)
    total_days = len(series) - 1
    gain = values[-1] - values[0] - sum(flows[1:])
    weighted = sum(
        flows[i] * Fraction(total_days - (i - 1), total_days) for i in range(1, len(series))
    )
    capital = values[0] + weighted
    if capital > 0:
        assert modified_dietz_return(series) == _rounded(gain / capital)
    else:  # withdrawals can leave no average capital at work: Dietz is undefined
        with pytest.raises(UndefinedReturnError):
            modified_dietz_return(series)


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["net_contributions", "external_flow"])
def test_snapshots_without_flow_data_are_an_error(field: str) -> None:
    """A snapshot lacking net_contributions or external_flow raises MissingFlowDataError."""
    missing = (
        WORKED[1].replace(net_contributions=None)
        if field == "net_contributions"
        else WORKED[1].replace(external_flow=None)
    )
    series = [WORKED[0], missing]
    for compute in (time_weighted_returns, cumulative_time_weighted_return, modified_dietz_return):
        with pytest.raises(MissingFlowDataError) as caught:
            compute(series)
        assert (caught.value.field, caught.value.portfolio_id, caught.value.snapshot_date) == (
            field,
            PID,
            day(2),
        )


def test_a_float_amount_is_an_error() -> None:
    """A snapshot amount that is not a finite Decimal raises InvalidSnapshotSeriesError."""
    bad = WORKED[1].replace(total_value=1100.0)
    with pytest.raises(InvalidSnapshotSeriesError) as caught:
        time_weighted_returns([WORKED[0], bad])
    assert (caught.value.field, caught.value.value) == ("total_value", 1100.0)


def test_mixed_portfolios_or_currencies_are_an_error() -> None:
    """A series must be of one portfolio in one currency."""
    other = WORKED[1].replace(portfolio_id=uuid.UUID(int=7))
    with pytest.raises(InvalidSnapshotSeriesError, match="mixes portfolios"):
        time_weighted_returns([WORKED[0], other])
    euros = WORKED[1].replace(currency="EUR")
    with pytest.raises(InvalidSnapshotSeriesError, match="mixes currencies") as caught:
        modified_dietz_return([WORKED[0], euros])
    assert caught.value.value == "EUR"


@pytest.mark.parametrize("order", [[1, 0], [0, 0]])
def test_dates_must_increase(order: list[int]) -> None:
    """Snapshots out of order or repeated raise InvalidSnapshotSeriesError."""
    with pytest.raises(InvalidSnapshotSeriesError, match="dates must increase") as caught:
        cumulative_time_weighted_return([WORKED[i] for i in order])
    assert caught.value.field == "snapshot_date"


def test_a_day_flow_that_contradicts_the_contributions_is_an_error() -> None:
    """On consecutive days, external_flow must equal the change in net_contributions."""
    wrong = WORKED[2].replace(external_flow=Decimal(400))
    with pytest.raises(InvalidSnapshotSeriesError, match="differs") as caught:
        time_weighted_returns([WORKED[0], WORKED[1], wrong])
    assert (caught.value.field, caught.value.value, caught.value.snapshot_date) == (
        "external_flow",
        Decimal(400),
        day(3),
    )


def test_a_period_return_needs_two_snapshots() -> None:
    """Cumulative TWR and Modified Dietz of fewer than two snapshots are errors."""
    for compute in (cumulative_time_weighted_return, modified_dietz_return):
        with pytest.raises(InvalidSnapshotSeriesError, match="at least 2") as caught:
            compute(WORKED[:1])
        assert caught.value.value == 1
        with pytest.raises(InvalidSnapshotSeriesError):
            compute([])


def test_value_from_nothing_is_an_undefined_return() -> None:
    """Value appearing without capital at work raises UndefinedReturnError."""
    series = [snap(day(1), "0", "0"), snap(day(2), "50", "0")]
    for compute in (time_weighted_returns, cumulative_time_weighted_return, modified_dietz_return):
        with pytest.raises(UndefinedReturnError) as caught:
            compute(series)
        assert caught.value.snapshot_date == day(2)
        assert caught.value.value == 0


def test_negative_capital_is_an_undefined_return() -> None:
    """A period whose capital at work is negative raises UndefinedReturnError naming it."""
    series = [snap(day(1), "100", "100"), snap(day(2), "10", "-50", "-150")]
    with pytest.raises(UndefinedReturnError) as caught:
        time_weighted_returns(series)
    assert (caught.value.field, caught.value.value) == ("capital", Decimal(-50))
    with pytest.raises(UndefinedReturnError) as dietz:
        modified_dietz_return(series)
    assert dietz.value.field == "average_capital"
