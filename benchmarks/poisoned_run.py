"""Benchmark: a daily run with poison among 100,000 portfolios, against the same run clean.

To run:
    python benchmarks/poisoned_run.py [--portfolios 100000] [--poison 10] [--rounds 3]

Builds one seeded world and times, alternately in this one process, the daily run over it
twice: clean, and with `--poison` portfolios spread across the batches that the store refuses
for good (a constraint error on their rows, as a host's schema might raise). In the poisoned
run each refused row makes the job split its batch to find it, so only the poisoned
portfolios fail; the figure that matters is the ratio of the two times (target: within 1.5x).
It also checks that every innocent portfolio is stored and only the poisoned ones failed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import random
import time
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING

from portfolio_snapshots import (
    InMemoryMarketData,
    InMemoryPortfolioRepository,
    InMemorySnapshotRepository,
    Portfolio,
    RunReport,
    SnapshotJob,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from portfolio_snapshots import PortfolioSnapshot

DAY = dt.date(2026, 11, 27)


class RefusingStore(InMemorySnapshotRepository):
    """The in-memory store, refusing for good any write that holds a poisoned portfolio."""

    def __init__(self, poisoned: frozenset[uuid.UUID]) -> None:
        super().__init__()
        self.poisoned = poisoned
        self.writes = 0

    async def upsert_many(
        self, snapshots: Sequence[PortfolioSnapshot], *, fence: int | None = None
    ) -> None:
        """Count the write; refuse it if it holds a poisoned portfolio, else store it."""
        self.writes += 1
        if self.poisoned and any(s.portfolio_id in self.poisoned for s in snapshots):
            raise ValueError("CHECK constraint failed")
        await super().upsert_many(snapshots, fence=fence)


def build(
    n: int, positions: int, tickers: int, seed: int
) -> tuple[list[Portfolio], InMemoryMarketData]:
    """Return seeded portfolios and a market with one close per ticker."""
    rng = random.Random(seed)
    names = [f"T{i:05d}" for i in range(tickers)]
    market = InMemoryMarketData()
    for name in names:
        market.add_price(name, DAY, Decimal(rng.randint(100, 500_000)) / 100)
    portfolios = [
        Portfolio(
            uuid.UUID(int=rng.getrandbits(128)),
            Decimal(rng.randint(0, 10_000_000)) / 100,
            {t: Decimal(rng.randint(1, 100_000)) / 1000 for t in rng.sample(names, positions)},
        )
        for _ in range(n)
    ]
    return portfolios, market


def timed(
    portfolios: list[Portfolio], market: InMemoryMarketData, poisoned: frozenset[uuid.UUID]
) -> tuple[float, RunReport, RefusingStore]:
    """Run the day once into a fresh store; return the time, the report and the store."""
    store = RefusingStore(poisoned)
    job = SnapshotJob(
        portfolios=InMemoryPortfolioRepository(portfolios),
        snapshots=store,
        market_data=market,
        clock=lambda: dt.datetime(2026, 11, 28, tzinfo=dt.UTC),
        events=lambda _event: None,
    )
    gc.collect()
    started = time.perf_counter()
    report = asyncio.run(job.run_daily(DAY))
    return time.perf_counter() - started, report, store


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise SystemExit(f"benchmark check failed: {message}")


def main() -> None:
    """Parse the arguments, run both variants alternately, and print the ratio."""
    parser = argparse.ArgumentParser(
        description="A daily run with poison, against the same run clean."
    )
    parser.add_argument("--portfolios", type=int, default=100_000)
    parser.add_argument("--positions", type=int, default=10)
    parser.add_argument("--tickers", type=int, default=2_000)
    parser.add_argument("--poison", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    portfolios, market = build(args.portfolios, args.positions, args.tickers, args.seed)
    step = len(portfolios) // args.poison
    poisoned = frozenset(portfolios[i * step + step // 3].id for i in range(args.poison))
    clean_times, poisoned_times = [], []
    clean_writes = poisoned_writes = stored = 0
    for _ in range(max(args.rounds, 1)):
        seconds, report, store = timed(portfolios, market, frozenset())
        _check((report.succeeded, report.failed) == (len(portfolios), 0), "clean run failed")
        clean_times.append(seconds)
        clean_writes = store.writes
        seconds, report, store = timed(portfolios, market, poisoned)
        _check({f.portfolio_id for f in report.failures} == poisoned, "wrong portfolios failed")
        stored = len(store)
        _check(stored == len(portfolios) - len(poisoned), "an innocent portfolio was lost")
        poisoned_times.append(seconds)
        poisoned_writes = store.writes
    clean, dirty = min(clean_times), min(poisoned_times)
    innocent = len(portfolios) - len(poisoned)
    print(f"portfolios        : {len(portfolios)} x {args.positions} positions")
    print(f"poisoned          : {len(poisoned)}, spread over as many batches")
    print(f"clean run         : {clean:8.3f} s (best of {args.rounds}), {clean_writes} writes")
    print(f"poisoned run      : {dirty:8.3f} s (best of {args.rounds}), {poisoned_writes} writes")
    print(f"innocents stored  : {stored} of {innocent}")
    print(f"ratio             : {dirty / clean:8.2f}x  (target <= 1.5x)")


if __name__ == "__main__":
    main()
