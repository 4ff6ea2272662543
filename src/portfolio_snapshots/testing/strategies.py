"""Hypothesis strategies: tickers, amounts, portfolios, prices, snapshots, ledgers.

This module needs Hypothesis (``pip install hypothesis``); the rest of
`portfolio_snapshots.testing` does not. Every amount is a finite `Decimal`, with a varying
number of decimal places, so tests meet trailing zeros and long fractions alike. Snapshots are
produced by `SnapshotCalculator`, so they hold every invariant a stored snapshot holds, the
accounting ones included (cost basis, gains, income, fees and taxes, cash in several
currencies: each sometimes known, sometimes None).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import itertools
import string
from decimal import Decimal
from typing import TYPE_CHECKING
from uuid import UUID

try:
    from hypothesis import strategies as st
except ImportError as error:  # pragma: no cover - exercised without hypothesis installed
    raise ImportError(
        "portfolio_snapshots.testing.strategies needs Hypothesis: pip install hypothesis"
    ) from error

from portfolio_snapshots import Portfolio, PriceQuote, SnapshotCalculator
from portfolio_snapshots._calculator import PriceTable
from portfolio_snapshots._decimal import exact_context
from portfolio_snapshots._domain import DEFAULT_CURRENCY
from portfolio_snapshots._splits import scale
from portfolio_snapshots.history import Accounting, FxQuote, Transaction, TransactionKind

if TYPE_CHECKING:
    from collections.abc import Collection
    from typing import TypeVar

    _T = TypeVar("_T")

    from portfolio_snapshots import PortfolioSnapshot

__all__ = [
    "LEDGER_START",
    "cash_balances",
    "ledgers",
    "portfolios",
    "price_tables",
    "priced_portfolios",
    "prices",
    "quantities",
    "snapshot_dates",
    "snapshots",
    "tickers",
]

_LETTERS = string.ascii_uppercase


def tickers() -> st.SearchStrategy[str]:
    """Return a strategy for ticker symbols such as ``"AAPL"`` or ``"BRK.B"``.

    Returns:
        One to five capital letters, sometimes with a dotted class suffix.
    """
    root = st.text(_LETTERS, min_size=1, max_size=5)
    suffix = st.just("") | st.text(_LETTERS, min_size=1, max_size=2).map(lambda s: "." + s)
    return st.builds(str.__add__, root, suffix)


def _decimals(
    min_value: Decimal, max_value: Decimal, max_places: int, *, positive: bool = False
) -> st.SearchStrategy[Decimal]:
    """Finite Decimals with 0 to `max_places` places; above zero when `positive`."""
    if max_places < 0:
        raise ValueError(f"max_places must be >= 0, got {max_places}")
    # one strategy per exponent, so examples mix "12", "12.5" and "12.50000000"; one_of
    # shrinks towards the first, the whole numbers
    return st.one_of(
        [
            st.decimals(
                min_value=max(min_value, Decimal(1).scaleb(-places)) if positive else min_value,
                max_value=max_value,
                places=places,
                allow_nan=False,
                allow_infinity=False,
            )
            for places in range(max_places + 1)
        ]
    )


def quantities(
    *, max_value: Decimal = Decimal("1e9"), max_places: int = 8
) -> st.SearchStrategy[Decimal]:
    """Return a strategy for quantities held: finite, non-negative, often fractional Decimals.

    Zero is included: a calculator must accept it and leave the position out.

    Args:
        max_value: The largest quantity.
        max_places: The most decimal places (each example picks 0 to this many).

    Returns:
        The strategy.

    Raises:
        ValueError: `max_places` is negative.
    """
    return _decimals(Decimal(0), max_value, max_places)


def prices(
    *, max_value: Decimal = Decimal("1e6"), max_places: int = 6
) -> st.SearchStrategy[Decimal]:
    """Return a strategy for unit prices: finite Decimals above zero.

    Args:
        max_value: The largest price.
        max_places: The most decimal places (each example picks 0 to this many).

    Returns:
        The strategy.

    Raises:
        ValueError: `max_places` is negative.
    """
    return _decimals(Decimal(0), max_value, max_places, positive=True)


def cash_balances(
    *,
    min_value: Decimal = Decimal(0),
    max_value: Decimal = Decimal("1e9"),
    max_places: int = 2,
) -> st.SearchStrategy[Decimal]:
    """Return a strategy for cash balances: finite Decimals, negative ones when allowed.

    Args:
        min_value: The smallest balance; pass a negative one for overdrawn accounts.
        max_value: The largest balance.
        max_places: The most decimal places (each example picks 0 to this many).

    Returns:
        The strategy.

    Raises:
        ValueError: `max_places` is negative.
    """
    return _decimals(min_value, max_value, max_places)


def snapshot_dates(
    *, min_value: dt.date = dt.date(2000, 1, 1), max_value: dt.date = dt.date(2099, 12, 31)
) -> st.SearchStrategy[dt.date]:
    """Return a strategy for UTC calendar dates to value portfolios on.

    Args:
        min_value: The earliest date.
        max_value: The latest date.

    Returns:
        The strategy.
    """
    return st.dates(min_value=min_value, max_value=max_value)


def portfolios(
    *,
    ids: st.SearchStrategy[UUID] | None = None,
    currency: str = DEFAULT_CURRENCY,
    ticker: st.SearchStrategy[str] | None = None,
    quantity: st.SearchStrategy[Decimal] | None = None,
    cash: st.SearchStrategy[Decimal] | None = None,
    max_holdings: int = 8,
) -> st.SearchStrategy[Portfolio]:
    """Return a strategy for valid portfolios: each one the calculator accepts.

    Args:
        ids: Portfolio ids (random UUIDs by default).
        currency: The portfolio's currency.
        ticker: Tickers held (`tickers` by default).
        quantity: Quantities held (`quantities` by default).
        cash: Cash balances (`cash_balances` by default).
        max_holdings: The most tickers in one portfolio (the fewest is none).

    Returns:
        The strategy; `net_contributions` and `external_flow` are left None.
    """
    return st.builds(
        Portfolio,
        id=ids if ids is not None else st.uuids(),
        cash_balance=cash if cash is not None else cash_balances(),
        holdings=st.dictionaries(
            ticker if ticker is not None else tickers(),
            quantity if quantity is not None else quantities(),
            max_size=max_holdings,
        ),
        currency=st.just(currency),
    )


def price_tables(
    symbols: Collection[str],
    as_of: dt.date,
    *,
    currency: str = DEFAULT_CURRENCY,
    price: st.SearchStrategy[Decimal] | None = None,
    max_age_days: int = 0,
) -> st.SearchStrategy[dict[str, PriceQuote]]:
    """Return a strategy for the quotes of `symbols` on `as_of`, as `MarketData` answers them.

    Args:
        symbols: The tickers to quote, each one once.
        as_of: The date asked for.
        currency: The currency of every quote.
        price: The prices (`prices` by default).
        max_age_days: How many days before `as_of` a quote may be dated (the latest close
            on or before `as_of`); 0 dates every quote on `as_of`.

    Returns:
        The strategy: a dict from each ticker to its quote.

    Raises:
        ValueError: `max_age_days` is negative.
    """
    if max_age_days < 0:
        raise ValueError(f"max_age_days must be >= 0, got {max_age_days}")
    price = price if price is not None else prices()

    @st.composite
    def draw_quote(draw: st.DrawFn, symbol: str) -> PriceQuote:
        # never before date.min, whatever dates the caller draws
        age = draw(st.integers(0, min(max_age_days, (as_of - dt.date.min).days)))
        return PriceQuote(symbol, draw(price), as_of - dt.timedelta(days=age), currency)

    return st.fixed_dictionaries({symbol: draw_quote(symbol) for symbol in symbols})


def priced_portfolios(
    as_of: dt.date,
    *,
    portfolio: st.SearchStrategy[Portfolio] | None = None,
    max_age_days: int = 0,
) -> st.SearchStrategy[tuple[Portfolio, dict[str, PriceQuote]]]:
    """Return a strategy for a portfolio with a quote for every ticker it holds on `as_of`.

    Args:
        as_of: The date valued.
        portfolio: The portfolios (`portfolios` by default); quotes use each one's currency.
        max_age_days: As for `price_tables`.

    Returns:
        The strategy: ``(portfolio, quotes)`` pairs the calculator values without error.
    """
    portfolio = portfolio if portfolio is not None else portfolios()

    @st.composite
    def draw_pair(draw: st.DrawFn) -> tuple[Portfolio, dict[str, PriceQuote]]:
        drawn = draw(portfolio)
        table = draw(
            price_tables(drawn.holdings, as_of, currency=drawn.currency, max_age_days=max_age_days)
        )
        return drawn, table

    return draw_pair()


def snapshots(
    *,
    ids: st.SearchStrategy[UUID] | None = None,
    dates: st.SearchStrategy[dt.date] | None = None,
    currency: str = DEFAULT_CURRENCY,
    with_flows: bool = True,
    with_accounting: bool = True,
    calculator: SnapshotCalculator | None = None,
) -> st.SearchStrategy[PortfolioSnapshot]:
    """Return a strategy for valid snapshots, valued by `SnapshotCalculator`.

    Every example keeps the snapshot invariants: positions sorted by ticker with no zero
    quantity, ``holdings_value`` the sum of their market values, ``total_value`` equal to
    ``cash_balance + holdings_value``. With `with_accounting`, the portfolio valued sometimes
    has `Accounting` (cost basis of all, some or none of its tickers; realized gain, income,
    fees, taxes and transfers each known or None; gains and dividends per ticker) and cash in
    other currencies, valued at a day's FX rate, now and then a carried-forward (stale) one;
    so ``unrealized_gain == market_value - cost_basis`` for each position and in total
    whenever the cost basis is known, and ``cash_balance`` is the sum of the `cash_balances`'
    values whenever there are any.

    Args:
        ids: Portfolio ids (random UUIDs by default).
        dates: Snapshot dates (`snapshot_dates` by default).
        currency: The portfolios' currency.
        with_flows: Whether `net_contributions` and `external_flow` may be set (else None).
        with_accounting: Whether the accounting fields and cash balances may be set (else
            None and empty, as for a portfolio repository that knows only holdings and cash).
        calculator: The calculator (a default one by default).

    Returns:
        The strategy.
    """
    calc = calculator or SnapshotCalculator()
    date_strategy = dates if dates is not None else snapshot_dates()
    flow = st.none() | cash_balances(min_value=Decimal(-1_000_000)) if with_flows else st.none()
    # overdrawn cash happens (margin accounts), so snapshots include negative balances
    base = portfolios(ids=ids, currency=currency, cash=cash_balances(min_value=Decimal(-10_000)))

    @st.composite
    def draw_snapshot(draw: st.DrawFn) -> PortfolioSnapshot:
        day = draw(date_strategy)
        held = draw(base)
        held = dataclasses.replace(held, net_contributions=draw(flow), external_flow=draw(flow))
        table = draw(price_tables(held.holdings, day, currency=currency, max_age_days=5))
        if not with_accounting:
            return calc.value_portfolio(held, table, day)
        foreign = draw(st.none() | _foreign_cash(currency))
        carry = draw(st.booleans())
        # beyond the default max_price_age of 7 days only when carried forward (stale)
        ages = st.integers(0, min(10 if carry else 5, (day - dt.date.min).days))
        rates = {
            (code, currency): FxQuote(
                code, currency, draw(_fx_rates), day - dt.timedelta(days=draw(ages))
            )
            for code in foreign or ()
        }
        held = dataclasses.replace(
            held,
            foreign_cash=foreign,
            accounting=draw(st.none() | _accountings(sorted(held.holdings))),
        )
        priced = PriceTable(table, day, carry_forward=carry, fx_rates=rates)
        valued, failed = calc.value_many([held], priced)
        if failed:  # pragma: no cover - every input drawn here is valid
            raise failed[0][1]
        return valued[0]

    return draw_snapshot()


_FOREIGN_CURRENCIES = ("EUR", "GBP", "JPY", "CHF")
_fx_rates = _decimals(Decimal("0.001"), Decimal(1000), 6, positive=True)


def _foreign_cash(currency: str) -> st.SearchStrategy[dict[str, Decimal]]:
    """Cash in one to three currencies other than `currency`, overdrawn ones included."""
    return st.dictionaries(
        st.sampled_from([c for c in _FOREIGN_CURRENCIES if c != currency]),
        cash_balances(min_value=Decimal(-10_000), max_value=Decimal(1_000_000)),
        min_size=1,
        max_size=3,
    )


@st.composite
def _accountings(draw: st.DrawFn, tickers: list[str]) -> Accounting:
    """A portfolio's books: each part known or None, per-ticker parts for some tickers."""
    cost = _decimals(Decimal(0), Decimal(1_000_000), 2)
    signed = _decimals(Decimal(-1_000_000), Decimal(1_000_000), 2)

    def per_ticker(amount: st.SearchStrategy[Decimal]) -> st.SearchStrategy[dict[str, Decimal]]:
        every = st.fixed_dictionaries(dict.fromkeys(tickers, amount))
        return every | st.dictionaries(st.sampled_from(tickers), amount) if tickers else every

    def maybe(strategy: st.SearchStrategy[_T]) -> _T | None:
        return draw(st.none() | strategy)

    return Accounting(
        cost_basis=maybe(per_ticker(cost)),
        realized_gain=maybe(signed),
        dividends=maybe(cost),
        interest=maybe(cost),
        fees=maybe(cost),
        taxes=maybe(signed),
        net_transfers=maybe(signed),
        position_realized=maybe(per_ticker(signed)),
        position_dividends=maybe(per_ticker(cost)),
    )


