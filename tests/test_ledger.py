from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import uuid
from decimal import Decimal
from fractions import Fraction
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portfolio_snapshots import Portfolio
from portfolio_snapshots._decimal import exact_context
from portfolio_snapshots.errors import (
    FutureTransactionError,
    InvalidDateRangeError,
    InvalidPortfolioError,
    InvalidTransactionError,
    OversoldPositionError,
    TransactionCurrencyError,
    UnknownTransactionKindError,
    UnsortedLedgerError,
)
from portfolio_snapshots.history import (
    Accounting,
    LedgerReplayer,
    LedgerState,
    Transaction,
    TransactionKind,
    parse_transaction,
    replay,
    replay_range,
    validate_transaction,
)
from portfolio_snapshots.testing.strategies import LEDGER_START as START
from portfolio_snapshots.testing.strategies import ledgers

PID = uuid.UUID("00000000-0000-4000-8000-000000000001")
OTHER = uuid.UUID("00000000-0000-4000-8000-000000000002")
D1 = dt.date(2024, 3, 1)
D2 = dt.date(2024, 3, 2)
D3 = dt.date(2024, 3, 3)
D4 = dt.date(2024, 3, 4)
K = TransactionKind


def tx(day: dt.date, kind: TransactionKind | str, **fields: Any) -> Transaction:
    """Build a transaction of the test portfolio (amounts given as strings become Decimals)."""
    converted = {k: Decimal(v) if isinstance(v, str) and k not in {"ticker", "currency"} else v
                 for k, v in fields.items()}  # fmt: skip
    return Transaction(PID, day, kind, **converted)  # type: ignore[arg-type]


def deposit(day: dt.date, amount: str) -> Transaction:
    """Build a deposit of the test portfolio."""
    return tx(day, K.DEPOSIT, amount=amount)


def buy(day: dt.date, ticker: str, quantity: str, price: str, fee: str = "0") -> Transaction:
    """Build a purchase of the test portfolio."""
    return tx(day, K.BUY, ticker=ticker, quantity=quantity, price=price, fee=fee)


def sell(day: dt.date, ticker: str, quantity: str, price: str, fee: str = "0") -> Transaction:
    """Build a sale of the test portfolio."""
    return tx(day, K.SELL, ticker=ticker, quantity=quantity, price=price, fee=fee)


# --- replay: the effect of each kind -------------------------------------------------------


def test_buy_and_sell_move_cash_by_quantity_times_price_and_the_fee() -> None:
    """A BUY costs quantity * price + fee and a SELL brings quantity * price - fee."""
    ledger = [
        deposit(D1, "1000.00"),
        buy(D1, "AAPL", "3", "100.50", fee="1.25"),  # cash -= 301.50 + 1.25
        sell(D2, "AAPL", "1", "110.00", fee="0.75"),  # cash += 110.00 - 0.75
    ]
    state = replay(ledger, D2)
    assert state.cash == Decimal("1000.00") - Decimal("302.75") + Decimal("109.25")
    assert state.cash == Decimal("806.50")
    assert state.holdings == {"AAPL": Decimal(2)}


@pytest.mark.parametrize(
    ("kind", "effect"),
    [
        (K.DEPOSIT, Decimal("12.34")),
        (K.WITHDRAWAL, Decimal("-12.34")),
        (K.DIVIDEND, Decimal("12.34")),
        (K.FEE, Decimal("-12.34")),
        (K.INTEREST, Decimal("12.34")),
    ],
)
def test_cash_kinds_add_or_remove_their_amount(kind: TransactionKind, effect: Decimal) -> None:
    """DEPOSIT, DIVIDEND and INTEREST add their amount to cash; WITHDRAWAL and FEE remove it."""
    state = replay([tx(D1, kind, amount="12.34")], D1)
    assert state.cash == effect
    assert state.holdings == {}


def test_only_deposits_and_withdrawals_are_contributions() -> None:
    """net_contributions counts deposits minus withdrawals, not dividends, interest or fees."""
    ledger = [
        deposit(D1, "500"),
        tx(D1, K.DIVIDEND, ticker="AAPL", amount="7"),
        tx(D2, K.INTEREST, amount="3"),
        tx(D2, K.FEE, amount="2"),
        tx(D3, K.WITHDRAWAL, amount="120"),
    ]
    state = replay(ledger, D3)
    assert state.net_contributions == Decimal(380)
    assert state.cash == Decimal(388)


