import asyncio
import datetime as dt
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
from portfolio_snapshots.testing.strategies import ledgers

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

    class NoHistory:
        def __init__(self, inner: InMemoryMarketData) -> None:
            self.inner = inner

        async def get_prices(
            self, tickers: Collection[str], as_of: dt.date
        ) -> Mapping[str, PriceQuote]:
            return await self.inner.get_prices(tickers, as_of)

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
