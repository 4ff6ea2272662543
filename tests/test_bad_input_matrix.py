"""The bad-input matrix: every case of `bad_inputs.CASES` through every door that takes it.

- Through the parsers (`parse_portfolio`, `parse_price_quote`, `parse_transaction`): a typed
  error naming the field, or a documented acceptance.
- Through a daily run, on the in-memory snapshot store and on each SQL store (SQLite, and
  SQLAlchemy on aiosqlite, asyncpg and psycopg): one run per store carries every case at once,
  each culprit with its own id and ticker, spread between innocent portfolios over several
  batches. Before the run, a snapshot is stored for each culprit's id on the day. Then each
  case checks that the run completed, that the culprit is reported with the expected error
  naming its field (or, when accepted, stored as every other store stores it), that every
  innocent portfolio is stored, and that a refused value changed nothing stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from bad_inputs import (
    CASES,
    CASH,
    DAY,
    PRICE,
    QUANTITY,
    Accepted,
    Case,
    Refused,
    culprit_id,
    culprit_ticker,
)
from portfolio_snapshots import (
    InMemoryMarketData,
    InMemorySnapshotRepository,
    Portfolio,
    PortfolioSnapshot,
    PriceQuote,
    RetryPolicy,
    RunReport,
    SnapshotCalculator,
    SnapshotJob,
    SnapshotRepository,
    parse_portfolio,
    parse_price_quote,
)
from portfolio_snapshots.history import Transaction, parse_transaction
from portfolio_snapshots.testing import FakeClock, instant_retry
from storage.backends import STORAGE_BACKENDS

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
    from contextlib import AbstractAsyncContextManager

    from portfolio_snapshots import SnapshotFailure

CLOCK = FakeClock(dt.datetime(2026, 11, 28, 0, 5, tzinfo=dt.UTC))
INNOCENTS = 12
BATCH_SIZE = 16
JOB_CASES = [(i, c) for i, c in enumerate(CASES) if c.job is not None]
PARSER_CASES = [(i, c) for i, c in enumerate(CASES) if c.parsed is not None]


def innocent_id(n: int) -> uuid.UUID:
    return uuid.UUID(int=n + 1)


def innocent(n: int) -> Portfolio:
    return Portfolio(innocent_id(n), CASH, {"GOOD": Decimal(n + 1)})


def innocent_total(n: int) -> Decimal:
    return CASH + Decimal(n + 1) * PRICE


def old_snapshot(pid: uuid.UUID) -> PortfolioSnapshot:
    """The good snapshot stored for a culprit's id before the run."""
    return SnapshotCalculator().value_portfolio(Portfolio(pid, Decimal("424242.42")), {}, DAY)


class Listed:
    """A portfolio repository that yields exactly the objects it was given, whatever they are."""

    def __init__(self, items: Sequence[object]) -> None:
        self.items = list(items)

    async def iter_portfolios(self, as_of: dt.date) -> AsyncIterator[Portfolio]:
        for item in self.items:
            yield item  # type: ignore[misc] # the point: adapters hand over anything

    async def get_portfolio(self, portfolio_id: uuid.UUID, as_of: dt.date) -> Portfolio | None:
        found = (p for p in self.items if getattr(p, "id", None) == portfolio_id)
        return next(found, None)  # type: ignore[return-value]


