import datetime as dt
import decimal
import uuid
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portfolio_snapshots import (
    MissingPriceError,
    Portfolio,
    PortfolioSnapshot,
    PriceQuote,
    SnapshotCalculator,
    value_portfolio,
)
from portfolio_snapshots.errors import (
    CurrencyMismatchError,
    InvalidPortfolioError,
    InvalidPriceError,
)

DAY = dt.date(2026, 11, 27)
PID = uuid.UUID(int=1)
calc = SnapshotCalculator()

quantities = st.decimals(min_value=0, max_value=10**9, places=8, allow_nan=False)
prices = st.decimals(
    min_value=Decimal("0.0001"), max_value=10**7, places=4, allow_nan=False, allow_infinity=False
)
cash = st.decimals(min_value=-(10**9), max_value=10**12, places=2, allow_nan=False)
tickers = st.text(alphabet="ABCDEFGHIJ", min_size=1, max_size=4)
holdings_lists = st.dictionaries(tickers, st.tuples(quantities, prices), max_size=12).map(
    lambda d: [(t, q, p) for t, (q, p) in d.items()]
)


def _round_half_even_cents(value: Fraction) -> Fraction:
    """Round an exact fraction to cents, ties to even: the reference for the calculator."""
    scaled = value * 100
    floor = scaled.numerator // scaled.denominator
    rest = scaled - floor
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and floor % 2 == 1):
        floor += 1
    return Fraction(floor, 100)


def test_calculate_snapshot_cash_only() -> None:
    """A portfolio with only cash is worth its cash, with no positions."""
    snap = calc.calculate_snapshot(
        portfolio_id=PID, snapshot_date=DAY, cash_balance=Decimal("1500.25"), holdings=[]
    )
    assert snap.positions == ()
    assert snap.holdings_value == Decimal("0.00")
    assert snap.total_value == Decimal("1500.25")
    assert snap.cash_balance == Decimal("1500.25")
    assert snap.currency == "USD"


def test_calculate_snapshot_with_holdings() -> None:
    """Positions are valued at quantity times price, rounded to cents, and summed exactly."""
    snap = calc.calculate_snapshot(
        portfolio_id=PID,
        snapshot_date=DAY,
        cash_balance=Decimal("100.00"),
        holdings=[
            ("MSFT", Decimal("2.5"), Decimal("410.13")),
            ("AAPL", Decimal(10), Decimal("189.985")),
        ],
    )
    assert [p.ticker for p in snap.positions] == ["AAPL", "MSFT"]
    aapl, msft = snap.positions
    assert aapl.market_value == Decimal("1899.85")
    assert msft.market_value == Decimal("1025.32")  # 1025.325 rounds half to even
    assert snap.holdings_value == Decimal("2925.17")
    assert snap.total_value == Decimal("3025.17")
    assert aapl.price_date == DAY


def test_round_half_even_applies_to_each_position() -> None:
    """Ties round to the even cent: 0.125 -> 0.12 and 0.135 -> 0.14."""
    snap = calc.calculate_snapshot(
        portfolio_id=PID,
        snapshot_date=DAY,
        cash_balance=Decimal(0),
        holdings=[("A", Decimal(1), Decimal("0.125")), ("B", Decimal(1), Decimal("0.135"))],
    )
    assert [p.market_value for p in snap.positions] == [Decimal("0.12"), Decimal("0.14")]


def test_zero_quantity_positions_are_omitted() -> None:
    """A position with quantity zero is not part of the snapshot and needs no price."""
    portfolio = Portfolio(PID, Decimal(5), {"GONE": Decimal("0.000"), "A": Decimal(1)})
    snap = value_portfolio(portfolio, {"A": PriceQuote("A", Decimal(2), DAY)}, DAY)
    assert [p.ticker for p in snap.positions] == ["A"]
    assert snap.total_value == Decimal("7.00")


