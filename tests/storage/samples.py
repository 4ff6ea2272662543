"""Sample values for the storage tests: snapshots that exercise every field."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from hypothesis import strategies as st

from portfolio_snapshots import PortfolioSnapshot, PositionValuation
from portfolio_snapshots.history import CashBalance

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


def booked_snapshot(
    pid: uuid.UUID = PID, day: dt.date = DAY, cash: str = "1000.50"
) -> PortfolioSnapshot:
    """Return `rich_snapshot` with books: accounting fields (some None), cash in 3 currencies."""
    rich = rich_snapshot(pid, day, cash)
    aapl, sap, zzz = rich.positions
    positions = (
        aapl._replace(
            cost_basis=Decimal("1500.00"),
            unrealized_gain=Decimal("399.50"),
            realized_gain=Decimal("-0.00"),
            dividends=Decimal("3.2E+1"),
        ),
        sap._replace(realized_gain=Decimal("12.5")),
        zzz._replace(cost_basis=Decimal(0), unrealized_gain=Decimal("0.00")),
    )
    balances = (
        CashBalance("USD", Decimal(cash), Decimal(cash)),
        CashBalance("EUR", Decimal("-10.00"), Decimal("-10.90"), Decimal("1.09000000")),
        CashBalance("JPY", Decimal(1500), Decimal("9.75"), Decimal("0.0065"), stale=True),
    )
    total_cash = sum((b.value for b in balances), Decimal(0))
    return rich.replace(
        positions=positions,
        cash_balance=total_cash,
        total_value=total_cash + rich.holdings_value,
        realized_gain=Decimal("12.5"),
        dividends=Decimal("3.2E+1"),
        interest=Decimal("0.01"),
        fees=Decimal(0),
        taxes=Decimal("-1.50"),
        net_transfers=Decimal("1E+3"),
        cash_balances=balances,
    )


def plain_snapshot(pid: uuid.UUID, day: dt.date, cash: str = "1.00") -> PortfolioSnapshot:
    """Return a cash-only snapshot with the optional fields left out."""
    amount = Decimal(cash)
    return PortfolioSnapshot(pid, day, "USD", amount, Decimal("0.00"), amount)


def _position(
    ticker: str,
    quantity: str,
    price: str,
    price_date: dt.date,
    value: str,
    currency: str | None = None,
    fx_rate: str | None = None,
    *,
    stale: bool = False,
) -> PositionValuation:
    rate = None if fx_rate is None else Decimal(fx_rate)
    return PositionValuation(
        ticker, Decimal(quantity), Decimal(price), price_date, Decimal(value), currency, rate, stale
    )


def _totalled(
    pid: uuid.UUID,
    day: dt.date,
    cash: str,
    positions: tuple[PositionValuation, ...],
    *,
    currency: str = "USD",
    net: str | None = None,
    flow: str | None = None,
    stale: bool = False,
) -> PortfolioSnapshot:
    cash_value = Decimal(cash)
    holdings = sum((p.market_value for p in positions), Decimal("0.00"))
    return PortfolioSnapshot(
        pid,
        day,
        currency,
        cash_value,
        holdings,
        cash_value + holdings,
        positions,
        None if net is None else Decimal(net),
        None if flow is None else Decimal(flow),
        stale,
    )


def version_1_samples() -> list[PortfolioSnapshot]:
    """Return the snapshots of the version-1 fixture file (``data/version_1.db``).

    Stale prices, FX rates, prices of several exponents, one ticker valued at two prices on one
    day (a split adjusted for one portfolio only), two currencies of one close, zero holdings,
    a cash-only snapshot in another currency, and a portfolio of 300 positions.
    """
    pids = [uuid.UUID(f"0c0ffee0-0000-4000-8000-{n:012d}") for n in range(6)]
    snapshots = [rich_snapshot(pids[0], DAY - dt.timedelta(days=d)) for d in range(3)]
    for d in range(3):
        day = DAY - dt.timedelta(days=d)
        snapshots.append(
            _totalled(
                pids[1],
                day,
                "10.00",
                (
                    _position("AAPL", "4", "47.4875", day, "189.95"),  # split 4-for-1 since
                    _position(
                        "SAP.DE",
                        "2",
                        "1.2E+2",
                        day - dt.timedelta(days=1),
                        "261.60",
                        "EUR",
                        "1.09000000",
                        stale=True,
                    ),
                    _position("VOO", "0.001", "500.01", day, "0.50"),
                ),
                net="100.00",
                flow="0",
                stale=True,
            )
        )
        snapshots.append(
            _totalled(
                pids[2],
                day,
                "-5.5",
                (
                    _position(
                        "SAP.DE",
                        "1",
                        "1.2E+2",
                        day - dt.timedelta(days=1),
                        "102.00",
                        "EUR",
                        "0.85",
                        stale=True,
                    ),
                ),
                currency="GBP",
                stale=True,
            )
        )
    snapshots.append(_totalled(pids[3], DAY, "0.00", ()))
    snapshots.append(_totalled(pids[4], DAY, "1E+3", (), currency="JPY", net="-0.00"))
    many = tuple(
        _position(
            f"T{n:03d}",
            f"{n + 1}.{n:02d}",
            f"{n}.25",
            DAY - dt.timedelta(days=n % 4),
            f"{(n + 1) * n}.00",
            stale=n % 4 > 0,
        )
        for n in range(300)
    )
    snapshots.append(_totalled(pids[5], DAY, "12345678901234567890.123456", many, stale=True))
    return snapshots


#: Finite Decimals of any exponent, with the spellings stores must keep (-0.00, 1E+2, 0E-7).
odd_decimals = st.decimals(allow_nan=False, allow_infinity=False, places=None) | st.sampled_from(
    [Decimal("-0.00"), Decimal("1E+2"), Decimal("0E-7"), Decimal("12.3400")]
)
