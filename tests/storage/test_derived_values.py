"""A position's market value is left out of the stored text when its price gives it back.

The SQL stores write a position as ``ticker|quantity`` when its market value is exactly
``quantity x price (x FX rate)`` quantized to the snapshot's unit, half to even, as the
calculator makes it, and derive it on reading; any other value (another exponent, another
rounding, a host's own figure) is written out and read back digit for digit.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import decimal
import pickle
import sqlite3
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from hypothesis import given
from hypothesis import strategies as st

from portfolio_snapshots import (
    Portfolio,
    PortfolioSnapshot,
    PositionValuation,
    PriceQuote,
    SnapshotCalculator,
    SqliteSnapshotStore,
)
from portfolio_snapshots._calculator import PriceTable
from portfolio_snapshots._domain import CalculatedValues
from portfolio_snapshots.adapters._sql_codec import derived_value, value_field
from portfolio_snapshots.history import Accounting, FxQuote
from storage.samples import DAY, PID

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractAsyncContextManager

    from portfolio_snapshots.adapters.sqlalchemy import SqlAlchemySnapshotStore

    Factory = Callable[
        [], AbstractAsyncContextManager[SqliteSnapshotStore | SqlAlchemySnapshotStore]
    ]

_EXACT = decimal.Context(prec=decimal.MAX_PREC, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)
_amounts = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal(10**9), places=4)
_rates = st.none() | st.decimals(min_value=Decimal("0.000001"), max_value=Decimal(200), places=6)
_units = st.sampled_from([Decimal(1), Decimal("0.01"), Decimal("0.001"), Decimal("0.0001")])


def _calculated(quantity: Decimal, price: Decimal, rate: Decimal | None, unit: Decimal) -> Decimal:
    with decimal.localcontext(_EXACT) as context:
        context.rounding = decimal.ROUND_HALF_EVEN
        gross = quantity * price if rate is None else quantity * price * rate
        return gross.quantize(unit)


@given(_amounts, _amounts, _rates, _units)
def test_the_calculators_value_is_derived_back_digit_for_digit(
    quantity: Decimal, price: Decimal, rate: Decimal | None, unit: Decimal
) -> None:
    """Whatever the amounts, rate and unit, the calculator's value is left out and derived."""
    value = _calculated(quantity, price, rate, unit)
    assert value_field(quantity, price, rate, unit, value) == ""
    assert str(derived_value(quantity, price, rate, unit)) == str(value)


@given(_amounts, _amounts, _rates, _units)
def test_any_other_value_is_written_out(
    quantity: Decimal, price: Decimal, rate: Decimal | None, unit: Decimal
) -> None:
    """A value a unit off, at another exponent or of the other sign is written as it is."""
    value = _calculated(quantity, price, rate, unit)
    one_unit_off = value + unit
    finer = value.quantize(unit / 10)  # equal in amount, another exponent
    other_sign = -value if value else Decimal("-0").quantize(unit)
    for other in (one_unit_off, finer, other_sign):
        assert value_field(quantity, price, rate, unit, other) == str(other)


def test_a_zero_value_no_price_gives_back_is_written_out() -> None:
    """A market value of zero is a value like any other: written when not derived."""
    zero = Decimal("0.00")
    assert value_field(Decimal("1.00"), Decimal("0.25"), None, Decimal("1.00"), zero) == "0.00"
    assert value_field(Decimal("1.00"), Decimal(0), None, Decimal("1.00"), zero) == ""


def test_a_positive_zero_the_price_gives_back_as_a_negative_zero_is_written_out() -> None:
    """A zero quantity at a negative price derives -0: a +0 value is written, to keep its sign."""
    unit = Decimal("0.01")
    assert value_field(Decimal(0), Decimal(-5), None, unit, Decimal("0.00")) == "0.00"
    assert (
        value_field(Decimal(0), Decimal("-0.00"), None, Decimal("0.0039920"), Decimal("0E-7"))
        == "0E-7"
    )
    assert value_field(Decimal(0), Decimal(5), None, unit, Decimal("0.00")) == ""


def test_every_store_keeps_the_sign_of_a_zero_value(factory: Factory) -> None:
    """A +0 value at a negative price reads back +0, on the write's every path (a Hypothesis find).

    Written twice: the second write's prices are known to the store, which then encodes the
    positions in its planning pass rather than once their prices are written.
    """
    unit = Decimal("0.0039920")
    position = PositionValuation("0", Decimal(0), Decimal("-0.00"), DAY, Decimal("0E-7"))
    snapshot = PortfolioSnapshot(
        PID, DAY, "USD", Decimal("-0.00"), unit, Decimal("-0.00"), [position]
    )

    async def main() -> None:
        async with factory() as store:
            for s in (snapshot, snapshot.replace(snapshot_date=DAY + dt.timedelta(days=1))):
                await store.upsert_many([s])
                await store.upsert_many([s])
                got = await store.get_snapshot(s.portfolio_id, s.snapshot_date)
                assert got == s
                assert got is not None
                assert [str(p.market_value) for p in got.positions] == ["0E-7"]

    asyncio.run(main())


