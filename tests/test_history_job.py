import asyncio
import datetime as dt
import decimal
import uuid
from collections.abc import Collection, Mapping
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portfolio_snapshots import (
    InMemoryMarketData,
    InMemoryPortfolioRepository,
    InMemorySnapshotRepository,
    MissingDataPolicy,
    Portfolio,
    PriceQuote,
    SnapshotJob,
    TokenBucket,
    date_range,
)
from portfolio_snapshots.adapters.ledger import LedgerPortfolioRepository
from portfolio_snapshots.adapters.memory import InMemoryFxRates, InMemoryTransactionSource
from portfolio_snapshots.adapters.splits import unadjust_splits
from portfolio_snapshots.history import (
    FxQuote,
    Transaction,
    TransactionKind,
    cumulative_time_weighted_return,
    modified_dietz_return,
)
from portfolio_snapshots.testing import FakeClock, FakeSleep
from portfolio_snapshots.testing.strategies import LEDGER_START as START
from portfolio_snapshots.testing.strategies import ledgers, prices

K = TransactionKind
TODAY = dt.date(2026, 11, 27)
PID = uuid.UUID(int=1)


def clock() -> dt.datetime:
    return dt.datetime(2026, 11, 27, 12, tzinfo=dt.UTC)


def job(
    portfolios: object, market: object, store: InMemorySnapshotRepository, **kw: object
) -> SnapshotJob:
    return SnapshotJob(
        portfolios=portfolios,  # type: ignore[arg-type]
        snapshots=store,
        market_data=market,  # type: ignore[arg-type]
        clock=clock,
        **kw,  # type: ignore[arg-type]
    )


class NoHistory:
    """A market without the PriceHistory capability: the job asks day by day."""

    def __init__(self, inner: InMemoryMarketData) -> None:
        self.inner = inner

    async def get_prices(
        self, tickers: Collection[str], as_of: dt.date
    ) -> Mapping[str, PriceQuote]:
        return await self.inner.get_prices(tickers, as_of)


def one(holdings: dict[str, Decimal], currency: str = "USD") -> InMemoryPortfolioRepository:
    return InMemoryPortfolioRepository([Portfolio(PID, Decimal(100), holdings, currency)])


# --- FX ----------------------------------------------------------------------------------


def test_a_position_priced_in_another_currency_is_converted_with_the_days_rate() -> None:
    """A EUR close in a USD portfolio is worth quantity * price * EUR/USD, rate recorded."""
    market = InMemoryMarketData([PriceQuote("SAP", Decimal("120.10"), TODAY, "EUR")])
    fx = InMemoryFxRates([FxQuote("EUR", "USD", Decimal("1.0825"), TODAY - dt.timedelta(days=1))])
    store = InMemorySnapshotRepository()
    report = asyncio.run(job(one({"SAP": Decimal(3)}), market, store, fx_rates=fx).run_daily())
    assert report.succeeded == 1
    (snap,) = store.all()
    (pos,) = snap.positions
    assert pos.market_value == Decimal("390.02")  # 3 * 120.10 * 1.0825 = 390.02475
    assert (pos.price, pos.price_currency, pos.fx_rate) == (
        Decimal("120.10"),
        "EUR",
        Decimal("1.0825"),
    )
    assert snap.total_value == Decimal("490.02")
    assert fx.request_count == 1


@given(
    st.decimals(min_value=Decimal("0.0001"), max_value=Decimal(1000), places=4),
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal(10_000), places=2),
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal(1000), places=4),
)
def test_an_inverse_pair_values_like_the_direct_one(
    rate: Decimal, price: Decimal, quantity: Decimal
) -> None:
    """Storing USD/EUR = 1/r instead of EUR/USD = r gives the same value within a cent."""
    market = InMemoryMarketData([PriceQuote("SAP", price, TODAY, "EUR")])
    direct = InMemoryFxRates([FxQuote("EUR", "USD", rate, TODAY)])
    inverse_rate = Decimal(1) / rate  # 28 significant digits, as any provider would round
    inverse = InMemoryFxRates([FxQuote("USD", "EUR", inverse_rate, TODAY)])
    values = []
    for fx in (direct, inverse):
        store = InMemorySnapshotRepository()
        asyncio.run(job(one({"SAP": quantity}), market, store, fx_rates=fx).run_daily())
        values.append(store.all()[0].holdings_value)
    assert abs(values[0] - values[1]) <= Decimal("0.01")


