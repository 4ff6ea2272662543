import asyncio
import datetime as dt
import re
from collections.abc import Callable
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portfolio_snapshots import (
    InMemorySnapshotRepository,
    Portfolio,
    PortfolioSnapshot,
    PriceQuote,
    SnapshotCalculator,
    parse_portfolio,
    parse_price_quote,
)
from portfolio_snapshots.testing import strategies as ps

AS_OF = dt.date(2025, 3, 3)


def is_finite_decimal(value: object) -> bool:
    return isinstance(value, Decimal) and value.is_finite()


@given(ps.tickers())
def test_tickers_are_valid_symbols(ticker: str) -> None:
    """Tickers look like exchange symbols and pass the library's input validation."""
    assert re.fullmatch(r"[A-Z]{1,5}(\.[A-Z]{1,2})?", ticker)
    quote = parse_price_quote({"ticker": ticker, "price": "1", "as_of": "2025-01-01"})
    assert quote.ticker == ticker


@given(ps.quantities())
def test_quantities_are_finite_and_non_negative(quantity: Decimal) -> None:
    """Quantities are finite Decimals from zero up to the default maximum."""
    assert is_finite_decimal(quantity)
    assert Decimal(0) <= quantity <= Decimal("1e9")
    assert quantity.as_tuple().exponent >= -8  # type: ignore[operator]


@given(ps.prices(max_value=Decimal(5), max_places=3))
def test_prices_are_above_zero(price: Decimal) -> None:
    """Prices are finite Decimals above zero, within the bounds asked for."""
    assert is_finite_decimal(price)
    assert Decimal(0) < price <= Decimal(5)


@given(ps.cash_balances(min_value=Decimal(-100), max_value=Decimal(100)))
def test_cash_balances_respect_their_bounds(cash: Decimal) -> None:
    """Cash balances are finite Decimals within the bounds, negative ones included when asked."""
    assert is_finite_decimal(cash)
    assert Decimal(-100) <= cash <= Decimal(100)


@given(ps.portfolios())
def test_portfolios_survive_input_validation(portfolio: Portfolio) -> None:
    """A generated portfolio, sent as JSON-style strings, parses back to an equal portfolio."""
    data: dict[str, object] = {
        "id": str(portfolio.id),
        "cash_balance": str(portfolio.cash_balance),
        "holdings": {t: str(q) for t, q in portfolio.holdings.items()},
        "currency": portfolio.currency,
    }
    assert parse_portfolio(data) == portfolio


@given(ps.price_tables(["AAPL", "MSFT", "BRK.B"], AS_OF, currency="EUR", max_age_days=3))
def test_price_tables_quote_every_ticker_on_or_before_the_date(
    table: dict[str, PriceQuote],
) -> None:
    """A price table holds one quote per ticker, dated within the allowed age, in its currency."""
    assert sorted(table) == ["AAPL", "BRK.B", "MSFT"]
    for ticker, quote in table.items():
        assert quote.ticker == ticker
        assert quote.currency == "EUR"
        assert AS_OF - dt.timedelta(days=3) <= quote.as_of <= AS_OF
        assert quote.price > 0


@given(ps.priced_portfolios(AS_OF, max_age_days=5))
def test_priced_portfolios_value_without_error(
    pair: tuple[Portfolio, dict[str, PriceQuote]],
) -> None:
    """The calculator values a priced portfolio without error, every held ticker quoted."""
    portfolio, table = pair
    assert set(table) == set(portfolio.holdings)
    snapshot = SnapshotCalculator().value_portfolio(portfolio, table, AS_OF)
    assert snapshot.total_value == snapshot.cash_balance + snapshot.holdings_value


@given(ps.snapshots())
def test_snapshots_hold_the_invariants(snapshot: PortfolioSnapshot) -> None:
    """Generated snapshots keep every snapshot invariant, with Decimal amounts throughout."""
    amounts = [snapshot.cash_balance, snapshot.holdings_value, snapshot.total_value]
    assert all(is_finite_decimal(a) for a in amounts)
    assert snapshot.total_value == snapshot.cash_balance + snapshot.holdings_value
    assert snapshot.holdings_value == sum((p.market_value for p in snapshot.positions), Decimal(0))
    tickers = [p.ticker for p in snapshot.positions]
    assert tickers == sorted(set(tickers))
    for position in snapshot.positions:
        assert position.quantity > 0
        assert position.price > 0
        assert position.price_date <= snapshot.snapshot_date
        assert position.market_value.as_tuple().exponent == -2
    for flow in (snapshot.net_contributions, snapshot.external_flow):
        assert flow is None or is_finite_decimal(flow)


