"""Benchmark: peak memory of a daily run streamed from a generator into the SQLite store.

To run:
    python benchmarks/memory.py [--sizes 100000,1000000] [--positions 10] [--tickers 2000]
                                [--ordered]

For each size, a fresh subprocess (so one size's peak cannot hide another's) runs
``run_daily`` over a repository that generates its portfolios on the fly (nothing held in a
list) into a new `SqliteSnapshotStore` file, then reports its peak resident set size
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) and the time taken. It prints each size's
peak, the ratio of the largest size's peak to the smallest's (target: flat, within 1.5x) and
whether every peak is under 200 MB.

Portfolio ids are random, as a host's come from a table read without ``ORDER BY``; with
``--ordered`` the repository yields them by increasing id, as one reading ``ORDER BY id``
does, so the store's rows arrive in key order (see docs/storage.md, "SQLite write order").
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from portfolio_snapshots import Portfolio, PriceQuote, SnapshotJob, SqliteSnapshotStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Collection

DAY = dt.date(2026, 11, 27)
NOW = dt.datetime(2026, 11, 27, 23, tzinfo=dt.UTC)
LIMIT_MB = 200


class Generated:
    """`count` seeded portfolios, generated as the stream is read; none is kept."""

    def __init__(self, count: int, positions: int, tickers: int, *, ordered: bool = False) -> None:
        self.count, self.positions, self.ordered = count, positions, ordered
        self.tickers = [f"T{i:05d}" for i in range(tickers)]

    async def iter_portfolios(self, as_of: dt.date) -> AsyncIterator[Portfolio]:  # noqa: ARG002 - the port's signature
        """Yield the portfolios one by one (by increasing id when `ordered`)."""
        rng = random.Random(1)
        last = 0
        for _ in range(self.count):
            if self.ordered:  # random steps averaging 2**127 / count: below 2**128 in all
                last += 1 + rng.getrandbits(max(1, 127 - self.count.bit_length()))
                number = last
            else:
                number = rng.getrandbits(128)
            yield Portfolio(
                uuid.UUID(int=number),
                Decimal(rng.randint(0, 10_000_000)) / 100,
                {
                    t: Decimal(rng.randint(1, 100_000)) / 1000
                    for t in rng.sample(self.tickers, self.positions)
                },
            )

    async def get_portfolio(self, portfolio_id: uuid.UUID, as_of: dt.date) -> Portfolio | None:  # noqa: ARG002 - the port's signature
        """Not needed by a daily run."""
        return None


class Prices:
    """One close per ticker."""

    async def get_prices(self, tickers: Collection[str], as_of: dt.date) -> dict[str, PriceQuote]:
        """Return a close for each ticker."""
        return {t: PriceQuote(t, Decimal(int(t[1:]) + 100) / 100, as_of) for t in tickers}


async def one_run(count: int, positions: int, tickers: int, path: Path, *, ordered: bool) -> int:
    """Run the daily job into a new store; return the snapshots stored."""
    async with await SqliteSnapshotStore.open(path) as store:
        job = SnapshotJob(
            portfolios=Generated(count, positions, tickers, ordered=ordered),
            snapshots=store,
            market_data=Prices(),
            clock=lambda: NOW,
        )
        report = await job.run_daily(DAY)
        return report.succeeded


def child(count: int, positions: int, tickers: int, *, ordered: bool) -> None:
    """Measure one size in this process and print it as JSON."""
    with tempfile.TemporaryDirectory(prefix="ps-memory-") as folder:
        start = time.perf_counter()
        path = Path(folder) / "s.sqlite3"
        stored = asyncio.run(one_run(count, positions, tickers, path, ordered=ordered))
        elapsed = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"count": count, "stored": stored, "seconds": elapsed, "peak_mb": peak_mb}))


def measure(
    sizes: list[int], positions: int, tickers: int, *, ordered: bool
) -> list[dict[str, float]]:
    """Measure each size in its own subprocess."""
    results = []
    for count in sizes:
        out = subprocess.run(  # noqa: S603 - this interpreter, this script
            [
                sys.executable,
                __file__,
                "--child",
                str(count),
                "--positions",
                str(positions),
                "--tickers",
                str(tickers),
                *(["--ordered"] if ordered else []),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def main() -> None:
    """Parse arguments; measure each size in a subprocess, or one size as the child."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--positions", type=int, default=10)
    parser.add_argument("--tickers", type=int, default=2_000)
    parser.add_argument(
        "--ordered", action="store_true", help="portfolios by increasing id (ORDER BY id)"
    )
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.positions, args.tickers, ordered=args.ordered)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    results = measure(sizes, args.positions, args.tickers, ordered=args.ordered)
    if args.ordered:
        print("portfolios yielded by increasing id")
    for r in results:
        print(
            f"{r['count']:>9,.0f} portfolios : peak RSS {r['peak_mb']:6.1f} MB, "
            f"{r['seconds']:7.1f} s, {r['stored']:,.0f} stored"
        )
    peaks = [r["peak_mb"] for r in results]
    print(f"peak RSS, largest : {max(peaks):8.1f} MB  (target < {LIMIT_MB} MB)")
    print(f"memory growth     : {peaks[-1] / peaks[0]:8.2f}x  (target <= 1.5x)")


if __name__ == "__main__":
    main()