def test_a_missing_fx_rate_fails_the_portfolio_never_rate_one() -> None:
    """Without a EUR/USD rate the portfolio fails with MissingFxRateError naming it all."""
    market = InMemoryMarketData([PriceQuote("SAP", Decimal(100), TODAY, "EUR")])
    store = InMemorySnapshotRepository()
    report = asyncio.run(
        job(one({"SAP": Decimal(1)}), market, store, fx_rates=InMemoryFxRates()).run_daily()
    )
    (failure,) = report.failures
    assert failure.error_type == "MissingFxRateError"
    assert str(PID) in failure.message
    assert "'SAP'" in failure.message
    assert "EUR/USD" in failure.message
    assert len(store) == 0


def test_without_an_fx_source_a_foreign_price_is_a_currency_mismatch() -> None:
    """A job with no FX source refuses to mix currencies."""
    market = InMemoryMarketData([PriceQuote("SAP", Decimal(100), TODAY, "EUR")])
    report = asyncio.run(
        job(one({"SAP": Decimal(1)}), market, InMemorySnapshotRepository()).run_daily()
    )
    assert [f.error_type for f in report.failures] == ["CurrencyMismatchError"]


def test_an_invalid_fx_rate_is_a_typed_failure() -> None:
    """A zero rate returned by an adapter fails the portfolio with InvalidFxRateError."""

    class BadFx:
        async def get_rates(
            self, pairs: Collection[tuple[str, str]], as_of: dt.date
        ) -> Mapping[tuple[str, str], FxQuote]:
            return {("EUR", "USD"): FxQuote("EUR", "USD", Decimal(0), as_of)}

    market = InMemoryMarketData([PriceQuote("SAP", Decimal(100), TODAY, "EUR")])
    report = asyncio.run(
        job(
            one({"SAP": Decimal(1)}), market, InMemorySnapshotRepository(), fx_rates=BadFx()
        ).run_daily()
    )
    (failure,) = report.failures
    assert failure.error_type == "InvalidFxRateError"
    assert str(PID) in failure.message


# --- missing data policy -----------------------------------------------------------------


def test_a_price_older_than_max_price_age_is_missing_by_default() -> None:
    """A close 8 days old fails the portfolio; nothing is valued at a stale price silently."""
    market = InMemoryMarketData([PriceQuote("A", Decimal(10), TODAY - dt.timedelta(days=8))])
    store = InMemorySnapshotRepository()
    report = asyncio.run(job(one({"A": Decimal(1)}), market, store).run_daily())
    (failure,) = report.failures
    assert failure.error_type == "MissingPriceError"
    assert "older than max_price_age" in failure.message
    assert len(store) == 0


def test_carry_forward_uses_the_last_close_and_marks_it_stale() -> None:
    """Under carry_forward the old close is used and the position and snapshot say stale."""
    old = TODAY - dt.timedelta(days=30)
    market = InMemoryMarketData(
        [PriceQuote("A", Decimal(10), old), PriceQuote("B", Decimal(5), TODAY)]
    )
    store = InMemorySnapshotRepository()
    report = asyncio.run(
        job(
            one({"A": Decimal(1), "B": Decimal(2)}),
            market,
            store,
            missing_data=MissingDataPolicy.CARRY_FORWARD,
        ).run_daily()
    )
    assert report.succeeded == 1
    (snap,) = store.all()
    assert snap.stale
    assert [(p.ticker, p.stale, p.price_date) for p in snap.positions] == [
        ("A", True, old),
        ("B", False, TODAY),
    ]


