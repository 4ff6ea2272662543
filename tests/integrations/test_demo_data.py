"""The demo's shipped history: made by a seeded script, and what the demo says it is."""

from __future__ import annotations

import asyncio
import datetime as dt
import runpy
from decimal import Decimal
from pathlib import Path

from portfolio_snapshots.integrations.cli.demo import (
    SPLITS,
    demo_fx_rates,
    demo_market_data,
    demo_today,
)

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "src/portfolio_snapshots/integrations/cli/demo_data"


def test_the_shipped_files_are_what_the_seeded_script_writes(tmp_path: Path) -> None:
    """Running scripts/make_demo_data.py again writes the shipped files byte for byte."""
    script = runpy.run_path(str(ROOT / "scripts/make_demo_data.py"))
    script["main"](tmp_path)
    for name in ("prices.csv", "fx.csv"):
        assert (tmp_path / name).read_bytes() == (SHIPPED / name).read_bytes(), name


def test_the_history_spans_a_year_and_a_half_with_a_split_and_a_second_currency() -> None:
    """Five tickers over 2024-01-02..2025-06-30, BRLN in EUR with rates, ACME split 4-for-1."""
    market = demo_market_data()
    assert market.tickers == {"ACME", "BRLN", "GLBX", "INIT", "WIDE"}
    assert (market.first_date, market.last_date) == (dt.date(2024, 1, 2), dt.date(2025, 6, 30))
    assert demo_today() == dt.date(2025, 6, 30)
    assert demo_fx_rates().pairs == {("EUR", "USD")}
    assert dict(SPLITS) == {"ACME": ((dt.date(2024, 9, 16), Decimal(4)),)}
    # the file is split-adjusted; the adapter serves the Friday before the split as traded
    friday = dt.date(2024, 9, 13)
    with (SHIPPED / "prices.csv").open() as rows:
        adjusted = next(line for line in rows if line.startswith(f"{friday},ACME,"))
    served = asyncio.run(market.get_prices(["ACME"], friday))["ACME"].price
    assert served == Decimal(adjusted.split(",")[2]) * 4 == Decimal("594.08")
