from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given

from portfolio_snapshots import (
    InMemoryMarketData,
    InMemorySnapshotRepository,
    Portfolio,
    PortfolioNotFoundError,
    PortfolioRepository,
    SnapshotJob,
    TransientError,
)
from portfolio_snapshots.adapters.ledger import LedgerPortfolioRepository
from portfolio_snapshots.adapters.memory import InMemoryTransactionSource
from portfolio_snapshots.errors import (
    InvalidDateRangeError,
    InvalidTransactionError,
    OversoldPositionError,
)
from portfolio_snapshots.history import (
    Accounting,
    PortfolioDay,
    PortfolioDayStream,
    PortfolioHistory,
    Transaction,
    TransactionKind,
    TransactionSource,
    cumulative_time_weighted_return,
    modified_dietz_return,
)
from portfolio_snapshots.testing.strategies import LEDGER_START as START
from portfolio_snapshots.testing.strategies import ledgers

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

K = TransactionKind
ALICE = uuid.UUID("00000000-0000-4000-8000-0000000000a1")
BOB = uuid.UUID("00000000-0000-4000-8000-0000000000b0")
CAROL = uuid.UUID("00000000-0000-4000-8000-0000000000c0")
D1 = dt.date(2024, 3, 1)
D2 = dt.date(2024, 3, 2)
D3 = dt.date(2024, 3, 3)
D4 = dt.date(2024, 3, 4)


def deposit(pid: uuid.UUID, day: dt.date, amount: str) -> Transaction:
    """Build a deposit."""
    return Transaction(pid, day, K.DEPOSIT, amount=Decimal(amount))


def trade(
    pid: uuid.UUID, day: dt.date, kind: TransactionKind, ticker: str, quantity: str, price: str
) -> Transaction:
    """Build a BUY or SELL without fee."""
    return Transaction(pid, day, kind, ticker, Decimal(quantity), Decimal(price))


def alice_ledger() -> list[Transaction]:
    """Alice: deposits 1000, buys 5 X at 100, deposits 500 on D3, X splits 2-for-1 on D4."""
    return [
        deposit(ALICE, D1, "1000"),
        trade(ALICE, D1, K.BUY, "X", "5", "100"),
        deposit(ALICE, D3, "500"),
        Transaction(ALICE, D4, K.SPLIT, "X", ratio=Decimal(2)),
    ]


def bob_ledger() -> list[Transaction]:
    """Bob: deposits 100 on D1, sells 1 X he never bought on D2 (an invalid ledger)."""
    return [deposit(BOB, D1, "100"), trade(BOB, D2, K.SELL, "X", "1", "10")]


def repository(**kwargs: Any) -> tuple[InMemoryTransactionSource, LedgerPortfolioRepository]:
    """Return a source holding Alice and Bob and a repository over it."""
    source = InMemoryTransactionSource([*bob_ledger(), *alice_ledger()])
    return source, LedgerPortfolioRepository(source, **kwargs)


async def collect(items: AsyncIterator[Any]) -> list[Any]:
    """Drain an async iterator into a list."""
    return [item async for item in items]


# --- the in-memory source -------------------------------------------------------------------


def test_in_memory_source_honours_its_contract() -> None:
    """InMemoryTransactionSource returns transactions up to a date, by date, and knows ids."""
    late, early = deposit(ALICE, D3, "1"), deposit(ALICE, D1, "2")
    same_day = deposit(ALICE, D1, "3")
    source = InMemoryTransactionSource([late, early, same_day], currencies={CAROL: "EUR"})
    assert isinstance(source, TransactionSource)
    assert asyncio.run(source.transactions(ALICE, D2)) == [early, same_day]
    assert asyncio.run(source.transactions(ALICE, D4)) == [early, same_day, late]
    assert asyncio.run(source.transactions(BOB, D4)) == []
    assert asyncio.run(collect(source.active_portfolio_ids(D1))) == [ALICE]
    assert asyncio.run(collect(source.active_portfolio_ids(D1 - dt.timedelta(days=1)))) == []
    assert asyncio.run(source.base_currency(ALICE)) == "USD"
    assert asyncio.run(source.base_currency(CAROL)) == "EUR"
    assert asyncio.run(source.base_currency(BOB)) is None
    assert source.request_count == 3


