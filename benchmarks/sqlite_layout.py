"""Benchmark: which SQLite layout for ``ps_snapshots`` rows of schema version 2, by measurement.

To run:
    python benchmarks/sqlite_layout.py [--rows 1000000] [--batch 500] [--seed 1]

Writes rows shaped as `SqliteSnapshotStore` writes them at schema version 2 (a portfolio id,
an ISO date, decimal text totals, ten compact positions of about 21 characters) with
``sqlite3``'s own ``executemany``, one transaction per batch of random portfolio ids (as a
daily run over a host's portfolios arrives), into three layouts, each in a fresh WAL file:

- ``without_rowid``: ``PRIMARY KEY (portfolio_id, snapshot_date)`` ``WITHOUT ROWID`` (rows
  kept in key order in one B-tree), the id as its hyphenated text;
- ``rowid``: an ordinary table (rows appended in rowid order) and a unique index on
  ``(portfolio_id, snapshot_date)``;
- ``without_rowid_blob``: the same with the id as a 16-byte blob, the store's layout.

It prints, per layout, the microseconds per row of each tenth of the rows (flat or growing
with the table) and the bytes per row of the file after a checkpoint.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path

COLUMNS = (
    "currency TEXT NOT NULL, cash_balance TEXT NOT NULL, holdings_value TEXT NOT NULL, "
    "total_value TEXT NOT NULL, net_contributions TEXT, external_flow TEXT, "
    "stale INTEGER NOT NULL, positions TEXT NOT NULL, fence INTEGER NOT NULL DEFAULT 0, "
    "cost_basis TEXT, unrealized_gain TEXT, realized_gain TEXT, dividends TEXT, interest TEXT, "
    "fees TEXT, taxes TEXT, cash_balances TEXT"
)
LAYOUTS = {
    "without_rowid": (
        (
            f"CREATE TABLE ps_snapshots (portfolio_id TEXT NOT NULL, snapshot_date TEXT NOT NULL, "
            f"{COLUMNS}, PRIMARY KEY (portfolio_id, snapshot_date)) WITHOUT ROWID"
        ),
    ),
    "rowid": (
        (
            f"CREATE TABLE ps_snapshots (portfolio_id TEXT NOT NULL, snapshot_date TEXT NOT NULL, "
            f"{COLUMNS})"
        ),
        "CREATE UNIQUE INDEX ps_snapshots_key ON ps_snapshots (portfolio_id, snapshot_date)",
    ),
    "without_rowid_blob": (
        (
            f"CREATE TABLE ps_snapshots (portfolio_id BLOB NOT NULL, snapshot_date TEXT NOT NULL, "
            f"{COLUMNS}, PRIMARY KEY (portfolio_id, snapshot_date)) WITHOUT ROWID"
        ),
    ),
}
INSERT = (
    "INSERT INTO ps_snapshots (portfolio_id, snapshot_date, currency, cash_balance, "
    "holdings_value, total_value, net_contributions, external_flow, stale, positions, fence) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def rows(n: int, seed: int) -> list[tuple[object, ...]]:
    """Return `n` rows of one day, ids at random."""
    rng = random.Random(seed)
    out: list[tuple[object, ...]] = []
    for _ in range(n):
        positions = ";".join(
            f"T{rng.randrange(1000):04d}|{rng.randint(1, 100_000) / 1000}|"
            f"{rng.randint(100, 50_000_000) / 100:.2f}"
            for _ in range(10)
        )
        cash = f"{rng.randint(0, 10_000_000) / 100:.2f}"
        out.append(
            (
                str(uuid.UUID(int=rng.getrandbits(128))),
                "2026-11-27",
                "USD",
                cash,
                "123456.78",
                "123556.78",
                None,
                None,
                0,
                positions,
                1,
            )
        )
    return out


def run(layout: str, data: list[tuple[object, ...]], batch: int, directory: Path) -> None:
    """Insert `data` into a fresh file of `layout`; print per-tenth cost and bytes per row."""
    path = directory / f"{layout}.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL").fetchone()
    for statement in LAYOUTS[layout]:
        conn.execute(statement)
    if layout.endswith("blob"):
        data = [(uuid.UUID(str(r[0])).bytes, *r[1:]) for r in data]
    tenth = max(len(data) // 10, batch)
    costs = []
    start = time.perf_counter()
    for i in range(0, len(data), batch):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(INSERT, data[i : i + batch])
        conn.execute("COMMIT")
        done = i + batch
        if done % tenth == 0:
            now = time.perf_counter()
            costs.append(f"{(now - start) / tenth * 1e6:.1f}")
            start = now
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    conn.close()
    size = path.stat().st_size
    print(f"{layout:20s} us/row per tenth: {' '.join(costs)}  bytes/row {size / len(data):.0f}")


def main() -> None:
    """Parse arguments, build the rows, time each layout."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    data = rows(args.rows, args.seed)
    print(f"{args.rows} rows in batches of {args.batch}, SQLite {sqlite3.sqlite_version}")
    with tempfile.TemporaryDirectory(prefix="portfolio-snapshots-layout-") as directory:
        for layout in LAYOUTS:
            run(layout, data, args.batch, Path(directory))
            (Path(directory) / f"{layout}.db").unlink()


if __name__ == "__main__":
    main()