# --- transaction ledgers -------------------------------------------------------------

LEDGER_START = dt.date(2024, 1, 1)
# the kinds `ledgers` draws unless told otherwise: no transfers of units, no EXCHANGE
_LEDGER_KINDS: tuple[TransactionKind, ...] = tuple(
    k
    for k in TransactionKind
    if k
    not in {TransactionKind.TRANSFER_IN, TransactionKind.TRANSFER_OUT, TransactionKind.EXCHANGE}
)
_LEDGER_TICKERS = ("AAA", "BBB", "CCC")
_SPLIT_RATIOS = (Decimal(2), Decimal(3), Decimal("0.5"), Decimal("1.5"), Decimal("0.1"))
#: Splits given as new units for old units, some of which no Decimal ratio states exactly.
_SPLIT_UNITS = ((1, 3), (2, 3), (3, 2), (4, 1), (1, 7))
_FX_RATES = (Decimal("1.0842"), Decimal("0.5"), Decimal("151.25"), Decimal("0.0066"))

_money = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(100_000), places=2)
_traded_quantities = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal(1000), places=4)
_trade_prices = st.decimals(min_value=Decimal(0), max_value=Decimal(1000), places=2)
_fees = st.decimals(min_value=Decimal(0), max_value=Decimal(20), places=2)
_ledger_tickers = st.sampled_from(_LEDGER_TICKERS)
_UNITS_OUT = frozenset({TransactionKind.SELL, TransactionKind.TRANSFER_OUT})
_UNITS_IN = frozenset({TransactionKind.BUY, TransactionKind.TRANSFER_IN})
_NEEDS_RATE = frozenset(
    {
        TransactionKind.DEPOSIT,
        TransactionKind.WITHDRAWAL,
        TransactionKind.TRANSFER_IN,
        TransactionKind.TRANSFER_OUT,
    }
)


