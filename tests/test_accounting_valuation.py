"""The fields beside a snapshot's value: books, cash in other currencies, a zero close.

What the calculator and the job make of a portfolio's `Accounting`, of its foreign cash and of
a close of zero (issue 11).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from decimal import Decimal

import pytest

from portfolio_snapshots import (
    InMemoryMarketData,
    InMemoryPortfolioRepository,
    InMemorySnapshotRepository,
    Portfolio,
    PortfolioSnapshot,
    PriceQuote,
    SnapshotJob,
)
from portfolio_snapshots.adapters.memory import InMemoryFxRates
from portfolio_snapshots.errors import (
    CurrencyMismatchError,
    InvalidPortfolioError,
    MissingFxRateError,
)
from portfolio_snapshots.history import (
    Accounting,
    CashBalance,
    FxQuote,
    PeriodReturn,
    time_weighted_returns,
)
from portfolio_snapshots.testing import FakeClock

DAY = dt.date(2026, 3, 2)
PID = uuid.UUID(int=7)
QUOTES = {
    "AAA": PriceQuote("AAA", Decimal("12.50"), DAY),
    "BBB": PriceQuote("BBB", Decimal(40), DAY),
}


def _value(portfolio: Portfolio, **table: object) -> PortfolioSnapshot:
    from portfolio_snapshots import SnapshotCalculator
    from portfolio_snapshots._calculator import PriceTable

    calculator = SnapshotCalculator()
    valued, failed = calculator.value_many(
        [portfolio],
        PriceTable(QUOTES, DAY, **table),  # type: ignore[arg-type]
    )
    if failed:
        raise failed[0][1]
    (snapshot,) = valued
    return snapshot


def test_cost_basis_gives_each_position_and_the_snapshot_its_unrealized_gain() -> None:
    """Cost basis per held ticker: unrealized = market value - cost, per position and in total."""
    books = Accounting(
        cost_basis={"AAA": Decimal(100), "BBB": Decimal("85.20")},
        realized_gain=Decimal("-3.10"),
        dividends=Decimal(4),
        interest=Decimal("0.25"),
        fees=Decimal(2),
        taxes=Decimal("0.60"),
        net_transfers=Decimal(0),
        position_realized={"AAA": Decimal("-3.10")},
        position_dividends={"BBB": Decimal(4)},
    )
    portfolio = Portfolio(
        PID, Decimal(10), {"AAA": Decimal(10), "BBB": Decimal(2)}, accounting=books
    )
    snapshot = _value(portfolio)
    aaa, bbb = snapshot.positions
    # AAA: 10 x 12.50 = 125.00, cost 100 -> +25.00; BBB: 2 x 40 = 80, cost 85.20 -> -5.20
    assert (aaa.cost_basis, aaa.unrealized_gain) == (Decimal(100), Decimal("25.00"))
    assert (bbb.cost_basis, bbb.unrealized_gain) == (Decimal("85.20"), Decimal("-5.20"))
    assert (aaa.realized_gain, aaa.dividends) == (Decimal("-3.10"), Decimal(0))
    assert (bbb.realized_gain, bbb.dividends) == (Decimal(0), Decimal(4))
    assert snapshot.holdings_value == Decimal("205.00")
    assert snapshot.cost_basis == Decimal("185.20")
    assert snapshot.unrealized_gain == Decimal("19.80")
    assert (snapshot.realized_gain, snapshot.dividends, snapshot.interest) == (
        Decimal("-3.10"),
        Decimal(4),
        Decimal("0.25"),
    )
    assert (snapshot.fees, snapshot.taxes, snapshot.net_transfers) == (
        Decimal(2),
        Decimal("0.60"),
        Decimal(0),
    )


def test_a_position_without_cost_basis_makes_the_snapshot_cost_basis_unknown() -> None:
    """A held ticker missing from the cost basis is None there, and so is the snapshot's total."""
    books = Accounting(cost_basis={"AAA": Decimal(100)})
    portfolio = Portfolio(
        PID, Decimal(10), {"AAA": Decimal(10), "BBB": Decimal(2)}, accounting=books
    )
    snapshot = _value(portfolio)
    aaa, bbb = snapshot.positions
    assert aaa.unrealized_gain == Decimal("25.00")
    assert (bbb.cost_basis, bbb.unrealized_gain) == (None, None)
    assert (snapshot.cost_basis, snapshot.unrealized_gain) == (None, None)
    assert snapshot.realized_gain is None  # not supplied: unknown, not zero