def test_carry_forward_never_invents_a_price() -> None:
    """Even under carry_forward, a ticker that never had a price fails the portfolio."""
    report = asyncio.run(
        job(
            one({"NEVER": Decimal(1)}),
            InMemoryMarketData(),
            InMemorySnapshotRepository(),
            missing_data="carry_forward",
        ).run_daily()
    )
    assert [f.error_type for f in report.failures] == ["MissingPriceError"]


def test_a_stale_fx_rate_follows_the_same_policy() -> None:
    """An FX rate older than max_price_age fails by default and is carried, stale, on request."""
    market = InMemoryMarketData([PriceQuote("SAP", Decimal(100), TODAY, "EUR")])
    fx = InMemoryFxRates([FxQuote("EUR", "USD", Decimal("1.1"), TODAY - dt.timedelta(days=20))])
    failing = asyncio.run(
        job(one({"SAP": Decimal(1)}), market, InMemorySnapshotRepository(), fx_rates=fx).run_daily()
    )
    assert [f.error_type for f in failing.failures] == ["MissingFxRateError"]
    store = InMemorySnapshotRepository()
    carried = asyncio.run(
        job(
            one({"SAP": Decimal(1)}),
            market,
            store,
            fx_rates=fx,
            missing_data=MissingDataPolicy.CARRY_FORWARD,
        ).run_daily()
    )
    assert carried.succeeded == 1
    assert store.all()[0].stale
    assert store.all()[0].positions[0].fx_rate == Decimal("1.1")


# --- backfills over a ledger ---------------------------------------------------------------


def ledger_world(
    transactions: list[Transaction], days: list[dt.date], tickers: list[str]
) -> tuple[LedgerPortfolioRepository, InMemoryMarketData]:
    source = InMemoryTransactionSource(transactions)
    market = InMemoryMarketData()
    for i, day in enumerate(days):
        for j, ticker in enumerate(tickers):
            market.add_price(ticker, day, Decimal(20 + j) + Decimal(i % 7) / 4)
    return LedgerPortfolioRepository(source), market


@given(ledgers(portfolio_id=PID, max_days=20))
@settings(max_examples=60)
def test_a_ledger_backfill_equals_single_day_runs(transactions: list[Transaction]) -> None:
    """Backfilling a ledger portfolio stores exactly what a daily run of each date stores."""
    end = START + dt.timedelta(days=20)
    days = date_range(START - dt.timedelta(days=3), end)
    repo, market = ledger_world(transactions, days, ["AAA", "BBB", "CCC"])
    by_backfill, by_days = InMemorySnapshotRepository(), InMemorySnapshotRepository()
    backfill_job = job(repo, market, by_backfill)
    if transactions:
        asyncio.run(backfill_job.backfill(PID, START, end))
    daily = job(repo, market, by_days)
    for day in date_range(START, end):
        asyncio.run(daily.run_daily(day))
    assert by_backfill.all() == by_days.all()


def test_a_ten_year_backfill_asks_for_prices_once() -> None:
    """One portfolio over years: one seed request and one history request, not one per day."""
    start = TODAY - dt.timedelta(days=3649)
    days = date_range(start, TODAY)
    transactions = [
        Transaction(PID, start, K.DEPOSIT, amount=Decimal(10_000)),
        Transaction(PID, start, K.BUY, "AAA", Decimal(10), Decimal(20)),
        Transaction(PID, start + dt.timedelta(days=400), K.BUY, "BBB", Decimal(5), Decimal(21)),
    ]
    repo, market = ledger_world(transactions, days, ["AAA", "BBB"])
    store = InMemorySnapshotRepository()
    report = asyncio.run(job(repo, market, store).backfill(PID, start, TODAY))
    assert (report.succeeded, report.failed) == (3650, 0)
    assert market.request_count == 2
    assert store.all()[0].net_contributions == Decimal(10_000)


