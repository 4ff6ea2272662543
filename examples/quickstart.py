"""Quick start: snapshot three portfolios into an SQLite file, then backfill a week.

To run:
    pip install -e . && python examples/quickstart.py [--db quickstart.sqlite3]

It wires the in-memory portfolio and price adapters (standing in for the host's database and
price provider) to the embedded default store, `SqliteSnapshotStore`, which also keeps the run
ledger and the leases: run it twice and the second daily run finds its key already succeeded
and does nothing. It prints a table of the stored snapshots.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import uuid
from decimal import Decimal

from portfolio_snapshots import (
    InMemoryMarketData,
    InMemoryPortfolioRepository,
    Portfolio,
    PortfolioSnapshot,
    SnapshotJob,
    SqliteSnapshotStore,
    date_range,
    utc_now,
)

ALICE = uuid.UUID("00000000-0000-0000-0000-00000000a11c")
BOB = uuid.UUID("00000000-0000-0000-0000-000000000b0b")
CAROL = uuid.UUID("00000000-0000-0000-0000-0000000ca201")


def build_world(today: dt.date) -> tuple[InMemoryPortfolioRepository, InMemoryMarketData]:
    """Three portfolios and a week of closing prices ending today."""
    portfolios = InMemoryPortfolioRepository(
        [
            Portfolio(ALICE, Decimal("1200.00"), {"AAPL": Decimal(10), "MSFT": Decimal("2.5")}),
            Portfolio(BOB, Decimal("50.00"), {"VTI": Decimal("12.345")}),
            Portfolio(CAROL, Decimal("10000.00")),  # cash only
        ]
    )
    market = InMemoryMarketData()
    start = today - dt.timedelta(days=6)
    for i, day in enumerate(date_range(start, today)):
        market.add_price("AAPL", day, Decimal("189.50") + i)
        market.add_price("MSFT", day, Decimal("410.25") - i)
        market.add_price("VTI", day, Decimal("255.10") + Decimal(i) / 4)
    return portfolios, market


def table(snapshots: list[PortfolioSnapshot]) -> str:
    """Render snapshots as a fixed-width text table."""
    lines = [f"{'portfolio':<12} {'date':<10} {'cash':>10} {'holdings':>10} {'total':>10}"]
    lines += [
        f"{str(s.portfolio_id)[-5:]:<12} {s.snapshot_date.isoformat():<10} "
        f"{s.cash_balance:>10} {s.holdings_value:>10} {s.total_value:>10}"
        for s in snapshots
    ]
    return "\n".join(lines)


async def main(db: str) -> None:
    """Run today's snapshot for everyone, then backfill Alice's last week."""
    today = utc_now().date()
    portfolios, market = build_world(today)
    async with await SqliteSnapshotStore.open(db) as store:
        job = SnapshotJob(
            portfolios=portfolios, snapshots=store, market_data=market, ledger=store, lock=store
        )
        daily = await job.run_daily()
        print(
            f"daily run {daily.key}: {daily.status}, "
            f"{daily.as_dict()['succeeded']} of {daily.processed} portfolios stored"
        )
        week = today - dt.timedelta(days=6)
        backfill = await job.backfill(ALICE, week, today, only_missing=True)
        print(
            f"backfill: {backfill.status}, {backfill.succeeded} days stored, "
            f"{backfill.skipped} already there\n"
        )
        rows = [s for p in (ALICE, BOB, CAROL) for s in await store.list_snapshots(p, week, today)]
        print(table(rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Snapshot three portfolios into SQLite.")
    parser.add_argument("--db", default="quickstart.sqlite3", help="the SQLite file to use")
    asyncio.run(main(parser.parse_args().db))
