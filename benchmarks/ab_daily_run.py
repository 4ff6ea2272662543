"""Benchmark: the daily run of this checkout against another version's, in one process.

To run:
    mkdir /tmp/before && git archive COMMIT src | tar -x -C /tmp/before
    python benchmarks/ab_daily_run.py --before /tmp/before/src [--portfolios 100000] [--rounds 8]

On a shared machine two runs of a benchmark, one after the other, differ by 10 to 30 %;
alternating the two versions round by round in one process, on the same seeded data, shows a
difference of a few percent. The other version's package is copied under the name
``portfolio_snapshots_before`` (its imports rewritten) and imported beside this one; each
builds its own portfolios (same seed), in-memory adapters and job. Each round runs
``run_daily`` with one version, then the other (the order swapped every round), into a fresh
store. It prints each version's best and median time, and the median of the per-round ratios
(after / before): 1.00 is no change.

With ``--once before`` (or ``after``) it builds that side alone and runs it once, and with
``--no-run`` only builds it: under ``valgrind --tool=cachegrind`` (with ``PYTHONHASHSEED=0``)
the difference of the two gives the instructions and simulated cache misses of the run
alone, counts that do not depend on the machine's load.

With ``--stream``, the portfolios are generated as the stream is read (nothing held in a
list) and the store keeps only a count, so a million portfolios fit in memory; the run then
times streaming, admission (with the repeated-id check), pricing, valuation and the batch
calls, without a store's own costs.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import importlib
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import portfolio_snapshots

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Collection, Iterable
    from types import ModuleType

DAY = dt.date(2026, 11, 27)
NOW = dt.datetime(2026, 11, 27, 0, 1, tzinfo=dt.UTC)
BEFORE = "portfolio_snapshots_before"


def load_before(src: Path, into: Path) -> ModuleType:
    """Copy the package under `src` into `into` as `BEFORE`, rewrite its imports, import it."""
    target = into / BEFORE
    shutil.copytree(src / "portfolio_snapshots", target)
    pattern = re.compile(r"\bportfolio_snapshots(?=[.\s])")
    for path in target.rglob("*.py"):
        path.write_text(pattern.sub(BEFORE, path.read_text()))
    sys.path.insert(0, str(into))
    return importlib.import_module(BEFORE)


class Generated:
    """`count` seeded portfolios of a package, generated as the stream is read."""

    def __init__(self, ps: Any, count: int, positions: int, tickers: list[str]) -> None:  # noqa: ANN401 - either package
        self.ps, self.count, self.positions, self.tickers = ps, count, positions, tickers

    def __len__(self) -> int:
        """The number of portfolios."""
        return self.count

    async def iter_portfolios(self, as_of: dt.date) -> AsyncIterator[Any]:  # noqa: ARG002 - the port's signature
        """Yield the portfolios one by one."""
        rng = random.Random(1)
        portfolio = self.ps.Portfolio
        for _ in range(self.count):
            yield portfolio(
                uuid.UUID(int=rng.getrandbits(128)),
                Decimal(rng.randint(0, 10_000_000)) / 100,
                {
                    t: Decimal(rng.randint(1, 100_000)) / 1000
                    for t in rng.sample(self.tickers, self.positions)
                },
            )

    async def get_portfolio(self, portfolio_id: uuid.UUID, as_of: dt.date) -> None:
        """Not needed by a daily run."""


class Counted:
    """A snapshot store that keeps only how many snapshots it was given."""

    def __init__(self) -> None:
        self.count = 0

    def __len__(self) -> int:
        """The number of snapshots written."""
        return self.count

    async def upsert_many(self, snapshots: Collection[object], *, fence: int | None = None) -> None:  # noqa: ARG002 - the port's signature
        """Count the batch."""
        self.count += len(snapshots)

    async def existing_keys(self, keys: Iterable[tuple[uuid.UUID, dt.date]]) -> set[object]:  # noqa: ARG002 - the port's signature
        """Nothing is kept."""
        return set()

    async def get_snapshot(self, portfolio_id: uuid.UUID, day: dt.date) -> None:
        """Nothing is kept."""

    async def list_snapshots(
        self,
        portfolio_id: uuid.UUID,  # noqa: ARG002 - the port's signature
        start: dt.date,  # noqa: ARG002
        end: dt.date,  # noqa: ARG002
    ) -> list[object]:
        """Nothing is kept."""
        return []

    async def existing_dates(
        self,
        portfolio_id: uuid.UUID,  # noqa: ARG002 - the port's signature
        start: dt.date,  # noqa: ARG002
        end: dt.date,  # noqa: ARG002
    ) -> set[dt.date]:
        """Nothing is kept."""
        return set()


class Side:
    """One version's data, adapters and a way to time its daily run."""

    def __init__(self, ps: Any, args: argparse.Namespace) -> None:  # noqa: ANN401 - either package
        self.ps = ps
        rng = random.Random(args.seed)
        tickers = [f"T{i:05d}" for i in range(args.tickers)]
        self.market = ps.InMemoryMarketData()
        for t in tickers:
            self.market.add_price(t, DAY, Decimal(rng.randint(100, 500_000)) / 100)
        self.repo: Any
        if args.stream:
            self.repo = Generated(ps, args.portfolios, args.positions, tickers)
        else:
            self.repo = ps.InMemoryPortfolioRepository(
                [
                    ps.Portfolio(
                        uuid.UUID(int=rng.getrandbits(128)),
                        Decimal(rng.randint(0, 10_000_000)) / 100,
                        {
                            t: Decimal(rng.randint(1, 100_000)) / 1000
                            for t in rng.sample(tickers, args.positions)
                        },
                    )
                    for _ in range(args.portfolios)
                ]
            )
        self.stream = args.stream
        self.clock = time.process_time if args.cpu else time.perf_counter

    def run(self) -> float:
        """Run one daily run into a fresh store; return the seconds it took."""
        store = Counted() if self.stream else self.ps.InMemorySnapshotRepository()
        job = self.ps.SnapshotJob(
            portfolios=self.repo, snapshots=store, market_data=self.market, clock=lambda: NOW
        )
        gc.collect()
        start = self.clock()
        report = asyncio.run(job.run_daily())
        elapsed = self.clock() - start
        if report.succeeded != len(self.repo) or len(store) != len(self.repo):
            raise SystemExit(f"stored {report.succeeded} of {len(self.repo)}")
        return elapsed