def test_backfill_all_batches_price_requests_and_matches_per_portfolio_backfills() -> None:
    """backfill_all over 30 portfolios asks for history per batch and stores what backfill does."""
    start = TODAY - dt.timedelta(days=59)
    days = date_range(start, TODAY)
    transactions = []
    for n in range(30):
        pid = uuid.UUID(int=100 + n)
        transactions += [
            Transaction(pid, start + dt.timedelta(days=n), K.DEPOSIT, amount=Decimal(1000 + n)),
            Transaction(
                pid, start + dt.timedelta(days=n), K.BUY, "AAA", Decimal(n + 1), Decimal(20)
            ),
        ]
    repo, market = ledger_world(transactions, days, ["AAA"])
    all_at_once = InMemorySnapshotRepository()
    report = asyncio.run(job(repo, market, all_at_once, batch_size=40).backfill_all(start, TODAY))
    assert report.failed == 0
    assert report.succeeded == sum(60 - n for n in range(30))
    # 40 * 20 portfolio-days per batch / 60 days = 13 portfolios a batch: 3 batches, 2 calls each
    assert market.request_count == 6
    one_by_one = InMemorySnapshotRepository()
    single = job(repo, market, one_by_one)
    for n in range(30):
        asyncio.run(single.backfill(uuid.UUID(int=100 + n), start, TODAY))
    assert all_at_once.all() == one_by_one.all()


def test_recompute_since_rewrites_from_the_changed_date_only() -> None:
    """A late trade changes the snapshots from its date on; earlier ones stay as they were."""
    start = TODAY - dt.timedelta(days=9)
    days = date_range(start, TODAY)
    source = InMemoryTransactionSource([Transaction(PID, start, K.DEPOSIT, amount=Decimal(1000))])
    repo = LedgerPortfolioRepository(source)
    market = InMemoryMarketData(PriceQuote("AAA", Decimal(50), d) for d in days)
    store = InMemorySnapshotRepository()
    runner = job(repo, market, store)
    asyncio.run(runner.backfill(PID, start, TODAY))
    before = store.all()
    late = start + dt.timedelta(days=5)
    source.add(Transaction(PID, late, K.BUY, "AAA", Decimal(2), Decimal(40)))
    report = asyncio.run(runner.recompute_since(PID, late))
    assert (report.kind, report.start, report.end, report.succeeded) == (
        "recompute",
        late,
        TODAY,
        5,
    )
    after = store.all()
    assert after[:5] == before[:5]
    assert all(s.total_value == Decimal(1020) for s in after[5:])  # 920 cash + 2 * 50


def test_snapshots_carry_contributions_and_returns_see_no_gain_from_a_deposit() -> None:
    """Deposits are flows: a deposit with flat prices is neither a TWR nor a Dietz gain."""
    start = TODAY - dt.timedelta(days=4)
    source = InMemoryTransactionSource(
        [
            Transaction(PID, start, K.DEPOSIT, amount=Decimal(1000)),
            Transaction(PID, start, K.BUY, "AAA", Decimal(10), Decimal(50)),
            Transaction(PID, start + dt.timedelta(days=2), K.DEPOSIT, amount=Decimal(500)),
        ]
    )
    market = InMemoryMarketData(PriceQuote("AAA", Decimal(50), d) for d in date_range(start, TODAY))
    store = InMemorySnapshotRepository()
    asyncio.run(job(LedgerPortfolioRepository(source), market, store).backfill(PID, start, TODAY))
    series = store.all()
    assert [s.net_contributions for s in series] == [Decimal(1000)] * 2 + [Decimal(1500)] * 3
    assert [s.external_flow for s in series] == [Decimal(1000), 0, Decimal(500), 0, 0]
    assert cumulative_time_weighted_return(series) == 0
    assert modified_dietz_return(series) == 0


# --- splits --------------------------------------------------------------------------------


