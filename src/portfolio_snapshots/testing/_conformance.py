"""The conformance suite: the ports' contracts as tests any adapter can be run through.

A host subclasses a contract class in its own test module under a name starting with ``Test``
and implements one factory method; pytest (or unittest-style runners that collect ``test_*``
methods) then runs every check against the host's adapter. Hosts without pytest call the
plain ``check_*`` function instead.

The checks are sync methods that run their async body with `asyncio.run`, so they need no
async test plugin. They raise `AssertionError` explicitly, never through ``assert``, so they
keep checking under ``python -O`` and their messages say what the contract expected.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import itertools
import unittest
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, TypeVar, cast

from portfolio_snapshots import (
    Lease,
    PortfolioSnapshot,
    PositionValuation,
    PriceHistory,
    PriceQuote,
    RecentRuns,
    RunKeyConflictError,
    RunRecord,
    RunState,
)
from portfolio_snapshots._decimal import exact_context
from portfolio_snapshots._domain import SNAPSHOT_FIELD_NAMES
from portfolio_snapshots.errors import LeaseLostError
from portfolio_snapshots.history import CashBalance, DailyTotals, SnapshotTotals

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence
    from contextlib import AbstractAsyncContextManager

    from portfolio_snapshots import MarketData, RunLedger, RunLock, SnapshotRepository

__all__ = [
    "MarketDataContract",
    "RunLedgerContract",
    "RunLockContract",
    "SnapshotRepositoryContract",
    "check_market_data",
    "check_run_ledger",
    "check_run_lock",
    "check_snapshot_repository",
]

_T = TypeVar("_T")

# Fixed ids and dates: a failing check names the same values on every run.
_P1 = uuid.UUID("5a1e0000-0000-4000-8000-000000000001")
_P2 = uuid.UUID("5a1e0000-0000-4000-8000-000000000002")
_P3 = uuid.UUID("5a1e0000-0000-4000-8000-000000000003")
_P4 = uuid.UUID("5a1e0000-0000-4000-8000-000000000004")
_DAY = dt.date(2025, 3, 3)
_T0 = dt.datetime(2025, 3, 3, 0, 0, 5, tzinfo=dt.UTC)
_TTL = dt.timedelta(seconds=30)
_TASKS = 8


def _expect(condition: bool, message: str) -> None:
    """Raise `AssertionError` with `message` unless `condition` holds (also under -O)."""
    if not condition:
        raise AssertionError(message)


def _day(n: int) -> dt.date:
    return _DAY + dt.timedelta(days=n)


def _at(seconds: float) -> dt.datetime:
    return _T0 + dt.timedelta(seconds=seconds)


def _run(
    factory: Callable[[], AbstractAsyncContextManager[_T]],
    body: Callable[[_T], Awaitable[None]],
) -> None:
    """Open a fresh adapter from `factory`, run `body` on it, close it: in a new event loop."""

    async def main() -> None:
        async with factory() as adapter:
            await body(adapter)

    asyncio.run(main())


def _position(
    ticker: str,
    quantity: str,
    price: str,
    *,
    price_date: dt.date = _DAY,
    price_currency: str | None = "USD",
    fx_rate: str | None = None,
    stale: bool = False,
) -> PositionValuation:
    q, p = Decimal(quantity), Decimal(price)
    rate = None if fx_rate is None else Decimal(fx_rate)
    with decimal.localcontext(exact_context()):
        value = (q * p * (rate or 1)).quantize(Decimal("0.01"))
    return PositionValuation(ticker, q, p, price_date, value, price_currency, rate, stale)


def _snapshot(
    portfolio_id: uuid.UUID = _P1,
    day: dt.date = _DAY,
    cash: str = "100.00",
    positions: Sequence[PositionValuation] = (),
    *,
    net_contributions: str | None = None,
    external_flow: str | None = None,
    stale: bool = False,
) -> PortfolioSnapshot:
    """Build a snapshot whose totals add up, as the calculator's do."""
    with decimal.localcontext(exact_context()):
        cash_balance = Decimal(cash)
        holdings = sum((p.market_value for p in positions), Decimal("0.00"))
        total = cash_balance + holdings
    return PortfolioSnapshot(
        portfolio_id,
        day,
        "USD",
        cash_balance,
        holdings,
        total,
        tuple(positions),
        None if net_contributions is None else Decimal(net_contributions),
        None if external_flow is None else Decimal(external_flow),
        stale,
    )


