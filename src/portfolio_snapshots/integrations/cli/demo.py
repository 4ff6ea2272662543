"""The demo's world: three portfolios with transaction ledgers and a shipped price history.

``portfolio-snapshots demo`` runs the job on it; `open_demo_job` builds that job for any
other use, and `app` is a ``--app`` factory, so every other command works on the demo's
database too::

    portfolio-snapshots --app portfolio_snapshots.integrations.cli.demo:app show --portfolio ...

The shipped history (package data, made by ``scripts/make_demo_data.py`` from a fixed seed)
holds weekday closes from 2024-01-02 to 2025-06-30 of ACME, GLBX, INIT and WIDE in USD and
BRLN in EUR, with EUR/USD rates. ACME splits 4-for-1 with ex-date 2024-09-16, and the file is
split-adjusted, as providers' downloads are: `CsvMarketData` serves it as traded through
`unadjust_splits`, with the split taken from the ledgers.

The demo's "today" is the last date of the shipped history (2025-06-30), not the machine's
date, so its numbers are the same on every machine and every day: the job's clock is fixed
at 22:00 UTC that day. Pass another date (``--today``, or `today=`) to see an earlier state.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.resources
import os
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING

from portfolio_snapshots import SnapshotJob, SqliteSnapshotStore
from portfolio_snapshots.adapters.csv import CsvFxRates, CsvMarketData
from portfolio_snapshots.adapters.ledger import LedgerPortfolioRepository
from portfolio_snapshots.adapters.memory import InMemoryTransactionSource
from portfolio_snapshots.history import Transaction, TransactionKind

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping

    from portfolio_snapshots.events import EventHook

__all__ = [
    "DB_ENV",
    "DEFAULT_DB",
    "PORTFOLIOS",
    "SPLITS",
    "TODAY_ENV",
    "app",
    "demo_fx_rates",
    "demo_market_data",
    "demo_today",
    "demo_transactions",
    "open_demo_job",
]

#: The SQLite file the demo creates in the current folder unless told otherwise.
DEFAULT_DB = "portfolio-snapshots-demo.sqlite3"
#: The environment variable `app` reads the database path from.
DB_ENV = "PORTFOLIO_SNAPSHOTS_DEMO_DB"
#: The environment variable `app` reads the demo's "today" from (YYYY-MM-DD).
TODAY_ENV = "PORTFOLIO_SNAPSHOTS_DEMO_TODAY"

#: The demo's portfolios by name: fixed ids, so commands can name them.
PORTFOLIOS: Mapping[str, uuid.UUID] = {
    "Ada": uuid.UUID("00000000-0000-4000-8000-0000000000ad"),
    "Ben": uuid.UUID("00000000-0000-4000-8000-0000000000be"),
    "Cleo": uuid.UUID("00000000-0000-4000-8000-0000000000c1"),
}

#: The splits in the shipped history: ACME 4-for-1, ex-date 2024-09-16.
SPLITS: Mapping[str, tuple[tuple[dt.date, Decimal], ...]] = {
    "ACME": ((dt.date(2024, 9, 16), Decimal(4)),)
}

_DATA = "portfolio_snapshots.integrations.cli"


def _data_file(name: str) -> contextlib.AbstractContextManager[os.PathLike[str]]:
    return importlib.resources.as_file(importlib.resources.files(_DATA) / "demo_data" / name)


def demo_market_data() -> CsvMarketData:
    """Return the shipped closes, served as traded (the ACME split undone)."""
    with _data_file("prices.csv") as path:
        return CsvMarketData(path, split_adjusted=True, splits=SPLITS)


def demo_fx_rates() -> CsvFxRates:
    """Return the shipped EUR/USD rates."""
    with _data_file("fx.csv") as path:
        return CsvFxRates(path)


def demo_today() -> dt.date:
    """Return the demo's default "today": the last date of the shipped history."""
    last = demo_market_data().last_date
    if last is None:  # pragma: no cover - the shipped file has rows
        raise RuntimeError("the shipped price history is empty")
    return last


def _first_weekdays(start: dt.date, end: dt.date) -> list[dt.date]:
    """The first Monday-to-Friday of each month from `start`'s month to `end`."""
    days = []
    year, month = start.year, start.month
    while (year, month) <= (end.year, end.month):
        day = dt.date(year, month, 1)
        while day.weekday() >= 5:  # noqa: PLR2004 - Saturday is 5
            day += dt.timedelta(days=1)
        if start <= day <= end:
            days.append(day)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)  # noqa: PLR2004
    return days