@given(
    st.sampled_from([Decimal(2), Decimal(3), Decimal(4), Decimal("0.5"), Decimal("0.25")]),
    st.integers(min_value=1, max_value=500),
    st.integers(min_value=1, max_value=200),
)
def test_values_are_continuous_across_a_split_adjusted_or_not(
    ratio: Decimal, shares: int, traded: int
) -> None:
    """Around a split, totals do not step, with unadjusted closes and with adjusted ones."""
    ex_date = TODAY - dt.timedelta(days=2)
    days = date_range(TODAY - dt.timedelta(days=5), TODAY)
    buy_day = days[0]
    source = InMemoryTransactionSource(
        [
            Transaction(PID, buy_day, K.DEPOSIT, amount=Decimal(traded * shares)),
            Transaction(PID, buy_day, K.BUY, "X", Decimal(shares), Decimal(traded)),
            Transaction(PID, ex_date, K.SPLIT, "X", ratio=ratio),
        ]
    )
    repo = LedgerPortfolioRepository(source)
    # The stock trades flat: `traded` before the split, traded / ratio from the ex-date on.
    as_traded = InMemoryMarketData(
        PriceQuote("X", Decimal(traded) / (ratio if d >= ex_date else 1), d) for d in days
    )
    # A split-adjusted provider divides every close before the split by the ratio.
    adjusted = InMemoryMarketData(PriceQuote("X", Decimal(traded) / ratio, d) for d in days)
    totals = []
    for market in (as_traded, unadjust_splits(adjusted, {"X": [(ex_date, ratio)]})):
        store = InMemorySnapshotRepository()
        report = asyncio.run(job(repo, market, store).backfill(PID, days[0], TODAY))
        assert report.failed == 0
        totals.append([s.total_value for s in store.all()])
    assert totals[0] == totals[1]
    assert len(set(totals[0])) == 1  # before, on and after the ex-date: the same value


# The case: 1 NVDA bought at 1,200, split 10-for-1 on Monday 2024-06-10, whose close
# is not in yet when the 00:00 UTC run values it: the latest close is Friday's 1,200.
NVDA_BUY = dt.date(2024, 6, 3)
NVDA_FRIDAY = dt.date(2024, 6, 7)
NVDA_SPLIT = dt.date(2024, 6, 10)


def nvda_ledger() -> InMemoryTransactionSource:
    """Deposit 1,200 and buy 1 NVDA at 1,200; NVDA splits 10-for-1 on 2024-06-10."""
    return InMemoryTransactionSource(
        [
            Transaction(PID, NVDA_BUY, K.DEPOSIT, amount=Decimal(1200)),
            Transaction(PID, NVDA_BUY, K.BUY, "NVDA", Decimal(1), Decimal(1200)),
            Transaction(PID, NVDA_SPLIT, K.SPLIT, "NVDA", ratio=Decimal(10)),
        ]
    )


def split_day_clock() -> dt.datetime:
    return dt.datetime(2024, 6, 10, 0, 5, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("policy", "max_age", "close_date", "stale"),
    [
        (MissingDataPolicy.FAIL, dt.timedelta(days=7), NVDA_FRIDAY, False),
        (MissingDataPolicy.FAIL, None, dt.date(2024, 5, 1), False),
        (MissingDataPolicy.CARRY_FORWARD, dt.timedelta(days=7), NVDA_FRIDAY, False),
        (MissingDataPolicy.CARRY_FORWARD, dt.timedelta(days=7), dt.date(2024, 5, 1), True),
    ],
)
def test_a_close_carried_onto_a_split_date_is_divided_by_the_ratio(
    policy: MissingDataPolicy, max_age: dt.timedelta | None, close_date: dt.date, stale: bool
) -> None:
    """On the split date, 10 NVDA at Friday's 1,200 are worth 1,200, not 12,000, per policy."""
    market = InMemoryMarketData([PriceQuote("NVDA", Decimal(1200), close_date)])
    store = InMemorySnapshotRepository()
    runner = SnapshotJob(
        portfolios=LedgerPortfolioRepository(nvda_ledger()),
        snapshots=store,
        market_data=market,
        missing_data=policy,
        max_price_age=max_age,
        clock=split_day_clock,
    )
    report = asyncio.run(runner.run_daily())
    assert (report.succeeded, report.failed) == (1, 0)
    (snap,) = store.all()
    (position,) = snap.positions
    # the close of before the split, divided by its ratio: 1,200 / 10 = 120 a post-split unit
    assert position.quantity == 10
    assert position.price == Decimal(120)
    assert position.price_date == close_date  # the date of the close it comes from
    assert position.market_value == Decimal("1200.00")  # 10 * 1,200 / 10
    assert snap.total_value == Decimal("1200.00")  # no cash left
    assert (position.stale, snap.stale) == (stale, stale)


