"""Write the demo's seeded end-of-day history: closes and EUR/USD rates, as CSV files.

To run (from the repository's top folder; the files are committed, this only remakes them):
    python scripts/make_demo_data.py

Closes are a seeded random walk in exact Decimals, on weekdays from 2024-01-02 to 2025-06-30:
ACME, GLBX, INIT and WIDE in USD, BRLN in EUR. ACME splits 4-for-1 with ex-date 2024-09-16,
and the file is split-adjusted, as providers' downloads are: every ACME close before the
split is the traded price divided by 4 (the demo serves them as traded through
`unadjust_splits`). The same seed always writes the same bytes; a test checks it.
"""

from __future__ import annotations

import datetime as dt
import random
import sys
from decimal import Decimal
from pathlib import Path

SEED = 20240102
FIRST = dt.date(2024, 1, 2)
LAST = dt.date(2025, 6, 30)
#: ticker, currency, first (split-adjusted) close, daily move bounds in basis points
TICKERS = (
    ("ACME", "USD", Decimal("98.40"), (-160, 175)),
    ("BRLN", "EUR", Decimal("61.20"), (-120, 125)),
    ("GLBX", "USD", Decimal("152.30"), (-140, 150)),
    ("INIT", "USD", Decimal("44.85"), (-180, 180)),
    ("WIDE", "USD", Decimal("251.60"), (-80, 90)),
)
FX_START = Decimal("1.0950")
CENT = Decimal("0.01")
PIP = Decimal("0.0001")
OUT = Path(__file__).resolve().parents[1] / "src/portfolio_snapshots/integrations/cli/demo_data"


def weekdays() -> list[dt.date]:
    """Every Monday to Friday from FIRST to LAST."""
    days, day = [], FIRST
    while day <= LAST:
        if day.weekday() < 5:  # noqa: PLR2004 - Saturday is 5
            days.append(day)
        day += dt.timedelta(days=1)
    return days


def closes(rng: random.Random, days: list[dt.date]) -> str:
    """The closes CSV: one row per ticker and weekday, in date order."""
    rows = ["date,ticker,close,currency"]
    prices = {ticker: first for ticker, _, first, _ in TICKERS}
    for day in days:
        for ticker, currency, _, (low, high) in TICKERS:
            if day != FIRST:
                move = Decimal(rng.randint(low, high)) / 10000
                prices[ticker] = (prices[ticker] * (1 + move)).quantize(CENT)
            rows.append(f"{day.isoformat()},{ticker},{prices[ticker]},{currency}")
    return "\n".join(rows) + "\n"


def rates(rng: random.Random, days: list[dt.date]) -> str:
    """The EUR/USD rates CSV: one row per weekday."""
    rows = ["date,base,quote,rate"]
    rate = FX_START
    for day in days:
        if day != FIRST:
            rate = (rate * (1 + Decimal(rng.randint(-45, 45)) / 10000)).quantize(PIP)
        rows.append(f"{day.isoformat()},EUR,USD,{rate}")
    return "\n".join(rows) + "\n"


def main(out: Path = OUT) -> None:
    """Write prices.csv and fx.csv into `out`."""
    rng = random.Random(SEED)  # noqa: S311 - seeded demo data, not cryptography
    days = weekdays()
    out.mkdir(parents=True, exist_ok=True)
    (out / "prices.csv").write_text(closes(rng, days), encoding="utf-8")
    (out / "fx.csv").write_text(rates(rng, days), encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
