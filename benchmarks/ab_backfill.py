"""Benchmark: the ten-year backfill of this checkout against another version's, in one process.

To run:
    mkdir /tmp/before && git archive COMMIT src | tar -x -C /tmp/before
    python benchmarks/ab_backfill.py --before /tmp/before/src [--years 10] [--rounds 12]

The same method as ``ab_daily_run.py`` (whose loader it uses), on the first scenario of
``backfill.py``: one portfolio, ``--years`` of daily history over ``--tickers`` tickers,
replayed from a ledger of ``--transactions`` transactions and priced from one price-history
request. Both versions get the same seeded ledger and closes; each round backfills with one
version, then the other (the order swapped every round), into a fresh store. It prints each
version's best and median time and the median of the per-round ratios (after / before).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import portfolio_snapshots

if __package__ in {None, ""}:  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.ab_daily_run import alternate, load_before, print_comparison
from benchmarks.backfill import END, closes, ledger


def convert(ps: Any, objects: list[Any]) -> list[Any]:  # noqa: ANN401 - either package
    """The transactions or quotes (built with this checkout) rebuilt with package `ps`."""
    out = []
    for o in objects:
        if type(o).__name__ == "PriceQuote":
            out.append(ps.PriceQuote(o.ticker, o.price, o.as_of, o.currency))
        else:
            history = sys.modules[f"{ps.__name__}.history"]
            fields = {f: getattr(o, f) for f in o.__dataclass_fields__}
            fields["kind"] = history.TransactionKind(o.kind.value)
            out.append(history.Transaction(**fields))
    return out


def backfill_once(ps: Any, transactions: list[Any], quotes: list[Any], start: dt.date) -> float:  # noqa: ANN401
    """Backfill the one portfolio with package `ps` into a fresh store; return the seconds."""
    ledger_adapter = sys.modules[f"{ps.__name__}.adapters.ledger"]
    memory = sys.modules[f"{ps.__name__}.adapters.memory"]
    store = ps.InMemorySnapshotRepository()
    job = ps.SnapshotJob(
        portfolios=ledger_adapter.LedgerPortfolioRepository(
            memory.InMemoryTransactionSource(transactions)
        ),
        snapshots=store,
        market_data=ps.InMemoryMarketData(quotes),
        clock=lambda: dt.datetime(2026, 11, 27, 12, tzinfo=dt.UTC),
    )
    pid = transactions[0].portfolio_id
    gc.collect()
    began = time.process_time()
    report = asyncio.run(job.backfill(pid, start, END))
    elapsed = time.process_time() - began
    if report.failed or not len(store):
        raise SystemExit(f"{ps.__name__}: the backfill failed: {report.failures[:3]}")
    return elapsed


def main() -> None:
    """Build the world once, then alternate the two versions round by round."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="the other version's src")
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--tickers", type=int, default=20)
    parser.add_argument("--transactions", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--seed", type=int, default=20261127)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as into:
        before = load_before(args.before, Path(into))
        for m in ("history", "adapters.ledger", "adapters.memory"):
            __import__(f"{before.__name__}.{m}")
            __import__(f"portfolio_snapshots.{m}")
        rng = random.Random(args.seed)
        tickers = [f"T{i:03d}" for i in range(args.tickers)]
        days = portfolio_snapshots.date_range(END - dt.timedelta(days=365 * args.years - 1), END)
        pid = uuid.UUID(int=rng.getrandbits(128))
        transactions = ledger(rng, pid, days, tickers, args.transactions)
        quotes = closes(rng, days, tickers)
        converted = (convert(before, transactions), convert(before, quotes))
        times, ratios = alternate(
            args.rounds,
            lambda: backfill_once(before, *converted, days[0]),
            lambda: backfill_once(portfolio_snapshots, transactions, quotes, days[0]),
        )
    print(f"1 portfolio, {len(days)} days, {args.tickers} tickers, {args.rounds} rounds (CPU time)")
    print_comparison(times, ratios)


if __name__ == "__main__":
    main()
