"""What is written is what is read, on every store: a property over any snapshots.

Each store is opened once per test and every Hypothesis example writes a batch into it and
reads it back, so the stores' memory of stored prices is exercised across examples too. The
SQLAlchemy engines use no pool: each example runs in its own event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.pool import NullPool

from portfolio_snapshots import PortfolioSnapshot, PositionValuation, SqliteSnapshotStore
from portfolio_snapshots._domain import ACCOUNTING_FIELD_NAMES
from portfolio_snapshots.adapters.sqlalchemy import SqlAlchemySnapshotStore
from portfolio_snapshots.history import CashBalance, DailyTotals
from portfolio_snapshots.testing.strategies import snapshots
from storage.pg_server import (
    asyncpg_url,
    create_test_schema,
    drop_test_schema,
    psycopg_connect_args,
    psycopg_url,
    search_path,
)
from storage.samples import odd_decimals

if TYPE_CHECKING:
    from collections.abc import Iterator

#: Positions no calculator makes: any ticker (separators, brackets, control characters), any
#: amounts and exponents, one ticker twice at two prices, accounting fields any or None.
odd_positions = st.lists(
    st.builds(
        PositionValuation,
        ticker=st.text(min_size=1, max_size=6)
        | st.sampled_from(["A|B", "A;B", "[X", "AAPL", "BRK.B"]),
        quantity=odd_decimals,
        price=odd_decimals,
        price_date=st.dates(dt.date(2020, 1, 1), dt.date(2030, 1, 1)),
        market_value=odd_decimals,
        price_currency=st.none() | st.sampled_from(["USD", "EUR", 'Q"\\']),
        fx_rate=st.none() | odd_decimals,
        stale=st.booleans(),
        cost_basis=st.none() | odd_decimals,
        unrealized_gain=st.none() | odd_decimals,
        realized_gain=st.none() | odd_decimals,
        dividends=st.none() | odd_decimals,
    ),
    max_size=6,
)
#: Cash balances no calculator makes: any currency text (separators, brackets, control
#: characters), any amounts, rates or none.
odd_cash_balances = st.lists(
    st.builds(
        CashBalance,
        currency=st.text(max_size=4) | st.sampled_from(["USD", "E|R", "G;P", "[X", "\x1f"]),
        amount=odd_decimals,
        value=odd_decimals,
        fx_rate=st.none() | odd_decimals,
        stale=st.booleans(),
    ),
    max_size=4,
)


@st.composite
def odd_snapshots(draw: st.DrawFn) -> PortfolioSnapshot:
    """A snapshot with odd positions and books (nothing need add up: stores do not check)."""
    positions = draw(odd_positions)
    maybe = st.none() | odd_decimals
    return PortfolioSnapshot(
        draw(st.uuids()),
        draw(st.dates(dt.date(2020, 1, 1), dt.date(2030, 1, 1))),
        draw(st.sampled_from(["USD", "EUR", "JPY"])),
        draw(odd_decimals),
        draw(odd_decimals),
        draw(odd_decimals),
        tuple(positions),
        draw(st.none() | odd_decimals),
        draw(st.none() | odd_decimals),
        draw(st.booleans()),
        **{name: draw(maybe) for name in ACCOUNTING_FIELD_NAMES},
        cash_balances=draw(odd_cash_balances),
    )


def _many_positions(n: int) -> tuple[PositionValuation, ...]:
    day = dt.date(2026, 1, 2)
    return tuple(
        PositionValuation(f"T{i:04d}", Decimal(i + 1), Decimal(f"{i}.5"), day, Decimal(f"{i}.50"))
        for i in range(n)
    )


#: A portfolio of hundreds of positions, as its own example.
large = st.builds(
    lambda pid, n: PortfolioSnapshot(
        pid,
        dt.date(2026, 1, 2),
        "USD",
        Decimal("0.00"),
        Decimal(0),
        Decimal(0),
        _many_positions(n),
    ),
    st.uuids(),
    st.integers(100, 400),
)
batches = st.lists(snapshots() | odd_snapshots() | large, min_size=1, max_size=6)


def texts(snapshot: PortfolioSnapshot) -> str:
    """Every field as text, so another exponent or a float for a Decimal differs."""
    return repr((snapshot.values[:6], snapshot.positions, snapshot.values[7:]))


@dataclasses.dataclass
class Opened:
    """A store kept open across examples, and how to open it in each example's loop."""

    name: str
    url: str = ""
    connect_args: dict[str, object] = dataclasses.field(default_factory=dict)
    path: Path | None = None

    async def open(self) -> SqliteSnapshotStore | SqlAlchemySnapshotStore:
        """Open the store (created on the first call)."""
        if self.path is not None:
            return await SqliteSnapshotStore.open(self.path)
        return await SqlAlchemySnapshotStore.open(
            self.url, poolclass=NullPool, connect_args=self.connect_args
        )