def test_external_flow_is_the_flow_of_the_as_of_date_only() -> None:
    """external_flow is the deposits minus withdrawals dated as_of itself, zero on other days."""
    ledger = [deposit(D1, "100"), deposit(D2, "50"), tx(D2, K.WITHDRAWAL, amount="20")]
    assert replay(ledger, D1).external_flow == Decimal(100)
    assert replay(ledger, D2).external_flow == Decimal(30)
    assert replay(ledger, D3).external_flow == 0
    assert replay(ledger, D3).net_contributions == Decimal(130)


def test_split_multiplies_the_quantity_from_its_date_on_without_moving_cash() -> None:
    """A 2-for-1 SPLIT doubles the quantity held from its date; cash is untouched."""
    ledger = [
        deposit(D1, "1000"),
        buy(D1, "AAPL", "3", "100"),
        tx(D3, K.SPLIT, ticker="AAPL", ratio="2"),
    ]
    assert replay(ledger, D2).holdings == {"AAPL": Decimal(3)}
    state = replay(ledger, D3)
    assert state.holdings == {"AAPL": Decimal(6)}
    assert state.cash == Decimal(700)


def test_split_applies_before_the_trades_of_its_date() -> None:
    """Trades dated on a split's date are in post-split units: the split does not multiply them."""
    ledger = [
        buy(D1, "AAPL", "10", "100"),
        buy(D2, "AAPL", "4", "50"),  # listed before the split, bought at the post-split price
        tx(D2, K.SPLIT, ticker="AAPL", ratio="2"),
        sell(D2, "AAPL", "24", "50"),  # 10 * 2 + 4: the whole position, allowed
    ]
    state = replay(ledger, D2)
    assert state.holdings == {}
    assert state.cash == Decimal(-1000) - Decimal(200) + Decimal(1200)


def test_reverse_split_and_split_of_a_ticker_not_held() -> None:
    """A 1-for-10 SPLIT divides the quantity; a SPLIT of a ticker not held changes nothing."""
    ledger = [
        buy(D1, "AAPL", "25", "4"),
        tx(D2, K.SPLIT, ticker="AAPL", ratio="0.1"),
        tx(D2, K.SPLIT, ticker="MSFT", ratio="3"),
    ]
    assert replay(ledger, D2).holdings == {"AAPL": Decimal("2.5")}


def test_a_position_sold_out_is_absent() -> None:
    """Selling a whole position removes its ticker from the holdings."""
    ledger = [buy(D1, "AAPL", "2", "10"), sell(D2, "AAPL", "2", "11")]
    assert replay(ledger, D2).holdings == {}


def test_the_order_within_a_day_does_not_matter() -> None:
    """A sale listed before the same day's purchase that covers it is accepted."""
    ledger = [sell(D1, "AAPL", "5", "10"), buy(D1, "AAPL", "5", "10")]
    state = replay(ledger, D1)
    assert state.holdings == {}
    assert state.cash == 0


def test_transactions_after_as_of_are_ignored_even_when_invalid() -> None:
    """A replay looks only at transactions dated on or before as_of."""
    ledger = [deposit(D1, "10"), sell(D3, "AAPL", "1000", "1"), tx(D4, "transfer")]
    state = replay(ledger, D2)
    assert state.cash == Decimal(10)
    assert state.as_of == D2


def test_a_replay_before_the_first_transaction_is_empty() -> None:
    """Before its first transaction a portfolio has no cash, holdings, opening date or books."""
    state = replay([deposit(D2, "10")], D1)
    zero = Decimal(0)
    books = Accounting({}, zero, zero, zero, zero, zero, zero, {}, {})
    assert state == LedgerState(D1, zero, {}, zero, zero, "USD", None, accounting=books)
    assert replay([deposit(D2, "10")], D3).opened_on == D2