# --- get_portfolio --------------------------------------------------------------------------


def test_get_portfolio_rebuilds_the_state_with_contributions_and_flow() -> None:
    """get_portfolio replays the ledger up to the date and fills the ledger fields and splits."""
    _, repo = repository()
    assert isinstance(repo, PortfolioRepository)
    # 5 X bought at 100 cost 500; the split changes the units, not the cost
    zero = Decimal(0)
    books = Accounting({"X": Decimal(500)}, zero, zero, zero, zero, zero, zero, {}, {})
    on_d3 = asyncio.run(repo.get_portfolio(ALICE, D3))
    assert on_d3 == Portfolio(
        ALICE,
        Decimal(1000),
        {"X": Decimal(5)},
        "USD",
        Decimal(1500),
        Decimal(500),
        None,
        None,
        books,
    )
    on_d4 = asyncio.run(repo.get_portfolio(ALICE, D4))
    assert on_d4 == Portfolio(
        ALICE,
        Decimal(1000),
        {"X": Decimal(10)},
        "USD",
        Decimal(1500),
        Decimal(0),
        {"X": ((D4, Decimal(2)),)},
        None,
        books,
    )


def test_get_portfolio_uses_the_base_currency_of_the_source() -> None:
    """The portfolio is kept in the currency the source reports for it."""
    source = InMemoryTransactionSource(currencies={CAROL: "EUR"})
    source.add(Transaction(CAROL, D1, K.DEPOSIT, amount=Decimal(5), currency="EUR"))
    portfolio = asyncio.run(LedgerPortfolioRepository(source).get_portfolio(CAROL, D1))
    assert portfolio is not None
    assert portfolio.currency == "EUR"


def test_get_portfolio_returns_none_for_unknown_and_not_yet_opened_portfolios() -> None:
    """An unknown portfolio, or a date before its first transaction, gives None."""
    _, repo = repository()
    assert asyncio.run(repo.get_portfolio(CAROL, D4)) is None
    assert asyncio.run(repo.get_portfolio(ALICE, D1 - dt.timedelta(days=1))) is None


def test_get_portfolio_raises_the_ledger_error() -> None:
    """get_portfolio raises the typed error of an invalid ledger, naming portfolio and date."""
    _, repo = repository()
    assert asyncio.run(repo.get_portfolio(BOB, D1)) is not None
    with pytest.raises(OversoldPositionError) as caught:
        asyncio.run(repo.get_portfolio(BOB, D2))
    assert (caught.value.portfolio_id, caught.value.trade_date) == (BOB, D2)


# --- the daily stream -----------------------------------------------------------------------


def test_iter_portfolios_leaves_out_a_broken_portfolio_and_reports_it() -> None:
    """A portfolio whose ledger fails is handed to on_error; the others still stream."""
    reported: list[PortfolioDay] = []
    _, repo = repository(on_error=reported.append)
    portfolios = asyncio.run(collect(repo.iter_portfolios(D2)))
    assert [p.id for p in portfolios] == [ALICE]
    assert len(reported) == 1
    assert (reported[0].portfolio_id, reported[0].as_of) == (BOB, D2)
    assert isinstance(reported[0].error, OversoldPositionError)


