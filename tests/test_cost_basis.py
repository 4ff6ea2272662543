"""The ledger's books: cost basis, gains, income, fees, taxes, transfers, foreign cash, splits.

Worked examples derived by hand (the arithmetic is in the comments), then properties.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import uuid
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portfolio_snapshots import (
    InMemoryMarketData,
    InMemorySnapshotRepository,
    Portfolio,
    PriceQuote,
    SnapshotCalculator,
    SnapshotJob,
    value_portfolio,
)
from portfolio_snapshots._calculator import PriceTable
from portfolio_snapshots._decimal import exact_context
from portfolio_snapshots._parsing import MAX_PLACES
from portfolio_snapshots._splits import DIVISION_PLACES
from portfolio_snapshots.adapters.ledger import LedgerPortfolioRepository
from portfolio_snapshots.adapters.memory import InMemoryFxRates, InMemoryTransactionSource
from portfolio_snapshots.adapters.splits import unadjust_splits
from portfolio_snapshots.errors import (
    ConflictingSplitError,
    InvalidInputError,
    InvalidTransactionError,
    OversoldPositionError,
    TransactionCurrencyError,
)
from portfolio_snapshots.history import (
    CashBalance,
    CostBasisMethod,
    FxQuote,
    LedgerReplayer,
    LedgerState,
    Transaction,
    TransactionKind,
    ledger_splits,
    parse_transaction,
    replay,
    replay_range,
)
from portfolio_snapshots.testing.strategies import LEDGER_START, ledgers

K = TransactionKind
AVG = CostBasisMethod.AVERAGE
FIFO = CostBasisMethod.FIFO
PID = uuid.UUID("00000000-0000-4000-8000-00000000c057")
OTHER = uuid.UUID("00000000-0000-4000-8000-00000000c058")
D1 = dt.date(2024, 5, 1)
D2 = dt.date(2024, 5, 2)
D3 = dt.date(2024, 5, 3)
D4 = dt.date(2024, 5, 4)
TICKERS = ("AAA", "BBB", "CCC")
ZERO = Decimal(0)


def tx(
    day: dt.date, kind: TransactionKind, ticker: str | None = None, **fields: Any
) -> Transaction:
    """Build a transaction of the test portfolio; strings of numbers become Decimals."""
    converted = {
        k: Decimal(v) if isinstance(v, str) and k not in {"currency", "to_currency"} else v
        for k, v in fields.items()
    }
    return Transaction(PID, day, kind, ticker, **converted)  # type: ignore[arg-type]


def closes(day: dt.date, **prices: str) -> dict[str, PriceQuote]:
    """Quotes dated `day`, one per keyword (ticker=price)."""
    return {t: PriceQuote(t, Decimal(p), day) for t, p in prices.items()}


def job_for(
    transactions: list[Transaction],
    market: InMemoryMarketData,
    store: InMemorySnapshotRepository,
    *,
    fx: InMemoryFxRates | None = None,
    method: CostBasisMethod = AVG,
) -> SnapshotJob:
    """A job over the ledger, the closes and the rates given, "today" being 2024-05-31."""
    return SnapshotJob(
        portfolios=LedgerPortfolioRepository(
            InMemoryTransactionSource(transactions), cost_basis_method=method
        ),
        snapshots=store,
        market_data=market,
        fx_rates=fx,
        clock=lambda: dt.datetime(2024, 5, 31, 12, tzinfo=dt.UTC),
    )


# --- average cost and FIFO ------------------------------------------------------------------


def _two_lots_then_two_sales() -> list[Transaction]:
    return [
        tx(D1, K.DEPOSIT, amount="10000"),
        tx(D1, K.BUY, "X", quantity="10", price="100"),  # lot 1: 10 at 100, cost 1000
        tx(D2, K.BUY, "X", quantity="10", price="130"),  # lot 2: 10 at 130, cost 1300
        tx(D3, K.SELL, "X", quantity="15", price="150"),  # proceeds 2250
        tx(D4, K.SELL, "X", quantity="2", price="120"),  # proceeds 240
    ]


def test_average_cost_takes_the_held_cost_in_proportion_after_partial_sales() -> None:
    """Average cost: a sale of q of H units takes cost * q / H; the rest keeps the average."""
    ledger = _two_lots_then_two_sales()
    on_d3 = replay(ledger, D3).accounting
    assert on_d3 is not None
    # held 20 costing 2300; 15 sold take 2300 * 15 / 20 = 1725; 2250 - 1725 = 525 realized
    assert (on_d3.cost_basis, on_d3.realized_gain) == ({"X": Decimal(575)}, Decimal(525))
    on_d4 = replay(ledger, D4).accounting
    assert on_d4 is not None
    # held 5 costing 575; 2 sold take 575 * 2 / 5 = 230; 240 - 230 = 10 more realized
    assert on_d4.cost_basis == {"X": Decimal(345)}
    assert on_d4.realized_gain == Decimal(535)
    assert on_d4.position_realized == {"X": Decimal(535)}


def test_fifo_takes_the_oldest_lots_first_after_partial_sales() -> None:
    """FIFO: a sale empties the oldest lot, then takes part of the next one in proportion."""
    ledger = _two_lots_then_two_sales()
    on_d3 = replay(ledger, D3, cost_basis_method=FIFO).accounting
    assert on_d3 is not None
    # 15 sold: all of lot 1 (1000) and 5 of lot 2 (1300 * 5 / 10 = 650): cost 1650;
    # 2250 - 1650 = 600 realized; 5 units of lot 2 left, costing 650
    assert (on_d3.cost_basis, on_d3.realized_gain) == ({"X": Decimal(650)}, Decimal(600))
    on_d4 = replay(ledger, D4, cost_basis_method=FIFO).accounting
    assert on_d4 is not None
    # 2 sold of the 5 left: 650 * 2 / 5 = 260; 240 - 260 = -20; 600 - 20 = 580
    assert (on_d4.cost_basis, on_d4.realized_gain) == ({"X": Decimal(390)}, Decimal(580))
    # the method changes the books, never the cash: 10000 - 1000 - 1300 + 2250 + 240
    assert replay(ledger, D4, cost_basis_method=FIFO).cash == replay(ledger, D4).cash == 10190


def test_a_share_of_cost_that_does_not_terminate_is_rounded_to_18_places() -> None:
    """30.02 / 3 is rounded half-even to 18 places; the cost left is the rest, exactly."""
    ledger = [
        tx(D1, K.BUY, "X", quantity="1", price="10"),
        tx(D1, K.BUY, "X", quantity="2", price="10.01"),  # 3 units costing 30.02
        tx(D2, K.SELL, "X", quantity="1", price="11"),
    ]
    books = replay(ledger, D2).accounting
    assert books is not None
    taken = Decimal("10.006666666666666667")  # 30.02 / 3 = 10.00666..., the last 6 rounds up
    assert books.cost_basis == {"X": Decimal("30.02") - taken}
    assert books.realized_gain == Decimal(11) - taken
    assert DIVISION_PLACES == MAX_PLACES


def test_a_sale_closing_the_position_takes_all_its_cost() -> None:
    """Whatever the rounding on the way, closing a position realizes proceeds - total cost."""
    ledger = [
        tx(D1, K.BUY, "X", quantity="3", price="10.01"),  # cost 30.03
        tx(D2, K.SELL, "X", quantity="1", price="10"),  # takes 10.01
        tx(D3, K.SELL, "X", quantity="2", price="10"),  # takes the 20.02 left
    ]
    for method in CostBasisMethod:
        books = replay(ledger, D3, cost_basis_method=method).accounting
        assert books is not None
        # proceeds 30 - cost 30.03 = -0.03, and nothing is left
        assert (books.cost_basis, books.realized_gain) == ({}, Decimal("-0.03"))


def test_a_days_purchases_come_before_its_sales_and_form_one_fifo_lot() -> None:
    """Within a day, buys apply before sells whatever their order; FIFO keeps one lot a day."""
    ledger = [
        tx(D1, K.BUY, "X", quantity="10", price="10"),  # lot of D1: 10 costing 100
        tx(D2, K.SELL, "X", quantity="12", price="20"),  # listed before the day's buys
        tx(D2, K.BUY, "X", quantity="4", price="30"),
        tx(D2, K.BUY, "X", quantity="6", price="40"),  # lot of D2: 10 costing 120 + 240 = 360
    ]
    books = replay(ledger, D2, cost_basis_method=FIFO).accounting
    assert books is not None
    # 12 sold: lot D1 (100) and 2 of lot D2 (360 * 2 / 10 = 72): 240 - 172 = 68 realized
    assert (books.cost_basis, books.realized_gain) == ({"X": Decimal(288)}, Decimal(68))


def test_a_sell_at_a_loss_with_fees() -> None:
    """Fees are not cost basis: a round trip 50 -> 40 with 5 fee each way loses 100 + 10."""
    ledger = [
        tx(D1, K.DEPOSIT, amount="1000"),
        tx(D1, K.BUY, "X", quantity="10", price="50", fee="5"),  # cash -505, cost 500
        tx(D2, K.SELL, "X", quantity="10", price="40", fee="5"),  # cash +395
    ]
    state = replay(ledger, D2)
    assert state.accounting is not None
    # realized: 400 - 500 = -100; fees 5 + 5 = 10; cash 1000 - 505 + 395 = 890
    assert state.accounting.realized_gain == Decimal(-100)
    assert state.accounting.fees == Decimal(10)
    snapshot = value_portfolio(state.to_portfolio(PID), {}, D2)
    assert snapshot.total_value == Decimal(890)
    assert (snapshot.cost_basis, snapshot.unrealized_gain) == (ZERO, ZERO)
    # realized - fees = -110 = 890 - 1000: the loss, in full
    assert snapshot.realized_gain - snapshot.fees == snapshot.total_value - 1000  # type: ignore[operator]


# --- income, fees and taxes -----------------------------------------------------------------


def test_a_dividend_and_the_tax_withheld_on_it() -> None:
    """A dividend of 50 with 7.50 withheld: dividends 50 (and the position's), taxes 7.50."""
    ledger = [
        tx(D1, K.DEPOSIT, amount="2000"),
        tx(D1, K.BUY, "X", quantity="100", price="20"),
        tx(D2, K.DIVIDEND, "X", amount="50"),
        tx(D2, K.TAX, "X", amount="7.50"),  # 15 % withheld at source
        tx(D3, K.TAX_REFUND, "X", amount="2.50"),  # a treaty rate of 10 %: 2.50 refunded
        tx(D3, K.INTEREST, amount="1.25"),
    ]
    on_d2 = replay(ledger, D2)
    assert on_d2.cash == Decimal("42.50")  # 2000 - 2000 + 50 - 7.50
    snapshot = value_portfolio(on_d2.to_portfolio(PID), closes(D2, X="21"), D2)
    assert (snapshot.dividends, snapshot.taxes) == (Decimal(50), Decimal("7.50"))
    assert snapshot.interest == ZERO
    assert snapshot.positions[0].dividends == 50
    # 100 * 21 - 2000 = 100 unrealized; 100 + 50 - 7.50 = 142.50 = 2142.50 - 2000
    assert snapshot.unrealized_gain == 100
    assert snapshot.total_value == Decimal("2142.50")
    on_d3 = value_portfolio(replay(ledger, D3).to_portfolio(PID), closes(D3, X="21"), D3)
    assert (on_d3.taxes, on_d3.interest) == (Decimal(5), Decimal("1.25"))
    assert on_d3.cash_balance == Decimal("46.25")


def test_a_dividend_without_a_ticker_counts_in_the_total_only() -> None:
    """An untickered dividend adds to the dividends, not to any position's."""
    books = replay([tx(D1, K.DIVIDEND, amount="3")], D1).accounting
    assert books is not None
    assert books.dividends == Decimal(3)
    assert books.position_dividends == {}


# --- transfers of units ---------------------------------------------------------------------


def test_a_transfer_in_with_its_cost_basis_is_a_flow_not_a_contribution() -> None:
    """TRANSFER_IN carries its cost basis; its value is the day's flow and a net transfer."""
    ledger = [
        # 10 units worth 80 each arrive from another broker, bought there for 600 in all
        tx(D1, K.TRANSFER_IN, "Y", quantity="10", price="80", amount="600"),
        # 4 leave for a third broker, worth 90 each: their cost 600 * 4 / 10 = 240 leaves too
        tx(D3, K.TRANSFER_OUT, "Y", quantity="4", price="90"),
    ]
    market = InMemoryMarketData()
    for day, close in [(D1, "80"), (D2, "85"), (D3, "90")]:
        market.add_price("Y", day, Decimal(close))
    store = InMemorySnapshotRepository()
    report = asyncio.run(job_for(ledger, market, store).backfill(PID, D1, D3))
    assert report.ok
    days = asyncio.run(store.list_snapshots(PID, D1, D3))
    assert [s.external_flow for s in days] == [800, 0, -360]  # 10 * 80, then -4 * 90
    assert [s.net_transfers for s in days] == [800, 800, 440]
    assert [s.net_contributions for s in days] == [0, 0, 0]  # no cash was contributed
    assert [s.cost_basis for s in days] == [600, 600, 360]
    assert [s.total_value for s in days] == [800, 850, 540]  # 10 * 80, 10 * 85, 6 * 90
    assert [s.unrealized_gain for s in days] == [200, 250, 180]
    assert [s.realized_gain for s in days] == [0, 0, 0]  # a transfer realizes nothing
    assert [s.cash_balance for s in days] == [0, 0, 0]


def test_a_transfer_in_without_an_amount_costs_its_value() -> None:
    """Without `amount`, the units carried over cost quantity * price."""
    ledger = [tx(D1, K.TRANSFER_IN, "Y", quantity="3", price="7.5")]
    books = replay(ledger, D1).accounting
    assert books is not None
    assert (books.cost_basis, books.net_transfers) == ({"Y": Decimal("22.5")}, Decimal("22.5"))


def test_transferring_out_more_than_held_is_an_error_naming_the_kind() -> None:
    """A TRANSFER_OUT beyond the position is an OversoldPositionError of kind transfer_out."""
    ledger = [
        tx(D1, K.BUY, "Y", quantity="1", price="1"),
        tx(D2, K.TRANSFER_OUT, "Y", quantity="2", price="1"),
    ]
    with pytest.raises(OversoldPositionError) as caught:
        replay(ledger, D2)
    assert caught.value.kind == "transfer_out"
    assert (caught.value.sold, caught.value.available) == (Decimal(2), Decimal(1))


def test_fifo_takes_a_days_sales_before_its_transfers_out() -> None:
    """On one day, sales take the oldest lots and transfers out the next ones (FIFO)."""
    ledger = [
        tx(D1, K.BUY, "X", quantity="1", price="10"),
        tx(D2, K.BUY, "X", quantity="1", price="30"),
        tx(D3, K.TRANSFER_OUT, "X", quantity="1", price="40"),
        tx(D3, K.SELL, "X", quantity="1", price="40"),
    ]
    books = replay(ledger, D3, cost_basis_method=FIFO).accounting
    assert books is not None
    # the sale takes the lot of D1 (10): 40 - 10 = 30; the transfer takes the lot of D2
    assert (books.realized_gain, books.cost_basis) == (Decimal(30), {})
    average = replay(ledger, D3).accounting
    assert average is not None
    # average cost 20 each: the sale realizes 40 - 20 = 20
    assert average.realized_gain == Decimal(20)


# --- cash in several currencies -------------------------------------------------------------


def _euro_ledger() -> list[Transaction]:
    return [
        # 1000 EUR paid in at 1.10: a contribution of 1100 USD
        tx(D1, K.DEPOSIT, amount="1000", currency="EUR", fx_rate="1.10"),
        # 5 SAP at 150 EUR + 2 EUR fee: EUR cash 1000 - 752 = 248; cost 750 * 1.10 = 825 USD
        tx(D1, K.BUY, "SAP", quantity="5", price="150", fee="2", currency="EUR", fx_rate="1.10"),
        # 2 SAP sold at 170 EUR, booked at 1.25: EUR cash 248 + 340 = 588; proceeds 425 USD,
        # cost taken 825 * 2 / 5 = 330 USD: 95 USD realized
        tx(D3, K.SELL, "SAP", quantity="2", price="170", currency="EUR", fx_rate="1.25"),
        # 500 EUR changed into 620 USD: EUR 88, USD 620
        tx(D3, K.EXCHANGE, amount="500", currency="EUR", to_currency="USD", to_amount="620"),
    ]


def test_a_trade_in_a_second_currency_keeps_its_cash_in_that_currency() -> None:
    """The job values cash per currency at the day's rate beside the position's value."""
    market = InMemoryMarketData()
    fx = InMemoryFxRates()
    for day, close, rate in [(D1, "150", "1.10"), (D2, "160", "1.20"), (D3, "170", "1.25")]:
        market.add_price("SAP", day, Decimal(close), currency="EUR")
        fx.add_rate("EUR", "USD", day, Decimal(rate))
    store = InMemorySnapshotRepository()
    report = asyncio.run(job_for(_euro_ledger(), market, store, fx=fx).backfill(PID, D1, D3))
    assert report.ok
    _, on_d2, on_d3 = asyncio.run(store.list_snapshots(PID, D1, D3))
    # D2: 5 * 160 * 1.20 = 960.00 USD of SAP; 248 EUR * 1.20 = 297.60 USD of cash
    assert on_d2.cash_balances == (
        CashBalance("USD", ZERO, ZERO),
        CashBalance("EUR", Decimal(248), Decimal("297.60"), Decimal("1.20")),
    )
    assert (on_d2.holdings_value, on_d2.cash_balance) == (Decimal("960.00"), Decimal("297.60"))
    assert on_d2.total_value == Decimal("1257.60")
    assert on_d2.net_contributions == 1100
    assert (on_d2.cost_basis, on_d2.unrealized_gain) == (Decimal(825), Decimal(135))  # 960 - 825
    assert on_d2.fees == Decimal("2.20")  # 2 EUR at 1.10
    # D3: 3 * 170 * 1.25 = 637.50 of SAP; 88 EUR * 1.25 = 110.00; 620 USD
    assert on_d3.cash_balances == (
        CashBalance("USD", Decimal(620), Decimal(620)),
        CashBalance("EUR", Decimal(88), Decimal("110.00"), Decimal("1.25")),
    )
    assert on_d3.total_value == Decimal("1367.50")  # 637.50 + 110.00 + 620
    assert (on_d3.cost_basis, on_d3.realized_gain) == (Decimal(495), Decimal(95))  # 825 - 330


def test_a_foreign_trade_without_its_rate_makes_the_figures_it_touches_unknown() -> None:
    """Without fx_rate, a foreign buy's cost is unknown (absent), never zero or a guess."""
    ledger = [
        tx(D1, K.DEPOSIT, amount="100", currency="EUR", fx_rate="1.1"),
        tx(D1, K.BUY, "SAP", quantity="1", price="50", fee="1", currency="EUR"),
        tx(D1, K.BUY, "AAPL", quantity="1", price="10"),
        tx(D1, K.DEPOSIT, amount="10"),
    ]
    state = replay(ledger, D1)
    books = state.accounting
    assert books is not None
    assert books.cost_basis == {"AAPL": Decimal(10)}  # SAP's cost is not known
    assert books.fees is None  # 1 EUR at an unknown rate
    assert books.realized_gain == 0  # nothing was sold: still known
    assert state.foreign_cash == {"EUR": Decimal(49)}  # 100 - 50 - 1
    snapshot = value_portfolio(
        Portfolio(PID, state.cash, {"AAPL": Decimal(1)}, accounting=books),
        closes(D1, AAPL="12"),
        D1,
    )
    assert (snapshot.cost_basis, snapshot.positions[0].cost_basis) == (Decimal(10), Decimal(10))
    whole = SnapshotCalculator().value_many(
        [state.to_portfolio(PID)],
        PriceTable(
            {**closes(D1, AAPL="12"), "SAP": PriceQuote("SAP", Decimal(50), D1, "EUR")},
            D1,
            fx_rates={("EUR", "USD"): FxQuote("EUR", "USD", Decimal("1.1"), D1)},
        ),
    )[0][0]
    assert whole.cost_basis is None  # one position's cost is unknown, so the total is
    assert [p.cost_basis for p in whole.positions] == [Decimal(10), None]


def test_selling_units_of_unknown_cost_makes_the_realized_gain_unknown_from_then_on() -> None:
    """The gain on units of unknown cost is unknown, and so is every later total."""
    ledger = [
        tx(D1, K.BUY, "SAP", quantity="2", price="50", currency="EUR"),
        tx(D2, K.SELL, "SAP", quantity="1", price="60", currency="EUR", fx_rate="1.1"),
        tx(D3, K.BUY, "AAPL", quantity="1", price="10"),
        tx(D3, K.SELL, "AAPL", quantity="1", price="12"),
    ]
    books = replay(ledger, D3).accounting
    assert books is not None
    assert (books.realized_gain, books.position_realized) == (None, None)


def test_a_closed_position_of_unknown_cost_is_known_again_when_bought_back() -> None:
    """Once the units of unknown cost are gone, a new purchase has a known cost basis."""
    ledger = [
        tx(D1, K.BUY, "SAP", quantity="2", price="50", currency="EUR"),
        tx(D2, K.SELL, "SAP", quantity="2", price="60", currency="EUR"),
        tx(D3, K.BUY, "SAP", quantity="1", price="70", currency="EUR", fx_rate="1.2"),
    ]
    for method in CostBasisMethod:
        books = replay(ledger, D3, cost_basis_method=method).accounting
        assert books is not None
        assert books.cost_basis == {"SAP": Decimal("84.0")}  # 70 * 1.2


def test_fifo_knows_the_cost_again_once_the_unknown_lot_is_sold() -> None:
    """FIFO: the lot of unknown cost leaves first; the lot left has a known cost."""
    ledger = [
        tx(D1, K.BUY, "SAP", quantity="1", price="50", currency="EUR"),
        tx(D2, K.BUY, "SAP", quantity="1", price="60", currency="EUR", fx_rate="1.5"),
        tx(D3, K.SELL, "SAP", quantity="1", price="70", currency="EUR", fx_rate="1.5"),
    ]
    fifo = replay(ledger, D3, cost_basis_method=FIFO).accounting
    average = replay(ledger, D3).accounting
    assert fifo is not None
    assert average is not None
    assert (fifo.cost_basis, fifo.realized_gain) == ({"SAP": Decimal("90.0")}, None)
    assert (average.cost_basis, average.realized_gain) == ({}, None)


def test_zero_amounts_are_known_in_any_currency() -> None:
    """A zero fee in another currency needs no rate: zero is zero in every currency."""
    ledger = [tx(D1, K.BUY, "SAP", quantity="1", price="0", currency="EUR")]
    books = replay(ledger, D1).accounting
    assert books is not None
    assert (books.cost_basis, books.fees) == ({"SAP": ZERO}, ZERO)


@pytest.mark.parametrize("kind", [K.DEPOSIT, K.WITHDRAWAL, K.TRANSFER_IN, K.TRANSFER_OUT], ids=str)
def test_flows_in_another_currency_must_carry_their_rate(kind: TransactionKind) -> None:
    """Contributions and transfers are counted in the base currency: fx_rate is required."""
    fields: dict[str, str] = (
        {"amount": "1"} if kind in {K.DEPOSIT, K.WITHDRAWAL} else {"quantity": "1", "price": "1"}
    )
    ticker = None if "amount" in fields else "Y"
    with pytest.raises(TransactionCurrencyError) as caught:
        replay([tx(D1, kind, ticker, currency="EUR", **fields)], D1)
    assert (caught.value.field, caught.value.kind, caught.value.actual) == ("fx_rate", kind, "EUR")


@pytest.mark.parametrize(
    ("transaction", "field"),
    [
        (tx(D1, K.DEPOSIT, amount="1", fx_rate="1.1"), "fx_rate"),  # base currency: 1 or unset
        (tx(D1, K.DEPOSIT, amount="1", currency="EUR", fx_rate="0"), "fx_rate"),
        (tx(D1, K.SPLIT, "X", ratio="2", fx_rate="1"), "fx_rate"),
        (tx(D1, K.EXCHANGE, amount="1", currency="EUR", to_amount="1"), "to_currency"),
        (tx(D1, K.EXCHANGE, amount="1", to_currency="USD", to_amount="1"), "to_currency"),
        (tx(D1, K.EXCHANGE, amount="1", currency="EUR", to_currency="USD"), "to_amount"),
        (tx(D1, K.EXCHANGE, "X", amount="1", to_currency="EUR", to_amount="1"), "ticker"),
        (tx(D1, K.TRANSFER_IN, "X", quantity="1", price="1", fee="1"), "fee"),
        (tx(D1, K.TRANSFER_OUT, "X", quantity="1", price="1", amount="1"), "amount"),
        (tx(D1, K.TAX, amount="1", to_amount="1"), "to_amount"),
        (tx(D1, K.SPLIT, "X"), "ratio"),
        (tx(D1, K.SPLIT, "X", ratio="2", split_new=2, split_old=1), "split_new"),
        (tx(D1, K.SPLIT, "X", split_new=1), "split_old"),
        (tx(D1, K.SPLIT, "X", split_new=0, split_old=1), "split_new"),
        (tx(D1, K.SPLIT, "X", split_new=True, split_old=1), "split_new"),
        (tx(D1, K.BUY, "X", quantity="1", price="1", split_old=1), "split_old"),
    ],
)
def test_invalid_new_fields_name_the_field(transaction: Transaction, field: str) -> None:
    """Every new field is checked where it applies, and refused where it does not."""
    with pytest.raises(InvalidTransactionError) as caught:
        replay([transaction], D1)
    assert caught.value.field == field


def test_an_unknown_cost_basis_method_is_refused() -> None:
    """A cost basis method that is not a CostBasisMethod (or its value) is refused at once."""
    assert replay([], D1, cost_basis_method="fifo").opened_on is None  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        replay([], D1, cost_basis_method="lifo")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        LedgerPortfolioRepository(InMemoryTransactionSource([]), cost_basis_method=1)  # type: ignore[arg-type]


# --- exact splits ---------------------------------------------------------------------------


def test_a_one_for_three_reverse_split_is_exact() -> None:
    """1-for-3 of 9 units is 3 units exactly, the ratio 1/3 exactly, the cost unchanged."""
    ledger = [
        tx(D1, K.BUY, "X", quantity="9", price="10"),
        tx(D2, K.SPLIT, "X", split_new=1, split_old=3),
    ]
    state = replay(ledger, D2)
    assert state.holdings == {"X": Decimal(3)}
    assert state.splits == {"X": ((D2, Fraction(1, 3)),)}
    assert state.accounting is not None
    assert state.accounting.cost_basis == {"X": Decimal(90)}
    # valued on D2 with the close of D1 (10, before the split): 10 / (1/3) = 30 per new unit
    snapshot = value_portfolio(state.to_portfolio(PID), closes(D1, X="10"), D2)
    (position,) = snapshot.positions
    assert (position.price, position.market_value) == (Decimal(30), Decimal("90.00"))


def test_a_quantity_the_ratio_does_not_divide_is_rounded_to_18_places() -> None:
    """10 units 1-for-3 are 3.333333333333333333 (18 places, half-even); lots add up to it."""
    ledger = [
        tx(D1, K.BUY, "X", quantity="5", price="10"),
        tx(D2, K.BUY, "X", quantity="5", price="20"),
        tx(D3, K.SPLIT, "X", split_new=1, split_old=3),
    ]
    third = Decimal("3.333333333333333333")
    for method in CostBasisMethod:
        state = replay(ledger, D3, cost_basis_method=method)
        assert state.holdings == {"X": third}
    # FIFO: each lot of 5 becomes 1.666666666666666667, which add up to ...334: the larger
    # (the first, on a tie) takes the difference, so that selling the position takes it all
    sell_all = [*ledger, tx(D4, K.SELL, "X", quantity=str(third), price="30")]
    for method in CostBasisMethod:
        books = replay(sell_all, D4, cost_basis_method=method).accounting
        assert books is not None
        # 3.333333333333333333 * 30 = 99.99999999999999999 proceeds, 150 cost
        assert books.realized_gain == third * 30 - 150
        assert books.cost_basis == {}
    # FIFO sells the first lot first: 1.666666666666666666 of the 3.333333333333333333 held
    half = [*ledger, tx(D4, K.SELL, "X", quantity="1.666666666666666666", price="30")]
    books = replay(half, D4, cost_basis_method=FIFO).accounting
    assert books is not None
    assert books.cost_basis == {"X": Decimal(100)}  # the second lot, whole


def test_split_units_are_parsed_from_untrusted_rows() -> None:
    """parse_transaction reads split_new and split_old as whole numbers, in ints or digits."""
    row = {
        "portfolio_id": str(PID),
        "trade_date": "2024-05-02",
        "kind": "SPLIT",
        "ticker": "X",
        "split_new": "1",
        "split_old": 3,
    }
    assert parse_transaction(row) == tx(D2, K.SPLIT, "X", split_new=1, split_old=3)
    with pytest.raises(InvalidTransactionError) as caught:
        parse_transaction({**row, "split_old": 3.0})
    assert caught.value.field == "split_old"


def test_new_kinds_and_fields_are_parsed_from_untrusted_rows() -> None:
    """parse_transaction accepts the new kinds and fx_rate, to_currency and to_amount."""
    base = {"portfolio_id": str(PID), "trade_date": "2024-05-01"}
    rows = [
        {"kind": "transfer_in", "ticker": "Y", "quantity": "10", "price": "80", "amount": "600"},
        {"kind": "TRANSFER_OUT", "ticker": "Y", "quantity": "4", "price": "90"},
        {"kind": "tax", "ticker": "X", "amount": "7.50"},
        {"kind": "Tax_Refund", "amount": "2.50"},
        {
            "kind": "exchange",
            "amount": "500",
            "currency": "EUR",
            "to_currency": "USD",
            "to_amount": "620",
        },
        {"kind": "deposit", "amount": "1000", "currency": "EUR", "fx_rate": "1.10"},
    ]
    expected = [
        tx(D1, K.TRANSFER_IN, "Y", quantity="10", price="80", amount="600"),
        tx(D1, K.TRANSFER_OUT, "Y", quantity="4", price="90"),
        tx(D1, K.TAX, "X", amount="7.50"),
        tx(D1, K.TAX_REFUND, amount="2.50"),
        tx(D1, K.EXCHANGE, amount="500", currency="EUR", to_currency="USD", to_amount="620"),
        tx(D1, K.DEPOSIT, amount="1000", currency="EUR", fx_rate="1.10"),
    ]
    assert [parse_transaction({**base, **row}) for row in rows] == expected
    with pytest.raises(InvalidTransactionError) as caught:
        parse_transaction({**base, "kind": "deposit", "amount": "1", "fx_rate": 1.1})
    assert caught.value.field == "fx_rate"


def test_the_ledgers_splits_feed_unadjust_splits() -> None:
    """ledger_splits hands each split once to unadjust_splits: 1-for-3 restores a third."""
    alice = [
        tx(D1, K.BUY, "X", quantity="9", price="10"),
        tx(D2, K.SPLIT, "X", split_new=1, split_old=3),
        tx(D3, K.SPLIT, "Z", ratio="2"),
        tx(D3, K.SPLIT, "Z", ratio="2"),  # two splits of one day multiply: 4-for-1
    ]
    bob = [Transaction(OTHER, D2, K.SPLIT, "X", split_new=1, split_old=3)]
    splits = ledger_splits([*alice, *bob])
    assert splits == {"X": ((D2, Fraction(1, 3)),), "Z": ((D3, Fraction(4)),)}
    # the provider adjusted the close of D1 for the reverse split: 10 as traded, 30 adjusted
    adjusted = InMemoryMarketData(
        [
            PriceQuote("X", Decimal(30), D1),
            PriceQuote("X", Decimal("10.00"), dt.date(2024, 4, 30)),
            PriceQuote("Z", Decimal("25.5"), D1),
        ]
    )
    market = unadjust_splits(adjusted, splits)
    quotes = asyncio.run(market.get_prices(["X", "Z"], D1))
    assert quotes["X"].price == 10  # 30 * 1/3
    assert quotes["Z"].price == Decimal("102.0")  # 25.5 * 4
    older = asyncio.run(market.get_prices(["X"], dt.date(2024, 4, 30)))["X"].price
    # 10.00 / 3 has no end: rounded to 28 significant digits, half-even
    assert older == Decimal("3.333333333333333333333333333")


def test_ledgers_recording_one_split_differently_are_an_error() -> None:
    """Two portfolios recording different ratios for one split raise ConflictingSplitError."""
    ledger = [
        tx(D2, K.SPLIT, "X", split_new=1, split_old=3),
        Transaction(OTHER, D2, K.SPLIT, "X", ratio=Decimal(3)),
    ]
    with pytest.raises(ConflictingSplitError) as caught:
        ledger_splits(ledger)
    assert (caught.value.ticker, caught.value.trade_date) == ("X", D2)
    assert caught.value.ratios == (Fraction(1, 3), Fraction(3))


# --- properties -----------------------------------------------------------------------------

_closes = st.fixed_dictionaries(
    {t: st.decimals(min_value=0, max_value=2000, places=2) for t in TICKERS}
)


@given(
    ledger=ledgers(portfolio_id=PID, split_units=True),
    prices=st.lists(_closes, min_size=46, max_size=46),
    method=st.sampled_from(CostBasisMethod),
)
def test_gains_income_fees_and_taxes_add_up_to_the_value_less_contributions(
    ledger: list[Transaction], prices: list[dict[str, Decimal]], method: CostBasisMethod
) -> None:
    """Unrealized + realized + dividends + interest - fees - taxes == total - contributions."""
    days = replay_range(
        ledger, LEDGER_START, LEDGER_START + dt.timedelta(days=45), cost_basis_method=method
    )
    for state, day_prices in zip(days, prices, strict=True):
        quotes = {t: PriceQuote(t, p, state.as_of) for t, p in day_prices.items()}
        snap = value_portfolio(state.to_portfolio(PID), quotes, state.as_of)
        books = (snap.unrealized_gain, snap.realized_gain, snap.dividends, snap.interest)
        paid = (snap.fees, snap.taxes)
        assert snap.net_contributions is not None
        assert None not in books
        assert None not in paid
        unrealized, realized, dividends, interest = books
        fees, taxes = paid
        with decimal.localcontext(exact_context()):  # the books may have 30 digits and more
            assert unrealized + realized + dividends + interest - fees - taxes == (  # type: ignore[operator]
                snap.total_value - snap.net_contributions
            )


@given(
    ledger=ledgers(
        portfolio_id=PID,
        kinds=tuple(TransactionKind),
        currencies=("EUR",),
        whole_sales=True,
        split_units=True,
    )
)
def test_fifo_and_average_cost_agree_when_every_sale_closes_the_position(
    ledger: list[Transaction],
) -> None:
    """When units only ever leave a position all at once, the two methods are the same."""
    end = LEDGER_START + dt.timedelta(days=45)
    fifo = list(replay_range(ledger, LEDGER_START, end, cost_basis_method=FIFO))
    average = list(replay_range(ledger, LEDGER_START, end, cost_basis_method=AVG))
    assert fifo == average


@given(
    ledger=ledgers(
        portfolio_id=PID, kinds=tuple(TransactionKind), currencies=("EUR", "JPY"), split_units=True
    ),
    prices=_closes,
    rates=st.tuples(
        st.decimals(min_value=Decimal("0.01"), max_value=10, places=4),
        st.decimals(min_value=Decimal("0.0001"), max_value=1, places=6),
    ),
)
def test_the_total_value_is_the_cash_in_every_currency_plus_the_holdings(
    ledger: list[Transaction], prices: dict[str, Decimal], rates: tuple[Decimal, Decimal]
) -> None:
    """The total is the sum of every cash balance's value + holdings, each balance at its rate."""
    day = LEDGER_START + dt.timedelta(days=45)
    state = replay(ledger, day)
    eur, jpy = rates
    fx = {
        ("EUR", "USD"): FxQuote("EUR", "USD", eur, day),
        ("JPY", "USD"): FxQuote("JPY", "USD", jpy, day),
    }
    quotes = {t: PriceQuote(t, p, day) for t, p in prices.items()}
    valued, failed = SnapshotCalculator().value_many(
        [state.to_portfolio(PID)], PriceTable(quotes, day, fx_rates=fx)
    )
    assert failed == []
    (snap,) = valued
    balances = snap.cash_balances or (CashBalance("USD", snap.cash_balance, snap.cash_balance),)
    assert balances[0] == CashBalance("USD", state.cash, state.cash)
    held = {c.currency: c.amount for c in balances[1:]}
    assert held == dict(state.foreign_cash or {})
    rate = {"EUR": eur, "JPY": jpy}
    with decimal.localcontext(exact_context()):  # cash may have more than 28 digits
        assert snap.total_value == sum(c.value for c in balances) + snap.holdings_value
        assert all(
            c.value == (c.amount * rate[c.currency]).quantize(Decimal("0.01")) for c in balances[1:]
        )


@given(
    ledger=ledgers(
        portfolio_id=PID,
        kinds=tuple(TransactionKind),
        currencies=("EUR",),
        allow_oversell=True,
        split_units=True,
    ),
    method=st.sampled_from(CostBasisMethod),
)
def test_the_one_pass_replay_equals_a_full_replay_with_the_books_on_every_date(
    ledger: list[Transaction], method: CostBasisMethod
) -> None:
    """LedgerReplayer's state of each date, books and foreign cash included, is replay()'s."""
    replayer = LedgerReplayer(ledger, cost_basis_method=method)
    day = LEDGER_START - dt.timedelta(days=1)
    while day <= LEDGER_START + dt.timedelta(days=46):
        try:
            expected: LedgerState | str = replay(ledger, day, cost_basis_method=method)
        except InvalidTransactionError as error:
            expected = str(error)
        try:
            got: LedgerState | str = replayer.advance(day)
        except InvalidTransactionError as error:
            got = str(error)
        assert got == expected
        day += dt.timedelta(days=1)


@given(
    ledger=ledgers(portfolio_id=PID, kinds=tuple(TransactionKind), currencies=("EUR",)),
    data=st.data(),
    method=st.sampled_from(CostBasisMethod),
)
def test_the_books_do_not_depend_on_the_order_of_the_ledger(
    ledger: list[Transaction], data: st.DataObject, method: CostBasisMethod
) -> None:
    """A replay's books, foreign cash included, do not depend on the order of its input."""
    shuffled = data.draw(st.permutations(ledger))
    end = LEDGER_START + dt.timedelta(days=45)
    assert replay(shuffled, end, cost_basis_method=method) == replay(
        ledger, end, cost_basis_method=method
    )


def test_a_zero_close_values_the_units_at_zero_and_keeps_their_cost() -> None:
    """A worthless security is worth 0 and its whole cost is an unrealized loss."""
    ledger = [tx(D1, K.BUY, "GONE", quantity="10", price="4")]  # cost 40
    snapshot = value_portfolio(replay(ledger, D1).to_portfolio(PID), closes(D1, GONE="0"), D1)
    (position,) = snapshot.positions
    assert position.valued_at_zero
    # 10 * 0 = 0 worth; 0 - 40 = -40 unrealized
    assert (position.market_value, position.cost_basis) == (ZERO, Decimal(40))
    assert (position.unrealized_gain, snapshot.unrealized_gain) == (Decimal(-40), Decimal(-40))