@dataclasses.dataclass
class _Draft:
    """What a drawn ledger needs to know while it is drawn: the portfolio and its holdings."""

    pid: UUID
    day: dt.date
    held: dict[str, Decimal]
    allow_oversell: bool
    whole_sales: bool
    split_units: bool
    base: str
    currencies: tuple[str, ...]


def _in_currency(draw: st.DrawFn, draft: _Draft, tx: Transaction) -> Transaction:
    """Draw the currency of `tx`, and its fx_rate when it is not the base's."""
    if not draft.currencies:
        return tx
    code = draw(st.sampled_from((draft.base, *draft.currencies)))
    if code == draft.base:
        return tx
    rate_choices = st.sampled_from(_FX_RATES)
    rate = draw(rate_choices if tx.kind in _NEEDS_RATE else st.none() | rate_choices)
    return dataclasses.replace(tx, currency=code, fx_rate=rate)


def _units(draw: st.DrawFn, draft: _Draft, kind: TransactionKind) -> Transaction | None:
    held = draft.held
    if kind in _UNITS_IN:
        ticker = draw(_ledger_tickers)
        quantity = draw(_traded_quantities)
    else:
        owned = sorted(t for t, q in held.items() if q > 0)
        if draft.allow_oversell or not owned:
            if not draft.allow_oversell:
                return None
            ticker = draw(_ledger_tickers)
            quantity = draw(_traded_quantities)
        else:
            # a quarter, half, three quarters or all of the position: never more than held
            ticker = draw(st.sampled_from(owned))
            quarters = 4 if draft.whole_sales else draw(st.integers(1, 4))
            quantity = held[ticker] * Decimal(quarters) / 4
    sign = 1 if kind in _UNITS_IN else -1
    held[ticker] = held.get(ticker, Decimal(0)) + sign * quantity
    tx = Transaction(draft.pid, draft.day, kind, ticker, quantity, draw(_trade_prices))
    if kind in {TransactionKind.BUY, TransactionKind.SELL}:
        tx = dataclasses.replace(tx, fee=draw(_fees))
    elif kind is TransactionKind.TRANSFER_IN:
        tx = dataclasses.replace(tx, amount=draw(st.none() | _money))
    return _in_currency(draw, draft, tx)