def test_values_that_are_not_decimals_are_never_derived() -> None:
    """An int or float anywhere is never taken for a derivable amount."""
    unit = Decimal("0.01")
    assert value_field(2, Decimal(1), None, unit, Decimal("2.00")) == "2.00"
    assert value_field(Decimal(2), 1.0, None, unit, Decimal("2.00")) == "2.00"
    assert value_field(Decimal(2), Decimal(1), 1.0, unit, Decimal("2.00")) == "2.00"
    assert value_field(Decimal(2), Decimal(1), None, unit, 2.0) == "2.0"
    assert value_field(Decimal(2), Decimal(1), None, None, Decimal("2.00")) == "2.00"


def _snapshots() -> list[PortfolioSnapshot]:
    """Return snapshots the calculator made, and one whose values no price gives back.

    The calculator's: a close, a close converted from euros, yen (no minor unit) and dollars
    to four places. The last: a host's own figures, a cent above the calculator's.
    """
    closes = {"AAPL": Decimal("189.95"), "SAP": Decimal("65.41"), "TINY": Decimal("0.0005")}
    rates = {("EUR", "USD"): FxQuote("EUR", "USD", Decimal("1.0837"), DAY)}
    holdings = {"AAPL": Decimal("10.5"), "SAP": Decimal("3.3"), "TINY": Decimal(7)}
    made = []
    for currency, calculator in (
        ("USD", SnapshotCalculator()),
        ("JPY", SnapshotCalculator()),
        ("USD", SnapshotCalculator(minor_units={"USD": 4})),
    ):
        table = PriceTable(
            {
                t: PriceQuote(t, price, DAY, "EUR" if t == "SAP" else currency)
                for t, price in closes.items()
            },
            DAY,
            fx_rates={**rates, ("EUR", "JPY"): FxQuote("EUR", "JPY", Decimal("162.3"), DAY)},
        )
        portfolio = Portfolio(PID, Decimal(100), holdings, currency=currency)
        valued, failed = calculator.value_many([portfolio], table)
        assert not failed, failed
        made.append(valued[0])
    own = made[0]
    positions = tuple(
        p._replace(market_value=p.market_value + Decimal("0.01")) for p in own.positions
    )
    holdings_value = sum((p.market_value for p in positions), Decimal("0.00"))
    made.append(
        own.replace(
            snapshot_date=DAY + dt.timedelta(days=1),
            positions=positions,
            holdings_value=holdings_value,
            total_value=own.cash_balance + holdings_value,
        )
    )
    return made


def test_every_store_reads_derived_and_written_values_back_equal(factory: Factory) -> None:
    """Every store reads back equal snapshots, values derived or written, digit for digit."""
    snapshots = _snapshots()

    async def main() -> None:
        async with factory() as store:
            for s in snapshots:  # one per write: the first three share their key
                await store.upsert_many([s])
                assert await store.get_snapshot(s.portfolio_id, s.snapshot_date) == s
                assert [str(p.market_value) for p in s.positions] == [
                    str(p.market_value)
                    for p in (await store.get_snapshot(s.portfolio_id, s.snapshot_date)).positions  # type: ignore[union-attr]
                ]

    asyncio.run(main())


def test_the_stored_text_leaves_out_only_the_values_the_price_gives_back(tmp_path: Path) -> None:
    """The stored text has ticker and quantity only where the price gives the value back."""
    calculated, *_, own = _snapshots()
    path = tmp_path / "store.db"

    async def main() -> None:
        async with await SqliteSnapshotStore.open(path) as store:
            await store.upsert_many([calculated, own])

    asyncio.run(main())
    with sqlite3.connect(path) as conn:
        texts = [t for (t,) in conn.execute("SELECT positions FROM ps_snapshots ORDER BY 1")]
    assert sorted(texts) == sorted(
        [
            "AAPL|10.5;SAP|3.3;TINY|7",
            (
                f"AAPL|10.5|{own.positions[0].market_value};SAP|3.3|"
                f"{own.positions[1].market_value};TINY|7|{own.positions[2].market_value}"
            ),
        ]
    )


# --- CalculatedValues: the calculator's marker that every value can be left out unchecked ---


_held = st.dictionaries(
    st.sampled_from(["AAA", "BBB", "CCC", "DDD"]),
    st.decimals(min_value=Decimal(0), max_value=Decimal(10**9), places=8),
    min_size=1,
)
_closes = st.decimals(min_value=Decimal(0), max_value=Decimal(10**6), places=6)