@pytest.fixture(
    params=[
        "sqlite",
        "sqlalchemy-sqlite",
        pytest.param("sqlalchemy-postgres", marks=pytest.mark.postgres),
        pytest.param("sqlalchemy-psycopg", marks=pytest.mark.postgres),
    ]
)
def opened(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opened]:
    """Yield one store of each kind, on a new file or a new PostgreSQL schema."""
    name: str = request.param
    if name == "sqlite":
        yield Opened(name, path=tmp_path / "round_trip.db")
        return
    if name == "sqlalchemy-sqlite":
        yield Opened(name, url=f"sqlite+aiosqlite:///{tmp_path / 'round_trip.db'}")
        return
    dsn: str = request.getfixturevalue("pg_dsn")
    schema = asyncio.run(create_test_schema(dsn))
    try:
        if name == "sqlalchemy-postgres":
            yield Opened(name, url=asyncpg_url(dsn), connect_args=search_path(schema))
        else:
            yield Opened(
                name,
                url=psycopg_url(dsn),
                connect_args=psycopg_connect_args(search_path(schema)),
            )
    finally:
        asyncio.run(drop_test_schema(dsn, schema))


def test_every_store_reads_back_what_it_wrote(opened: Opened) -> None:
    """Any batch of snapshots reads back equal, texts included, by get and list, on each store.

    Books (accounting fields and cash balances) included; and `list_totals` reads each
    snapshot's totals as `DailyTotals.of` takes them, texts included.
    """

    @given(batches)
    def check(batch: list[PortfolioSnapshot]) -> None:
        async def body() -> tuple[
            list[PortfolioSnapshot | None], list[PortfolioSnapshot], list[DailyTotals]
        ]:
            store = await opened.open()
            async with contextlib.AsyncExitStack() as stack:
                stack.push_async_callback(store.close)
                await store.upsert_many(batch)
                got = [await store.get_snapshot(s.portfolio_id, s.snapshot_date) for s in want]
                listed: list[PortfolioSnapshot] = []
                totals: list[DailyTotals] = []
                for s in want:
                    key = (s.portfolio_id, s.snapshot_date, s.snapshot_date)
                    listed += await store.list_snapshots(*key)
                    totals += await store.list_totals(*key)
                    totals += await store.totals_on(s.snapshot_date, [s.portfolio_id])
            return got, listed, totals

        want = list({(s.portfolio_id, s.snapshot_date): s for s in batch}.values())
        got, listed, totals = asyncio.run(body())
        assert got == want
        assert listed == want
        assert [texts(s) for s in listed] == [texts(s) for s in want]
        assert [None if s is None else texts(s) for s in got] == [texts(s) for s in want]
        want_totals = [DailyTotals.of(s) for s in want for _ in range(2)]
        assert totals == want_totals
        assert repr(totals) == repr(want_totals)

    check()


#: Amounts that follow each other in a chart: the same, the same at another exponent, the
#: other zero, None (for the flows).
_repeated = st.sampled_from([Decimal("1.0"), Decimal("1.00"), Decimal("0.00"), Decimal("-0.00")])


@st.composite
def _days_of_one_portfolio(draw: st.DrawFn) -> list[PortfolioSnapshot]:
    """Consecutive days of one portfolio whose cash, contributions and flow often repeat."""
    pid = draw(st.uuids())
    first = draw(st.dates(dt.date(2020, 1, 1), dt.date(2030, 1, 1)))
    days = []
    for n in range(draw(st.integers(1, 12))):
        cash = draw(_repeated)
        holdings = draw(st.sampled_from([Decimal("2.50"), Decimal(7)]))
        days.append(
            PortfolioSnapshot(
                pid,
                first + dt.timedelta(days=n),
                "USD",
                cash,
                holdings,
                cash + holdings,
                (),
                draw(st.none() | _repeated),
                draw(st.none() | _repeated),
                draw(st.booleans()),
                cost_basis=draw(st.none() | st.just(Decimal("3.0"))),
            )
        )
    return days


def test_a_chart_reads_back_each_days_totals_when_amounts_repeat(opened: Opened) -> None:
    """`list_totals` over a range gives each day its own amounts, texts included.

    A day's amount whose text is the day before's is read as the same Decimal, so this
    checks every change the read must see: another exponent, the other zero, None and back.
    """

    @given(_days_of_one_portfolio())
    def check(days: list[PortfolioSnapshot]) -> None:
        async def body() -> list[DailyTotals]:
            store = await opened.open()
            async with contextlib.AsyncExitStack() as stack:
                stack.push_async_callback(store.close)
                await store.upsert_many(days)
                return await store.list_totals(
                    days[0].portfolio_id, days[0].snapshot_date, days[-1].snapshot_date
                )

        want = [DailyTotals.of(s) for s in days]
        got = asyncio.run(body())
        assert got == want
        assert repr(got) == repr(want)

    check()