def test_a_backfill_over_a_split_date_without_a_close_does_not_jump() -> None:
    """A backfill whose split day (and weekend before it) has no close values 1,200 daily."""
    closes = [
        PriceQuote("NVDA", Decimal(1200), dt.date(2024, 6, 6)),
        PriceQuote("NVDA", Decimal(1200), NVDA_FRIDAY),
        PriceQuote("NVDA", Decimal(120), dt.date(2024, 6, 11)),  # the first post-split close
    ]
    start, end = dt.date(2024, 6, 6), dt.date(2024, 6, 11)
    for market in (InMemoryMarketData(closes), NoHistory(InMemoryMarketData(closes))):
        store = InMemorySnapshotRepository()
        runner = job(LedgerPortfolioRepository(nvda_ledger()), market, store)
        report = asyncio.run(runner.backfill(PID, start, end))
        assert (report.succeeded, report.failed) == (6, 0)
        assert [s.total_value for s in store.all()] == [Decimal("1200.00")] * 6
        assert [(p.quantity, p.price, p.price_date) for s in store.all() for p in s.positions] == [
            (Decimal(1), Decimal(1200), dt.date(2024, 6, 6)),
            (Decimal(1), Decimal(1200), NVDA_FRIDAY),
            (Decimal(1), Decimal(1200), NVDA_FRIDAY),  # Saturday: no split yet, close as it was
            (Decimal(1), Decimal(1200), NVDA_FRIDAY),
            (Decimal(10), Decimal(120), NVDA_FRIDAY),  # split date: Friday's close, split units
            (Decimal(10), Decimal(120), dt.date(2024, 6, 11)),
        ]


def test_units_bought_after_a_split_are_valued_with_the_carried_close_divided() -> None:
    """A split recorded before the ticker is bought still divides a close dated before it."""
    source = InMemoryTransactionSource(
        [
            Transaction(PID, NVDA_BUY, K.DEPOSIT, amount=Decimal(1200)),
            Transaction(PID, NVDA_SPLIT, K.SPLIT, "NVDA", ratio=Decimal(10)),
            Transaction(PID, NVDA_SPLIT, K.BUY, "NVDA", Decimal(10), Decimal(120)),
        ]
    )
    market = InMemoryMarketData([PriceQuote("NVDA", Decimal(1200), NVDA_FRIDAY)])
    store = InMemorySnapshotRepository()
    runner = SnapshotJob(
        portfolios=LedgerPortfolioRepository(source),
        snapshots=store,
        market_data=market,
        clock=split_day_clock,
    )
    asyncio.run(runner.run_daily())
    (snap,) = store.all()
    assert snap.holdings_value == Decimal("1200.00")  # 10 bought at 120, Friday's 1,200 / 10


