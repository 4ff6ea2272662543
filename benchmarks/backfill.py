"""Benchmark: backfills from a transaction ledger against a bare Decimal loop, side by side.

To run:
    python benchmarks/backfill.py [--years 10] [--tickers 20] [--transactions 500]
                                  [--portfolios 1000] [--portfolio-days 365]

Two scenarios, each timed alternately with its bare loop, several times in this one process:

1. one portfolio, `--years` of daily history over `--tickers` tickers and `--transactions`
   transactions, through ``SnapshotJob.backfill`` (ledger replayed in one pass by
   `LedgerPortfolioRepository`, closes from `InMemoryMarketData`'s `PriceHistory`);
2. `--portfolios` portfolios over `--portfolio-days` days through ``backfill_all``.

The bare loop does the same Decimal work and nothing else: it walks the days, applies each
day's transactions to cash and quantities, multiplies every holding by that day's close,
quantizes, sums, and keeps one tuple per portfolio-day. The script prints the best time of
each side, their ratio (target for the ten-year backfill: within 5x; the second scenario's is
stated) and the number of market-data requests (target: at most one price-history request,
plus one seed request, per batch of portfolios).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import random
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

if __package__ in {None, ""}:  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.daily_run import round_ratios
from portfolio_snapshots import (
    InMemoryMarketData,
    InMemorySnapshotRepository,
    PriceQuote,
    SnapshotJob,
    date_range,
)
from portfolio_snapshots.adapters.ledger import LedgerPortfolioRepository
from portfolio_snapshots.adapters.memory import InMemoryTransactionSource
from portfolio_snapshots.history import Transaction, TransactionKind

K = TransactionKind
CENTS = Decimal("0.01")
END = dt.date(2026, 11, 27)


def ledger(
    rng: random.Random, pid: uuid.UUID, days: list[dt.date], tickers: list[str], count: int
) -> list[Transaction]:
    """A valid ledger: a first deposit, then buys, sells of what is held, deposits, dividends."""
    out = [Transaction(pid, days[0], K.DEPOSIT, amount=Decimal(1_000_000))]
    held: dict[str, Decimal] = {}
    for day in sorted(rng.choice(days) for _ in range(count - 1)):
        roll = rng.random()
        ticker = rng.choice(tickers)
        if roll < 0.5 or not held:
            quantity = Decimal(rng.randint(1, 400)) / 4
            held[ticker] = held.get(ticker, Decimal(0)) + quantity
            out.append(Transaction(pid, day, K.BUY, ticker, quantity, Decimal(rng.randint(10, 90))))
        elif roll < 0.75:
            ticker = rng.choice(sorted(held))
            quantity = held[ticker] / 2
            held[ticker] -= quantity
            out.append(
                Transaction(pid, day, K.SELL, ticker, quantity, Decimal(rng.randint(10, 90)))
            )
        elif roll < 0.9:
            out.append(Transaction(pid, day, K.DEPOSIT, amount=Decimal(rng.randint(100, 5000))))
        else:
            out.append(Transaction(pid, day, K.DIVIDEND, amount=Decimal(rng.randint(1, 300))))
    return out


def closes(rng: random.Random, days: list[dt.date], tickers: list[str]) -> list[PriceQuote]:
    """A random walk of closes per ticker, one a day."""
    quotes = []
    for ticker in tickers:
        price = Decimal(rng.randint(2_000, 9_000)) / 100
        for day in days:
            price = max(Decimal(1), price + Decimal(rng.randint(-100, 100)) / 100)
            quotes.append(PriceQuote(ticker, price, day))
    return quotes


def bare_loop(
    ledgers: list[list[Transaction]], prices: dict[str, dict[dt.date, Decimal]], days: list[dt.date]
) -> list[tuple[object, ...]]:
    """Only the Decimal work of a backfill: replay day by day, value, one tuple a day."""
    out: list[tuple[object, ...]] = []
    for transactions in ledgers:
        cash = Decimal(0)
        held: dict[str, Decimal] = {}
        i = 0
        for day in days:
            while i < len(transactions) and transactions[i].trade_date <= day:
                t = transactions[i]
                if t.kind is K.BUY and t.quantity is not None and t.price is not None:
                    cash -= t.quantity * t.price
                    held[t.ticker or ""] = held.get(t.ticker or "", Decimal(0)) + t.quantity
                elif t.kind is K.SELL and t.quantity is not None and t.price is not None:
                    cash += t.quantity * t.price
                    held[t.ticker or ""] -= t.quantity
                elif t.amount is not None:
                    cash += t.amount
                i += 1
            if i == 0:
                continue
            total = Decimal(0)
            for ticker, quantity in held.items():
                if quantity:
                    total += (quantity * prices[ticker][day]).quantize(CENTS)
            out.append((transactions[0].portfolio_id, day, cash, total, cash + total))
    return out


def run_job(
    transactions: list[Transaction],
    quotes: list[PriceQuote],
    start: dt.date,
    pid: uuid.UUID | None,
) -> tuple[float, int, int, int]:
    """Backfill one portfolio (or everyone, when `pid` is None); return time, stored, requests."""
    source = InMemoryTransactionSource(transactions)
    market = InMemoryMarketData(quotes)
    store = InMemorySnapshotRepository()
    job = SnapshotJob(
        portfolios=LedgerPortfolioRepository(source),
        snapshots=store,
        market_data=market,
        clock=lambda: dt.datetime(2026, 11, 27, 12, tzinfo=dt.UTC),
    )
    gc.collect()
    began = time.perf_counter()
    if pid is None:
        report = asyncio.run(job.backfill_all(start, END))
    else:
        report = asyncio.run(job.backfill(pid, start, END))
    elapsed = time.perf_counter() - began
    if report.failed:
        raise SystemExit(f"the backfill failed: {report.failures[:3]}")
    return elapsed, len(store), market.request_count, report.succeeded


def scenario(
    name: str,
    ledgers: list[list[Transaction]],
    quotes: list[PriceQuote],
    days: list[dt.date],
    rounds: int,
    *,
    everyone: bool,
) -> None:
    """Time one scenario against its bare loop and print the figures."""
    prices: dict[str, dict[dt.date, Decimal]] = {}
    for q in quotes:
        prices.setdefault(q.ticker, {})[q.as_of] = q.price
    transactions = [t for ledger_ in ledgers for t in ledger_]
    pid = None if everyone else ledgers[0][0].portfolio_id
    bare_times, job_times = [], []
    stored = requests = 0
    for _ in range(rounds):
        gc.collect()
        began = time.perf_counter()
        expected = len(bare_loop(ledgers, prices, days))
        bare_times.append(time.perf_counter() - began)
        elapsed, stored, requests, _ = run_job(transactions, quotes, days[0], pid)
        job_times.append(elapsed)
        if stored != expected:
            raise SystemExit(f"stored {stored} snapshots, the bare loop made {expected}")
    bare, job = min(bare_times), min(job_times)
    print(name)
    print(f"  bare Decimal loop : {bare:8.3f} s (best of {rounds})")
    print(f"  job               : {job:8.3f} s (best of {rounds}), {stored} snapshots stored")
    target = "(no target: stated)" if everyone else "(target <= 5x)"
    print(f"  ratio             : {job / bare:8.2f}x  {target}")
    print(f"  per round         : {round_ratios(job_times, bare_times)}")
    print(f"  market requests   : {requests} (seed + history per batch of portfolios)")


def main() -> None:
    """Build both worlds (seeded) and run both scenarios."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--tickers", type=int, default=20)
    parser.add_argument("--transactions", type=int, default=500)
    parser.add_argument("--portfolios", type=int, default=1000)
    parser.add_argument("--portfolio-days", type=int, default=365)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=20261127)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    tickers = [f"T{i:03d}" for i in range(args.tickers)]

    days = date_range(END - dt.timedelta(days=365 * args.years - 1), END)
    pid = uuid.UUID(int=rng.getrandbits(128))
    one = [ledger(rng, pid, days, tickers, args.transactions)]
    scenario(
        f"1 portfolio, {len(days)} days, {args.tickers} tickers, {args.transactions} transactions",
        one,
        closes(rng, days, tickers),
        days,
        args.rounds,
        everyone=False,
    )

    days = date_range(END - dt.timedelta(days=args.portfolio_days - 1), END)
    many = [
        ledger(rng, uuid.UUID(int=rng.getrandbits(128)), days, tickers, 10)
        for _ in range(args.portfolios)
    ]
    scenario(
        f"{args.portfolios} portfolios x {len(days)} days through backfill_all",
        many,
        closes(rng, days, tickers),
        days,
        args.rounds,
        everyone=True,
    )


if __name__ == "__main__":
    main()
