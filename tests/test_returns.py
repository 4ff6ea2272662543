from __future__ import annotations

import datetime as dt
import decimal
import itertools
import uuid
from decimal import Decimal
from fractions import Fraction
from typing import NamedTuple

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portfolio_snapshots import PortfolioSnapshot, PriceQuote, value_portfolio
from portfolio_snapshots._returns import DEFAULT_FLOW_TIMING
from portfolio_snapshots.errors import (
    InvalidSnapshotSeriesError,
    MissingFlowDataError,
    UndefinedReturnError,
)
from portfolio_snapshots.history import (
    RETURNS_PRECISION,
    FlowTiming,
    PeriodReturn,
    Transaction,
    TransactionKind,
    cumulative_time_weighted_return,
    modified_dietz_return,
    replay,
    returns_context,
    time_weighted_returns,
)
from portfolio_snapshots.testing.strategies import cash_balances, ledgers, prices

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

START = FlowTiming.START_OF_DAY
PP = FlowTiming.DEPOSITS_START_WITHDRAWALS_END
END = FlowTiming.END_OF_DAY

# Four days of one portfolio, built with every flow at the start of its day:
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


def test_worked_example_daily_time_weighted_returns_with_flows_at_the_start() -> None:
    """The daily TWR of the worked example is +10 %, -2 %, +5 %, computed by hand below."""
    # Jan 2: (1100 - 1000 - 0) / (1000 + 0)      =  100 / 1000  =  0.1
    # Jan 3: (1568 - 1100 - 500) / (1100 + 500)  =  -32 / 1600  = -0.02
    # Jan 4: (1436.4 - 1568 + 200) / (1568 - 200) = 68.4 / 1368 =  0.05
    assert time_weighted_returns(WORKED, flow_timing=START) == (
        PeriodReturn(day(1), day(2), Decimal("0.1"), Decimal(0)),
        PeriodReturn(day(2), day(3), Decimal("-0.02"), Decimal(500)),
        PeriodReturn(day(3), day(4), Decimal("0.05"), Decimal(-200)),
    )


def test_worked_example_daily_time_weighted_returns_by_default() -> None:
    """By default the Jan 4 withdrawal leaves at the end of the day: 68.4 / 1568 that day."""
    # Jan 2 and Jan 3 are as above (no flow; a deposit, at the start either way).
    # Jan 4: the 200 leaves after the day's return, so 1568 was at work all day:
    #   (1436.4 - 1568 + 200) / 1568 = 68.4 / 1568 = 0.04362244897959183673469387755|10...
    assert DEFAULT_FLOW_TIMING is PP
    assert time_weighted_returns(WORKED) == (
        PeriodReturn(day(1), day(2), Decimal("0.1"), Decimal(0)),
        PeriodReturn(day(2), day(3), Decimal("-0.02"), Decimal(500)),
        PeriodReturn(day(3), day(4), Decimal("0.04362244897959183673469387755"), Decimal(-200)),
    )


def test_worked_example_daily_time_weighted_returns_with_flows_at_the_end() -> None:
    """With every flow at the end of its day, the Jan 3 deposit earns nothing on Jan 3."""
    # Jan 3: (1568 - 1100 - 500) / 1100 = -32 / 1100 = -0.02909090909090909090909090909|09...
    # Jan 4: as by default, 68.4 / 1568
    assert [r.value for r in time_weighted_returns(WORKED, flow_timing=END)] == [
        Decimal("0.1"),
        Decimal("-0.02909090909090909090909090909"),
        Decimal("0.04362244897959183673469387755"),
    ]


@pytest.mark.parametrize(
    ("timing", "expected"),
    [
        # 1.1 * 0.98 * 1.05 - 1 = 1.1319 - 1
        (START, Decimal("0.1319")),
        # 1100/1000 * 1568/1600 * 1636.4/1568 = 1.1 * 1636.4/1600 = 1.1 * 1.02275 = 1.125025
        (PP, Decimal("0.125025")),
        # 1100/1000 * 1068/1100 * 1636.4/1568 = 1.068 * 1636.4 / 1568 = 1747675.2 / 1568000
        #   = 1.11458877551020408163265306122|4..., minus 1, to 28 significant digits
        (END, Decimal("0.1145887755102040816326530612")),
    ],
)
def test_worked_example_cumulative_time_weighted_return(
    timing: FlowTiming, expected: Decimal
) -> None:
    """The cumulative TWR of the worked example under each timing, by hand beside each case."""
    assert cumulative_time_weighted_return(WORKED, flow_timing=timing) == expected