def demo_transactions() -> list[Transaction]:
    """Return the three portfolios' ledgers, in USD, in date order per portfolio.

    - Ada deposits 20,000 on 2024-01-02 and 500 on the first weekday of every month after,
      buys ACME (20 before the 4-for-1 split, 20 after), GLBX and BRLN (a EUR stock, paid in
      USD), receives a dividend and sells some GLBX.
    - Ben deposits 50,000 on 2024-03-01, buys WIDE and INIT, receives two dividends, and
      withdraws 5,000 and pays a fee on 2025-01-15.
    - Cleo opens on 2024-10-01 with 8,000, buys ACME after its split and BRLN, and earns
      interest.
    """
    ada, ben, cleo = PORTFOLIOS["Ada"], PORTFOLIOS["Ben"], PORTFOLIOS["Cleo"]
    d = dt.date
    buy, sell = TransactionKind.BUY, TransactionKind.SELL
    txs = [
        Transaction(ada, d(2024, 1, 2), TransactionKind.DEPOSIT, amount=Decimal("20000.00")),
        Transaction(ada, d(2024, 1, 2), buy, "ACME", Decimal(20), Decimal("393.60")),
        Transaction(ada, d(2024, 1, 2), buy, "GLBX", Decimal(40), Decimal("152.30")),
        Transaction(ada, d(2024, 4, 2), buy, "BRLN", Decimal(50), Decimal("69.04")),
        Transaction(ada, d(2024, 9, 16), TransactionKind.SPLIT, "ACME", ratio=Decimal(4)),
        Transaction(
            ada, d(2024, 11, 4), buy, "ACME", Decimal(20), Decimal("150.90"), fee=Decimal(1)
        ),
        Transaction(
            ada, d(2024, 12, 16), TransactionKind.DIVIDEND, "GLBX", amount=Decimal("36.00")
        ),
        Transaction(
            ada, d(2025, 3, 3), sell, "GLBX", Decimal(10), Decimal("170.91"), fee=Decimal(1)
        ),
        *(
            Transaction(ada, day, TransactionKind.DEPOSIT, amount=Decimal("500.00"))
            for day in _first_weekdays(d(2024, 2, 1), d(2025, 6, 30))
        ),
        Transaction(ben, d(2024, 3, 1), TransactionKind.DEPOSIT, amount=Decimal("50000.00")),
        Transaction(ben, d(2024, 3, 1), buy, "WIDE", Decimal(100), Decimal("257.25")),
        Transaction(ben, d(2024, 3, 1), buy, "INIT", Decimal(200), Decimal("52.30")),
        Transaction(
            ben, d(2024, 6, 21), TransactionKind.DIVIDEND, "WIDE", amount=Decimal("150.00")
        ),
        Transaction(
            ben, d(2024, 12, 20), TransactionKind.DIVIDEND, "WIDE", amount=Decimal("160.00")
        ),
        Transaction(ben, d(2025, 1, 15), TransactionKind.WITHDRAWAL, amount=Decimal("5000.00")),
        Transaction(ben, d(2025, 1, 15), TransactionKind.FEE, amount=Decimal("25.00")),
        Transaction(cleo, d(2024, 10, 1), TransactionKind.DEPOSIT, amount=Decimal("8000.00")),
        Transaction(cleo, d(2024, 10, 1), buy, "ACME", Decimal(30), Decimal("152.88")),
        Transaction(cleo, d(2024, 10, 1), buy, "BRLN", Decimal(40), Decimal("68.98")),
        Transaction(cleo, d(2025, 4, 1), TransactionKind.INTEREST, amount=Decimal("12.34")),
    ]
    return sorted(txs, key=lambda tx: (tx.portfolio_id, tx.trade_date))


@contextlib.asynccontextmanager
async def open_demo_job(
    db: str | os.PathLike[str] = DEFAULT_DB,
    *,
    today: dt.date | None = None,
    batch_size: int = 50,
    events: EventHook | None = None,
) -> AsyncIterator[SnapshotJob]:
    """Open the demo's SQLite store and yield a `SnapshotJob` over the demo's world.

    The job keeps its run ledger and leases in the same file, so its runs have keys: run
    twice, it finds them done.

    Args:
        db: The SQLite file (created when missing).
        today: The demo's "today" (the last date of the shipped history by default); the
            job's clock is fixed at 22:00 UTC on it.
        batch_size: Portfolio-days per write (small, so a progress bar moves).
        events: The job's event hook (`LoggingEvents` by default).

    Yields:
        The job; the store is closed on exit.
    """
    day = today or demo_today()
    now = dt.datetime.combine(day, dt.time(22), tzinfo=dt.UTC)
    source = InMemoryTransactionSource(demo_transactions())
    async with await SqliteSnapshotStore.open(db) as store:
        yield SnapshotJob(
            portfolios=LedgerPortfolioRepository(source),
            snapshots=store,
            market_data=demo_market_data(),
            fx_rates=demo_fx_rates(),
            ledger=store,
            lock=store,
            clock=lambda: now,
            batch_size=batch_size,
            events=events,
        )


def app() -> contextlib.AbstractAsyncContextManager[SnapshotJob]:
    """The ``--app`` factory of the demo: `open_demo_job` on ``$PORTFOLIO_SNAPSHOTS_DEMO_DB``.

    Reads the database path from `DB_ENV` (`DEFAULT_DB` in the current folder by default)
    and the demo's "today" from `TODAY_ENV` (the end of the shipped history by default).

    Returns:
        The context manager yielding the job.
    """
    today = os.environ.get(TODAY_ENV)
    return open_demo_job(
        os.environ.get(DB_ENV, DEFAULT_DB),
        today=dt.date.fromisoformat(today) if today else None,
    )