def test_to_portfolio_fills_contributions_and_flow() -> None:
    """LedgerState.to_portfolio carries cash, holdings, currency, contributions, flow, books."""
    ledger = [
        tx(D1, K.DEPOSIT, amount="100", currency="EUR"),
        tx(D1, K.BUY, ticker="SAP", quantity="1", price="60", currency="EUR"),
    ]
    portfolio = replay(ledger, D1, currency="EUR").to_portfolio(PID)
    zero = Decimal(0)
    books = Accounting({"SAP": Decimal(60)}, zero, zero, zero, zero, zero, zero, {}, {})
    assert portfolio == Portfolio(
        PID, Decimal(40), {"SAP": Decimal(1)}, "EUR", Decimal(100), Decimal(100), accounting=books
    )


def test_replay_is_exact_whatever_the_thread_context() -> None:
    """Amounts are not rounded by a replay, even under a 3-digit thread context."""
    ledger = [buy(D1, "AAPL", "1.2345", "101.01", fee="0.01")]
    with decimal.localcontext(decimal.Context(prec=3)):
        state = replay(ledger, D1)
    # 1.2345 * 101.01 = 123.45 + 1.246845 = 124.696845; plus the fee: 124.706845
    assert state.cash == Decimal("-124.706845")


# --- replay: bad input ----------------------------------------------------------------------


def test_selling_more_than_held_is_an_error_never_clamped() -> None:
    """A sale exceeding the quantity held raises OversoldPositionError naming everything."""
    ledger = [buy(D1, "AAPL", "3", "10"), sell(D2, "AAPL", "2", "10"), sell(D2, "AAPL", "2", "10")]
    with pytest.raises(OversoldPositionError) as caught:
        replay(ledger, D2)
    error = caught.value
    assert (error.portfolio_id, error.trade_date, error.ticker) == (PID, D2, "AAPL")
    assert (error.sold, error.available, error.value) == (Decimal(4), Decimal(3), Decimal(4))
    assert isinstance(error, InvalidPortfolioError)
    assert str(PID) in str(error)
    assert "2024-03-02" in str(error)
    assert "AAPL" in str(error)


def test_selling_a_ticker_never_held_is_an_error() -> None:
    """A sale of a ticker the portfolio never held raises OversoldPositionError."""
    with pytest.raises(OversoldPositionError):
        replay([sell(D1, "AAPL", "1", "10")], D1)


@pytest.mark.parametrize(
    ("transaction", "field"),
    [
        (tx(D1, K.BUY, ticker="A", quantity="NaN", price="1"), "quantity"),
        (tx(D1, K.BUY, ticker="A", quantity="1", price="Infinity"), "price"),
        (tx(D1, K.SELL, ticker="A", quantity="sNaN", price="1"), "quantity"),
        (tx(D1, K.DEPOSIT, amount="-Infinity"), "amount"),
        (tx(D1, K.DIVIDEND, amount="NaN"), "amount"),
        (tx(D1, K.BUY, ticker="A", quantity="1", price="1", fee="NaN"), "fee"),
        (tx(D1, K.SPLIT, ticker="A", ratio="Infinity"), "ratio"),
    ],
)
def test_non_finite_numbers_are_errors(transaction: Transaction, field: str) -> None:
    """A non-finite amount, quantity, price, fee or ratio raises InvalidTransactionError."""
    with pytest.raises(InvalidTransactionError, match="must be finite") as caught:
        replay([transaction], D1)
    assert (caught.value.field, caught.value.trade_date, caught.value.portfolio_id) == (
        field,
        D1,
        PID,
    )


@pytest.mark.parametrize("field", ["quantity", "price", "amount", "fee"])
def test_floats_are_errors(field: str) -> None:
    """A float where a Decimal belongs raises InvalidTransactionError naming the field."""
    base: dict[str, Any] = (
        {"amount": Decimal(1)}
        if field == "amount"
        else {"ticker": "A", "quantity": Decimal(1), "price": Decimal(1)}
    )
    base[field] = 1.5
    kind = K.DEPOSIT if field == "amount" else K.BUY
    with pytest.raises(InvalidTransactionError, match="must be a Decimal") as caught:
        replay([Transaction(PID, D1, kind, **base)], D1)
    assert caught.value.field == field
    assert caught.value.value == 1.5


@pytest.mark.parametrize("kind", [K.BUY, K.SELL])
@pytest.mark.parametrize("quantity", ["-1", "0"])
def test_negative_or_zero_quantities_on_trades_are_errors(
    kind: TransactionKind, quantity: str
) -> None:
    """A BUY or SELL of a negative or zero quantity raises InvalidTransactionError."""
    with pytest.raises(InvalidTransactionError, match="above zero") as caught:
        replay([tx(D1, kind, ticker="A", quantity=quantity, price="1")], D1)
    assert caught.value.field == "quantity"
    assert caught.value.value == Decimal(quantity)
    assert caught.value.kind == kind


