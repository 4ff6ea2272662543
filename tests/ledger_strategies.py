"""Hypothesis strategies for transaction ledgers, shared by the ledger tests.

`ledgers()` draws one portfolio's transactions in ascending date order, every kind mixed, the
order within each date shuffled. By default the ledger is valid (no day sells more than it
holds), so any replay of it succeeds; with ``allow_oversell=True`` sales are drawn without
regard to holdings, so some ledgers fail on some date.
"""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
from decimal import Decimal
from typing import TYPE_CHECKING

from hypothesis import strategies as st

from portfolio_snapshots._decimal import exact_context
from portfolio_snapshots._ledger import Transaction, TransactionKind

if TYPE_CHECKING:
    from uuid import UUID

START = dt.date(2024, 1, 1)
TICKERS = ("AAA", "BBB", "CCC")
RATIOS = (Decimal(2), Decimal(3), Decimal("0.5"), Decimal("1.5"), Decimal("0.1"))

money = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(100_000), places=2)
quantities = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal(1000), places=4)
prices = st.decimals(min_value=Decimal(0), max_value=Decimal(1000), places=2)
fees = st.decimals(min_value=Decimal(0), max_value=Decimal(20), places=2)
tickers = st.sampled_from(TICKERS)


def _trade(
    draw: st.DrawFn,
    pid: UUID,
    day: dt.date,
    kind: TransactionKind,
    held: dict[str, Decimal],
    allow_oversell: bool,
) -> Transaction | None:
    if kind is TransactionKind.BUY:
        ticker = draw(tickers)
        quantity = draw(quantities)
    else:
        owned = sorted(t for t, q in held.items() if q > 0)
        if allow_oversell or not owned:
            if not allow_oversell:
                return None
            ticker = draw(tickers)
            quantity = draw(quantities)
        else:
            # a quarter, half, three quarters or all of the position: never more than held
            ticker = draw(st.sampled_from(owned))
            quantity = held[ticker] * Decimal(draw(st.integers(1, 4))) / 4
    sign = 1 if kind is TransactionKind.BUY else -1
    held[ticker] = held.get(ticker, Decimal(0)) + sign * quantity
    return Transaction(
        pid, day, kind, ticker, quantity=quantity, price=draw(prices), fee=draw(fees)
    )


def _transaction(
    draw: st.DrawFn,
    pid: UUID,
    day: dt.date,
    kind: TransactionKind,
    held: dict[str, Decimal],
    allow_oversell: bool,
) -> Transaction | None:
    if kind in {TransactionKind.BUY, TransactionKind.SELL}:
        return _trade(draw, pid, day, kind, held, allow_oversell)
    if kind is TransactionKind.SPLIT:
        ticker = draw(tickers)
        ratio = draw(st.sampled_from(RATIOS))
        if ticker in held:
            held[ticker] *= ratio
        return Transaction(pid, day, kind, ticker, ratio=ratio)
    label = draw(st.none() | tickers) if kind is TransactionKind.DIVIDEND else None
    return Transaction(pid, day, kind, label, amount=draw(money))


@st.composite
def ledgers(
    draw: st.DrawFn,
    *,
    portfolio_id: UUID | None = None,
    start: dt.date = START,
    max_days: int = 45,
    max_transactions: int = 30,
    allow_oversell: bool = False,
) -> list[Transaction]:
    """Draw one portfolio's ledger, sorted by date, dated ``start .. start + max_days - 1``.

    Args:
        draw: Supplied by Hypothesis.
        portfolio_id: The portfolio's id; drawn when None.
        start: The earliest date a transaction may have.
        max_days: How many dates transactions are spread over.
        max_transactions: The most transactions drawn.
        allow_oversell: Whether a sale may exceed the quantity held.

    Returns:
        The transactions, in ascending date order, each date's in a drawn order.
    """
    pid = portfolio_id if portfolio_id is not None else draw(st.uuids())
    count = draw(st.integers(0, max_transactions))
    offsets = sorted(draw(st.lists(st.integers(0, max_days - 1), min_size=count, max_size=count)))
    held: dict[str, Decimal] = {}
    ledger: list[Transaction] = []
    with decimal.localcontext(exact_context()):
        for offset, group in itertools.groupby(offsets):
            day = start + dt.timedelta(days=offset)
            kinds = [draw(st.sampled_from(TransactionKind)) for _ in group]
            # the replay applies a day's splits first: simulate holdings in the same order
            kinds.sort(key=lambda k: k is not TransactionKind.SPLIT)
            todays = [_transaction(draw, pid, day, k, held, allow_oversell) for k in kinds]
            ledger.extend(draw(st.permutations([tx for tx in todays if tx is not None])))
    return ledger
