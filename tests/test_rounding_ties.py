"""Half-cent ties: each amount rounds to the even cent, on the plain path and the FX path."""

import asyncio
import datetime as dt
import uuid
from decimal import Decimal
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from portfolio_snapshots import (
    InMemoryMarketData,
    InMemoryPortfolioRepository,
    InMemorySnapshotRepository,
    Portfolio,
    SnapshotCalculator,
    SnapshotJob,
)
from portfolio_snapshots.adapters.memory import InMemoryFxRates

DAY = dt.date(2026, 3, 2)
PID = uuid.UUID(int=7)

#: Quantities whose inverse is a finite decimal, so a price can be chosen to land on a tie.
_QUANTITIES = [Decimal(q) for q in ("1", "2", "4", "5", "8", "10", "0.5", "0.25", "16", "20")]


@st.composite
def half_cent_ties(draw: st.DrawFn) -> tuple[Decimal, Decimal, Fraction]:
    """A quantity and a price whose exact product is an odd number of half-cents: a tie."""
    quantity = draw(st.sampled_from(_QUANTITIES))
    half_cents = 2 * draw(st.integers(0, 10**7)) + 1
    exact = Fraction(half_cents, 200)
    price = Decimal(exact.numerator) / (Decimal(exact.denominator) * quantity)
    assert Fraction(price) * Fraction(quantity) == exact  # finite and exact by construction
    return quantity, price, exact


def _half_even_cents(value: Fraction) -> Fraction:
    floor = (value * 100).numerator // (value * 100).denominator
    rest = value * 100 - floor
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and floor % 2 == 1):
        floor += 1
    return Fraction(floor, 100)


@given(half_cent_ties())
def test_every_half_cent_tie_rounds_to_the_even_cent(
    tie: tuple[Decimal, Decimal, Fraction],
) -> None:
    """A position worth exactly x.xx5 is valued at the even cent of the two."""
    quantity, price, exact = tie
    assert (exact * 100).denominator == 2  # the strategy really draws ties
    snap = SnapshotCalculator().calculate_snapshot(
        portfolio_id=PID,
        snapshot_date=DAY,
        cash_balance=Decimal(0),
        holdings=[("T", quantity, price)],
    )
    assert Fraction(snap.positions[0].market_value) == _half_even_cents(exact)
    assert (Fraction(snap.positions[0].market_value) * 100).numerator % 2 == 0


def _value_in_usd_at(rate: str) -> Decimal:
    """Value one unit of a EUR-quoted ticker at 1.00 EUR in a USD portfolio at `rate`."""
    market = InMemoryMarketData()
    market.add_price("SAP", DAY, Decimal("1.00"), currency="EUR")
    fx = InMemoryFxRates()
    fx.add_rate("EUR", "USD", DAY, Decimal(rate))
    snapshots = InMemorySnapshotRepository()
    job = SnapshotJob(
        portfolios=InMemoryPortfolioRepository([Portfolio(PID, Decimal(0), {"SAP": Decimal(1)})]),
        snapshots=snapshots,
        market_data=market,
        fx_rates=fx,
    )
    report = asyncio.run(job.run_daily(DAY))
    assert report.succeeded == 1, report.failures
    stored = asyncio.run(snapshots.get_snapshot(PID, DAY))
    assert stored is not None
    return stored.positions[0].market_value


def test_fx_conversion_rounds_ties_half_even_both_ways() -> None:
    """1.125 USD rounds down to 1.12 and 1.135 up to 1.14: ties to even, never half-up."""
    assert _value_in_usd_at("1.125") == Decimal("1.12")
    assert _value_in_usd_at("1.135") == Decimal("1.14")