@pytest.mark.parametrize("ratio", ["0", "-2"])
def test_split_ratio_of_zero_or_less_is_an_error(ratio: str) -> None:
    """A SPLIT ratio of zero or less raises InvalidTransactionError naming the ratio."""
    with pytest.raises(InvalidTransactionError, match="above zero") as caught:
        replay([tx(D1, K.SPLIT, ticker="A", ratio=ratio)], D1)
    assert (caught.value.field, caught.value.value, caught.value.ticker) == (
        "ratio",
        Decimal(ratio),
        "A",
    )


@pytest.mark.parametrize(
    ("transaction", "field"),
    [
        (tx(D1, K.DEPOSIT, amount="-5"), "amount"),
        (tx(D1, K.BUY, ticker="A", quantity="1", price="-1"), "price"),
        (tx(D1, K.BUY, ticker="A", quantity="1", price="1", fee="-1"), "fee"),
    ],
)
def test_negative_amounts_prices_and_fees_are_errors(transaction: Transaction, field: str) -> None:
    """Amounts, prices and fees are never negative: the kind gives the sign."""
    with pytest.raises(InvalidTransactionError, match="must not be negative") as caught:
        replay([transaction], D1)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("transaction", "field"),
    [
        (tx(D1, K.BUY, quantity="1", price="1"), "ticker"),
        (tx(D1, K.BUY, ticker="", quantity="1", price="1"), "ticker"),
        (tx(D1, K.SELL, ticker="A", price="1"), "quantity"),
        (tx(D1, K.BUY, ticker="A", quantity="1"), "price"),
        (tx(D1, K.DEPOSIT), "amount"),
        (tx(D1, K.SPLIT, ticker="A"), "ratio"),
        (tx(D1, K.SPLIT, ratio="2"), "ticker"),
        (tx(D1, K.BUY, ticker="A", quantity="1", price="1", amount="1"), "amount"),
        (tx(D1, K.DEPOSIT, amount="1", quantity="1"), "quantity"),
        (tx(D1, K.DEPOSIT, amount="1", fee="1"), "fee"),
        (tx(D1, K.SPLIT, ticker="A", ratio="2", price="1"), "price"),
    ],
)
def test_missing_or_inapplicable_fields_are_errors(transaction: Transaction, field: str) -> None:
    """A field a kind needs is required, and a field it does not use must be left unset."""
    with pytest.raises(InvalidTransactionError) as caught:
        replay([transaction], D1)
    assert caught.value.field == field


def test_a_transaction_dated_after_today_is_an_error() -> None:
    """With today given, a transaction dated after it raises FutureTransactionError."""
    with pytest.raises(FutureTransactionError) as caught:
        replay([deposit(D1, "1"), deposit(D3, "1")], D3, today=D2)
    assert (caught.value.trade_date, caught.value.today, caught.value.portfolio_id) == (D3, D2, PID)
    assert "2024-03-03" in str(caught.value)


def test_an_unknown_kind_is_an_error_and_a_member_value_is_accepted() -> None:
    """A kind that is not a TransactionKind value raises UnknownTransactionKindError."""
    with pytest.raises(UnknownTransactionKindError) as caught:
        replay([tx(D1, "transfer", amount="1")], D1)
    assert (caught.value.field, caught.value.value) == ("kind", "transfer")
    assert replay([tx(D1, "deposit", amount="1")], D1).cash == 1


@pytest.mark.parametrize("currency", ["usd", "US", "USDX", "", "U$D"])
def test_a_currency_that_is_not_three_upper_case_letters_is_an_error(currency: str) -> None:
    """A currency code must be three upper-case letters."""
    with pytest.raises(InvalidTransactionError, match="three upper-case letters") as caught:
        replay([tx(D1, K.DEPOSIT, amount="1", currency=currency)], D1)
    assert (caught.value.field, caught.value.value) == ("currency", currency)