@pytest.mark.parametrize(
    ("timing", "expected"),
    [
        # +500 at the start of Jan 3: at work 2 of 3 days; -200 at the start of Jan 4: 1 of 3.
        # capital = 1000 + 500 * 2/3 - 200 * 1/3 = 3800/3; 136.4 * 3 / 3800 = 409.2 / 3800
        #   = 0.1076842105263157894736842105|2631..., the 29th digit a 2: rounded down
        (START, Decimal("0.1076842105263157894736842105")),
        # +500 at the start of Jan 3 (2/3); -200 at the end of Jan 4 (0/3):
        # capital = 1000 + 500 * 2/3 = 4000/3; 409.2 / 4000 = 0.1023
        (PP, Decimal("0.1023")),
        # +500 at the end of Jan 3 (1/3); -200 at the end of Jan 4 (0/3):
        # capital = 1000 + 500 * 1/3 = 3500/3; 409.2 / 3500 = 0.1169142857142857142857142857|14
        (END, Decimal("0.1169142857142857142857142857")),
    ],
)
def test_worked_example_modified_dietz(timing: FlowTiming, expected: Decimal) -> None:
    """The Modified Dietz return of the worked example: gain 136.40 over each average capital."""
    # Period Jan 1 .. Jan 4: T = 3 days; gain = 1436.40 - 1000.00 - (500 - 200) = 136.40
    assert modified_dietz_return(WORKED, flow_timing=timing) == expected


def _closed_out() -> list[PortfolioSnapshot]:
    """Deposit 100 and buy 1 X at 100 on Jan 1; on Jan 2 sell it at 110 and withdraw 110."""
    ledger = [
        Transaction(PID, day(1), TransactionKind.DEPOSIT, amount=Decimal(100)),
        Transaction(PID, day(1), TransactionKind.BUY, "X", Decimal(1), Decimal(100)),
        Transaction(PID, day(2), TransactionKind.SELL, "X", Decimal(1), Decimal(110)),
        Transaction(PID, day(2), TransactionKind.WITHDRAWAL, amount=Decimal(110)),
    ]
    return _ledger_snapshots(ledger, [Decimal(100), Decimal(110)])


def test_closing_an_account_at_a_gain_returns_the_gain() -> None:
    """Bought at 100, sold at 110 and all withdrawn the next day: +10 % by default, as in PP."""
    series = _closed_out()
    assert [(s.total_value, s.net_contributions, s.external_flow) for s in series] == [
        (Decimal(100), Decimal(100), Decimal(100)),
        (Decimal(0), Decimal(-10), Decimal(-110)),
    ]
    # the withdrawal leaves at the end of Jan 2: (0 + 110) / 100 - 1 = 0.1
    assert time_weighted_returns(series) == (
        PeriodReturn(day(1), day(2), Decimal("0.1"), Decimal(-110)),
    )
    assert cumulative_time_weighted_return(series) == Decimal("0.1")
    # Dietz: the withdrawal at the end of the last day weighs 0: (0 - 100 + 110) / 100
    assert modified_dietz_return(series) == Decimal("0.1")
    for compute in (time_weighted_returns, cumulative_time_weighted_return, modified_dietz_return):
        result = compute(series, flow_timing=END)
        assert (result[0].value if isinstance(result, tuple) else result) == Decimal("0.1")


def test_closing_out_with_every_flow_at_the_start_of_the_day_names_the_day() -> None:
    """With the withdrawal before the day's return, nothing is at work: the error says where."""
    series = _closed_out()
    for compute in (time_weighted_returns, cumulative_time_weighted_return, modified_dietz_return):
        with pytest.raises(UndefinedReturnError) as caught:
            compute(series, flow_timing="start_of_day")
        error = caught.value
        assert (error.portfolio_id, error.snapshot_date) == (PID, day(2))
        assert error.value == Decimal(-10)  # 100 at work, 110 withdrawn at the start
        assert str(PID) in str(error)
        assert "2024-01-02" in str(error)


def test_a_deposit_invested_at_the_close_earns_nothing_that_day_at_the_end_of_day() -> None:
    """100 gaining 10 % while 100 more arrive for the close: 10 % at the end of day, else 5 %."""
    series = [snap(day(1), "100", "100", "100"), snap(day(2), "210", "200", "100")]
    # at the start: the gain of 10 over 100 + 100 at work; at the end: over 100 alone
    for timing, expected in [(START, "0.05"), (PP, "0.05"), (END, "0.1")]:
        assert time_weighted_returns(series, flow_timing=timing)[0].value == Decimal(expected)
        assert modified_dietz_return(series, flow_timing=timing) == Decimal(expected)