def test_minor_units_follow_iso_4217_and_configuration() -> None:
    """JPY values round to whole yen, BHD to three places, and a configured code as told."""
    yen = calc.calculate_snapshot(
        portfolio_id=PID,
        snapshot_date=DAY,
        cash_balance=Decimal(0),
        holdings=[("T", Decimal(3), Decimal("100.5"))],
        currency="JPY",
    )
    assert yen.holdings_value == Decimal(302)  # 301.5 -> 302 (ties to even)
    assert calc.minor_unit("BHD") == 3
    custom = SnapshotCalculator(minor_units={"XTS": 4}, default_minor_unit=1)
    assert custom.minor_unit("XTS") == 4
    assert custom.minor_unit("EUR") == 1


def test_calculator_ignores_the_host_decimal_context() -> None:
    """A low-precision thread context does not change the exact result."""
    holdings = [("A", Decimal("123456789.12345678"), Decimal("98765.4321"))]
    expected = calc.calculate_snapshot(
        portfolio_id=PID, snapshot_date=DAY, cash_balance=Decimal(0), holdings=holdings
    )
    with decimal.localcontext(decimal.Context(prec=5, rounding=decimal.ROUND_DOWN)):
        got = calc.calculate_snapshot(
            portfolio_id=PID, snapshot_date=DAY, cash_balance=Decimal(0), holdings=holdings
        )
    assert got == expected
    assert got.holdings_value == Decimal(
        "12193263123456.79"
    )  # exact product 12193263123456.78912...


@pytest.mark.parametrize(
    ("quantity", "field"),
    [
        (Decimal(-1), "quantity"),
        (Decimal("NaN"), "quantity"),
        (Decimal("Infinity"), "quantity"),
        (1.5, "quantity"),
    ],
)
def test_invalid_quantity_names_portfolio_date_and_ticker(quantity: object, field: str) -> None:
    """Negative, NaN, infinite or float quantities are rejected with a message naming them."""
    portfolio = Portfolio(PID, Decimal(0), {"BAD": quantity})  # type: ignore[dict-item]
    with pytest.raises(InvalidPortfolioError) as info:
        value_portfolio(portfolio, {"BAD": PriceQuote("BAD", Decimal(1), DAY)}, DAY)
    err = info.value
    assert (err.portfolio_id, err.snapshot_date, err.ticker, err.field) == (PID, DAY, "BAD", field)
    assert str(PID) in str(err)
    assert "2026-11-27" in str(err)
    assert "'BAD'" in str(err)


@pytest.mark.parametrize("cash_balance", [Decimal("NaN"), Decimal("-Infinity"), 10.0])
def test_invalid_cash_is_rejected(cash_balance: object) -> None:
    """Non-finite or float cash cannot be valued."""
    portfolio = Portfolio(PID, cash_balance)  # type: ignore[arg-type]
    with pytest.raises(InvalidPortfolioError, match="cash_balance"):
        value_portfolio(portfolio, {}, DAY)


@pytest.mark.parametrize("price", [Decimal("-0"), Decimal(-3), Decimal("NaN"), 2.5])
def test_invalid_price_is_rejected(price: object) -> None:
    """A zero, negative, NaN or float price is an InvalidPriceError naming the ticker."""
    portfolio = Portfolio(PID, Decimal(0), {"X": Decimal(1)})
    quote = PriceQuote("X", price, DAY)  # type: ignore[arg-type]
    with pytest.raises(InvalidPriceError) as info:
        value_portfolio(portfolio, {"X": quote}, DAY)
    assert info.value.ticker == "X"


def test_missing_price_is_an_error_never_zero() -> None:
    """A held ticker without a quote raises MissingPriceError instead of counting as zero."""
    portfolio = Portfolio(PID, Decimal(10), {"A": Decimal(1), "NOPE": Decimal(2)})
    with pytest.raises(MissingPriceError) as info:
        value_portfolio(portfolio, {"A": PriceQuote("A", Decimal(1), DAY)}, DAY)
    assert (info.value.ticker, info.value.portfolio_id, info.value.snapshot_date) == (
        "NOPE",
        PID,
        DAY,
    )