def test_iter_portfolios_logs_a_broken_portfolio_by_default(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Without on_error, a portfolio left out is logged as a warning naming it."""
    _, repo = repository()
    with caplog.at_level(logging.WARNING, logger="portfolio_snapshots.ledger"):
        asyncio.run(collect(repo.iter_portfolios(D2)))
    assert str(BOB) in caplog.text
    assert "OversoldPositionError" in caplog.text


def test_iter_portfolio_days_yields_failures_in_place() -> None:
    """The PortfolioDayStream capability yields each active portfolio, errors included."""
    _, repo = repository()
    assert isinstance(repo, PortfolioDayStream)
    days = {d.portfolio_id: d for d in asyncio.run(collect(repo.iter_portfolio_days(D2)))}
    assert set(days) == {ALICE, BOB}
    assert days[ALICE].portfolio is not None
    assert days[ALICE].error is None
    assert days[BOB].portfolio is None
    assert isinstance(days[BOB].error, InvalidTransactionError)


class FlakySource(InMemoryTransactionSource):
    """An in-memory source that fails to read one portfolio and lists one with no ledger."""

    async def transactions(self, portfolio_id: uuid.UUID, until: dt.date) -> list[Transaction]:
        """Fail transiently for Bob."""
        if portfolio_id == BOB:
            raise TransientError("connection reset")
        return await super().transactions(portfolio_id, until)

    async def active_portfolio_ids(self, as_of: dt.date) -> AsyncIterator[uuid.UUID]:
        """List Carol too, who has a currency but no transaction yet."""
        async for pid in super().active_portfolio_ids(as_of):
            yield pid
        yield CAROL


def test_a_failed_read_fails_that_portfolio_only() -> None:
    """A source error for one portfolio is reported for it; an unopened one yields neither."""
    source = FlakySource([*alice_ledger(), *bob_ledger()], currencies={CAROL: "USD"})
    repo = LedgerPortfolioRepository(source)
    days = {d.portfolio_id: d for d in asyncio.run(collect(repo.iter_portfolio_days(D1)))}
    assert isinstance(days[BOB].error, TransientError)
    assert days[ALICE].portfolio is not None
    assert days[CAROL] == PortfolioDay(CAROL, D1)


class CountingSource(InMemoryTransactionSource):
    """An in-memory source that records how many reads are in flight at once."""

    def __init__(self, transactions: Sequence[Transaction]) -> None:
        """Hold `transactions`."""
        super().__init__(transactions)
        self.in_flight = 0
        self.peak = 0

    async def transactions(self, portfolio_id: uuid.UUID, until: dt.date) -> list[Transaction]:
        """Count the read while it waits a little."""
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        await asyncio.sleep(0)
        self.in_flight -= 1
        return await super().transactions(portfolio_id, until)


def test_the_stream_reads_a_few_portfolios_at_once() -> None:
    """iter_portfolio_days reads at most `concurrency` ledgers at once, and more than one."""
    source = CountingSource([deposit(uuid.UUID(int=i), D1, "1") for i in range(10)])
    repo = LedgerPortfolioRepository(source, concurrency=3)
    assert len(asyncio.run(collect(repo.iter_portfolios(D1)))) == 10
    assert source.peak == 3


def test_concurrency_must_be_at_least_one() -> None:
    """A concurrency below one is refused."""
    with pytest.raises(ValueError, match="concurrency"):
        LedgerPortfolioRepository(InMemoryTransactionSource(), concurrency=0)


# --- the backfill capability ----------------------------------------------------------------


def test_portfolio_history_reads_the_ledger_once() -> None:
    """portfolio_history yields one PortfolioDay per date after a single read of the source."""
    source, repo = repository()
    assert isinstance(repo, PortfolioHistory)
    start = D1 - dt.timedelta(days=1)
    days = asyncio.run(collect(repo.portfolio_history(ALICE, start, D4)))
    assert source.request_count == 1
    assert [d.as_of for d in days] == [start, D1, D2, D3, D4]
    assert days[0] == PortfolioDay(ALICE, start)
    assert [d.portfolio.external_flow for d in days[1:] if d.portfolio] == [1000, 0, 500, 0]


def test_portfolio_history_reports_the_failing_date_and_every_later_one() -> None:
    """From the date a ledger fails, every date carries the error; earlier dates are valued."""
    _, repo = repository()
    days = asyncio.run(collect(repo.portfolio_history(BOB, D1, D4)))
    assert days[0].portfolio is not None
    assert [type(d.error) for d in days[1:]] == [OversoldPositionError] * 3
    assert all(d.portfolio is None for d in days[1:])


def test_portfolio_history_refuses_unknown_portfolios_and_reversed_ranges() -> None:
    """An unknown portfolio or a start after the end raise before anything is yielded."""
    _, repo = repository()
    with pytest.raises(PortfolioNotFoundError):
        asyncio.run(collect(repo.portfolio_history(CAROL, D1, D2)))
    with pytest.raises(InvalidDateRangeError):
        asyncio.run(collect(repo.portfolio_history(ALICE, D2, D1)))


def _outcome(fn: Any) -> Any:
    """Return the awaited result of fn(), or its ledger error as (type, message)."""
    try:
        return asyncio.run(fn())
    except InvalidTransactionError as error:
        return (type(error), str(error))


@given(ledger=ledgers(portfolio_id=ALICE, allow_oversell=True))
def test_portfolio_history_equals_get_portfolio_on_every_date(
    ledger: list[Transaction],
) -> None:
    """For random ledgers, each history item says what get_portfolio says of its date."""
    source = InMemoryTransactionSource(ledger, currencies={ALICE: "USD"})
    repo = LedgerPortfolioRepository(source)
    end = START + dt.timedelta(days=45)
    history = asyncio.run(collect(repo.portfolio_history(ALICE, START, end)))
    assert len(history) == 46
    for item in history:
        expected = _outcome(lambda d=item.as_of: repo.get_portfolio(ALICE, d))
        got = item.portfolio if item.error is None else (type(item.error), str(item.error))
        assert got == expected


# --- with the job as it stands --------------------------------------------------------------


def _job(repo: LedgerPortfolioRepository) -> tuple[SnapshotJob, InMemorySnapshotRepository]:
    market = InMemoryMarketData()
    # unadjusted closes: X trades at 110 before its 2-for-1 split on D4 and 55 after it
    for day, price in [(D1, "100"), (D2, "110"), (D3, "110"), (D4, "55")]:
        market.add_price("X", day, Decimal(price))
    snapshots = InMemorySnapshotRepository()

    async def no_sleep(_: float) -> None:
        return None

    job = SnapshotJob(
        portfolios=repo,
        snapshots=snapshots,
        market_data=market,
        clock=lambda: dt.datetime(2024, 3, 10, tzinfo=dt.UTC),
        sleep=no_sleep,
    )
    return job, snapshots


def test_the_job_values_the_past_as_it_was_through_the_ledger() -> None:
    """A backfill over the ledger values each day's holdings and carries the flows."""
    _, repo = repository()
    job, snapshots = _job(repo)
    report = asyncio.run(job.backfill(ALICE, D1, D4))
    assert report.ok
    stored = asyncio.run(snapshots.list_snapshots(ALICE, D1, D4))
    assert [s.total_value for s in stored] == [1000, 1050, 1550, 1550]
    assert [s.external_flow for s in stored] == [1000, 0, 500, 0]
    # the split changes the quantity, not the value, with unadjusted closes
    assert [p.quantity for s in stored for p in s.positions] == [5, 5, 5, 10]
    # +5 % on D2, nothing after: the 500 deposit is not a gain
    assert cumulative_time_weighted_return(stored) == Decimal("0.05")
    # Dietz: gain 1550 - 1000 - 500 = 50; the deposit starts D3, at work 2 of 3 days:
    # 50 / (1000 + 500 * 2/3) = 150 / 4000 = 0.0375
    assert modified_dietz_return(stored) == Decimal("0.0375")


def test_the_daily_job_reports_a_broken_ledger_and_goes_on() -> None:
    """The job stores the good portfolios and reports the broken one as a failure."""
    reported: list[PortfolioDay] = []
    _, repo = repository(on_error=reported.append)
    job, snapshots = _job(repo)
    report = asyncio.run(job.run_daily(D2))
    assert report.succeeded == 1
    assert [s.portfolio_id for s in snapshots.all()] == [ALICE]
    assert [(f.portfolio_id, f.error_type) for f in report.failures] == [
        (BOB, "OversoldPositionError")
    ]
    assert reported == []  # the job reads iter_portfolio_days, so on_error is not needed