def test_a_carried_close_across_a_three_for_one_split_is_exact_with_fx() -> None:
    """3 units at a EUR close of 100.00 / 3, times 1.1, are worth exactly 110.00 USD."""
    source = InMemoryTransactionSource(
        [
            Transaction(PID, NVDA_BUY, K.DEPOSIT, amount=Decimal(110)),
            Transaction(PID, NVDA_BUY, K.BUY, "SAP", Decimal(1), Decimal(110)),
            Transaction(PID, NVDA_SPLIT, K.SPLIT, "SAP", ratio=Decimal(3)),
        ]
    )
    market = InMemoryMarketData([PriceQuote("SAP", Decimal("100.00"), NVDA_FRIDAY, "EUR")])
    fx = InMemoryFxRates([FxQuote("EUR", "USD", Decimal("1.1"), NVDA_SPLIT)])
    store = InMemorySnapshotRepository()
    runner = SnapshotJob(
        portfolios=LedgerPortfolioRepository(source),
        snapshots=store,
        market_data=market,
        fx_rates=fx,
        clock=split_day_clock,
    )
    asyncio.run(runner.run_daily())
    (position,) = store.all()[0].positions
    # 3 * 100.00 * 1.1 / 3 = 110 exactly, rounded once; quantity * rounded price would give
    # 3 * 33.33333333333333333333333333 * 1.1 = 109.999...9 -> 110.00 too, but not in general
    assert position.market_value == Decimal("110.00")
    # 100 / 3 has no finite expansion: the recorded price is it to 28 significant digits
    assert position.price == Decimal("33.33333333333333333333333333")
    assert (position.price_date, position.fx_rate) == (NVDA_FRIDAY, Decimal("1.1"))


_EXACT = decimal.Context(prec=200, traps=[decimal.Inexact, decimal.InvalidOperation])
_ROUNDING = decimal.Context(prec=200, rounding=decimal.ROUND_HALF_EVEN)
SEVEN_DAYS = dt.timedelta(days=7)


def _through(day: dt.date, splits: list[tuple[dt.date, Decimal]]) -> Decimal:
    """Return the product of the ratios of the splits dated on or before `day`."""
    product = Decimal(1)
    for ex_date, ratio in splits:
        if ex_date <= day:
            product = _EXACT.multiply(product, ratio)
    return product


@given(
    ledgers(portfolio_id=PID, max_days=20),
    st.lists(st.booleans(), min_size=24, max_size=24),
    st.fixed_dictionaries({t: prices(max_places=2) for t in ("AAA", "BBB", "CCC")}),
    st.sampled_from(
        [
            (MissingDataPolicy.FAIL, None),
            (MissingDataPolicy.FAIL, SEVEN_DAYS),
            (MissingDataPolicy.CARRY_FORWARD, SEVEN_DAYS),
        ]
    ),
)
def test_the_value_never_jumps_by_a_split_ratio_when_the_price_did_not_move(
    transactions: list[Transaction],
    quoted: list[bool],
    underlying: dict[str, Decimal],
    policy: tuple[MissingDataPolicy, dt.timedelta | None],
) -> None:
    """With a flat price and closes missing on any days, a position is worth q * price / splits."""
    days = date_range(START - dt.timedelta(days=3), START + dt.timedelta(days=20))
    splits = {
        t: [
            (tx.trade_date, tx.ratio or Decimal(1))
            for tx in transactions
            if tx.kind is K.SPLIT and tx.ticker == t
        ]
        for t in underlying
    }
    # the underlying price never moves: as traded, it is that price in each day's units, the
    # one before any split times 3 per 3-for-1 or 3-for-2 split, so every close is finite
    flat = {
        t: _EXACT.multiply(price, 3 ** sum(1 for _, r in splits[t] if r in {3, Decimal("1.5")}))
        for t, price in underlying.items()
    }
    market = InMemoryMarketData()
    for day, keep in zip(days, [True, *quoted[1:]], strict=True):
        if keep:  # the first day always has a close: nothing is ever priced from nothing
            for t, price in flat.items():
                market.add_price(t, day, _EXACT.divide(price, _through(day, splits[t])))
    store = InMemorySnapshotRepository()
    missing_data, max_age = policy
    runner = job(
        LedgerPortfolioRepository(InMemoryTransactionSource(transactions)),
        market,
        store,
        missing_data=missing_data,
        max_price_age=max_age,
    )
    if transactions:
        report = asyncio.run(runner.backfill(PID, START, days[-1]))
        # only a close older than max_price_age may fail a day, under FAIL
        assert all("older than max_price_age" in f.message for f in report.failures)
        assert missing_data is MissingDataPolicy.FAIL or report.failed == 0
    for snap in store.all():
        for position in snap.positions:
            # the price of one unit on the snapshot date's count, whatever the close's date
            expected = _EXACT.divide(
                flat[position.ticker], _through(snap.snapshot_date, splits[position.ticker])
            )
            assert position.price == expected
            assert position.market_value == _ROUNDING.quantize(
                _EXACT.multiply(position.quantity, expected), Decimal("0.01")
            )
            assert position.price_date <= snap.snapshot_date