def main() -> None:
    """Parse arguments, load both versions, alternate their daily runs, print the ratio."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="the other version's src")
    parser.add_argument("--portfolios", type=int, default=100_000)
    parser.add_argument("--positions", type=int, default=10)
    parser.add_argument("--tickers", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seed", type=int, default=20261127)
    parser.add_argument("--stream", action="store_true", help="generated portfolios, no store")
    parser.add_argument("--cpu", action="store_true", help="time process CPU, not the wall clock")
    parser.add_argument(
        "--once",
        choices=["before", "after"],
        help="build one side and run it once, for a profiler (see the docstring)",
    )
    parser.add_argument("--no-run", action="store_true", help="with --once: only build")
    args = parser.parse_args()
    if args.once:
        with tempfile.TemporaryDirectory(prefix="ps-ab-") as folder:
            ps = load_before(args.before, Path(folder)) if args.once == "before" else None
            side = Side(ps or portfolio_snapshots, args)
            if not args.no_run:
                print(f"{args.once}: {side.run():.3f} s")
        return
    with tempfile.TemporaryDirectory(prefix="ps-ab-") as folder:
        before = Side(load_before(args.before, Path(folder)), args)
        after = Side(portfolio_snapshots, args)
        times, ratios = alternate(args.rounds, before.run, after.run)
    kind = "streamed, counted" if args.stream else "in memory"
    print(
        f"{args.portfolios} portfolios x {args.positions} positions ({kind}), {args.rounds} rounds"
    )
    print_comparison(times, ratios)


def alternate(
    rounds: int, before: Callable[[], float], after: Callable[[], float], *, unit: str = "s"
) -> tuple[dict[str, list[float]], list[float]]:
    """Time `before` and `after` round by round, the order swapped every round.

    Each returns its time, in `unit` (only printed).

    Returns:
        Each side's times, and each round's ratio (after / before).
    """
    times: dict[str, list[float]] = {"before": [], "after": []}
    ratios = []
    for i in range(rounds):
        order = [("before", before), ("after", after)]
        if i % 2:
            order.reverse()
        got = {name: run() for name, run in order}
        for name, seconds in got.items():
            times[name].append(seconds)
        ratios.append(got["after"] / got["before"])
        print(
            f"round {i + 1}: before {got['before']:7.3f} {unit}, after {got['after']:7.3f} {unit}"
        )
    return times, ratios


def print_comparison(times: dict[str, list[float]], ratios: list[float], unit: str = "s") -> None:
    """Print each side's best and median time (in `unit`), and the ratios after / before."""
    for name, ts in times.items():
        best, median = min(ts), statistics.median(ts)
        print(f"{name:6s}: best {best:7.3f} {unit}, median {median:7.3f} {unit}")
    print(
        f"after / before: best {min(times['after']) / min(times['before']):.3f}, "
        f"median of round ratios {statistics.median(ratios):.3f} "
        f"(from {min(ratios):.3f} to {max(ratios):.3f})"
    )


if __name__ == "__main__":
    main()