def _split(draw: st.DrawFn, draft: _Draft) -> Transaction:
    ticker = draw(_ledger_tickers)
    if not draft.split_units or draw(st.booleans()):
        ratio = draw(st.sampled_from(_SPLIT_RATIOS))
        new, old = ratio.as_integer_ratio()
        tx = Transaction(draft.pid, draft.day, TransactionKind.SPLIT, ticker, ratio=ratio)
    else:
        new, old = draw(st.sampled_from(_SPLIT_UNITS))
        tx = Transaction(
            draft.pid, draft.day, TransactionKind.SPLIT, ticker, split_new=new, split_old=old
        )
    if ticker in draft.held:
        # the ledger's own rounding, so that sales of the position never exceed it
        draft.held[ticker] = scale(draft.held[ticker], new, old)
    return tx


def _transaction(draw: st.DrawFn, draft: _Draft, kind: TransactionKind) -> Transaction | None:
    if kind in _UNITS_IN or kind in _UNITS_OUT:
        return _units(draw, draft, kind)
    if kind is TransactionKind.SPLIT:
        return _split(draw, draft)
    if kind is TransactionKind.EXCHANGE:
        source, target = draw(
            st.permutations((draft.base, *draft.currencies)).map(lambda codes: codes[:2])
        )
        return Transaction(
            draft.pid,
            draft.day,
            kind,
            amount=draw(_money),
            currency=source,
            to_currency=target,
            to_amount=draw(_money),
        )
    label = draw(st.none() | _ledger_tickers) if kind is TransactionKind.DIVIDEND else None
    tx = Transaction(draft.pid, draft.day, kind, label, amount=draw(_money))
    return _in_currency(draw, draft, tx)


