"""The shipped adapters, one public module each.

- `memory`: the in-memory reference fakes of every port, for host tests (the main three are
  also exported from `portfolio_snapshots`).
- `sqlite`: `SqliteSnapshotStore`, the embedded default (standard library only).
- `sqlalchemy`: the SQLAlchemy store on SQLite or PostgreSQL (extra ``sqlalchemy``).
- `ledger`: `LedgerPortfolioRepository`, portfolios rebuilt from a transaction ledger.
- `splits`: `unadjust_splits`, for price sources that adjust past closes for splits.
- `per_ticker`: `PerTickerMarketData`, for providers that answer one ticker at a time.

Adapters that need an optional extra are imported only by hosts that installed it.
"""
