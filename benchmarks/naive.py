"""Benchmark: `SnapshotJob.run_daily` against the naive one-portfolio-at-a-time job.

To run:
    python benchmarks/naive.py [--portfolios 2000] [--positions 10] [--tickers 500]

The naive job is the original design: list the ids, load each portfolio, await one price
call per holding, value it, save its snapshot on its own. Both sides use the same seeded
world, the same in-memory stores and the same provider: per-ticker lookups only, each call
waiting 1 ms (``asyncio.sleep(0.001)``, about 1.1 ms on Linux). The library's side wraps the
provider in `PerTickerMarketData` (8 lookups in flight) and runs ``run_daily`` with its
defaults (batches of 500, 4 in flight).

It prints each side's time and calls, their ratio (target: at least 100x faster) and checks
that both stored the same total for every portfolio.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import time
import uuid
from decimal import Decimal

from portfolio_snapshots import (
    InMemoryPortfolioRepository,
    InMemorySnapshotRepository,
    Portfolio,
    PriceQuote,
    SnapshotJob,
    value_portfolio,
)
from portfolio_snapshots.adapters.per_ticker import PerTickerMarketData

DAY = dt.date(2026, 11, 27)
NOW = dt.datetime(2026, 11, 27, 23, tzinfo=dt.UTC)
LATENCY = 0.001


class Provider:
    """Answers one ticker per call after `LATENCY` seconds, and counts the calls."""

    def __init__(self, prices: dict[str, Decimal]) -> None:
        self.prices = prices
        self.calls = 0

    async def fetch(self, ticker: str, as_of: dt.date) -> Decimal | None:  # noqa: ARG002 - the port's signature
        """Return the ticker's close, after the latency."""
        self.calls += 1
        await asyncio.sleep(LATENCY)
        return self.prices.get(ticker)


def build(
    n: int, positions: int, n_tickers: int, seed: int
) -> tuple[list[Portfolio], dict[str, Decimal]]:
    """Return seeded portfolios and one close per ticker."""
    rng = random.Random(seed)
    tickers = [f"T{i:04d}" for i in range(n_tickers)]
    prices = {t: Decimal(rng.randint(100, 500_000)) / 100 for t in tickers}
    portfolios = [
        Portfolio(
            uuid.UUID(int=rng.getrandbits(128)),
            Decimal(rng.randint(0, 10_000_000)) / 100,
            {t: Decimal(rng.randint(1, 100_000)) / 1000 for t in rng.sample(tickers, positions)},
        )
        for _ in range(n)
    ]
    return portfolios, prices


async def naive_job(
    repo: InMemoryPortfolioRepository, provider: Provider, store: InMemorySnapshotRepository
) -> None:
    """List the ids, then load, price (one call per holding), value and save each portfolio."""
    ids = [p.id async for p in repo.iter_portfolios(DAY)]
    for portfolio_id in ids:
        portfolio = await repo.get_portfolio(portfolio_id, DAY)
        if portfolio is None:
            continue
        quotes: dict[str, PriceQuote] = {}
        for ticker in portfolio.holdings:
            price = await provider.fetch(ticker, DAY)
            if price is not None:
                quotes[ticker] = PriceQuote(ticker, price, DAY)
        await store.upsert_many([value_portfolio(portfolio, quotes, DAY)])


async def library_job(
    repo: InMemoryPortfolioRepository, provider: Provider, store: InMemorySnapshotRepository
) -> None:
    """One ``run_daily`` over the per-ticker provider."""
    job = SnapshotJob(
        portfolios=repo,
        snapshots=store,
        market_data=PerTickerMarketData(provider.fetch),
        clock=lambda: NOW,
    )
    report = await job.run_daily(DAY)
    if report.failed:
        raise SystemExit(f"the run failed: {report.failures[:3]}")


def totals(store: InMemorySnapshotRepository) -> dict[uuid.UUID, Decimal]:
    """Each portfolio's stored total value."""
    return {s.portfolio_id: s.total_value for s in store.all()}


def measure(portfolios: int, positions: int, tickers: int, seed: int) -> dict[str, float]:
    """Run both sides once each on the same world; return times, calls and the ratio."""
    world, prices = build(portfolios, positions, tickers, seed)
    repo = InMemoryPortfolioRepository(world)
    results: dict[str, float] = {}
    stores: list[InMemorySnapshotRepository] = []
    for name, side in (("naive", naive_job), ("library", library_job)):
        provider, store = Provider(prices), InMemorySnapshotRepository()
        start = time.perf_counter()
        asyncio.run(side(repo, provider, store))
        results[f"{name}_s"] = time.perf_counter() - start
        results[f"{name}_calls"] = provider.calls
        stores.append(store)
    naive_totals, library_totals = (totals(s) for s in stores)
    if naive_totals != library_totals or len(naive_totals) != portfolios:
        raise SystemExit("the two jobs stored different totals")
    results["ratio"] = results["naive_s"] / results["library_s"]
    return results


def main() -> None:
    """Parse arguments, run both jobs, print the figures."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--portfolios", type=int, default=2_000)
    parser.add_argument("--positions", type=int, default=10)
    parser.add_argument("--tickers", type=int, default=500)
    parser.add_argument("--seed", type=int, default=20261127)
    args = parser.parse_args()
    r = measure(args.portfolios, args.positions, args.tickers, args.seed)
    print(f"{args.portfolios} portfolios x {args.positions} positions over {args.tickers} tickers")
    print(f"naive job         : {r['naive_s']:8.3f} s, {r['naive_calls']:.0f} price calls")
    print(f"run_daily         : {r['library_s']:8.3f} s, {r['library_calls']:.0f} price calls")
    print("totals            : the same for every portfolio")
    print(f"speed-up          : {r['ratio']:8.2f}x  (target >= 100x)")


if __name__ == "__main__":
    main()