@st.composite
def ledgers(
    draw: st.DrawFn,
    *,
    portfolio_id: UUID | None = None,
    start: dt.date = LEDGER_START,
    max_days: int = 45,
    max_transactions: int = 30,
    allow_oversell: bool = False,
    kinds: Collection[TransactionKind] = _LEDGER_KINDS,
    currency: str = DEFAULT_CURRENCY,
    currencies: Collection[str] = (),
    whole_sales: bool = False,
    split_units: bool = False,
) -> list[Transaction]:
    """Draw one portfolio's transaction ledger, sorted by date, dated from `start` on.

    The kinds of `kinds` are mixed in and each date's transactions come in a drawn order.
    SPLITs are given as a Decimal ratio, or with `split_units` as ints half the time
    (``split_new``, ``split_old``: 1-for-3 among them). By default the ledger is valid (no
    day sells more than it holds), so any replay of it succeeds; with
    ``allow_oversell=True`` sales ignore holdings, so some ledgers fail on some date.

    Args:
        draw: Supplied by Hypothesis.
        portfolio_id: The portfolio's id; drawn when None.
        start: The earliest date a transaction may have.
        max_days: How many dates transactions are spread over.
        max_transactions: The most transactions drawn.
        allow_oversell: Whether a sale may exceed the quantity held.
        kinds: The kinds drawn; by default every kind but TRANSFER_IN, TRANSFER_OUT and
            EXCHANGE, so that cash stays in one currency and every flow is a contribution. An
            EXCHANGE is drawn only with `currencies`.
        currency: The portfolio's base currency.
        currencies: Other currencies transactions may be in; each such transaction draws an
            `fx_rate`, or none where the ledger allows it (a trade, an income, a fee, a tax).
        whole_sales: Whether every SELL and TRANSFER_OUT disposes of the whole position.
        split_units: Whether SPLITs may be given as ``split_new`` and ``split_old``, some of
            them ratios no Decimal states (1-for-3).

    Returns:
        The transactions, in ascending date order, each date's in a drawn order.
    """
    pid = portfolio_id if portfolio_id is not None else draw(st.uuids())
    count = draw(st.integers(0, max_transactions))
    offsets = sorted(draw(st.lists(st.integers(0, max_days - 1), min_size=count, max_size=count)))
    choices = tuple(k for k in TransactionKind if k in kinds)
    if not currencies:
        choices = tuple(k for k in choices if k is not TransactionKind.EXCHANGE)
    draft = _Draft(
        pid, start, {}, allow_oversell, whole_sales, split_units, currency, tuple(currencies)
    )
    ledger: list[Transaction] = []
    with decimal.localcontext(exact_context()):
        for offset, group in itertools.groupby(offsets):
            draft.day = start + dt.timedelta(days=offset)
            drawn = [draw(st.sampled_from(choices)) for _ in group]
            # the replay applies a day's splits first, then acquisitions, then disposals:
            # simulate holdings in the same order
            drawn.sort(key=_replay_order)
            todays = [_transaction(draw, draft, k) for k in drawn]
            ledger.extend(draw(st.permutations([tx for tx in todays if tx is not None])))
    return ledger


def _replay_order(kind: TransactionKind) -> int:
    if kind is TransactionKind.SPLIT:
        return 0
    return 2 if kind in _UNITS_OUT else 1