class Quoting(InMemoryMarketData):
    """The in-memory market data, answering `raw` as it is for the tickers it names."""

    def __init__(self, raw: Mapping[str, object]) -> None:
        super().__init__()
        self.raw = raw

    async def get_prices(self, tickers: Collection[str], as_of: dt.date) -> dict[str, PriceQuote]:
        found = await super().get_prices(tickers, as_of)
        found.update({t: self.raw[t] for t in tickers if t in self.raw})  # type: ignore[misc]
        return found


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one daily run carrying every case did to one store."""

    report: RunReport
    items: dict[int, object]  # what the repository handed over, by case index
    old: dict[uuid.UUID, PortfolioSnapshot]  # stored before the run, by culprit id
    after: dict[uuid.UUID, PortfolioSnapshot | None]  # stored after, culprits and innocents

    def failures_of(self, index: int) -> list[SnapshotFailure]:
        """The failures reported for the culprit of case `index`."""
        pid = culprit_id(index)
        mine = [f for f in self.report.failures if f.portfolio_id == pid]
        if mine:
            return mine
        marker = f"id={getattr(self.items[index], 'id', None)!r}"
        return [f for f in self.report.failures if f.portfolio_id is None and marker in f.message]


async def run_every_case(store: SnapshotRepository) -> Outcome:
    """Store a snapshot per culprit, then run one day with every culprit among innocents."""
    raw: dict[str, object] = {}
    market = Quoting(raw)
    market.add_price("GOOD", DAY, PRICE)
    items: dict[int, object] = {}
    for index, case in JOB_CASES:
        pid, ticker = culprit_id(index), culprit_ticker(index)
        market.add_price(ticker, DAY, PRICE)
        if case.quote is not None:
            raw[ticker] = case.quote(ticker)
        items[index] = (
            Portfolio(pid, CASH, {ticker: QUANTITY})
            if case.portfolio is None
            else case.portfolio(pid, ticker)
        )
    stream: list[object] = list(items.values())
    step = len(stream) // INNOCENTS + 1
    for n in range(INNOCENTS):
        stream.insert(n * step, innocent(n))
    old = {culprit_id(index): old_snapshot(culprit_id(index)) for index, _ in JOB_CASES}
    await store.upsert_many(list(old.values()))
    job = SnapshotJob(
        portfolios=Listed(stream),
        market_data=market,
        snapshots=store,
        clock=CLOCK,
        retry=instant_retry(RetryPolicy(max_attempts=2)),
        batch_size=BATCH_SIZE,
    )
    report = await job.run_daily(DAY)
    ids = [*old, *(innocent_id(n) for n in range(INNOCENTS))]
    after = {pid: await store.get_snapshot(pid, DAY) for pid in ids}
    return Outcome(report, items, old, after)


def _memory() -> AbstractAsyncContextManager[SnapshotRepository]:
    return contextlib.nullcontext(InMemorySnapshotRepository())


NEEDS_PG = {name for name, _, marks in STORAGE_BACKENDS if pytest.mark.postgres in marks}
STORES = [
    pytest.param(("memory", _memory), id="memory"),
    *(
        pytest.param((name, factory), id=name, marks=marks)
        for name, factory, marks in STORAGE_BACKENDS
    ),
]


def _run_on(factory: Callable[[], AbstractAsyncContextManager[SnapshotRepository]]) -> Outcome:
    async def scenario() -> Outcome:
        async with factory() as store:
            return await run_every_case(store)

    return asyncio.run(scenario())


@pytest.fixture(scope="module")
def reference() -> Outcome:
    """The run on the in-memory store: what every SQL store must have stored too."""
    return _run_on(_memory)


@pytest.fixture(scope="module", params=STORES)
def outcome(request: pytest.FixtureRequest, reference: Outcome) -> Outcome:
    """The run on one store (one run per store and module)."""
    name, factory = request.param
    if name == "memory":
        return reference
    if name in NEEDS_PG:
        request.getfixturevalue("pg_dsn")
    return _run_on(factory)


# --- the table -------------------------------------------------------------------------------


def test_the_matrix_holds_at_least_100_distinct_kinds_of_bad_input() -> None:
    """The table has at least 100 cases, each named once, each going through some door."""
    names = [c.name for c in CASES]
    assert len(set(names)) == len(names) >= 100
    assert all(c.job is not None or c.parsed is not None for c in CASES)


# --- the parsers -----------------------------------------------------------------------------


def _parse(parser: str, data: object) -> object:
    if parser == "portfolio":
        return parse_portfolio(data)  # type: ignore[arg-type]
    if parser == "quote":
        return parse_price_quote(data)  # type: ignore[arg-type]
    return parse_transaction(data, today=DAY)  # type: ignore[arg-type]


_PARSED_TYPES = {"portfolio": Portfolio, "quote": PriceQuote, "transaction": Transaction}


@pytest.mark.parametrize(("index", "case"), PARSER_CASES, ids=[c.name for _, c in PARSER_CASES])
def test_a_parser_refuses_a_bad_value_with_a_typed_error_or_accepts_it_as_documented(
    index: int, case: Case
) -> None:
    """The parser raises exactly the expected error, naming the field, or returns a value."""
    assert case.parsed is not None
    data = case.parsed.data(culprit_id(index), culprit_ticker(index))
    expect = case.parsed.expect
    if isinstance(expect, Refused):
        with pytest.raises(expect.error) as caught:
            _parse(case.parsed.parser, data)
        assert type(caught.value) is expect.error
        if expect.field is not None:
            assert str(getattr(caught.value, "field", "")).startswith(expect.field)
    else:
        assert isinstance(_parse(case.parsed.parser, data), _PARSED_TYPES[case.parsed.parser])


# --- daily runs, on each store -----------------------------------------------------------


def test_the_run_completes_and_stores_every_innocent_portfolio(outcome: Outcome) -> None:
    """One run carrying every case completes, stores each innocent and fails each culprit once."""
    report = outcome.report
    assert report.status == "completed"
    for n in range(INNOCENTS):
        stored = outcome.after[innocent_id(n)]
        assert stored is not None
        assert stored.total_value == innocent_total(n)
    innocents = {innocent_id(n) for n in range(INNOCENTS)}
    assert not [f for f in report.failures if f.portfolio_id in innocents]
    refused = sum(isinstance(c.job, Refused) for _, c in JOB_CASES)
    assert report.failed == len(report.failures) == refused
    assert report.succeeded == INNOCENTS + len(JOB_CASES) - refused


@pytest.mark.parametrize(("index", "case"), JOB_CASES, ids=[c.name for _, c in JOB_CASES])
def test_a_daily_run_refuses_a_bad_value_alone_or_stores_it_as_documented(
    outcome: Outcome, reference: Outcome, index: int, case: Case
) -> None:
    """A refused value fails its portfolio with the expected error and changes nothing stored.

    An accepted one is stored with the documented total, exactly as the in-memory store has it.
    """
    pid = culprit_id(index)
    mine = outcome.failures_of(index)
    if isinstance(case.job, Refused):
        assert mine, f"not reported; failures: {outcome.report.failures}"
        assert {f.error_type for f in mine} == {case.job.error.__name__}, mine
        assert all(f.snapshot_date == DAY and str(DAY) in f.message for f in mine), mine
        if case.job.field is not None:
            assert all(f"{case.job.field}=" in f.message for f in mine), mine
        assert outcome.after[pid] == outcome.old[pid]
    else:
        assert isinstance(case.job, Accepted)
        assert not mine
        stored = outcome.after[pid]
        assert stored is not None
        assert stored != outcome.old[pid]
        assert stored.total_value == case.job.total
        assert stored == reference.after[pid]
