"""Sample values for the storage tests: snapshots that exercise every field."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from portfolio_snapshots import PortfolioSnapshot, PositionValuation

DAY = dt.date(2026, 11, 27)
NOW = dt.datetime(2026, 11, 28, 1, 0, tzinfo=dt.UTC)
PID = uuid.UUID("6f1c3a52-6d5e-4c1e-9d55-0f3f1d0b7a10")


def rich_snapshot(
    pid: uuid.UUID = PID, day: dt.date = DAY, cash: str = "1000.50"
) -> PortfolioSnapshot:
    """Return a snapshot whose Decimals have trailing zeros, exponents and signs, with FX."""
    positions = (
        PositionValuation("AAPL", Decimal("10.000"), Decimal("189.9500"), day, Decimal("1899.50")),
        PositionValuation(
            "SAP.DE",
            Decimal("0.5"),
            Decimal("1.2E+2"),
            day - dt.timedelta(days=1),
            Decimal("65.40"),
            "EUR",
            Decimal("1.09000000"),
            stale=True,
        ),
        PositionValuation("ZZZ", Decimal(3), Decimal("0.0001"), day, Decimal("0.00"), "USD"),
    )
    holdings = sum((p.market_value for p in positions), Decimal("0.00"))
    cash_value = Decimal(cash)
    return PortfolioSnapshot(
        pid,
        day,
        "USD",
        cash_value,
        holdings,
        cash_value + holdings,
        positions,
        Decimal("-0.00"),
        Decimal("250.00"),
        stale=True,
    )


def plain_snapshot(pid: uuid.UUID, day: dt.date, cash: str = "1.00") -> PortfolioSnapshot:
    """Return a cash-only snapshot with the optional fields left out."""
    amount = Decimal(cash)
    return PortfolioSnapshot(pid, day, "USD", amount, Decimal("0.00"), amount)