def test_a_deposit_in_another_currency_without_its_rate_is_an_error() -> None:
    """A deposit in another currency needs fx_rate: TransactionCurrencyError names the field."""
    with pytest.raises(TransactionCurrencyError) as caught:
        replay([tx(D1, K.DEPOSIT, amount="1", currency="EUR")], D1, currency="USD")
    assert (
        caught.value.expected,
        caught.value.actual,
        caught.value.trade_date,
        caught.value.field,
    ) == ("USD", "EUR", D1, "fx_rate")


def test_a_split_is_exempt_from_the_base_currency_rule() -> None:
    """A SPLIT moves no cash, so its currency field is not compared with the base."""
    ledger = [buy(D1, "SAP", "1", "1"), tx(D2, K.SPLIT, ticker="SAP", ratio="2", currency="EUR")]
    assert replay(ledger, D2).holdings == {"SAP": Decimal(2)}


def test_a_datetime_trade_date_is_an_error() -> None:
    """trade_date must be a date: a datetime says nothing of which UTC date was meant."""
    moment = dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC)
    with pytest.raises(InvalidTransactionError) as caught:
        replay([Transaction(PID, moment, K.DEPOSIT, amount=Decimal(1))], D1)
    assert caught.value.field == "trade_date"


def test_a_transaction_of_another_portfolio_is_an_error() -> None:
    """Every transaction of a ledger must carry the ledger's portfolio id."""
    stray = dataclasses.replace(deposit(D2, "1"), portfolio_id=OTHER)
    with pytest.raises(InvalidTransactionError) as caught:
        replay([deposit(D1, "1"), stray], D2)
    assert (caught.value.field, caught.value.value) == ("portfolio_id", OTHER)
    with pytest.raises(InvalidTransactionError):
        replay([deposit(D1, "1")], D1, portfolio_id=OTHER)


def test_validate_transaction_returns_the_kind() -> None:
    """validate_transaction returns the kind as a TransactionKind."""
    assert validate_transaction(tx(D1, "split", ticker="A", ratio="2")) is K.SPLIT


# --- the incremental replayer --------------------------------------------------------------


def test_replay_range_yields_one_state_per_date() -> None:
    """replay_range yields the end-of-day state of every date, flows on their own date only."""
    ledger = [deposit(D1, "100"), buy(D3, "A", "1", "10")]
    states = list(replay_range(ledger, D1, D4))
    assert [s.as_of for s in states] == [D1, D2, D3, D4]
    assert [s.cash for s in states] == [100, 100, 90, 90]
    assert [s.external_flow for s in states] == [100, 0, 0, 0]
    assert [s.holdings for s in states] == [{}, {}, {"A": 1}, {"A": 1}]


def test_the_replayer_can_repeat_a_date_and_keeps_its_flow() -> None:
    """Advancing to the same date twice returns the same state, flow included."""
    replayer = LedgerReplayer([deposit(D1, "100")])
    assert replayer.advance(D1) == replayer.advance(D1)
    assert replayer.advance(D1).external_flow == 100
    assert replayer.as_of == D1


def test_the_replayer_does_not_go_back() -> None:
    """Advancing to a date before the previous one raises InvalidDateRangeError."""
    replayer = LedgerReplayer([deposit(D1, "100")])
    replayer.advance(D2)
    with pytest.raises(InvalidDateRangeError):
        replayer.advance(D1)
    with pytest.raises(InvalidDateRangeError):
        list(replayer.states(D4, D3))


def test_the_replayer_rejects_an_unsorted_ledger() -> None:
    """A ledger out of date order raises UnsortedLedgerError naming both dates."""
    replayer = LedgerReplayer([deposit(D3, "1"), deposit(D1, "1")])
    assert replayer.advance(D2).cash == 0
    with pytest.raises(UnsortedLedgerError) as caught:
        replayer.advance(D4)
    assert (caught.value.trade_date, caught.value.previous_date) == (D1, D3)


def test_the_replayer_is_spent_after_an_error() -> None:
    """After an error, the replayer raises the same error for every later date."""
    replayer = LedgerReplayer([buy(D1, "A", "1", "1"), sell(D2, "A", "2", "1")])
    assert replayer.advance(D1).holdings == {"A": 1}
    with pytest.raises(OversoldPositionError) as first:
        replayer.advance(D2)
    with pytest.raises(OversoldPositionError) as again:
        replayer.advance(D4)
    assert again.value is first.value


