"""Benchmark: `SnapshotJob.run_daily` against a bare Decimal loop, side by side.

To run:
    python benchmarks/daily_run.py [--portfolios 100000] [--positions 10] [--tickers 2000]
                                   [--rounds 3] [--cost-basis] [--gc]

Builds a seeded world (portfolios x positions over a ticker universe), loads the in-memory
adapters, then times, alternately and several times in this one process:

- the bare loop: only the Decimal work (quantity x price, quantize, sum, one tuple per
  portfolio), with prices already in a dict;
- ``run_daily``: streaming, batching, one ``get_prices`` call per batch, validation, valuation
  into snapshot values, and the in-memory upsert.

It prints the best time of each, their ratio, the median of the rounds' own ratios (each
round times both sides a second apart, at one speed of a shared machine whose speed drifts
from minute to minute) and the number of ``get_prices`` calls: at most one per batch, and in
fact fewer, since a batch asks only for the tickers no earlier batch of the run asked for.
Target: ratio within 4x.

With ``--cost-basis`` a third run is timed beside them: the same portfolios, each carrying its
books (`Accounting`: a cost basis per holding, realized gain, income, fees and taxes) as a
ledger-backed repository supplies them, so the job values every position's unrealized gain
too; its ratio to the same bare loop states what the books cost.

With ``--gc`` it also counts, per round and generation, the garbage collector's passes made
while each side was timed, and the seconds they took: a run keeps every snapshot it makes
until its batch is written, and the collector walks them.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import gc
import random
import statistics
import time
import uuid
from decimal import Decimal

from portfolio_snapshots import (
    InMemoryMarketData,
    InMemoryPortfolioRepository,
    InMemorySnapshotRepository,
    Portfolio,
    SnapshotJob,
)
from portfolio_snapshots.history import Accounting

DAY = dt.date(2026, 11, 27)
CENTS = Decimal("0.01")


def build(
    n_portfolios: int, n_positions: int, n_tickers: int, seed: int, *, books: bool = False
) -> tuple[list[Portfolio], dict[str, Decimal]]:
    """Return seeded portfolios and one close per ticker (with their books, if `books`)."""
    rng = random.Random(seed)
    tickers = [f"T{i:05d}" for i in range(n_tickers)]
    prices = {t: Decimal(rng.randint(100, 500_000)) / 100 for t in tickers}
    portfolios = [
        Portfolio(
            uuid.UUID(int=rng.getrandbits(128)),
            Decimal(rng.randint(0, 10_000_000)) / 100,
            {t: Decimal(rng.randint(1, 100_000)) / 1000 for t in rng.sample(tickers, n_positions)},
        )
        for _ in range(n_portfolios)
    ]
    if books:
        portfolios = [dataclasses.replace(p, accounting=_books(p, prices, rng)) for p in portfolios]
    return portfolios, prices


def _books(portfolio: Portfolio, prices: dict[str, Decimal], rng: random.Random) -> Accounting:
    """Seeded books: each holding bought at up to 20 % off or above today's close."""
    cost = {
        ticker: (quantity * prices[ticker] * Decimal(rng.randint(80, 120)) / 100).quantize(CENTS)
        for ticker, quantity in portfolio.holdings.items()
    }
    return Accounting(
        cost_basis=cost,
        realized_gain=Decimal(rng.randint(-10_000, 10_000)) / 100,
        dividends=Decimal(rng.randint(0, 10_000)) / 100,
        interest=Decimal(0),
        fees=Decimal(rng.randint(0, 1_000)) / 100,
        taxes=Decimal(0),
        net_transfers=Decimal(0),
    )


def bare_loop(
    portfolios: list[Portfolio], prices: dict[str, Decimal]
) -> list[tuple[uuid.UUID, Decimal, Decimal, Decimal]]:
    """Only the Decimal work, one tuple per portfolio: the floor any implementation pays."""
    out = []
    for p in portfolios:
        total = Decimal(0)
        for ticker, quantity in p.holdings.items():
            total += (quantity * prices[ticker]).quantize(CENTS)
        out.append((p.id, p.cash_balance, total, p.cash_balance + total))
    return out


def timed_job(
    repo: InMemoryPortfolioRepository,
    market: InMemoryMarketData,
    batch_size: int,
    collector: Collections | None = None,
    side: str = "run_daily",
) -> tuple[float, int, int]:
    """Run one daily run into a fresh store; return seconds, snapshots stored, price calls.

    The collector, when given, counts the collections of the run as `side`'s: those made
    while the clock runs, not the full collection made before it starts.
    """
    store = InMemorySnapshotRepository()
    job = SnapshotJob(
        portfolios=repo,
        snapshots=store,
        market_data=market,
        clock=lambda: dt.datetime(2026, 11, 27, 0, 1, tzinfo=dt.UTC),
        batch_size=batch_size,
    )
    calls_before = market.request_count
    gc.collect()
    if collector is not None:
        collector.side = side
    start = time.perf_counter()
    report = asyncio.run(job.run_daily())
    elapsed = time.perf_counter() - start
    if collector is not None:
        collector.side = None
    if report.succeeded != len(repo):
        raise SystemExit(
            f"run_daily stored {report.succeeded} of {len(repo)}: {report.failures[:3]}"
        )
    return elapsed, len(store), market.request_count - calls_before