def _money(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def _booked(
    portfolio_id: uuid.UUID = _P1,
    day: dt.date = _DAY,
    *,
    costs: Sequence[str | None] = ("300.00", "2500", None),
    realized: str | None = "-12.50",
    income: tuple[str | None, str | None] = ("4.10", "0.03"),
    fees_taxes: tuple[str | None, str | None] = ("9.99", "1.2E+1"),
    net_transfers: str | None = "0",
    foreign_cash: bool = True,
) -> PortfolioSnapshot:
    """Build a snapshot with books, as the calculator makes them, its totals adding up.

    Three positions (one in EUR at a stale rate) whose cost bases are `costs` (None: not
    known, and then the snapshot's cost basis is not known either), realized gains and
    dividends per position, the snapshot's accounting fields, and, with `foreign_cash`, cash
    in USD, EUR (at a rate) and GBP (overdrawn, at a stale rate).
    """
    priced = [
        _position("AAPL", "2", "190.10"),
        _position(
            "ASML",
            "3",
            "912.30",
            price_date=_day(-3),
            price_currency="EUR",
            fx_rate="1.0825",
            stale=True,
        ),
        _position("VOO", "1.25", "500.01"),
    ]
    own_dividends = ("0.96", None, "0")
    own_realized = ("12.5", "-25.00", None)
    positions = []
    with decimal.localcontext(exact_context()):
        for p, cost, dividend, gain in zip(priced, costs, own_dividends, own_realized, strict=True):
            basis = _money(cost)
            positions.append(
                p._replace(
                    cost_basis=basis,
                    unrealized_gain=None if basis is None else p.market_value - basis,
                    realized_gain=_money(gain),
                    dividends=_money(dividend),
                )
            )
        balances: tuple[CashBalance, ...] = ()
        cash = Decimal("100.00")
        if foreign_cash:
            cent = Decimal("0.01")
            eur = Decimal("50.00") * Decimal("1.0825")
            gbp = Decimal("-20.5") * Decimal("1.27")
            balances = (
                CashBalance("USD", cash, cash),
                CashBalance("EUR", Decimal("50.00"), eur.quantize(cent), Decimal("1.0825")),
                CashBalance(
                    "GBP", Decimal("-20.5"), gbp.quantize(cent), Decimal("1.27"), stale=True
                ),
            )
            cash = sum((b.value for b in balances), Decimal(0))
        holdings = sum((p.market_value for p in positions), Decimal("0.00"))
        known = [p.cost_basis for p in positions if p.cost_basis is not None]
        cost_basis = sum(known, Decimal("0.00")) if len(known) == len(positions) else None
        return PortfolioSnapshot(
            portfolio_id,
            day,
            "USD",
            cash,
            holdings,
            cash + holdings,
            positions,
            Decimal("5000.00"),
            Decimal("-250.00"),
            stale=True,
            cost_basis=cost_basis,
            unrealized_gain=None if cost_basis is None else holdings - cost_basis,
            realized_gain=_money(realized),
            dividends=_money(income[0]),
            interest=_money(income[1]),
            fees=_money(fees_taxes[0]),
            taxes=_money(fees_taxes[1]),
            net_transfers=_money(net_transfers),
            cash_balances=balances,
        )


def _differences(got: object, want: PortfolioSnapshot) -> list[str]:
    """Name each field where `got` differs from `want`, or how its type is wrong."""
    if not isinstance(got, PortfolioSnapshot):
        return [f"expected a PortfolioSnapshot, got {got!r}"]
    problems = []
    for name in SNAPSHOT_FIELD_NAMES:
        g, w = getattr(got, name), getattr(want, name)
        if name == "positions":
            if not isinstance(g, tuple):
                problems.append(f"positions: expected a tuple, got {g!r}")
            elif len(g) != len(w):
                problems.append(f"positions: got {len(g)}, wrote {len(w)}: {g!r}")
            else:
                for i, (gp, wp) in enumerate(zip(g, w, strict=True)):
                    problems.extend(_position_differences(i, gp, wp))
        elif name == "cash_balances":
            problems.extend(_balance_differences(g, w))
        elif _unlike(g, w):
            problems.append(f"{name}: read back {g!r}, wrote {w!r}")
    return problems


def _unlike(got: object, want: object) -> bool:
    """Whether `got` differs from `want` in value or kind (a float or int for a Decimal or bool).

    A subclass of the written type is accepted: some drivers return their own `UUID` class.
    """
    return got != want or not isinstance(got, type(want))


def _position_differences(index: int, got: object, want: PositionValuation) -> list[str]:
    if not isinstance(got, PositionValuation):
        return [f"positions[{index}]: expected a PositionValuation, got {got!r}"]
    return [
        f"positions[{index}].{name}: read back {g!r}, wrote {w!r}"
        for name, g, w in zip(PositionValuation._fields, got, want, strict=True)
        if _unlike(g, w)
    ]


def _balance_differences(got: object, want: tuple[CashBalance, ...]) -> list[str]:
    if not isinstance(got, tuple):
        return [f"cash_balances: expected a tuple, got {got!r}"]
    if len(got) != len(want):
        return [f"cash_balances: got {len(got)}, wrote {len(want)}: {got!r}"]
    problems = []
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        if not isinstance(g, CashBalance):
            problems.append(f"cash_balances[{i}]: expected a CashBalance, got {g!r}")
            continue
        problems.extend(
            f"cash_balances[{i}].{name}: read back {gf!r}, wrote {wf!r}"
            for name, gf, wf in zip(CashBalance._fields, g, w, strict=True)
            if _unlike(gf, wf)
        )
    return problems


def _expect_same(got: object, want: PortfolioSnapshot, context: str) -> None:
    problems = _differences(got, want)
    _expect(
        not problems,
        f"{context}: the snapshot {want.portfolio_id} {want.snapshot_date} does not read back "
        "as written:\n  " + "\n  ".join(problems),
    )


async def _expect_round_trip(
    repo: SnapshotRepository, written: list[PortfolioSnapshot], start: dt.date, end: dt.date
) -> None:
    """Write `written` and read each back, by `get_snapshot` and by `list_snapshots`.

    `written` is one portfolio's days from `start` to `end`, in date order; each must read
    back equal to what was written.
    """
    await repo.upsert_many(written)
    for snap in written:
        got = await repo.get_snapshot(snap.portfolio_id, snap.snapshot_date)
        _expect_same(got, snap, "get_snapshot")
    listed = await repo.list_snapshots(written[0].portfolio_id, start, end)
    _expect(len(listed) == len(written), f"listed {len(listed)} of {len(written)}")
    for got, snap in zip(listed, written, strict=True):
        _expect_same(got, snap, "list_snapshots")


async def _expect_raises(
    error: type[BaseException], call: Awaitable[object], message: str
) -> BaseException:
    try:
        result = await call
    except error as raised:
        return raised
    raise AssertionError(f"{message}; it returned {result!r} instead of raising {error.__name__}")


def _check_all(contract: object, cls: type) -> None:
    """Run every ``test_*`` method `cls` defines on `contract`, stopping at the first failure."""
    for name, member in vars(cls).items():
        if name.startswith("test_") and callable(member):
            try:
                getattr(contract, name)()
            except unittest.SkipTest:
                continue  # a clause about a capability the adapter does not offer
            except Exception as error:
                error.add_note(f"in the conformance check {cls.__name__}.{name}")
                raise


class SnapshotRepositoryContract:
    """The `SnapshotRepository` contract as tests: subclass it as ``Test...`` in a test module.

    Implement `make_repository`; every ``test_*`` method then checks one clause of the
    contract against a fresh, empty repository.

    Example::

        class TestMyRepository(SnapshotRepositoryContract):
            def make_repository(self):
                return contextlib.nullcontext(InMemorySnapshotRepository())
    """

    def make_repository(self) -> AbstractAsyncContextManager[SnapshotRepository]:
        """Return an async context manager that yields a fresh, empty repository.

        Entered once per check; its exit is the place to drop tables or close connections.

        Returns:
            The context manager.

        Raises:
            NotImplementedError: Always, here: subclasses implement it.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement make_repository()")

    def _run(self, body: Callable[[SnapshotRepository], Awaitable[None]]) -> None:
        _run(self.make_repository, body)

    def test_upsert_same_snapshot_twice_keeps_one(self) -> None:
        """Writing the same snapshot twice stores one row, equal to it."""

        async def body(repo: SnapshotRepository) -> None:
            snap = _snapshot(positions=[_position("AAPL", "2", "190.10")])
            await repo.upsert_many([snap])
            await repo.upsert_many([snap])
            rows = await repo.list_snapshots(_P1, _DAY, _DAY)
            _expect(len(rows) == 1, f"two writes of one key left {len(rows)} rows: {rows!r}")
            _expect_same(rows[0], snap, "after writing it twice")

        self._run(body)

    def test_batch_with_a_key_twice_keeps_the_later(self) -> None:
        """A batch that holds the same key twice stores the later snapshot, once."""

        async def body(repo: SnapshotRepository) -> None:
            first, later = _snapshot(cash="1.00"), _snapshot(cash="2.00")
            await repo.upsert_many([first, later])
            rows = await repo.list_snapshots(_P1, _DAY, _DAY)
            _expect(len(rows) == 1, f"one key in a batch twice left {len(rows)} rows")
            _expect_same(rows[0], later, "a batch with the key twice")

        self._run(body)

    def test_upsert_replaces_a_stored_snapshot(self) -> None:
        """Writing a new snapshot for a stored key replaces every field of the old one."""

        async def body(repo: SnapshotRepository) -> None:
            old = _snapshot(cash="5.00", positions=[_position("AAPL", "1", "10")])
            new = _snapshot(cash="7.00", positions=[_position("MSFT", "3", "20")])
            await repo.upsert_many([old])
            await repo.upsert_many([new])
            _expect_same(await repo.get_snapshot(_P1, _DAY), new, "after a replacing write")

        self._run(body)

    def test_get_snapshot_returns_none_when_missing(self) -> None:
        """`get_snapshot` returns None for a key never written, another date or portfolio."""

        async def body(repo: SnapshotRepository) -> None:
            empty = await repo.get_snapshot(_P1, _DAY)
            _expect(empty is None, f"an empty repository returned {empty!r}")
            await repo.upsert_many([_snapshot()])
            for pid, day in [(_P1, _day(1)), (_P2, _DAY)]:
                got = await repo.get_snapshot(pid, day)
                _expect(got is None, f"get_snapshot({pid}, {day}) returned {got!r}, not None")

        self._run(body)

    def test_list_snapshots_is_inclusive_ordered_and_per_portfolio(self) -> None:
        """`list_snapshots` returns that portfolio's snapshots from start to end, by date."""

        async def body(repo: SnapshotRepository) -> None:
            # written out of order, with another portfolio's rows on the same dates
            mine = {n: _snapshot(_P1, _day(n), cash=f"{n}.00") for n in (4, 0, 2, 1, 3, 5)}
            theirs = [_snapshot(_P2, _day(n)) for n in range(6)]
            await repo.upsert_many([*mine.values(), *theirs])
            rows = await repo.list_snapshots(_P1, _day(1), _day(4))
            dates = [r.snapshot_date for r in rows]
            want = [_day(n) for n in (1, 2, 3, 4)]
            _expect(dates == want, f"list_snapshots(day 1, day 4) gave dates {dates}, not {want}")
            for row in rows:
                _expect_same(row, mine[(row.snapshot_date - _DAY).days], "list_snapshots")
            none = await repo.list_snapshots(_P3, _day(0), _day(5))
            _expect(len(none) == 0, f"an unknown portfolio listed {none!r}")

        self._run(body)

    def test_existing_dates_in_range(self) -> None:
        """`existing_dates` returns the stored dates of that portfolio within the range."""

        async def body(repo: SnapshotRepository) -> None:
            await repo.upsert_many([_snapshot(_P1, _day(n)) for n in (0, 2, 3, 7)])
            await repo.upsert_many([_snapshot(_P2, _day(n)) for n in range(8)])
            got = await repo.existing_dates(_P1, _day(2), _day(7))
            want = frozenset({_day(2), _day(3), _day(7)})
            _expect(got == want, f"existing_dates(day 2, day 7) returned {got!r}, not {want!r}")
            empty = await repo.existing_dates(_P3, _day(0), _day(7))
            _expect(not empty, f"an unknown portfolio has dates {empty!r}")

        self._run(body)

    def test_existing_keys_returns_the_stored_keys(self) -> None:
        """`existing_keys` returns exactly the given keys that are stored."""

        async def body(repo: SnapshotRepository) -> None:
            await repo.upsert_many(
                [_snapshot(_P1, _day(0)), _snapshot(_P1, _day(1)), _snapshot(_P2, _day(0))]
            )
            asked = [(_P1, _day(0)), (_P1, _day(2)), (_P2, _day(0)), (_P3, _day(0))]
            got = await repo.existing_keys(asked)
            want = frozenset({(_P1, _day(0)), (_P2, _day(0))})
            _expect(got == want, f"existing_keys returned {got!r}, not {want!r}")
            none = await repo.existing_keys([])
            _expect(not none, f"existing_keys([]) returned {none!r}")

        self._run(body)

    def test_decimals_round_trip_exactly(self) -> None:
        """Amounts read back equal and as Decimals: tiny, huge, negative, with trailing zeros."""

        async def body(repo: SnapshotRepository) -> None:
            written = [
                _snapshot(_P1, _day(0), cash="0.1"),
                _snapshot(_P1, _day(1), cash="1E-8"),
                _snapshot(_P1, _day(2), cash="98765432109876543210.12345678"),
                _snapshot(_P1, _day(3), cash="-1500.25", net_contributions="-0.10"),
                _snapshot(
                    _P1,
                    _day(4),
                    cash="10.500",
                    positions=[_position("AAPL", "0.12345678", "189.2500")],
                    net_contributions="100000.000",
                    external_flow="0E-8",
                ),
                _snapshot(_P1, _day(5), cash="0", positions=[_position("X", "1E-8", "5E+7")]),
            ]
            await _expect_round_trip(repo, written, _day(0), _day(5))

        self._run(body)

    def test_every_field_round_trips_with_positions_in_order(self) -> None:
        """Every snapshot and position field reads back as written, positions in order."""

        async def body(repo: SnapshotRepository) -> None:
            rich = _snapshot(
                cash="250.75",
                positions=[
                    _position("AAPL", "0.5", "190.40"),
                    _position(
                        "ASML",
                        "3",
                        "912.30",
                        price_date=_day(-3),
                        price_currency="EUR",
                        fx_rate="1.0825",
                        stale=True,
                    ),
                    _position("BRK.B", "10", "412.07", price_currency=None),
                    _position("VOO", "1.25", "500.01", price_date=_day(-1), stale=True),
                ],
                net_contributions="12000.00",
                external_flow="-500.00",
                stale=True,
            )
            plain = _snapshot(_P2, cash="0.00")
            await repo.upsert_many([rich, plain])
            _expect_same(await repo.get_snapshot(_P1, _DAY), rich, "get_snapshot")
            _expect_same(await repo.get_snapshot(_P2, _DAY), plain, "get_snapshot")
            listed = await repo.list_snapshots(_P1, _DAY, _DAY)
            _expect(len(listed) == 1, f"list_snapshots gave {len(listed)} rows, not 1")
            _expect_same(listed[0], rich, "list_snapshots")

        self._run(body)

    def test_lower_fence_leaves_rows_of_a_higher_fence(self) -> None:
        """A fenced write skips rows stored under a greater fence and writes the rest."""

        async def body(repo: SnapshotRepository) -> None:
            newer = _snapshot(_P1, cash="5.00")
            await repo.upsert_many([newer], fence=5)
            stale_write = [_snapshot(_P1, cash="3.00"), _snapshot(_P2, cash="3.00")]
            await repo.upsert_many(stale_write, fence=3)
            _expect_same(
                await repo.get_snapshot(_P1, _DAY), newer, "after a write with a lower fence"
            )
            _expect_same(
                await repo.get_snapshot(_P2, _DAY),
                stale_write[1],
                "a lower fence still writes a key no greater fence holds",
            )
            same = _snapshot(_P1, cash="6.00")
            await repo.upsert_many([same], fence=5)
            _expect_same(
                await repo.get_snapshot(_P1, _DAY), same, "a write with an equal fence replaces"
            )
            higher = _snapshot(_P1, cash="7.00")
            await repo.upsert_many([higher], fence=9)
            _expect_same(
                await repo.get_snapshot(_P1, _DAY), higher, "a write with a greater fence replaces"
            )

        self._run(body)

    def test_unfenced_writes_always_replace(self) -> None:
        """A write without a fence replaces any row and stores fence 0, which any fence beats."""

        async def body(repo: SnapshotRepository) -> None:
            await repo.upsert_many([_snapshot(cash="1.00")], fence=100)
            manual = _snapshot(cash="2.00")
            await repo.upsert_many([manual])
            _expect_same(
                await repo.get_snapshot(_P1, _DAY), manual, "an unfenced write over fence 100"
            )
            fenced = _snapshot(cash="3.00")
            await repo.upsert_many([fenced], fence=1)
            _expect_same(
                await repo.get_snapshot(_P1, _DAY),
                fenced,
                "fence 1 over a row written unfenced (fence 0)",
            )

        self._run(body)

    def test_concurrent_upserts_of_the_same_keys(self) -> None:
        """Eight tasks writing the same keys at once all succeed and leave one row per key."""

        async def body(repo: SnapshotRepository) -> None:
            days = [_day(n) for n in range(5)]

            async def writer(n: int) -> None:
                await repo.upsert_many([_snapshot(_P1, d, cash=f"{n}.00") for d in days])

            results = await asyncio.gather(
                *(writer(n) for n in range(_TASKS)), return_exceptions=True
            )
            errors = [r for r in results if isinstance(r, BaseException)]
            _expect(not errors, f"concurrent upserts of the same keys failed: {errors!r}")
            rows = await repo.list_snapshots(_P1, days[0], days[-1])
            got = [r.snapshot_date for r in rows]
            _expect(got == days, f"expected one row per date {days}, got dates {got}")
            cash = {r.cash_balance for r in rows}
            _expect(
                cash <= {Decimal(n) for n in range(_TASKS)},
                f"rows hold values no writer wrote: {cash}",
            )

        self._run(body)

    def test_a_failing_batch_writes_nothing(self) -> None:
        """A batch whose second element is not a snapshot raises and leaves the store as it was."""

        async def body(repo: SnapshotRepository) -> None:
            old = _snapshot(_P1, cash="1.00")
            await repo.upsert_many([old])
            batch = [_snapshot(_P1, cash="2.00"), object(), _snapshot(_P2, cash="2.00")]
            try:
                await repo.upsert_many(cast("list[PortfolioSnapshot]", batch))
            except Exception:  # noqa: BLE001, S110 - any error will do; what it left is checked
                pass
            else:
                raise AssertionError("upsert_many accepted a batch holding a non-snapshot")
            _expect_same(await repo.get_snapshot(_P1, _DAY), old, "after a failed batch")
            added = await repo.get_snapshot(_P2, _DAY)
            _expect(added is None, f"a failed batch still stored {added!r}")

        self._run(body)

    def test_list_totals_reads_each_days_totals_in_date_order(self) -> None:
        """A store offering `SnapshotTotals` lists each stored day's totals, by date, in range."""

        async def body(repo: SnapshotRepository) -> None:
            if not isinstance(repo, SnapshotTotals):
                raise unittest.SkipTest("the repository does not offer SnapshotTotals")
            rich = [_position("AAPL", "2", "190.10"), _position("ASML", "1", "900", stale=True)]
            mine = [
                _snapshot(_P1, _day(n), cash=f"{n}.50", positions=rich if n % 2 else ())
                for n in (3, 0, 2, 1, 5)
            ]
            mine.append(_snapshot(_P1, _day(4), cash="1E+3", net_contributions="-0.10", stale=True))
            await repo.upsert_many([*mine, _snapshot(_P2, _day(2))])
            got = await repo.list_totals(_P1, _day(1), _day(4))
            by_day = {s.snapshot_date: s for s in mine}
            want = [DailyTotals.of(by_day[_day(n)]) for n in (1, 2, 3, 4)]
            _expect(
                _same_totals(got, want),
                f"list_totals(day 1, day 4) returned {got!r}, not {want!r}",
            )
            none = await repo.list_totals(_P3, _day(0), _day(5))
            _expect(len(none) == 0, f"an unknown portfolio listed totals {none!r}")

        self._run(body)

    def test_totals_on_reads_many_portfolios_on_one_day(self) -> None:
        """A store offering `SnapshotTotals` reads one day's totals of the ids asked, by id."""

        async def body(repo: SnapshotRepository) -> None:
            if not isinstance(repo, SnapshotTotals):
                raise unittest.SkipTest("the repository does not offer SnapshotTotals")
            day = [
                _snapshot(_P2, cash="2.00", positions=[_position("MSFT", "3", "20")]),
                _snapshot(_P1, cash="1.00", net_contributions="5.00"),
                _snapshot(_P3, cash="3.00"),
            ]
            await repo.upsert_many([*day, _snapshot(_P1, _day(1), cash="9.00")])
            got = await repo.totals_on(_DAY, [_P2, _P1, _P2, _P4])
            want = [DailyTotals.of(day[1]), DailyTotals.of(day[0])]
            _expect(
                _same_totals(got, want),
                f"totals_on([P2, P1, P2, P4]) returned {got!r}, not {want!r}",
            )
            empty = await repo.totals_on(_DAY, [])
            _expect(len(empty) == 0, f"totals_on with no ids returned {empty!r}")

        self._run(body)

    def test_accounting_fields_and_cash_balances_round_trip(self) -> None:
        """Cost basis, gains, income, fees, taxes and cash per currency read back as written.

        Each known or not (None), per snapshot and per position, by `get_snapshot` and
        `list_snapshots`, beside a snapshot without any.
        """

        async def body(repo: SnapshotRepository) -> None:
            written = [
                _booked(_P1, _day(0)),
                _booked(
                    _P1,
                    _day(1),
                    costs=("0.00", "-1E+2", "700"),
                    realized=None,
                    income=(None, "0"),
                    fees_taxes=("0.00", None),
                    net_transfers="-1500.75",
                    foreign_cash=False,
                ),
                _booked(
                    _P1, _day(2), costs=(None, None, None), realized="0E-2", income=(None, None)
                ),
                _snapshot(_P1, _day(3), positions=[_position("AAPL", "1", "190")]),
            ]
            await _expect_round_trip(repo, written, _day(0), _day(3))

        self._run(body)

    def test_replacing_a_snapshot_replaces_its_accounting_fields(self) -> None:
        """A snapshot without books written over one with them clears them, and the reverse."""

        async def body(repo: SnapshotRepository) -> None:
            booked = _booked()
            plain = _snapshot(cash="3.00", positions=[_position("AAPL", "2", "190.10")])
            other = _booked(costs=("1", "2", "3"), foreign_cash=False, net_transfers=None)
            for fence, snap in enumerate([booked, plain, booked, other, booked], 1):
                await repo.upsert_many([snap], fence=fence)
                _expect_same(
                    await repo.get_snapshot(_P1, _DAY), snap, f"after the write with fence {fence}"
                )
            if isinstance(repo, SnapshotTotals):
                await repo.upsert_many([plain])
                got = await repo.list_totals(_P1, _DAY, _DAY)
                want = [DailyTotals.of(plain)]
                _expect(
                    _same_totals(got, want),
                    f"after books were cleared, list_totals returned {got!r}, not {want!r}",
                )

        self._run(body)

    def test_totals_carry_the_accounting_fields(self) -> None:
        """A store offering `SnapshotTotals` reads each accounting field into `DailyTotals`.

        By `list_totals` and by `totals_on`, the day's flow included, None where not known.
        """

        async def body(repo: SnapshotRepository) -> None:
            if not isinstance(repo, SnapshotTotals):
                raise unittest.SkipTest("the repository does not offer SnapshotTotals")
            mine = [
                _booked(_P1, _day(0)),
                _booked(_P1, _day(1), costs=("5", "6", "7.000"), fees_taxes=(None, "-3.5")),
                _snapshot(_P1, _day(2), external_flow="1E+3"),
                _booked(_P1, _day(3), realized=None, income=(None, None), net_transfers=None),
            ]
            theirs = [_booked(_P2, _day(1), costs=("1", "1", "1")), _snapshot(_P3, _day(1))]
            await repo.upsert_many([*mine, *theirs])
            got = await repo.list_totals(_P1, _day(0), _day(3))
            want = [DailyTotals.of(s) for s in mine]
            _expect(_same_totals(got, want), f"list_totals returned {got!r}, not {want!r}")
            got = await repo.totals_on(_day(1), [_P3, _P2, _P1])
            want = [DailyTotals.of(s) for s in (mine[1], theirs[0], theirs[1])]
            _expect(_same_totals(got, want), f"totals_on returned {got!r}, not {want!r}")

        self._run(body)


def _same_totals(got: Sequence[object], want: Sequence[DailyTotals]) -> bool:
    """Whether `got` reads back as `want`: equal values, of the written kinds, the same texts.

    The texts make another exponent differ (``1E+3`` is not ``1000``); a subclass of the
    written type is accepted, as some drivers return their own `UUID` class.
    """
    if len(got) != len(want):
        return False
    for g, w in zip(got, want, strict=True):
        if not isinstance(g, DailyTotals):
            return False
        for gf, wf in zip(g, w, strict=True):
            if _unlike(gf, wf) or str(gf) != str(wf):
                return False
    return True


class RunLedgerContract:
    """The `RunLedger` contract as tests: subclass it as ``Test...`` in a test module.

    Implement `make_ledger`; every ``test_*`` method then checks one clause of the contract
    against a fresh, empty ledger.
    """

    def make_ledger(self) -> AbstractAsyncContextManager[RunLedger]:
        """Return an async context manager that yields a fresh, empty ledger.

        Returns:
            The context manager.

        Raises:
            NotImplementedError: Always, here: subclasses implement it.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement make_ledger()")

    def _run(self, body: Callable[[RunLedger], Awaitable[None]]) -> None:
        _run(self.make_ledger, body)

    def test_start_a_new_key(self) -> None:
        """Starting a new key creates a running record with one attempt."""

        async def body(ledger: RunLedger) -> None:
            record = await ledger.start("daily:2025-03-03", "h1", _at(0))
            _expect_record(record, "start of a new key", RunState.RUNNING, 1, started_at=_at(0))
            stored = await ledger.get("daily:2025-03-03")
            _expect_record(stored, "get after start", RunState.RUNNING, 1, started_at=_at(0))

        self._run(body)

    def test_restart_after_failure_resumes(self) -> None:
        """Starting a failed key again with the same hash sets it running with two attempts."""

        async def body(ledger: RunLedger) -> None:
            await ledger.start("k", "h1", _at(0))
            failed = await ledger.finish("k", RunState.FAILED, {"failed": 1}, _at(10))
            _expect(
                failed.state == RunState.FAILED, f"finish(FAILED) returned state {failed.state!r}"
            )
            record = await ledger.start("k", "h1", _at(20))
            _expect_record(record, "restart after failure", RunState.RUNNING, 2, started_at=_at(20))
            stored = await ledger.get("k")
            _expect_record(stored, "get after restart", RunState.RUNNING, 2, started_at=_at(20))

        self._run(body)

    def test_start_after_success_returns_it_unchanged(self) -> None:
        """Starting a succeeded key returns its record unchanged, report included."""

        async def body(ledger: RunLedger) -> None:
            report = _report()
            await ledger.start("k", "h1", _at(0))
            await ledger.finish("k", RunState.SUCCEEDED, report, _at(10))
            again = await ledger.start("k", "h1", _at(20))
            again = _expect_record(
                again, "start after success", RunState.SUCCEEDED, 1, started_at=_at(0)
            )
            _expect(
                again.finished_at == _at(10),
                f"start after success changed finished_at to {again.finished_at!r}",
            )
            got = None if again.report is None else dict(again.report)
            _expect(got == report, f"start after success returned report {got!r}, not {report!r}")

        self._run(body)

    def test_another_hash_conflicts_and_changes_nothing(self) -> None:
        """Reusing a key with another hash raises RunKeyConflictError and changes nothing."""

        async def conflict(ledger: RunLedger, label: str) -> None:
            before = await ledger.get("k")
            raised = await _expect_raises(
                RunKeyConflictError,
                ledger.start("k", "h2", _at(30)),
                f"start with another hash on a {label} key must fail",
            )
            key = getattr(raised, "key", None)
            _expect(key == "k", f"the conflict error names key {key!r}, not 'k'")
            after = await ledger.get("k")
            _expect(
                after == before,
                f"a conflicting start changed the {label} record: {before!r} -> {after!r}",
            )

        async def body(ledger: RunLedger) -> None:
            await ledger.start("k", "h1", _at(0))
            await conflict(ledger, "running")
            await ledger.finish("k", RunState.FAILED, {"failed": 1}, _at(5))
            await conflict(ledger, "failed")
            await ledger.start("k", "h1", _at(10))
            await ledger.finish("k", RunState.SUCCEEDED, {"failed": 0}, _at(15))
            await conflict(ledger, "succeeded")

        self._run(body)

    def test_get_unknown_key_returns_none(self) -> None:
        """`get` returns None for a key never started."""

        async def body(ledger: RunLedger) -> None:
            await ledger.start("known", "h1", _at(0))
            got = await ledger.get("unknown")
            _expect(got is None, f"get of an unknown key returned {got!r}")

        self._run(body)

    def test_finish_records_state_time_and_report(self) -> None:
        """`finish` records the state, the time and a JSON-friendly report that reads back equal."""

        async def body(ledger: RunLedger) -> None:
            report = _report()
            await ledger.start("k", "h1", _at(0))
            finished = await ledger.finish("k", RunState.SUCCEEDED, report, _at(42))
            for label, found in (("finish", finished), ("get", await ledger.get("k"))):
                record = _expect_record(found, label, RunState.SUCCEEDED, 1, started_at=_at(0))
                _expect(
                    record.finished_at == _at(42),
                    f"{label}: finished_at is {record.finished_at!r}, not {_at(42)!r}",
                )
                got = None if record.report is None else dict(record.report)
                _expect(got == report, f"{label}: report read back {got!r}, wrote {report!r}")

        self._run(body)

    def test_recent_runs_latest_first(self) -> None:
        """A ledger offering `RecentRuns` lists the latest attempts first, ties by key, limited."""

        async def body(ledger: RunLedger) -> None:
            if not isinstance(ledger, RecentRuns):
                raise unittest.SkipTest("the ledger does not offer RecentRuns")
            for key, at in (("b", 0), ("a", 5), ("c", 5), ("d", 1)):
                await ledger.start(key, "h1", _at(at))
            await ledger.finish("d", RunState.FAILED, _report(), _at(2))
            await ledger.start("d", "h1", _at(9))  # a resume starts a new attempt
            got = [r.key for r in await ledger.recent_runs(10)]
            _expect(got == ["d", "a", "c", "b"], f"recent_runs(10) listed {got}")
            got = [r.key for r in await ledger.recent_runs(2)]
            _expect(got == ["d", "a"], f"recent_runs(2) listed {got}")
            none = list(await ledger.recent_runs(0))
            _expect(none == [], f"recent_runs(0) listed {none!r}")
            first = (await ledger.recent_runs(1))[0]
            _expect_record(first, "recent_runs(1)[0]", RunState.RUNNING, 2, started_at=_at(9))

        self._run(body)


def _report() -> dict[str, object]:
    """A report shaped like `RunReport.as_dict`, with nesting and every JSON scalar but float."""
    return {
        "kind": "daily",
        "start": "2025-03-03",
        "end": "2025-03-03",
        "processed": 3,
        "succeeded": 2,
        "failed": 1,
        "ok": False,
        "note": None,
        "failures": [
            {
                "portfolio_id": str(_P1),
                "snapshot_date": "2025-03-03",
                "error_type": "MissingPriceError",
                "message": f"portfolio {_P1} on 2025-03-03: ticker 'ÅB': no price",
                "attempts": 3,
            }
        ],
    }


def _expect_record(
    record: RunRecord | None,
    label: str,
    state: RunState,
    attempts: int,
    *,
    started_at: dt.datetime,
    params_hash: str = "h1",
) -> RunRecord:
    if not isinstance(record, RunRecord):
        raise AssertionError(  # noqa: TRY004 - a broken contract, not a caller's type error
            f"{label}: expected a RunRecord, got {record!r}"
        )
    _expect(record.state == state, f"{label}: state is {record.state!r}, not {state!r}")
    _expect(record.attempts == attempts, f"{label}: attempts is {record.attempts}, not {attempts}")
    _expect(
        record.params_hash == params_hash,
        f"{label}: params_hash is {record.params_hash!r}, not {params_hash!r}",
    )
    _expect(
        record.started_at == started_at,
        f"{label}: started_at is {record.started_at!r}, not {started_at!r}",
    )
    return record


class RunLockContract:
    """The `RunLock` contract as tests: subclass it as ``Test...`` in a test module.

    Implement `make_lock`; every ``test_*`` method then checks one clause of the contract
    against a fresh lock store with every key free.
    """

    def make_lock(self) -> AbstractAsyncContextManager[RunLock]:
        """Return an async context manager that yields a fresh lock store, every key free.

        Returns:
            The context manager.

        Raises:
            NotImplementedError: Always, here: subclasses implement it.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement make_lock()")

    def _run(self, body: Callable[[RunLock], Awaitable[None]]) -> None:
        _run(self.make_lock, body)

    def test_acquire_a_free_key(self) -> None:
        """Acquiring a free key returns a lease for that key and owner, expiring after the ttl."""

        async def body(lock: RunLock) -> None:
            lease = _expect_lease(
                await lock.acquire("k", "a", _TTL, _at(0)), "acquire of a free key", "k", "a"
            )
            _expect(
                lease.expires_at == _at(0) + _TTL,
                f"the lease expires at {lease.expires_at}, not now + ttl ({_at(0) + _TTL})",
            )

        self._run(body)

    def test_second_owner_waits_while_unexpired(self) -> None:
        """Another owner gets None while the lease is held and unexpired."""

        async def body(lock: RunLock) -> None:
            await lock.acquire("k", "a", _TTL, _at(0))
            for seconds in (0, 1, 29):
                got = await lock.acquire("k", "b", _TTL, _at(seconds))
                _expect(got is None, f"a second owner got {got!r} {seconds}s into a 30s lease")

        self._run(body)

    def test_expired_lease_is_taken_with_a_greater_fence(self) -> None:
        """After expiry another owner acquires the key, with a greater fence."""

        async def body(lock: RunLock) -> None:
            first = _expect_lease(await lock.acquire("k", "a", _TTL, _at(0)), "acquire", "k", "a")
            second = _expect_lease(
                await lock.acquire("k", "b", _TTL, _at(31)), "acquire after expiry", "k", "b"
            )
            _expect(
                second.fence > first.fence,
                f"the new fence {second.fence} is not greater than {first.fence}",
            )

        self._run(body)

    def test_fences_increase_across_keys(self) -> None:
        """Fences strictly increase over every acquisition in the store, whatever the key."""

        async def body(lock: RunLock) -> None:
            fences: list[int] = []
            for key, owner in [("k1", "a"), ("k2", "b"), ("k3", "a"), ("k1", "a")]:
                lease = await lock.acquire(key, owner, _TTL, _at(len(fences)))
                fences.append(
                    _expect_lease(lease, f"acquire of {key} by {owner}", key, owner).fence
                )
            _expect(
                all(a < b for a, b in itertools.pairwise(fences)),
                f"fences do not strictly increase: {fences}",
            )

        self._run(body)

    def test_renew_extends_the_lease(self) -> None:
        """Renewing a held lease keeps its fence and pushes its expiry to now + ttl."""

        async def body(lock: RunLock) -> None:
            lease = _expect_lease(await lock.acquire("k", "a", _TTL, _at(0)), "acquire", "k", "a")
            renewed = await lock.renew(lease, _TTL, _at(20))
            _expect_lease(renewed, "renew", "k", "a")
            _expect(
                renewed.fence == lease.fence,
                f"renew changed the fence {lease.fence} -> {renewed.fence}",
            )
            _expect(
                renewed.expires_at == _at(20) + _TTL,
                f"the renewed lease expires at {renewed.expires_at}, not {_at(20) + _TTL}",
            )
            got = await lock.acquire("k", "b", _TTL, _at(40))
            _expect(got is None, f"another owner took a renewed lease before it expired: {got!r}")
            again = await lock.renew(renewed, _TTL, _at(45))
            _expect_lease(again, "a second renew", "k", "a")

        self._run(body)

    def test_renew_after_takeover_raises(self) -> None:
        """Renewing a lease another owner took over raises LeaseLostError."""

        async def body(lock: RunLock) -> None:
            lease = _expect_lease(await lock.acquire("k", "a", _TTL, _at(0)), "acquire", "k", "a")
            taken = await lock.acquire("k", "b", _TTL, _at(31))
            _expect_lease(taken, "takeover after expiry", "k", "b")
            await _expect_raises(
                LeaseLostError,
                lock.renew(lease, _TTL, _at(32)),
                "renewing a lease another owner took over must fail",
            )

        self._run(body)

    def test_a_lease_is_free_at_exactly_its_expiry(self) -> None:
        """At ``now == expires_at`` the lease is expired: another owner acquires the key."""

        async def body(lock: RunLock) -> None:
            first = _expect_lease(await lock.acquire("k", "a", _TTL, _at(0)), "acquire", "k", "a")
            got = await lock.acquire("k", "b", _TTL, first.expires_at)
            _expect_lease(got, "acquire at exactly the holder's expires_at", "k", "b")

        self._run(body)

    def test_renew_at_exactly_its_expiry_raises(self) -> None:
        """At ``now == expires_at`` a lease can no longer be renewed: LeaseLostError."""

        async def body(lock: RunLock) -> None:
            lease = _expect_lease(await lock.acquire("k", "a", _TTL, _at(0)), "acquire", "k", "a")
            await _expect_raises(
                LeaseLostError,
                lock.renew(lease, _TTL, lease.expires_at),
                "renewing a lease at exactly its expires_at must fail",
            )

        self._run(body)

    def test_renew_after_expiry_raises(self) -> None:
        """Renewing an expired lease raises LeaseLostError even if nobody took the key."""

        async def body(lock: RunLock) -> None:
            lease = _expect_lease(await lock.acquire("k", "a", _TTL, _at(0)), "acquire", "k", "a")
            await _expect_raises(
                LeaseLostError,
                lock.renew(lease, _TTL, _at(31)),
                "renewing an expired lease must fail",
            )

        self._run(body)

    def test_reacquire_by_the_holder_gets_a_new_fence(self) -> None:
        """An owner acquiring a key it holds gets a new lease with a greater fence."""

        async def body(lock: RunLock) -> None:
            first = _expect_lease(await lock.acquire("k", "a", _TTL, _at(0)), "acquire", "k", "a")
            again = _expect_lease(
                await lock.acquire("k", "a", _TTL, _at(5)), "re-acquire by the holder", "k", "a"
            )
            _expect(
                again.fence > first.fence,
                f"re-acquire kept fence {again.fence}, not greater than {first.fence}",
            )

        self._run(body)

    def test_release_frees_the_key(self) -> None:
        """After release another owner acquires the key at once."""

        async def body(lock: RunLock) -> None:
            lease = _expect_lease(await lock.acquire("k", "a", _TTL, _at(0)), "acquire", "k", "a")
            await lock.release(lease)
            got = await lock.acquire("k", "b", _TTL, _at(1))
            _expect_lease(got, "acquire after release", "k", "b")

        self._run(body)

    def test_release_of_a_stale_lease_does_nothing(self) -> None:
        """Releasing a lease that was taken over leaves the new holder's lease in place."""

        async def body(lock: RunLock) -> None:
            stale = _expect_lease(await lock.acquire("k", "a", _TTL, _at(0)), "acquire", "k", "a")
            current = _expect_lease(
                await lock.acquire("k", "b", _TTL, _at(31)), "takeover", "k", "b"
            )
            await lock.release(stale)
            got = await lock.acquire("k", "c", _TTL, _at(32))
            _expect(got is None, f"releasing a stale lease freed the key: c got {got!r}")
            renewed = await lock.renew(current, _TTL, _at(33))
            _expect_lease(renewed, "renew by the current holder", "k", "b")

        self._run(body)

    def test_concurrent_acquire_grants_one_lease(self) -> None:
        """Eight owners acquiring one key at once: exactly one gets the lease."""

        async def body(lock: RunLock) -> None:
            results = await asyncio.gather(
                *(lock.acquire("k", f"owner-{n}", _TTL, _at(0)) for n in range(_TASKS))
            )
            granted = [r for r in results if r is not None]
            _expect(len(granted) == 1, f"{len(granted)} concurrent acquires won: {granted!r}")

        self._run(body)


def _expect_lease(lease: Lease | None, label: str, key: str, owner: str) -> Lease:
    if not isinstance(lease, Lease):
        raise AssertionError(  # noqa: TRY004 - a broken contract, not a caller's type error
            f"{label}: expected a Lease, got {lease!r}"
        )
    _expect(lease.key == key, f"{label}: the lease is for key {lease.key!r}, not {key!r}")
    _expect(lease.owner == owner, f"{label}: the lease is owned by {lease.owner!r}, not {owner!r}")
    return lease


class _BoundSnapshotRepositoryContract(SnapshotRepositoryContract):
    def __init__(
        self, factory: Callable[[], AbstractAsyncContextManager[SnapshotRepository]]
    ) -> None:
        self._factory = factory

    def make_repository(self) -> AbstractAsyncContextManager[SnapshotRepository]:
        return self._factory()


class _BoundRunLedgerContract(RunLedgerContract):
    def __init__(self, factory: Callable[[], AbstractAsyncContextManager[RunLedger]]) -> None:
        self._factory = factory

    def make_ledger(self) -> AbstractAsyncContextManager[RunLedger]:
        return self._factory()


class _BoundRunLockContract(RunLockContract):
    def __init__(self, factory: Callable[[], AbstractAsyncContextManager[RunLock]]) -> None:
        self._factory = factory

    def make_lock(self) -> AbstractAsyncContextManager[RunLock]:
        return self._factory()


def check_snapshot_repository(
    factory: Callable[[], AbstractAsyncContextManager[SnapshotRepository]],
) -> None:
    """Run every `SnapshotRepositoryContract` check, without pytest.

    Args:
        factory: Returns an async context manager yielding a fresh, empty repository; called
            once per check.

    Raises:
        AssertionError: The first check that fails; a note names it. Any other error the
            adapter raises propagates with the same note.
    """
    _check_all(_BoundSnapshotRepositoryContract(factory), SnapshotRepositoryContract)


def check_run_ledger(factory: Callable[[], AbstractAsyncContextManager[RunLedger]]) -> None:
    """Run every `RunLedgerContract` check, without pytest.

    Args:
        factory: Returns an async context manager yielding a fresh, empty ledger; called once
            per check.

    Raises:
        AssertionError: The first check that fails; a note names it. Any other error the
            adapter raises propagates with the same note.
    """
    _check_all(_BoundRunLedgerContract(factory), RunLedgerContract)


def check_run_lock(factory: Callable[[], AbstractAsyncContextManager[RunLock]]) -> None:
    """Run every `RunLockContract` check, without pytest.

    Args:
        factory: Returns an async context manager yielding a fresh lock store with every key
            free; called once per check.

    Raises:
        AssertionError: The first check that fails; a note names it. Any other error the
            adapter raises propagates with the same note.
    """
    _check_all(_BoundRunLockContract(factory), RunLockContract)


#: The closes every `MarketDataContract` check loads: a gap, a later-only ticker, two
#: currencies, prices of several scales.
_CLOSES = (
    PriceQuote("AAA", Decimal("101.25"), _day(0), "USD"),
    PriceQuote("AAA", Decimal("102.5"), _day(1), "USD"),
    PriceQuote("AAA", Decimal("99.125"), _day(3), "USD"),
    PriceQuote("BBB", Decimal("48.10"), _day(1), "EUR"),
    PriceQuote("CCC", Decimal("7.0001"), _day(5), "USD"),
)


def _close(ticker: str, n: int) -> PriceQuote:
    return next(q for q in _CLOSES if q.ticker == ticker and q.as_of == _day(n))


def _expect_quote(got: object, want: PriceQuote, label: str) -> None:
    if not isinstance(got, PriceQuote):
        raise AssertionError(  # noqa: TRY004 - a broken contract, not a caller's type error
            f"{label}: expected a PriceQuote, got {got!r}"
        )
    problems = [
        f"{name}: got {g!r}, loaded {w!r}"
        for name, g, w in (
            ("ticker", got.ticker, want.ticker),
            ("price", got.price, want.price),
            ("as_of", got.as_of, want.as_of),
            ("currency", got.currency, want.currency),
        )
        if _unlike(g, w)
    ]
    _expect(not problems, f"{label}: " + "; ".join(problems))


class MarketDataContract:
    """The `MarketData` contract (and `PriceHistory`'s, when offered) as tests.

    Subclass it as ``Test...`` in a test module and implement `make_market_data`, which
    loads the given closes into a fresh adapter (an in-memory fake takes them as they are; a
    file-backed adapter writes them to a file first). Every ``test_*`` method then checks one
    clause of the contract; the `PriceHistory` checks are skipped (`unittest.SkipTest`) for an
    adapter without that capability.

    Example::

        class TestMyMarketData(MarketDataContract):
            def make_market_data(self, quotes):
                return contextlib.nullcontext(InMemoryMarketData(quotes))
    """

    def make_market_data(
        self, quotes: Sequence[PriceQuote]
    ) -> AbstractAsyncContextManager[MarketData]:
        """Return an async context manager yielding an adapter serving exactly `quotes`.

        Args:
            quotes: The closes to serve, each with its ticker, price, date and currency.

        Returns:
            The context manager.

        Raises:
            NotImplementedError: Always, here: subclasses implement it.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement make_market_data()")

    def _run(self, body: Callable[[MarketData], Awaitable[None]]) -> None:
        _run(lambda: self.make_market_data(_CLOSES), body)

    def test_latest_close_on_or_before_the_date(self) -> None:
        """Between two closes, `get_prices` answers with the earlier one, dated as it was."""

        async def body(market: MarketData) -> None:
            got = await market.get_prices(["AAA"], _day(2))
            _expect_quote(got.get("AAA"), _close("AAA", 1), f"AAA on {_day(2)} (no close)")
            got = await market.get_prices(["AAA"], _day(30))
            _expect_quote(got.get("AAA"), _close("AAA", 3), f"AAA on {_day(30)}")

        self._run(body)

    def test_close_of_the_date_itself(self) -> None:
        """On a date with a close, `get_prices` answers with that very close."""

        async def body(market: MarketData) -> None:
            for n in (0, 1, 3):
                got = await market.get_prices(["AAA"], _day(n))
                _expect_quote(got.get("AAA"), _close("AAA", n), f"AAA on {_day(n)}")

        self._run(body)

    def test_never_a_later_close(self) -> None:
        """A ticker whose closes all come after the date is absent, not priced from the future."""

        async def body(market: MarketData) -> None:
            got = dict(await market.get_prices(["AAA", "CCC"], _day(-1)))
            _expect(got == {}, f"before any close, get_prices returned {got!r}")
            got = dict(await market.get_prices(["CCC"], _day(4)))
            _expect(got == {}, f"CCC closes first on {_day(5)}; on {_day(4)} got {got!r}")

        self._run(body)

    def test_unknown_ticker_is_absent(self) -> None:
        """A ticker without any close is left out of the mapping: no None, no zero, no error."""

        async def body(market: MarketData) -> None:
            got = dict(await market.get_prices(["NOPE", "AAA"], _day(1)))
            _expect(set(got) == {"AAA"}, f"asked for NOPE and AAA, got keys {sorted(got)}")

        self._run(body)

    def test_many_tickers_in_one_call_keep_their_currencies(self) -> None:
        """One call prices several tickers, each quote in its own currency."""

        async def body(market: MarketData) -> None:
            got = dict(await market.get_prices({"AAA", "BBB", "CCC"}, _day(5)))
            _expect(set(got) == {"AAA", "BBB", "CCC"}, f"got keys {sorted(got)}")
            _expect_quote(got["AAA"], _close("AAA", 3), "AAA")
            _expect_quote(got["BBB"], _close("BBB", 1), "BBB")
            _expect_quote(got["CCC"], _close("CCC", 5), "CCC")

        self._run(body)

    def test_an_empty_request_returns_nothing(self) -> None:
        """Asking for no ticker returns an empty mapping."""

        async def body(market: MarketData) -> None:
            got = dict(await market.get_prices([], _day(1)))
            _expect(got == {}, f"asked for no ticker, got {got!r}")

        self._run(body)

    def _history(self, body: Callable[[PriceHistory], Awaitable[None]]) -> None:
        async def checked(market: MarketData) -> None:
            if not isinstance(market, PriceHistory):
                raise unittest.SkipTest("the adapter does not offer PriceHistory")
            await body(market)

        self._run(checked)

    def test_history_is_inclusive_ordered_and_leaves_out_the_empty(self) -> None:
        """`get_price_history` gives every close of the range, ends included, by date."""

        async def body(market: PriceHistory) -> None:
            got = dict(
                await market.get_price_history(["AAA", "BBB", "CCC", "NOPE"], _day(0), _day(3))
            )
            _expect(set(got) == {"AAA", "BBB"}, f"keys {sorted(got)}, expected AAA and BBB")
            aaa, days = list(got["AAA"]), (0, 1, 3)
            _expect(len(aaa) == len(days), f"AAA: expected {len(days)} closes, got {aaa!r}")
            for n, quote in zip(days, aaa, strict=False):
                _expect_quote(quote, _close("AAA", n), f"AAA history, close of {_day(n)}")
            _expect(len(got["BBB"]) == 1, f"BBB: expected 1 close, got {got['BBB']!r}")
            _expect_quote(got["BBB"][0], _close("BBB", 1), "BBB history")

        self._history(body)

    def test_history_of_one_day(self) -> None:
        """A range of one day gives that day's close and nothing from before it."""

        async def body(market: PriceHistory) -> None:
            got = dict(await market.get_price_history(["AAA", "BBB"], _day(2), _day(2)))
            _expect(got == {}, f"no close on {_day(2)}, got {got!r}")
            got = dict(await market.get_price_history(["AAA"], _day(1), _day(1)))
            _expect(len(got.get("AAA", ())) == 1, f"one close on {_day(1)}, got {got!r}")
            _expect_quote(got["AAA"][0], _close("AAA", 1), f"AAA on {_day(1)}")

        self._history(body)


class _BoundMarketDataContract(MarketDataContract):
    def __init__(
        self, factory: Callable[[Sequence[PriceQuote]], AbstractAsyncContextManager[MarketData]]
    ) -> None:
        self._factory = factory

    def make_market_data(
        self, quotes: Sequence[PriceQuote]
    ) -> AbstractAsyncContextManager[MarketData]:
        return self._factory(quotes)


def check_market_data(
    factory: Callable[[Sequence[PriceQuote]], AbstractAsyncContextManager[MarketData]],
) -> None:
    """Run every `MarketDataContract` check, without pytest.

    The `PriceHistory` checks run when the adapter offers that capability.

    Args:
        factory: Takes the closes to serve and returns an async context manager yielding a
            fresh adapter serving exactly those; called once per check.

    Raises:
        AssertionError: The first check that fails; a note names it. Any other error the
            adapter raises propagates with the same note.
    """
    _check_all(_BoundMarketDataContract(factory), MarketDataContract)