@given(ps.snapshots())
def test_snapshots_hold_the_accounting_invariants(snapshot: PortfolioSnapshot) -> None:
    """Gains are value minus cost basis, per position and in total; cash sums its currencies."""
    for position in snapshot.positions:
        if position.cost_basis is None:
            assert position.unrealized_gain is None
        else:
            assert position.unrealized_gain == position.market_value - position.cost_basis
    costs = [p.cost_basis for p in snapshot.positions]
    if snapshot.cost_basis is None:
        assert snapshot.unrealized_gain is None
        assert not costs or None in costs
    else:
        known = [c for c in costs if c is not None]
        assert len(known) == len(costs)
        assert snapshot.cost_basis == sum(known, Decimal(0))
        assert snapshot.unrealized_gain == snapshot.holdings_value - snapshot.cost_basis
    for amount in snapshot.values[10:18]:
        assert amount is None or is_finite_decimal(amount)
    if snapshot.cash_balances:
        assert len(snapshot.cash_balances) >= 2
        own, *foreign = snapshot.cash_balances
        assert (own.currency, own.fx_rate) == (snapshot.currency, None)
        assert own.amount == own.value
        assert all(b.currency != snapshot.currency and b.fx_rate for b in foreign)
        assert snapshot.cash_balance == sum((b.value for b in snapshot.cash_balances), Decimal(0))
        assert snapshot.stale or not any(b.stale for b in snapshot.cash_balances)


#: The kinds of books the strategy must reach, each recognised by a predicate.
BOOK_KINDS: dict[str, Callable[[PortfolioSnapshot], bool]] = {
    "no books": lambda s: s.values[10:] == (None,) * 8 + ((), ()),
    "total cost basis": lambda s: s.cost_basis is not None and len(s.positions) > 1,
    "cost basis of some": (
        lambda s: s.cost_basis is None and any(p.cost_basis is not None for p in s.positions)
    ),
    "realized unknown, fees known": lambda s: s.realized_gain is None and s.fees is not None,
    "two foreign currencies": lambda s: len(s.cash_balances) > 2,
    "a stale rate": lambda s: any(b.stale for b in s.cash_balances),
}


def test_snapshots_reach_every_kind_of_books() -> None:
    """In a few hundred examples the strategy draws snapshots without books and with each kind."""
    seen: set[str] = set()

    @settings(max_examples=300, derandomize=True, database=None)
    @given(ps.snapshots())
    def draw(snapshot: PortfolioSnapshot) -> None:
        seen.update(kind for kind, found in BOOK_KINDS.items() if found(snapshot))

    draw()
    assert sorted(seen) == sorted(BOOK_KINDS)


@given(ps.snapshots(with_accounting=False))
def test_snapshots_without_accounting_have_no_books(snapshot: PortfolioSnapshot) -> None:
    """``with_accounting=False`` leaves every accounting field None and cash in one currency."""
    assert snapshot.values[10:] == (None,) * 8 + ((), ())
    assert all(p[8:] == (None,) * 4 for p in snapshot.positions)


@given(ps.snapshots(currency="JPY", with_flows=False, dates=st.just(AS_OF)))
def test_snapshots_follow_the_currency_asked_for(snapshot: PortfolioSnapshot) -> None:
    """Snapshots in a zero-decimal currency round their positions to whole units."""
    assert snapshot.currency == "JPY"
    assert snapshot.snapshot_date == AS_OF
    assert snapshot.net_contributions is None
    assert snapshot.external_flow is None
    assert all(p.market_value.as_tuple().exponent == 0 for p in snapshot.positions)


@given(st.lists(ps.snapshots(), max_size=3))
def test_snapshots_round_trip_through_the_memory_repository(
    written: list[PortfolioSnapshot],
) -> None:
    """Any batch of generated snapshots reads back from the in-memory repository as written."""
    latest = {(s.portfolio_id, s.snapshot_date): s for s in written}

    async def read_back() -> list[PortfolioSnapshot | None]:
        repo = InMemorySnapshotRepository()
        await repo.upsert_many(written)
        return [await repo.get_snapshot(pid, day) for pid, day in latest]

    assert asyncio.run(read_back()) == list(latest.values())


def test_bad_bounds_are_rejected() -> None:
    """Negative decimal places or price age raise ValueError when the strategy is built."""
    with pytest.raises(ValueError, match="max_places"):
        ps.quantities(max_places=-1)
    with pytest.raises(ValueError, match="max_age_days"):
        ps.price_tables(["AAPL"], AS_OF, max_age_days=-1)