def test_the_replayer_reads_the_ledger_lazily_in_one_pass() -> None:
    """The replayer consumes its iterable once, no further than the date asked for."""
    pulled: list[dt.date] = []

    def source() -> Any:
        for t in [deposit(D1, "1"), deposit(D2, "1"), deposit(D4, "1")]:
            pulled.append(t.trade_date)
            yield t

    replayer = LedgerReplayer(source())
    replayer.advance(D1)
    assert pulled == [D1, D2]
    replayer.advance(D3)
    assert pulled == [D1, D2, D4]


# --- properties -----------------------------------------------------------------------------


def _outcome(fn: Any) -> Any:
    """Return fn()'s result, or the error it raised as (type, date, message)."""
    try:
        return fn()
    except InvalidTransactionError as error:
        return (type(error), error.trade_date, str(error))


@given(ledger=ledgers(allow_oversell=True, split_units=True))
def test_incremental_replay_equals_a_full_replay_on_every_date(ledger: list[Transaction]) -> None:
    """For random ledgers the one-pass replay at each date equals a full replay up to it."""
    end = START + dt.timedelta(days=46)
    replayer = LedgerReplayer(ledger)
    day = START - dt.timedelta(days=1)
    while day <= end:
        incremental = _outcome(lambda d=day: replayer.advance(d))
        assert incremental == _outcome(lambda d=day: replay(ledger, d))
        day += dt.timedelta(days=1)


@given(ledger=ledgers(split_units=True), data=st.data())
def test_a_valid_ledger_replays_in_any_order(
    ledger: list[Transaction], data: st.DataObject
) -> None:
    """A replay does not depend on the order of its input, within a date or across dates."""
    shuffled = data.draw(st.permutations(ledger))
    end = START + dt.timedelta(days=45)
    assert replay(shuffled, end) == replay(ledger, end)


_CASH_SIGN = {
    "deposit": 1,
    "dividend": 1,
    "interest": 1,
    "tax_refund": 1,
    "withdrawal": -1,
    "fee": -1,
    "tax": -1,
}
_QUANTITY_SIGN = {"buy": 1, "sell": -1}


def _split_quantity(quantity: Decimal, t: Transaction) -> Decimal:
    """Return quantity * ratio, exact when it terminates, else half-even to 18 places."""
    if t.ratio is not None:
        ratio = Fraction(t.ratio)
    else:
        ratio = Fraction(cast("int", t.split_new), cast("int", t.split_old))
    exact = Fraction(quantity) * ratio
    for places in range(80):
        scaled = exact * 10**places
        if scaled.denominator == 1:
            return Decimal(scaled.numerator).scaleb(-places, decimal.Context(prec=200))
    scaled = exact * 10**18
    floor, rest = divmod(scaled.numerator, scaled.denominator)
    if 2 * rest > scaled.denominator or (2 * rest == scaled.denominator and floor % 2):
        floor += 1
    return Decimal(floor).scaleb(-18, decimal.Context(prec=200))


def _model(
    ledger: list[Transaction], as_of: dt.date
) -> tuple[Decimal, dict[str, Decimal], Decimal, Decimal]:
    """Replay `ledger` the plain way: (cash, holdings, net contributions, flow on as_of)."""
    cash = contributions = flow = Decimal(0)
    held: dict[str, Decimal] = {}
    dates = sorted({t.trade_date for t in ledger if t.trade_date <= as_of})
    with decimal.localcontext(exact_context()):
        for day in dates:
            todays: list[Any] = [t for t in ledger if t.trade_date == day]
            for t in todays:
                if t.kind == "split" and t.ticker in held:
                    held[t.ticker] = _split_quantity(held[t.ticker], t)
            flow = Decimal(0)
            for t in todays:
                if t.kind in _QUANTITY_SIGN:
                    sign = _QUANTITY_SIGN[t.kind]
                    held[t.ticker] = held.get(t.ticker, Decimal(0)) + sign * t.quantity
                    cash = cash - sign * t.quantity * t.price - t.fee
                elif t.kind in _CASH_SIGN:
                    cash += _CASH_SIGN[t.kind] * t.amount
                    if t.kind in {"deposit", "withdrawal"}:
                        flow += _CASH_SIGN[t.kind] * t.amount
            contributions += flow
    if not dates or dates[-1] != as_of:
        flow = Decimal(0)
    return cash, {k: v for k, v in held.items() if v}, contributions, flow


