"""The daily run at 00:00 UTC in a plain asyncio process, for hosts without a web app.

To run:
    pip install -e '.[apscheduler]' && python examples/apscheduler_standalone.py [--forever]

It opens the embedded SQLite store (snapshots, run ledger and lock in one file), schedules the
job on APScheduler's ``AsyncIOScheduler`` at 00:00 UTC, and starts it: the day that just
closed runs at once (a start within the misfire grace), and so do the days missed while the
process was down (the catch-up). It prints their reports and the next fire time, then stops;
with ``--forever`` it keeps scheduling until Ctrl-C or SIGTERM, as a service would. Run it
twice: the second start finds the days done (``already_succeeded``).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import signal
import uuid
from decimal import Decimal
from typing import Any, cast

from apscheduler.events import (  # pyright: ignore[reportMissingTypeStubs] - no types
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
)
from apscheduler.schedulers.asyncio import (  # pyright: ignore[reportMissingTypeStubs]
    AsyncIOScheduler,
)

from portfolio_snapshots import (
    InMemoryMarketData,
    InMemoryPortfolioRepository,
    Portfolio,
    RunReport,
    SnapshotJob,
    SqliteSnapshotStore,
    date_range,
    utc_now,
)
from portfolio_snapshots.integrations.apscheduler import next_fire_time, schedule_daily_snapshots


def host_adapters() -> tuple[InMemoryPortfolioRepository, InMemoryMarketData]:
    """Stand-ins for the host's database and price provider: two portfolios, ten days."""
    portfolios = InMemoryPortfolioRepository(
        [
            Portfolio(uuid.UUID(int=1), Decimal("500.00"), {"AAPL": Decimal(3)}),
            Portfolio(uuid.UUID(int=2), Decimal("20.00"), {"VTI": Decimal("4.5")}),
        ]
    )
    market = InMemoryMarketData()
    today = utc_now().date()
    for i, day in enumerate(date_range(today - dt.timedelta(days=9), today)):
        market.add_price("AAPL", day, Decimal("190.00") + i)
        market.add_price("VTI", day, Decimal("255.00") + i)
    return portfolios, market


def describe(report: RunReport) -> str:
    """One line per run report."""
    return f"{report.key}: {report.status}, {report.succeeded} stored, {report.failed} failed"


async def main(*, forever: bool, path: str) -> None:
    """Schedule the job, run the start-up work, print it; keep going when `forever`."""
    stop = asyncio.Event()  # set by Ctrl-C or SIGTERM: shut down cleanly
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    portfolios, market = host_adapters()
    async with await SqliteSnapshotStore.open(path) as db:
        job = SnapshotJob(
            portfolios=portfolios, snapshots=db, market_data=market, ledger=db, lock=db
        )
        scheduler = AsyncIOScheduler(timezone=dt.UTC)
        daily = schedule_daily_snapshots(scheduler, job, catch_up_days=7)
        done: asyncio.Queue[Any] = asyncio.Queue()  # APScheduler's job events
        mask = EVENT_JOB_EXECUTED | EVENT_JOB_ERROR
        scheduler.add_listener(done.put_nowait, mask)  # pyright: ignore[reportUnknownMemberType]
        scheduler.start()
        try:
            for _ in range(2):  # the missed fire and the catch-up, in either order
                event = await done.get()
                outcome: object = event.exception or event.retval
                reports = cast("list[object]", outcome) if isinstance(outcome, list) else [outcome]
                for report in reports:
                    print(describe(report) if isinstance(report, RunReport) else repr(report))
            print("next run:", next_fire_time(scheduler), flush=True)
            if forever:
                await stop.wait()
        finally:
            scheduler.shutdown(wait=False)
            await daily.aclose()  # stop runs in progress before the store closes


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="The daily snapshot run, scheduled.")
    parser.add_argument("--forever", action="store_true", help="keep scheduling until stopped")
    parser.add_argument("--db", default="standalone.sqlite3", help="the SQLite file")
    arguments = parser.parse_args()
    asyncio.run(main(forever=arguments.forever, path=arguments.db))
