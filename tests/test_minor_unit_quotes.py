"""Closes quoted in pence, cents or agorot are valued in the major unit, exactly, by a table."""

import asyncio
import datetime as dt
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from portfolio_snapshots import (
    QUOTE_MINOR_UNITS,
    InMemoryMarketData,
    InMemoryPortfolioRepository,
    InMemorySnapshotRepository,
    Portfolio,
    PortfolioSnapshot,
    PriceQuote,
    SnapshotJob,
    parse_price_quote,
)
from portfolio_snapshots.adapters.csv import CsvMarketData
from portfolio_snapshots.adapters.memory import InMemoryFxRates
from portfolio_snapshots.errors import InvalidPriceError
from portfolio_snapshots.history import FxQuote

DAY = dt.date(2026, 11, 27)
PID = uuid.UUID(int=5)


def value(
    quotes: list[PriceQuote],
    holdings: dict[str, Decimal],
    currency: str,
    fx: InMemoryFxRates | None = None,
) -> PortfolioSnapshot:
    store = InMemorySnapshotRepository()
    job = SnapshotJob(
        portfolios=InMemoryPortfolioRepository([Portfolio(PID, Decimal(0), holdings, currency)]),
        snapshots=store,
        market_data=InMemoryMarketData(quotes),
        fx_rates=fx,
        clock=lambda: dt.datetime(2026, 11, 28, tzinfo=dt.UTC),
    )
    report = asyncio.run(job.run_daily(DAY))
    assert report.failures == ()
    (snapshot,) = store.all()
    return snapshot


@pytest.mark.parametrize(
    ("code", "major"), [("GBp", "GBP"), ("GBX", "GBP"), ("ZAc", "ZAR"), ("ILA", "ILS")]
)
def test_a_close_in_a_minor_unit_is_valued_in_the_major_unit(code: str, major: str) -> None:
    """1,000 shares at 72.46 pence are worth 724.60 pounds; the position records 0.7246 GBP."""
    snapshot = value([PriceQuote("X", Decimal("72.46"), DAY, code)], {"X": Decimal(1000)}, major)
    (position,) = snapshot.positions
    assert (position.price, position.price_currency, position.fx_rate) == (
        Decimal("0.7246"),
        major,
        None,
    )
    assert position.market_value == Decimal("724.60")
    assert QUOTE_MINOR_UNITS[code] == (major, 100)


def test_a_pence_close_in_a_dollar_portfolio_is_converted_from_pounds() -> None:
    """A GBp close in a USD portfolio is converted with the GBP/USD rate, never a GBp one."""
    fx = InMemoryFxRates([FxQuote("GBP", "USD", Decimal("1.25"), DAY)])
    snapshot = value([PriceQuote("X", Decimal(250), DAY, "GBp")], {"X": Decimal(10)}, "USD", fx)
    (position,) = snapshot.positions
    assert (position.price, position.price_currency, position.fx_rate) == (
        Decimal("2.5"),
        "GBP",
        Decimal("1.25"),
    )
    assert position.market_value == Decimal("31.25")  # 10 * 2.50 GBP * 1.25


def test_a_backfill_over_pence_closes_asks_for_the_pounds_rate() -> None:
    """Over a range, the FX pairs a pence close needs are the pound's."""
    market = InMemoryMarketData(
        PriceQuote("X", Decimal(100 + n), DAY - dt.timedelta(days=n), "GBp") for n in range(3)
    )
    fx = InMemoryFxRates(
        FxQuote("GBP", "USD", Decimal("1.25"), DAY - dt.timedelta(days=n)) for n in range(3)
    )
    store = InMemorySnapshotRepository()
    job = SnapshotJob(
        portfolios=InMemoryPortfolioRepository(
            [Portfolio(PID, Decimal(0), {"X": Decimal(4)}, "USD")]
        ),
        snapshots=store,
        market_data=market,
        fx_rates=fx,
        clock=lambda: dt.datetime(2026, 11, 28, tzinfo=dt.UTC),
    )
    report = asyncio.run(job.backfill(PID, DAY - dt.timedelta(days=2), DAY))
    assert (report.succeeded, report.failed) == (3, 0)
    by_day = {s.snapshot_date: s.holdings_value for s in store.all()}
    assert by_day[DAY] == Decimal("5.00")  # 4 * 1.00 GBP * 1.25
    assert by_day[DAY - dt.timedelta(days=2)] == Decimal("5.10")  # 4 * 1.02 GBP * 1.25


def test_parse_price_quote_takes_the_tables_codes_and_no_others() -> None:
    """GBp is a quote currency; GBx, gbp or a guess are refused naming the field."""
    assert (
        parse_price_quote(
            {"ticker": "X", "price": "72.46", "as_of": "2026-11-27", "currency": "GBp"}
        ).currency
        == "GBp"
    )
    for code in ("GBx", "gbp", "p"):
        with pytest.raises(InvalidPriceError) as caught:
            parse_price_quote(
                {"ticker": "X", "price": "1", "as_of": "2026-11-27", "currency": code}
            )
        assert caught.value.field == "currency"


def test_a_csv_of_pence_closes_is_read_and_valued_in_pounds(tmp_path: Path) -> None:
    """CsvMarketData accepts the minor-unit codes by default."""
    path = tmp_path / "closes.csv"
    path.write_text("date,ticker,close,currency\n2026-11-27,VOD.L,72.46,GBp\n")
    quotes = asyncio.run(CsvMarketData(path).get_prices(["VOD.L"], DAY))
    assert quotes["VOD.L"].currency == "GBp"
    snapshot = value(list(quotes.values()), {"VOD.L": Decimal(1000)}, "GBP")
    assert snapshot.holdings_value == Decimal("724.60")