# --- rate limiting -------------------------------------------------------------------------


def test_token_bucket_spaces_requests_at_the_rate() -> None:
    """At 2 requests per second, burst 1, ten requests wait 4.5 s in all on the fake clock."""
    fake = FakeClock()
    sleep = FakeSleep(fake)
    bucket = TokenBucket(2, burst=1, clock=fake, sleep=sleep)

    async def ten() -> None:
        for _ in range(10):
            await bucket.acquire()

    start = fake()
    asyncio.run(ten())
    assert (fake() - start).total_seconds() == pytest.approx(4.5)
    assert bucket.waited == pytest.approx(4.5)


def test_token_bucket_allows_a_burst_after_a_quiet_spell() -> None:
    """After 10 quiet seconds a bucket of burst 3 lets 3 requests through at once."""
    fake = FakeClock()
    bucket = TokenBucket(1, burst=3, clock=fake, sleep=FakeSleep(fake))
    fake.advance(dt.timedelta(seconds=10))

    async def three() -> None:
        for _ in range(3):
            await bucket.acquire()

    asyncio.run(three())
    assert bucket.waited == 0


def test_a_rate_limited_backfill_waits_between_price_requests() -> None:
    """A backfill through a market without history waits for a token before each request."""
    start = TODAY - dt.timedelta(days=4)
    market = InMemoryMarketData(PriceQuote("A", Decimal(1), d) for d in date_range(start, TODAY))
    fake = FakeClock(dt.datetime(2026, 11, 27, 12, tzinfo=dt.UTC))
    bucket = TokenBucket(1, burst=1, clock=fake, sleep=FakeSleep(fake))
    runner = SnapshotJob(
        portfolios=one({"A": Decimal(1)}),
        snapshots=InMemorySnapshotRepository(),
        market_data=NoHistory(market),
        clock=fake,
        rate_limit=bucket,
    )
    report = asyncio.run(runner.backfill(PID, start, TODAY))
    assert report.succeeded == 5
    assert bucket.waited == pytest.approx(4.0)  # five requests, the first from the full bucket


def test_invalid_token_bucket_settings_are_refused() -> None:
    """A rate that is not positive, or a burst below one, is a configuration error."""
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(0)
    with pytest.raises(ValueError, match="burst"):
        TokenBucket(1, burst=0)


def test_backfill_all_reports_a_day_a_ledger_cannot_build_once() -> None:
    """A ledger that oversells on the last day: that day fails once, the days before are stored."""
    start = TODAY - dt.timedelta(days=2)
    transactions = [
        Transaction(PID, start, K.DEPOSIT, amount=Decimal(1000)),
        Transaction(PID, start, K.BUY, "AAA", Decimal(2), Decimal(20)),
        Transaction(PID, TODAY, K.SELL, "AAA", Decimal(5), Decimal(20)),
    ]
    repo, market = ledger_world(transactions, date_range(start, TODAY), ["AAA"])
    store = InMemorySnapshotRepository()
    report = asyncio.run(job(repo, market, store).backfill_all(start, TODAY))
    assert [(f.portfolio_id, f.snapshot_date) for f in report.failures] == [(PID, TODAY)]
    assert (report.processed, report.succeeded, report.failed) == (3, 2, 1)
    assert {s.snapshot_date for s in store.all()} == {start, start + dt.timedelta(days=1)}