@st.composite
def _calculated_snapshots(draw: st.DrawFn) -> PortfolioSnapshot:
    """A snapshot the calculator made, at a random minor unit.

    Its closes are in the portfolio's currency or in euros (FX); some are carried across a
    split; some portfolios hold euros or have books.
    """
    holdings = draw(_held)
    places = draw(st.integers(0, 4))
    currency = draw(st.sampled_from(["USD", "JPY"]))
    rate = draw(st.decimals(min_value=Decimal("0.0001"), max_value=Decimal(500), places=6))
    split_tickers = draw(st.sets(st.sampled_from(sorted(holdings))))
    # A split after a close dated the day before: that close is carried across it.
    quotes = {
        t: PriceQuote(
            t,
            draw(_closes),
            DAY - dt.timedelta(days=t in split_tickers),
            draw(st.sampled_from([currency, "EUR"])),
        )
        for t in holdings
    }
    splits = {t: ((DAY, Decimal(2)),) for t in split_tickers} or None
    table = PriceTable(
        quotes, DAY, fx_rates={("EUR", currency): FxQuote("EUR", currency, rate, DAY)}
    )
    calculator = SnapshotCalculator(minor_units={currency: places})
    portfolio = Portfolio(
        PID,
        Decimal(100),
        holdings,
        currency=currency,
        splits=splits,
        # the calculator's other path: cash in euros, or the books
        foreign_cash=draw(st.none() | st.just({"EUR": Decimal("12.34")})),
        accounting=draw(st.none() | st.just(Accounting({t: Decimal(5) for t in holdings}))),
    )
    valued, failed = calculator.value_many([portfolio], table)
    assert not failed, failed
    return valued[0]


@given(_calculated_snapshots())
def test_the_calculator_marks_its_values_derivable_only_when_each_is(
    snapshot: PortfolioSnapshot,
) -> None:
    """A snapshot in `CalculatedValues` has every value derivable; a split carried leaves it out.

    The marker lets a writer leave every market value out without checking it, so it must
    never be on a snapshot one of whose values `value_field` would write out.
    """
    carried = any(p.price_date < snapshot.snapshot_date for p in snapshot.positions)
    assert (type(snapshot.values) is CalculatedValues) is not carried
    if not carried:
        with decimal.localcontext(_EXACT):
            assert [
                value_field(p.quantity, p.price, p.fx_rate, snapshot.holdings_value, p.market_value)
                for p in snapshot.positions
            ] == [""] * len(snapshot.positions)


@given(_calculated_snapshots())
def test_a_marked_snapshot_is_stored_as_the_same_one_checked_position_by_position(
    snapshot: PortfolioSnapshot,
) -> None:
    """A calculator's snapshot is stored as the same one unmarked, and read back equal.

    Leaving the values out unchecked changes nothing stored.
    """
    twin = PortfolioSnapshot.from_values(tuple(snapshot.values))  # type: ignore[arg-type]
    assert type(twin.values) is tuple
    assert twin == snapshot

    async def write(path: Path, s: PortfolioSnapshot) -> PortfolioSnapshot | None:
        async with await SqliteSnapshotStore.open(path) as store:
            await store.upsert_many([s])
            await store.upsert_many([s.replace(snapshot_date=DAY + dt.timedelta(days=1))])
            await store.upsert_many([s])  # prices known: the planning pass encodes it
            return await store.get_snapshot(s.portfolio_id, s.snapshot_date)

    with tempfile.TemporaryDirectory() as folder:
        marked, plain = Path(folder) / "marked.db", Path(folder) / "plain.db"
        assert asyncio.run(write(marked, snapshot)) == snapshot
        assert asyncio.run(write(plain, twin)) == snapshot
        texts = []
        for path in (marked, plain):
            with contextlib.closing(sqlite3.connect(path)) as conn:
                texts.append(conn.execute("SELECT positions FROM ps_snapshots").fetchall())
        assert texts[0] == texts[1]


def test_only_the_calculators_own_values_carry_the_marker() -> None:
    """Only the very fields the calculator made carry the marker, which changes no comparison.

    `replace` and the constructors give a plain tuple; `from_values` and pickling keep the
    tuple the calculator made.
    """
    made = _snapshots()[0]
    kept = PortfolioSnapshot.from_values(made.values)
    assert type(made.values) is CalculatedValues
    assert type(made.replace(cash_balance=Decimal(5)).values) is tuple
    assert type(made.replace().values) is tuple
    rebuilt = PortfolioSnapshot(
        made.portfolio_id,
        made.snapshot_date,
        made.currency,
        made.cash_balance,
        made.holdings_value,
        made.total_value,
        made.positions,
    )
    assert type(rebuilt.values) is tuple
    assert rebuilt == made
    assert hash(rebuilt) == hash(made)
    assert kept.values is made.values
    copied = pickle.loads(pickle.dumps(made))  # noqa: S301 - our own bytes
    assert copied == made
    assert type(copied.values) is CalculatedValues