class Collections:
    """A `gc.callbacks` entry: the collections of each side and the seconds they took."""

    def __init__(self) -> None:
        self.side: str | None = None
        self.began = 0.0
        self.seen: dict[tuple[str, int], list[float]] = {}

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        """Time each collection made while a side is being timed."""
        if self.side is None:
            return
        if phase == "start":
            self.began = time.perf_counter()
            return
        entry = self.seen.setdefault((self.side, info["generation"]), [0, 0.0])
        entry[0] += 1
        entry[1] += time.perf_counter() - self.began

    def said(self, side: str, rounds: int) -> str:
        """The side's collections per round, by generation, with their seconds."""
        parts = []
        for generation in (0, 1, 2):
            count, seconds = self.seen.get((side, generation), [0, 0.0])
            parts.append(f"gen{generation} {count / rounds:5.1f} x, {seconds / rounds:6.3f} s")
        return " | ".join(parts) + " (per round)"


def round_ratios(times: list[float], bare_times: list[float]) -> str:
    """The median of the rounds' own ratios, and their range, in words.

    Each round times the bare loop and the run a second apart, so a round's ratio is measured
    at one speed of a shared machine, which drifts by tens of percent from minute to minute;
    the ratio of the best times pairs two rounds that may be minutes apart.
    """
    ratios = sorted(t / b for t, b in zip(times, bare_times, strict=True))
    return (
        f"| median of rounds {statistics.median(ratios):.2f}x ({ratios[0]:.2f} to {ratios[-1]:.2f})"
    )


def main() -> None:
    """Parse arguments, build the world, time the sides and print the ratios."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--portfolios", type=int, default=100_000)
    parser.add_argument("--positions", type=int, default=10)
    parser.add_argument("--tickers", type=int, default=2_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20261127)
    parser.add_argument(
        "--cost-basis", action="store_true", help="every portfolio carries its books"
    )
    parser.add_argument(
        "--gc", action="store_true", help="count the collector's passes on each side and time them"
    )
    args = parser.parse_args()

    portfolios, prices = build(args.portfolios, args.positions, args.tickers, args.seed)
    repo = InMemoryPortfolioRepository(portfolios)
    market = InMemoryMarketData()
    for ticker, price in prices.items():
        market.add_price(ticker, DAY, price)
    with_books = (
        InMemoryPortfolioRepository(
            build(args.portfolios, args.positions, args.tickers, args.seed, books=True)[0]
        )
        if args.cost_basis
        else None
    )

    bare_times, job_times, books_times = [], [], []
    calls = stored = 0
    collector = Collections()
    if args.gc:
        gc.callbacks.append(collector)
    for _ in range(args.rounds):
        gc.collect()
        collector.side = "bare"
        start = time.perf_counter()
        bare_loop(portfolios, prices)
        bare_times.append(time.perf_counter() - start)
        collector.side = None
        elapsed, stored, calls = timed_job(repo, market, args.batch_size, collector)
        job_times.append(elapsed)
        if with_books is not None:
            books_times.append(timed_job(with_books, market, args.batch_size)[0])

    bare, job = min(bare_times), min(job_times)
    expected_calls = -(-args.portfolios // args.batch_size)
    print(f"{args.portfolios} portfolios x {args.positions} positions over {args.tickers} tickers")
    print(f"bare Decimal loop : {bare:8.3f} s (best of {args.rounds})")
    print(f"run_daily         : {job:8.3f} s (best of {args.rounds}), {stored} snapshots stored")
    rounds = round_ratios(job_times, bare_times)
    print(f"ratio             : {job / bare:8.2f}x  (target <= 4x) {rounds}")
    if books_times:
        books = min(books_times)
        print(f"run_daily, books  : {books:8.3f} s (best of {args.rounds}), cost basis per holding")
        print(
            f"ratio, with books : {books / bare:8.2f}x  (no target: what the books cost) "
            f"{round_ratios(books_times, bare_times)}"
        )
    if args.gc:
        gc.callbacks.remove(collector)
        for side in ("bare", "run_daily"):
            print(f"collector, {side:9s}: {collector.said(side, args.rounds)}")
    print(
        f"get_prices calls  : {calls} per run (at most one per batch: {expected_calls} batches "
        f"of {args.batch_size}; each ticker is asked for once per run)"
    )


if __name__ == "__main__":
    main()