def test_a_portfolio_without_books_has_every_accounting_field_unknown() -> None:
    """No `Accounting`: every new field is None (never zero), and no cash balances are listed."""
    snapshot = _value(Portfolio(PID, Decimal(10), {"AAA": Decimal(1)}))
    assert [getattr(snapshot, name) for name in ("cost_basis", "unrealized_gain", "fees")] == [
        None,
        None,
        None,
    ]
    assert snapshot.cash_balances == ()
    (position,) = snapshot.positions
    assert position[8:] == (None, None, None, None)


@pytest.mark.parametrize(
    ("books", "field"),
    [
        (Accounting(cost_basis={"AAA": 100.0}), "cost_basis"),  # type: ignore[dict-item]
        (Accounting(realized_gain=Decimal("NaN")), "realized_gain"),
        (Accounting(cost_basis={"AAA": Decimal("NaN")}), "cost_basis"),
        (Accounting(position_realized={"AAA": Decimal("-Infinity")}), "position_realized"),
        (Accounting(fees=Decimal("1E+20")), "fees"),
        (Accounting(position_dividends=[("AAA", Decimal(1))]), "position_dividends"),  # type: ignore[arg-type]
        ({"cost_basis": {}}, "accounting"),
    ],
)
def test_bad_books_fail_the_portfolio_naming_the_field(books: object, field: str) -> None:
    """A float, a NaN, an amount out of bounds or a wrong type is refused, naming the field."""
    portfolio = Portfolio(PID, Decimal(10), {"AAA": Decimal(1)}, accounting=books)  # type: ignore[arg-type]
    with pytest.raises(InvalidPortfolioError) as raised:
        _value(portfolio)
    assert raised.value.field == field
    assert raised.value.portfolio_id == PID


def _eur_rates(rate: Decimal, as_of: dt.date = DAY) -> dict[tuple[str, str], FxQuote]:
    return {("USD", "EUR"): FxQuote("USD", "EUR", rate, as_of)}


def test_cash_in_another_currency_is_valued_at_the_days_rate_and_kept_per_currency() -> None:
    """EUR portfolio with 50 EUR and 200.50 USD at 0.9 EUR/USD: cash 50 + 180.45 = 230.45."""
    portfolio = Portfolio(
        PID, Decimal(50), {}, currency="EUR", foreign_cash={"USD": Decimal("200.50")}
    )
    snapshot = _value(portfolio, fx_rates=_eur_rates(Decimal("0.9")))
    assert snapshot.cash_balance == Decimal("230.45")
    assert snapshot.total_value == Decimal("230.45")
    assert snapshot.cash_balances == (
        CashBalance("EUR", Decimal(50), Decimal(50)),
        CashBalance("USD", Decimal("200.50"), Decimal("180.45"), Decimal("0.9")),
    )
    assert snapshot.cash_balance == sum(c.value for c in snapshot.cash_balances)


def test_cash_valued_at_a_stale_rate_marks_the_snapshot_stale() -> None:
    """Under carry_forward, a rate older than max_price_age values the cash and says so."""
    portfolio = Portfolio(PID, Decimal(0), {}, currency="EUR", foreign_cash={"USD": Decimal(10)})
    old = DAY - dt.timedelta(days=30)
    snapshot = _value(portfolio, fx_rates=_eur_rates(Decimal("0.8"), old), carry_forward=True)
    assert snapshot.stale
    assert snapshot.cash_balances[1].stale
    assert snapshot.cash_balance == Decimal("8.00")


def test_cash_in_another_currency_without_an_fx_source_names_the_cash() -> None:
    """With no FX source, foreign cash is a `CurrencyMismatchError` about the cash, no ticker."""
    portfolio = Portfolio(PID, Decimal(0), {}, currency="EUR", foreign_cash={"USD": Decimal(10)})
    with pytest.raises(CurrencyMismatchError, match="cash is held in USD") as raised:
        _value(portfolio)
    assert raised.value.ticker is None


def test_cash_in_another_currency_without_a_rate_is_missing_not_zero() -> None:
    """A missing rate fails the portfolio-day: the cash is never valued at zero."""
    portfolio = Portfolio(PID, Decimal(0), {}, currency="EUR", foreign_cash={"GBP": Decimal(10)})
    with pytest.raises(MissingFxRateError):
        _value(portfolio, fx_rates=_eur_rates(Decimal("0.9")))


