"""Valuing the past as it was: transaction ledgers, FX rates and returns.

- The ledger: `Transaction` rows of a `TransactionKind`, checked by `validate_transaction`
  (or parsed from untrusted input by `parse_transaction`) and replayed into daily states
  (`replay`, `replay_range`, `LedgerReplayer`, `LedgerState`), with cost basis by a
  `CostBasisMethod`; `ledger_splits` hands the ledger's splits to `unadjust_splits`. The host
  offers its rows through the `TransactionSource` port; `portfolio_snapshots.adapters.ledger`
  turns them into a `PortfolioRepository`, and `portfolio_snapshots.adapters.splits` adapts
  split-adjusted prices.
- The history capabilities a repository may offer: `PortfolioHistory` and
  `PortfolioDayStream`, which yield `PortfolioDay` values.
- Exchange rates: the `FxRates` port and its `FxRateHistory` capability, `FxQuote` values,
  `pairs_with_inverses`, `resolve_rate`, `invert_quote`, `convert` and `fx_context`.
- What a snapshot is read with besides its value: `Accounting` (a portfolio's cost basis,
  realized gain, income, fees, taxes and transfers to date, which a ledger replay or the host
  supplies) and `CashBalance` (cash held in each currency, valued at the day's rate).
- Reading a stored series for a chart without its positions: the `SnapshotTotals`
  capability of a snapshot store (every shipped store offers it), which reads `DailyTotals`.
- Returns of a stored series: `time_weighted_returns`, `cumulative_time_weighted_return`,
  `modified_dietz_return`, with `PeriodReturn` values, computed in `returns_context`; the
  money-weighted return (XIRR) `money_weighted_return`, and `annualize`.

See ``docs/history.md`` for the conventions and worked examples.
"""

from __future__ import annotations

from portfolio_snapshots._domain import Accounting, CashBalance, DailyTotals, FxQuote, PortfolioDay
from portfolio_snapshots._fx import (
    FX_PRECISION,
    convert,
    fx_context,
    invert_quote,
    pairs_with_inverses,
    resolve_rate,
)
from portfolio_snapshots._ledger import (
    CostBasisMethod,
    LedgerReplayer,
    LedgerState,
    Transaction,
    TransactionKind,
    ledger_splits,
    replay,
    replay_range,
    validate_transaction,
)
from portfolio_snapshots._parsing import parse_transaction
from portfolio_snapshots._ports import (
    FxRateHistory,
    FxRates,
    PortfolioDayStream,
    PortfolioHistory,
    SnapshotTotals,
    TransactionSource,
)
from portfolio_snapshots._public import publish as _publish
from portfolio_snapshots._returns import (
    MWR_PLACES,
    MWR_TOLERANCE,
    RETURNS_PRECISION,
    FlowTiming,
    MoneyWeightedReturn,
    PeriodReturn,
    annualize,
    cumulative_time_weighted_return,
    modified_dietz_return,
    money_weighted_return,
    returns_context,
    time_weighted_returns,
)

__all__ = [
    "FX_PRECISION",
    "MWR_PLACES",
    "MWR_TOLERANCE",
    "RETURNS_PRECISION",
    "Accounting",
    "CashBalance",
    "CostBasisMethod",
    "DailyTotals",
    "FlowTiming",
    "FxQuote",
    "FxRateHistory",
    "FxRates",
    "LedgerReplayer",
    "LedgerState",
    "MoneyWeightedReturn",
    "PeriodReturn",
    "PortfolioDay",
    "PortfolioDayStream",
    "PortfolioHistory",
    "SnapshotTotals",
    "Transaction",
    "TransactionKind",
    "TransactionSource",
    "annualize",
    "convert",
    "cumulative_time_weighted_return",
    "fx_context",
    "invert_quote",
    "ledger_splits",
    "modified_dietz_return",
    "money_weighted_return",
    "pairs_with_inverses",
    "parse_transaction",
    "replay",
    "replay_range",
    "resolve_rate",
    "returns_context",
    "time_weighted_returns",
    "validate_transaction",
]

_publish(__name__, globals(), __all__)