def test_quote_dated_after_the_snapshot_is_rejected() -> None:
    """A quote from the future (an adapter breaking its contract) is not used."""
    portfolio = Portfolio(PID, Decimal(0), {"A": Decimal(1)})
    with pytest.raises(InvalidPriceError, match="after the snapshot date"):
        value_portfolio(portfolio, {"A": PriceQuote("A", Decimal(1), DAY + dt.timedelta(1))}, DAY)


def test_quote_in_another_currency_is_rejected() -> None:
    """A quote in another currency than the portfolio's is not silently mixed in."""
    portfolio = Portfolio(PID, Decimal(0), {"SAP": Decimal(1)}, currency="USD")
    with pytest.raises(CurrencyMismatchError, match="EUR"):
        value_portfolio(portfolio, {"SAP": PriceQuote("SAP", Decimal(1), DAY, "EUR")}, DAY)


def test_duplicate_ticker_in_explicit_holdings_is_rejected() -> None:
    """calculate_snapshot refuses the same ticker twice rather than guessing."""
    with pytest.raises(InvalidPortfolioError, match="more than once"):
        calc.calculate_snapshot(
            portfolio_id=PID,
            snapshot_date=DAY,
            cash_balance=Decimal(0),
            holdings=[("A", Decimal(1), Decimal(1)), ("A", Decimal(2), Decimal(1))],
        )


def test_minor_unit_configuration_is_validated() -> None:
    """A minor unit that is not a small non-negative int is refused at construction."""
    with pytest.raises(ValueError, match="minor unit"):
        SnapshotCalculator(minor_units={"EUR": -1})


def _snapshot(
    cash_balance: Decimal, holdings: list[tuple[str, Decimal, Decimal]]
) -> PortfolioSnapshot:
    return calc.calculate_snapshot(
        portfolio_id=PID, snapshot_date=DAY, cash_balance=cash_balance, holdings=holdings
    )


@given(cash, holdings_lists)
def test_total_identity_holds_exactly(
    cash_balance: Decimal, holdings: list[tuple[str, Decimal, Decimal]]
) -> None:
    """Total == cash + holdings_value and holdings_value == sum of positions, exactly."""
    snap = _snapshot(cash_balance, holdings)
    assert snap.total_value == snap.cash_balance + snap.holdings_value
    assert snap.holdings_value == sum((p.market_value for p in snap.positions), Decimal(0))


@given(cash, holdings_lists, st.randoms(use_true_random=False))
def test_result_does_not_depend_on_holdings_order(
    cash_balance: Decimal, holdings: list[tuple[str, Decimal, Decimal]], rnd: object
) -> None:
    """Shuffling the holdings gives an identical snapshot."""
    shuffled = list(holdings)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert _snapshot(cash_balance, holdings) == _snapshot(cash_balance, shuffled)


@given(cash, holdings_lists)
def test_values_match_an_independent_exact_computation(
    cash_balance: Decimal, holdings: list[tuple[str, Decimal, Decimal]]
) -> None:
    """Each position equals exact rational quantity*price rounded half-even to cents."""
    snap = _snapshot(cash_balance, holdings)
    expected = {
        t: _round_half_even_cents(Fraction(q) * Fraction(p)) for t, q, p in holdings if q != 0
    }
    got = {p.ticker: Fraction(p.market_value) for p in snap.positions}
    assert got == expected
    assert Fraction(snap.total_value) == Fraction(cash_balance) + sum(expected.values())


@given(cash, holdings_lists)
def test_no_float_appears_in_a_snapshot(
    cash_balance: Decimal, holdings: list[tuple[str, Decimal, Decimal]]
) -> None:
    """Every amount in the snapshot and its positions is a Decimal."""
    snap = _snapshot(cash_balance, holdings)
    amounts: list[object] = [snap.cash_balance, snap.holdings_value, snap.total_value]
    for p in snap.positions:
        amounts += [p.quantity, p.price, p.market_value]
    assert all(type(a) is Decimal for a in amounts)