def test_an_unknown_flow_timing_is_refused() -> None:
    """A flow timing that is not a FlowTiming value raises ValueError."""
    with pytest.raises(ValueError, match="midday"):
        time_weighted_returns(WORKED, flow_timing="midday")


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


def test_a_deposit_is_assumed_at_the_start_of_its_day_by_default() -> None:
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
    """Draw snapshots, a day or a few apart, with any values (zero too) and flows of any sign."""
    positive = cash_balances(max_value=Decimal(10_000))
    # one value in five is zero: an account not yet funded, or closed
    amounts = st.integers(0, 4).flatmap(lambda k: positive if k else st.just(Decimal(0)))
    value = draw(amounts)
    contributions = draw(cash_balances(min_value=Decimal(-5000), max_value=Decimal(5000)))
    on = day(1)
    series = [snap(on, value, contributions, contributions)]
    for _ in range(draw(st.integers(1, 14))):
        gap = draw(st.integers(1, 3))
        on += dt.timedelta(days=gap)
        flow = draw(st.just(Decimal(0)) | cash_balances(min_value=-value - 100, max_value=value))
        contributions += flow
        value = draw(amounts)
        # a snapshot's own flow is that of its day: the whole period's for consecutive days
        series.append(snap(on, value, contributions, flow if gap == 1 else Decimal(0)))
    return series


class _Reference(NamedTuple):
    """What a series' returns should be, evaluated in exact fractions."""

    periods: list[Fraction | None]  # None: the period is undefined
    growth: Fraction
    dietz: Fraction | None


def _reference(series: list[PortfolioSnapshot], timing: FlowTiming) -> _Reference:
    """Evaluate the documented formulas with `timing`, in fractions, marking what is undefined."""
    values = [Fraction(s.total_value) for s in series]
    contributions = [Fraction(s.net_contributions or 0) for s in series]
    dates = [s.snapshot_date for s in series]
    periods: list[Fraction | None] = []
    growth = Fraction(1)
    weighted = Fraction(0)
    for i in range(1, len(series)):
        flow = contributions[i] - contributions[i - 1]
        at_start = flow > 0 if timing is PP else timing is START
        capital = values[i - 1] + (flow if at_start else 0)
        gain = values[i] - values[i - 1] - flow
        if capital > 0:
            periods.append(gain / capital)
            growth *= (capital + gain) / capital
        else:
            periods.append(Fraction(0) if gain == 0 else None)
        weighted += (dates[-1] - (dates[i - 1] if at_start else dates[i])).days * flow
    span = (dates[-1] - dates[0]).days
    gain = values[-1] - values[0] - (contributions[-1] - contributions[0])
    scaled = values[0] * span + weighted
    dietz = gain * span / scaled if scaled > 0 else (Fraction(0) if gain == 0 else None)
    return _Reference(periods, growth, dietz)


@given(series=value_series(), timing=st.sampled_from(FlowTiming))
def test_every_return_is_the_exact_value_rounded_once(
    series: list[PortfolioSnapshot], timing: FlowTiming
) -> None:
    """Each result is its formula rounded once, or refused where nothing is at work but gains."""
    expected = _reference(series, timing)
    undefined = [i for i, r in enumerate(expected.periods, start=1) if r is None]
    if undefined:
        for compute in (time_weighted_returns, cumulative_time_weighted_return):
            with pytest.raises(UndefinedReturnError) as caught:
                compute(series, flow_timing=timing)
            # the first period with nothing at work, named by its last date
            assert caught.value.snapshot_date == series[undefined[0]].snapshot_date
            assert caught.value.portfolio_id == PID
    else:
        periods = time_weighted_returns(series, flow_timing=timing)
        assert [p.value for p in periods] == [_rounded(r or Fraction(0)) for r in expected.periods]
        cumulative = cumulative_time_weighted_return(series, flow_timing=timing)
        assert cumulative == _rounded(expected.growth - 1)
    if expected.dietz is None:
        with pytest.raises(UndefinedReturnError) as dietz:
            modified_dietz_return(series, flow_timing=timing)
        assert dietz.value.snapshot_date == series[-1].snapshot_date
    else:
        assert modified_dietz_return(series, flow_timing=timing) == _rounded(expected.dietz)