@given(ledger=ledgers(split_units=True), offset=st.integers(-1, 46))
def test_replay_agrees_with_a_plain_model(ledger: list[Transaction], offset: int) -> None:
    """The cash, holdings, contributions and flow equal a plain re-implementation's."""
    day = START + dt.timedelta(days=offset)
    state = replay(ledger, day)
    assert (
        state.cash,
        dict(state.holdings),
        state.net_contributions,
        state.external_flow,
    ) == _model(ledger, day)
    assert all(q > 0 for q in state.holdings.values())


# --- parse_transaction ----------------------------------------------------------------------


def raw(**fields: object) -> dict[str, object]:
    """Return a valid raw BUY row, with `fields` replaced (None removes a field)."""
    row: dict[str, object] = {
        "portfolio_id": str(PID),
        "trade_date": "2024-03-01",
        "kind": "buy",
        "ticker": "AAPL",
        "quantity": "3",
        "price": "10.50",
        "fee": 1,
    }
    row.update(fields)
    return {k: v for k, v in row.items() if v is not None}


def test_parse_transaction_accepts_strings_and_ints() -> None:
    """parse_transaction builds a Transaction from strings and ints, kind in any case."""
    parsed = parse_transaction(raw(kind="BUY"))
    assert parsed == Transaction(
        PID, D1, K.BUY, "AAPL", Decimal(3), Decimal("10.50"), fee=Decimal(1)
    )
    deposit_row = {"portfolio_id": PID, "trade_date": D1, "kind": "Deposit", "amount": 100}
    assert parse_transaction(deposit_row).amount == Decimal(100)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"quantity": 1.5}, "quantity"),
        ({"price": 10.5}, "price"),
        ({"quantity": "NaN"}, "quantity"),
        ({"price": "Infinity"}, "price"),
        ({"quantity": "-3"}, "quantity"),
        ({"currency": "usd"}, "currency"),
        ({"trade_date": 1709251200}, "trade_date"),
        ({"trade_date": None}, "trade_date"),
        ({"portfolio_id": "not-a-uuid"}, "portfolio_id"),
        ({"shares": "3"}, "shares"),
        ({"kind": "split", "ratio": "0", "quantity": None, "price": None, "fee": None}, "ratio"),
        (
            {"kind": "deposit", "amount": 1.0, "quantity": None, "price": None, "fee": None},
            "amount",
        ),
    ],
)
def test_parse_transaction_rejects_bad_fields(fields: dict[str, object], field: str) -> None:
    """Floats, non-finite or negative numbers, bad codes and unknown fields are rejected."""
    with pytest.raises(InvalidTransactionError) as caught:
        parse_transaction(raw(**fields))
    assert caught.value.field == field


def test_parse_transaction_names_the_portfolio_and_date() -> None:
    """A parse error names the portfolio and the date it could read."""
    with pytest.raises(InvalidTransactionError) as caught:
        parse_transaction(raw(quantity=1.5))
    assert (caught.value.portfolio_id, caught.value.trade_date) == (PID, D1)
    assert str(PID) in str(caught.value)


@pytest.mark.parametrize("kind", ["transfer", 3, ""])
def test_parse_transaction_rejects_an_unknown_kind(kind: object) -> None:
    """A kind that is not a TransactionKind value raises UnknownTransactionKindError."""
    with pytest.raises(UnknownTransactionKindError) as caught:
        parse_transaction(raw(kind=kind))
    assert (caught.value.field, caught.value.value, caught.value.portfolio_id) == (
        "kind",
        kind,
        PID,
    )


def test_parse_transaction_requires_a_kind() -> None:
    """A row without a kind raises InvalidTransactionError naming the field."""
    with pytest.raises(InvalidTransactionError) as caught:
        parse_transaction(raw(kind=None))
    assert caught.value.field == "kind"


def test_parse_transaction_rejects_a_future_date() -> None:
    """With today given, a row dated after it raises FutureTransactionError."""
    assert parse_transaction(raw(), today=D1).trade_date == D1
    with pytest.raises(FutureTransactionError) as caught:
        parse_transaction(raw(trade_date="2024-03-02"), today=D1)
    assert caught.value.today == D1