@pytest.mark.parametrize(
    ("held", "value"),
    [
        ({"EUR": Decimal(1)}, "EUR"),
        ({"usd": Decimal(1)}, "usd"),
        ({"USD": 1.5}, 1.5),
        ({"USD": Decimal("Infinity")}, Decimal("Infinity")),
        ([("USD", Decimal(1))], [("USD", Decimal(1))]),
    ],
)
def test_bad_foreign_cash_fails_the_portfolio_naming_it(held: object, value: object) -> None:
    """The base currency itself, a malformed code, a float or a non-mapping is refused."""
    portfolio = Portfolio(PID, Decimal(0), {}, currency="EUR", foreign_cash=held)  # type: ignore[arg-type]
    with pytest.raises(InvalidPortfolioError) as raised:
        _value(portfolio, fx_rates=_eur_rates(Decimal("0.9")))
    assert (raised.value.field, raised.value.value) == ("foreign_cash", value)


def test_the_daily_run_asks_for_the_rates_of_foreign_cash_and_stores_the_balances() -> None:
    """A portfolio holding only foreign cash gets its rate from the FX source, once per run."""
    portfolios = InMemoryPortfolioRepository(
        [
            Portfolio(
                uuid.UUID(int=i),
                Decimal(i),
                {},
                currency="EUR",
                foreign_cash={"USD": Decimal(100), "CHF": Decimal(10)},
            )
            for i in range(1, 4)
        ]
    )
    fx = InMemoryFxRates(
        [
            FxQuote("USD", "EUR", Decimal("0.9"), DAY),
            FxQuote("EUR", "CHF", Decimal("0.95"), DAY),  # inverted for CHF -> EUR
        ]
    )
    store = InMemorySnapshotRepository()
    job = SnapshotJob(
        portfolios=portfolios,
        snapshots=store,
        market_data=InMemoryMarketData(),
        fx_rates=fx,
        clock=FakeClock(dt.datetime(2026, 3, 2, 23, tzinfo=dt.UTC)),
    )
    report = asyncio.run(job.run_daily(DAY))
    assert report.succeeded == 3
    snapshot = asyncio.run(store.get_snapshot(uuid.UUID(int=2), DAY))
    assert snapshot is not None
    usd = snapshot.cash_balances[-1]
    assert (usd.currency, usd.value) == ("USD", Decimal("90.00"))
    chf = snapshot.cash_balances[1]
    assert chf.currency == "CHF"
    # 10 CHF at 1 / 0.95 EUR/CHF = 10.526315... -> 10.53 EUR
    assert chf.value == Decimal("10.53")
    assert snapshot.cash_balance == Decimal(2) + Decimal("90.00") + Decimal("10.53")


def test_a_zero_close_values_the_position_at_zero_and_marks_it() -> None:
    """A delisted security's close of zero is a price: the position is worth zero, marked."""
    portfolios = InMemoryPortfolioRepository(
        [Portfolio(PID, Decimal(5), {"GONE": Decimal(100), "AAA": Decimal(1)})]
    )
    market = InMemoryMarketData(
        [PriceQuote("GONE", Decimal(0), DAY), PriceQuote("AAA", Decimal(3), DAY)]
    )
    store = InMemorySnapshotRepository()
    job = SnapshotJob(
        portfolios=portfolios,
        snapshots=store,
        market_data=market,
        clock=FakeClock(dt.datetime(2026, 3, 2, 23, tzinfo=dt.UTC)),
    )
    assert asyncio.run(job.run_daily(DAY)).succeeded == 1
    snapshot = asyncio.run(store.get_snapshot(PID, DAY))
    assert snapshot is not None
    aaa, gone = snapshot.positions
    assert (gone.market_value, gone.valued_at_zero) == (Decimal(0), True)
    assert not aaa.valued_at_zero
    assert snapshot.total_value == Decimal(8)


def _day(n: int, total: str, contributions: str, flow: str, transfers: str) -> PortfolioSnapshot:
    return PortfolioSnapshot(
        PID,
        DAY + dt.timedelta(days=n),
        "USD",
        Decimal(0),
        Decimal(total),
        Decimal(total),
        net_contributions=Decimal(contributions),
        external_flow=Decimal(flow),
        net_transfers=Decimal(transfers),
    )


def test_units_transferred_in_are_a_flow_for_returns_not_a_gain() -> None:
    """100 of units transferred in on day 1, worth 110 on day 2: the return is 10 %, not 110 %."""
    series = [
        _day(0, "0", "0", "0", "0"),
        _day(1, "100", "0", "100", "100"),
        _day(2, "110", "0", "0", "100"),
    ]
    returns = time_weighted_returns(series)
    assert [r.value for r in returns] == [Decimal(0), Decimal("0.1")]
    assert all(isinstance(r, PeriodReturn) for r in returns)