@given(
    ledger=ledgers(portfolio_id=PID, start=day(1), max_days=12),
    closes=st.lists(prices(max_value=Decimal(1000), max_places=2), min_size=14, max_size=14),
    timing=st.sampled_from(FlowTiming),
)
def test_any_ledger_is_refused_only_where_nothing_is_at_work(
    ledger: list[Transaction], closes: list[Decimal], timing: FlowTiming
) -> None:
    """For any ledger valued daily, each return is the reference one or refused where it says."""
    series = []
    for n, close in enumerate(closes, start=1):
        state = replay(ledger, day(n))
        quotes = {
            t: PriceQuote(t, close * (i + 1), day(n)) for i, t in enumerate(["AAA", "BBB", "CCC"])
        }
        series.append(value_portfolio(state.to_portfolio(PID), quotes, day(n)))
    expected = _reference(series, timing)
    undefined = [i for i, r in enumerate(expected.periods, start=1) if r is None]
    if undefined:
        with pytest.raises(UndefinedReturnError) as caught:
            cumulative_time_weighted_return(series, flow_timing=timing)
        assert caught.value.snapshot_date == day(undefined[0] + 1)
    else:
        cumulative = cumulative_time_weighted_return(series, flow_timing=timing)
        assert cumulative == _rounded(expected.growth - 1)


@st.composite
def closed_out_accounts(draw: st.DrawFn) -> tuple[list[Transaction], list[Decimal]]:
    """Draw a fully invested position, partly sold and withdrawn on some days, then closed.

    Day 1 deposits exactly the cost of the units and buys them; on each later day some units
    may be sold at the day's close and the proceeds withdrawn; the last day sells what is left
    and withdraws everything.
    """
    path = draw(st.lists(prices(max_value=Decimal(10_000), max_places=2), min_size=2, max_size=12))
    held = draw(st.integers(1, 1000))
    ledger = [
        Transaction(PID, day(1), TransactionKind.DEPOSIT, amount=held * path[0]),
        Transaction(PID, day(1), TransactionKind.BUY, "X", Decimal(held), path[0]),
    ]
    for n, close in enumerate(path[1:], start=2):
        last = n == len(path)
        sold = held if last else draw(st.integers(0, held - 1))
        if sold:
            held -= sold
            ledger += [
                Transaction(PID, day(n), TransactionKind.SELL, "X", Decimal(sold), close),
                Transaction(PID, day(n), TransactionKind.WITHDRAWAL, amount=sold * close),
            ]
    return ledger, path


@given(account=closed_out_accounts(), timing=st.sampled_from([PP, END]))
def test_closing_out_returns_the_price_return(
    account: tuple[list[Transaction], list[Decimal]], timing: FlowTiming
) -> None:
    """A fully invested position sold off and withdrawn returns what its price did, day by day."""
    ledger, path = account
    series = _ledger_snapshots(ledger, path)
    assert series[-1].total_value == 0
    daily = time_weighted_returns(series, flow_timing=timing)
    assert [p.value for p in daily] == [
        _rounded(Fraction(b) / Fraction(a) - 1) for a, b in itertools.pairwise(path)
    ]
    cumulative = cumulative_time_weighted_return(series, flow_timing=timing)
    assert cumulative == _rounded(Fraction(path[-1]) / Fraction(path[0]) - 1)
    if all(tx.trade_date in {day(1), day(len(path))} for tx in ledger):  # no partial sale
        dietz = modified_dietz_return(series, flow_timing=timing)
        assert dietz == _rounded(Fraction(path[-1]) / Fraction(path[0]) - 1)


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
        time_weighted_returns(series, flow_timing=START)
    assert (caught.value.field, caught.value.value) == ("capital", Decimal(-50))
    with pytest.raises(UndefinedReturnError) as dietz:
        modified_dietz_return(series, flow_timing=START)
    assert dietz.value.field == "average_capital"
    # with the 150 withdrawn at the end of the day, 100 was at work: (10 + 150) / 100 - 1
    assert cumulative_time_weighted_return(series) == Decimal("0.6")
    assert modified_dietz_return(series) == Decimal("0.6")


def test_no_capital_and_no_gain_is_a_zero_return_under_every_timing() -> None:
    """A closed account that stays closed (nothing at work, nothing gained) returns zero."""
    series = [*_closed_out(), snap(day(3), "0", "-10"), snap(day(4), "0", "-10")]
    for timing in FlowTiming:
        if timing is not START:
            periods = time_weighted_returns(series, flow_timing=timing)
            assert [p.value for p in periods] == [Decimal("0.1"), 0, 0]
    zero = [snap(day(3), "0", "-10"), snap(day(4), "0", "-10")]
    for timing in FlowTiming:
        assert modified_dietz_return(zero, flow_timing=timing) == 0
