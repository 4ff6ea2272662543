"""The SQL stores' fast write paths produce exactly what the straightforward ones produce.

Version 1's JSON positions (still read after a migration, and written for tickers the
compact form cannot hold) must decode to what was encoded, `dedupe_sorted` must keep the last
snapshot of a key in key order, and the SQLAlchemy store's driver-level upsert must store the
very rows its Core upsert stores.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import threading
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text

from portfolio_snapshots import (
    DatabaseUnavailableError,
    InvalidInputError,
    PortfolioSnapshot,
    PositionValuation,
)
from portfolio_snapshots.adapters._sql_codec import (
    PricePlan,
    dedupe_sorted,
    flat_positions_from_json,
    has_books,
    positions_json,
)
from portfolio_snapshots.adapters.sqlalchemy import SqlAlchemySnapshotStore
from portfolio_snapshots.adapters.sqlalchemy import _store as store_module
from portfolio_snapshots.adapters.sqlalchemy._fast_path import DriverUpsert
from portfolio_snapshots.adapters.sqlalchemy._schema import stored_prices
from portfolio_snapshots.errors import DatabaseBusyError
from portfolio_snapshots.history import DailyTotals
from portfolio_snapshots.testing.strategies import snapshots
from storage.pg_server import (
    asyncpg_url,
    create_test_schema,
    drop_test_schema,
    fresh_schema,
    psycopg_connect_args,
    psycopg_url,
    search_path,
)
from storage.samples import (
    DAY,
    PID,
    booked_snapshot,
    odd_decimals,
    plain_snapshot,
    rich_snapshot,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator, Sequence
    from pathlib import Path

position_lists = st.lists(
    st.builds(
        PositionValuation,
        ticker=st.text(min_size=1, max_size=8),  # quotes, backslashes, control and non-ASCII
        quantity=odd_decimals,
        price=odd_decimals,
        price_date=st.dates(),
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


def flat(positions: Sequence[PositionValuation]) -> tuple[tuple[object, ...], tuple[object, ...]]:
    """Return `positions` as `PortfolioSnapshot` holds them: flat, then their flat books."""
    snapshot = PortfolioSnapshot(PID, DAY, "USD", Decimal(0), Decimal(0), Decimal(0), positions)
    return snapshot.flat_positions, snapshot.position_books


@given(st.lists(position_lists, min_size=1, max_size=4))
def test_version_1_positions_decode_to_the_positions_encoded(
    batch: list[list[PositionValuation]],
) -> None:
    """Version 1's JSON positions (still read, and written for odd tickers) round-trip.

    Their accounting fields too, which the JSON form keeps for the positions that have any.
    """
    for positions in batch:
        assert flat_positions_from_json(positions_json(positions)) == flat(positions)


@given(snapshots())
def test_calculated_snapshots_encode_and_decode_as_version_1(snapshot: PortfolioSnapshot) -> None:
    """Calculator-made positions decode from version 1's text to the very same values."""
    encoded = positions_json(snapshot.positions)
    assert flat_positions_from_json(encoded) == (snapshot.flat_positions, snapshot.position_books)


@pytest.mark.parametrize(
    "position",
    [
        PositionValuation("AAA", 1.5, Decimal(1), DAY, Decimal("1.50")),  # type: ignore[arg-type]
        PositionValuation("AAA", Decimal(1), 2.5, DAY, Decimal("2.50")),  # type: ignore[arg-type]
        PositionValuation("AAA", Decimal(1), Decimal(1), DAY, 1.0),  # type: ignore[arg-type]
        PositionValuation("AAA", Decimal(1), Decimal(1), DAY, Decimal(1), None, 1.1),  # type: ignore[arg-type]
    ],
    ids=["float-quantity", "float-price", "float-value", "float-fx-rate"],
)
def test_a_float_in_a_position_is_refused_naming_the_field(position: PositionValuation) -> None:
    """A float amount raises InvalidInputError naming the field it sits in."""
    with pytest.raises(InvalidInputError, match="must be a Decimal"):
        positions_json([position])


def test_dedupe_keeps_the_last_snapshot_of_each_key_in_key_order() -> None:
    """Duplicates keep the later snapshot; keys come out sorted, UUID ids and others alike."""
    ids = [uuid.UUID(int=n) for n in (7, 2**127 + 1, 3, 2**64)]
    batch = [
        plain_snapshot(pid, DAY - dt.timedelta(days=n % 2), f"{n}.00")
        for n, pid in enumerate(ids * 2)
    ]
    expected = {(s.portfolio_id, s.snapshot_date): s for s in batch}
    assert dedupe_sorted(batch) == [expected[k] for k in sorted(expected)]
    assert dedupe_sorted([]) == []
    # Ids of another type (a host's own) are kept and ordered the same way.
    named = [s.replace(portfolio_id=str(s.portfolio_id)) for s in batch]
    expected_named = {(s.portfolio_id, s.snapshot_date): s for s in named}
    assert dedupe_sorted(named) == [expected_named[k] for k in sorted(expected_named)]


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("psycopg", marks=pytest.mark.postgres),
    ]
)
def database(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, dict[str, object]]]:
    """An empty database for the SQLAlchemy store: its URL and ``connect_args``."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'store.db'}", {}
        return
    dsn: str = request.getfixturevalue("pg_dsn")
    schema = asyncio.run(create_test_schema(dsn))
    try:
        if request.param == "psycopg":
            yield psycopg_url(dsn), psycopg_connect_args(search_path(schema))
        else:
            yield asyncpg_url(dsn), search_path(schema)
    finally:
        asyncio.run(drop_test_schema(dsn, schema))


def flipped(s: PortfolioSnapshot) -> PortfolioSnapshot:
    """Return a snapshot of the same key without books if `s` has them, else one with them."""
    make = plain_snapshot if has_books(s) else booked_snapshot
    return make(s.portfolio_id, s.snapshot_date, "7.00")


async def stored_rows(
    store: SqlAlchemySnapshotStore, batch: Sequence[PortfolioSnapshot], fence: int | None
) -> list[tuple[object, ...]]:
    """Empty the table, write `batch` then its first rows again; return every stored row.

    Before `batch`, each key is written with books if `batch` has none for it, and without
    if it has: so `batch` replaces rows of the other kind.
    """
    async with store.engine.begin() as conn:
        await conn.execute(text("DELETE FROM ps_snapshots"))
    await store.upsert_many([flipped(s) for s in batch], fence=fence)
    await store.upsert_many(batch, fence=fence)
    await store.upsert_many(batch[1:7], fence=fence)  # identical rows: skipped
    return await all_rows(store)


async def all_rows(store: SqlAlchemySnapshotStore) -> list[tuple[object, ...]]:
    """Return every stored snapshot row, in key order."""
    async with store.engine.connect() as conn:
        result = await conn.execute(
            text("SELECT * FROM ps_snapshots ORDER BY portfolio_id, snapshot_date")
        )
        return [tuple(row) for row in result]


def assert_refused_then_written(
    database: tuple[str, dict[str, object]],
    kept: PortfolioSnapshot,
    batch: Sequence[PortfolioSnapshot],
    field: str,
    rows_after: int,
) -> None:
    """Store `kept`; `batch` must be refused naming `field`, leaving the rows as they were.

    The store then goes on: the batch's first ten are written, `rows_after` rows in all.
    """
    url, connect_args = database

    async def main() -> None:
        async with await SqlAlchemySnapshotStore.open(url, connect_args=connect_args) as store:
            await store.upsert_many([kept])
            before = await all_rows(store)
            with pytest.raises(InvalidInputError, match=field):
                await store.upsert_many(batch, fence=2)
            assert await all_rows(store) == before
            await store.upsert_many(batch[:10], fence=2)
            assert len(await all_rows(store)) == rows_after

    asyncio.run(main())


@contextlib.asynccontextmanager
async def pg_store(
    dsn: str, driver: str, **connect_args: object
) -> AsyncIterator[SqlAlchemySnapshotStore]:
    """Yield a store on PostgreSQL through `driver`, in a schema of its own dropped afterwards.

    Args:
        dsn: The server.
        driver: ``asyncpg`` or ``psycopg``.
        **connect_args: More of the driver's connection arguments.
    """
    async with fresh_schema(dsn) as (asyncpg_at, asyncpg_args):
        url, schema_args = asyncpg_at, asyncpg_args
        if driver == "psycopg":
            url, schema_args = psycopg_url(dsn), psycopg_connect_args(asyncpg_args)
        async with await SqlAlchemySnapshotStore.open(
            url, connect_args={**schema_args, **connect_args}
        ) as store:
            yield store


async def server_pid(store: SqlAlchemySnapshotStore) -> int:
    """Return the server process of the pool's connection (the only one, early in a test)."""
    async with store.engine.connect() as conn:
        connection: Any = (await conn.get_raw_connection()).driver_connection
    pid = (
        connection.info.backend_pid if hasattr(connection, "info") else connection.get_server_pid()
    )
    assert isinstance(pid, int)
    return pid


DRIVERS = pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])


def core_twin(store: SqlAlchemySnapshotStore) -> SqlAlchemySnapshotStore:
    """Return a store on the same database that writes through SQLAlchemy Core."""
    # A schema_translate_map, even one that changes nothing, sends writes through Core.
    return SqlAlchemySnapshotStore(
        store.engine.execution_options(schema_translate_map={None: None})
    )


def test_the_driver_upsert_stores_what_the_core_upsert_stores(
    database: tuple[str, dict[str, object]],
) -> None:
    """Both write paths, fenced and not, in one statement or several, store identical rows.

    Snapshots with books are mixed in, alone or several in a statement of 25, so the streamed
    write switches between the statements with and without books several times.
    """
    url, connect_args = database
    days = [DAY - dt.timedelta(days=n) for n in range(3)]
    rich = [rich_snapshot(uuid.UUID(int=n), day, f"{n}.50") for n in range(5) for day in days]
    many = [
        (booked_snapshot if n % 97 == 0 or 600 <= n < 640 else plain_snapshot)(
            uuid.UUID(int=n), DAY, f"{n}.00"
        )
        for n in range(100, 1300)
    ]
    batch = [*rich, *many, rich[0].replace(cash_balance=Decimal("-0.00"))]  # a key twice

    async def main() -> None:
        async with await SqlAlchemySnapshotStore.open(url, connect_args=connect_args) as store:
            assert store._driver is not None
            core = core_twin(store)
            for fence in (None, 3):
                fast = await stored_rows(store, batch, fence)
                assert len(fast) == len(rich) + len(many)
                assert fast == await stored_rows(core, batch, fence)
            assert await store.get_snapshot(PID, DAY) is None
            assert await store.list_snapshots(uuid.UUID(int=0), days[-1], DAY) == [
                rich[2],
                rich[1],
                batch[-1],
            ]

    asyncio.run(main())


@pytest.mark.parametrize("size", [1, 2, 24, 25, 26, 51, 77])
def test_batches_of_every_size_store_what_the_core_upsert_stores(
    database: tuple[str, dict[str, object]], size: int
) -> None:
    """Batches filling statements exactly, partly, or with one row left over, NULLs mixed in.

    On PostgreSQL a statement carries 25 snapshots, the first through SQLAlchemy and the rest
    streamed; a lone NULL amount travels as an empty string between separators. Snapshots
    with books are mixed in.
    """
    url, connect_args = database
    kinds = (booked_snapshot, plain_snapshot, rich_snapshot, rich_snapshot, booked_snapshot)
    batch = [kinds[n % 5](uuid.UUID(int=n), DAY, f"{n}.25") for n in range(size)]

    async def main() -> None:
        async with await SqlAlchemySnapshotStore.open(url, connect_args=connect_args) as store:
            fast = await stored_rows(store, batch, 1)
            assert len(fast) == size
            assert fast == await stored_rows(core_twin(store), batch, 1)
            assert await store.list_snapshots(batch[-1].portfolio_id, DAY, DAY) == [batch[-1]]

    asyncio.run(main())


def test_a_bad_snapshot_late_in_a_big_batch_stores_nothing_of_it(
    database: tuple[str, dict[str, object]],
) -> None:
    """A float found after many statements were sent rolls the whole batch back, names its field.

    The row stored before is left as it was, and the store goes on working.
    """
    batch = [plain_snapshot(uuid.UUID(int=n), DAY, f"{n}.00") for n in range(1, 301)]
    batch[249] = batch[249].replace(total_value=2.5)
    assert_refused_then_written(
        database, rich_snapshot(uuid.UUID(int=1), DAY), batch, "total_value", 10
    )


def priced(n: int, price: str | float, ticker: str = "AAA") -> PortfolioSnapshot:
    """Return portfolio `n`'s snapshot on DAY: cash and two units of `ticker` at `price`."""
    quantity = Decimal(2)
    value = (quantity * Decimal(str(price))).quantize(Decimal("0.01"))
    close = Decimal(price) if isinstance(price, str) else price  # a float stays a float
    position = PositionValuation(ticker, quantity, close, DAY, value)  # type: ignore[arg-type]
    cash = Decimal(f"{n}.00")
    return PortfolioSnapshot(uuid.UUID(int=n), DAY, "USD", cash, value, cash + value, [position])


def test_a_price_new_to_the_store_late_in_a_batch_is_written_with_its_variant(
    database: tuple[str, dict[str, object]],
) -> None:
    """Statements are sent while every price met is stored; a new one is met after many.

    The first 200 snapshots are valued at the stored close, the last 100 at another close of
    the same ticker and day (a second variant) and at a ticker the store has not seen: every
    snapshot reads back as written, and the rows equal the Core upsert's.
    """
    url, connect_args = database
    batch = [priced(n, "10.25") for n in range(1, 201)]
    batch += [
        priced(n, "10.5" if n % 2 else "7.125", "AAA" if n % 2 else "BBB") for n in range(201, 301)
    ]

    async def main() -> None:
        async with await SqlAlchemySnapshotStore.open(url, connect_args=connect_args) as store:
            stored = []
            for target in (store, core_twin(store)):
                async with store.engine.begin() as conn:
                    await conn.execute(text("DELETE FROM ps_snapshots"))
                    await conn.execute(text("DELETE FROM ps_prices"))
                target._prices = type(target._prices)()  # forget what was stored
                await target.upsert_many([priced(0, "10.25")])  # the stored close
                await target.upsert_many(batch, fence=1)
                for s in (batch[0], batch[199], batch[200], batch[201], batch[-1]):
                    assert await store.get_snapshot(s.portfolio_id, DAY) == s
                stored.append(await all_rows(store))
            assert len(stored[0]) == 301
            assert stored[0] == stored[1]
            async with store.engine.connect() as conn:
                prices = (
                    await conn.execute(text("SELECT ticker, variant, price FROM ps_prices"))
                ).all()
            assert sorted(map(tuple, prices)) == [
                ("AAA", 0, "10.25"),
                ("AAA", 1, "10.5"),
                ("BBB", 0, "7.125"),
            ]

    asyncio.run(main())


def test_a_bad_price_late_in_a_batch_of_stored_prices_stores_nothing_of_it(
    database: tuple[str, dict[str, object]],
) -> None:
    """A float price found while statements are planned as they are sent rolls it all back.

    The store knows the batch's close, so its statements are planned as they are sent; the
    float price comes after several were, and is refused naming the field. The store goes on.
    """
    batch = [priced(n, "10.25") for n in range(1, 301)]
    batch[249] = priced(250, 10.25)
    assert_refused_then_written(database, priced(0, "10.25"), batch, "price", 11)


@pytest.mark.postgres
@DRIVERS
@pytest.mark.parametrize("same", [True, False], ids=["same-price", "another-price"])
def test_a_price_another_writer_took_at_once_is_read_back_and_compared(
    pg_dsn: str, driver: str, monkeypatch: pytest.MonkeyPatch, same: bool
) -> None:
    """Two writers give one new price the same variant at once: the later finds the key taken.

    The later writer's lookup is made to miss the earlier's row, as when both looked before
    either committed. The insert skips the taken key, which is read back: the same price is
    the stored one, and the write succeeds; another price fails the write with
    DatabaseBusyError, storing nothing of it, and the retry gives it the next variant. On
    asyncpg, whose insert returns the keys it inserted, a write whose new prices all went in
    reads nothing back.
    """
    lookups: list[object] = []
    real = stored_prices

    def first_blind(conn: Any, missing: Any) -> Any:
        lookups.append(missing)
        return {} if len(lookups) == 1 else real(conn, missing)

    async def main() -> None:
        async with pg_store(pg_dsn, driver) as earlier:
            later = SqlAlchemySnapshotStore(earlier.engine)  # a catalog of its own
            await earlier.upsert_many([priced(1, "10.25")])
            monkeypatch.setattr(store_module, "stored_prices", first_blind)
            mine = priced(2, "10.25" if same else "10.5")
            if not same:
                with pytest.raises(DatabaseBusyError, match=f"AAA on {DAY}"):
                    await later.upsert_many([mine])
                assert await later.get_snapshot(mine.portfolio_id, DAY) is None
            await later.upsert_many([mine])
            assert await later.get_snapshot(mine.portfolio_id, DAY) == mine
            # The blind lookup and the taken key read back; then the retry's lookup, and on
            # psycopg, which reads every new row back, its read-back.
            retried = 3 if driver == "asyncpg" else 4
            assert len(lookups) == (2 if same else retried)
            await later.upsert_many([priced(3, "11")])  # a new price: one lookup on asyncpg
            assert len(lookups) == (2 if same else retried) + (1 if driver == "asyncpg" else 2)
            async with earlier.engine.connect() as conn:
                prices = (
                    await conn.execute(text("SELECT ticker, variant, price FROM ps_prices"))
                ).all()
        expected = [("AAA", 0, "10.25"), ("AAA", 1, "11")]
        if not same:
            expected[1:1] = [("AAA", 1, "10.5")]
            expected[-1] = ("AAA", 2, "11")
        assert sorted(map(tuple, prices)) == expected

    asyncio.run(main())


class OddText(Decimal):
    """A Decimal whose ``str`` holds the control character the streamed statements split on."""

    def __str__(self) -> str:
        """Return text no decimal has."""
        return "1\x1f2"


@pytest.mark.postgres
@DRIVERS
def test_an_amount_whose_text_holds_the_separator_is_refused(pg_dsn: str, driver: str) -> None:
    """Joined columns would shift values onto other rows: the write is refused, naming whose."""
    batch = [plain_snapshot(uuid.UUID(int=n), DAY) for n in range(1, 4)]
    batch[1] = batch[1].replace(cash_balance=OddText(1))

    async def main() -> None:
        async with pg_store(pg_dsn, driver) as store:
            with pytest.raises(InvalidInputError) as caught:
                await store.upsert_many(batch)
            assert await all_rows(store) == []
        message = str(caught.value)
        assert "cash_balance" in message
        assert str(uuid.UUID(int=2)) in message
        assert DAY.isoformat() in message

    asyncio.run(main())


def interrupt_at_statement(
    monkeypatch: pytest.MonkeyPatch, number: int, interrupt: Callable[[], None]
) -> list[int]:
    """Make the streamed writes call `interrupt` as they encode their `number`-th statement.

    Returns:
        A list whose length is the number of statements encoded so far.
    """
    encode = DriverUpsert.columns
    encoded: list[int] = []

    def interrupting(
        self: DriverUpsert,
        part: Sequence[PortfolioSnapshot],
        fence: int,
        plan: PricePlan,
        *,
        books: bool,
    ) -> tuple[object, ...]:
        encoded.append(len(part))
        if len(encoded) == number:
            interrupt()
        return encode(self, part, fence, plan, books=books)

    monkeypatch.setattr(DriverUpsert, "columns", interrupting)
    return encoded


def cancel_current_task() -> None:
    """Request the cancellation of the running task."""
    task = asyncio.current_task()
    assert task is not None
    task.cancel()


def terminate_backend(dsn: str, pid: int) -> None:
    """Have the server terminate backend `pid`, and wait until it has gone, from a thread.

    Blocking is the point: the caller is the encoder inside a streamed write, which cannot
    await, so the write's next step finds its connection gone.
    """

    async def terminate() -> None:
        admin = await asyncpg.connect(dsn)
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
            for _ in range(200):
                gone = not await admin.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid
                )
                if gone:
                    return
                await asyncio.sleep(0.05)
            pytest.fail(f"backend {pid} still alive")
        finally:
            await admin.close()

    thread = threading.Thread(target=asyncio.run, args=(terminate(),))
    thread.start()
    thread.join()


@pytest.mark.postgres
@DRIVERS
@pytest.mark.parametrize("interruption", ["cancelled", "connection-lost"])
def test_a_write_interrupted_while_streaming_stores_nothing_and_the_store_recovers(
    pg_dsn: str, monkeypatch: pytest.MonkeyPatch, interruption: str, driver: str
) -> None:
    """Cancelled, or its session ended by the server, after several statements were sent.

    Nine statements were sent, eight of them streamed, when the tenth is encoded. A lost
    session is a DatabaseUnavailableError, which the retry policy retries. Either way no row
    of the batch is stored, and the next write succeeds.
    """
    batch = [plain_snapshot(uuid.UUID(int=n), DAY, f"{n}.00") for n in range(1, 501)]

    async def main() -> None:
        async with pg_store(pg_dsn, driver) as store:
            interrupt: Callable[[], None] = cancel_current_task
            expected: type[BaseException] = asyncio.CancelledError
            if interruption == "connection-lost":
                pid = await server_pid(store)
                interrupt = functools.partial(terminate_backend, pg_dsn, pid)
                expected = DatabaseUnavailableError
            encoded = interrupt_at_statement(monkeypatch, 10, interrupt)
            with pytest.raises(expected):
                await store.upsert_many(batch, fence=1)
            assert len(encoded) >= 10
            monkeypatch.undo()
            assert await all_rows(store) == []
            await store.upsert_many(batch, fence=1)
            assert len(await all_rows(store)) == len(batch)

    asyncio.run(main())


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("driver", "no_caches"),
    [
        ("asyncpg", {"statement_cache_size": 0, "prepared_statement_cache_size": 0}),
        ("psycopg", {"prepare_threshold": None}),
    ],
    ids=["asyncpg", "psycopg"],
)
def test_streamed_writes_work_without_prepared_statements(
    pg_dsn: str, driver: str, no_caches: dict[str, object]
) -> None:
    """The PgBouncer set-up (no prepared statements, see docs/storage.md) writes and reads."""
    batch = [rich_snapshot(uuid.UUID(int=n), DAY, f"{n}.10") for n in range(1, 61)]

    async def main() -> None:
        async with pg_store(pg_dsn, driver, **no_caches) as store:
            for fence in (1, 1, 2):  # new rows, identical rows, a newer fence
                await store.upsert_many(batch, fence=fence)
            assert await store.list_snapshots(batch[-1].portfolio_id, DAY, DAY) == [batch[-1]]
            assert await store.list_totals(batch[-1].portfolio_id, DAY, DAY) == [
                DailyTotals.of(batch[-1])
            ]
            assert len(await all_rows(store)) == len(batch)

    asyncio.run(main())


def test_the_driver_chart_read_returns_what_the_core_read_returns(
    database: tuple[str, dict[str, object]],
) -> None:
    """`list_totals` through the driver (PostgreSQL) equals the Core read and the snapshots.

    Days with books, without, and with every optional amount set are mixed, and the range
    leaves out a day at either end.
    """
    url, connect_args = database
    kinds = (plain_snapshot, booked_snapshot, rich_snapshot)
    days = [DAY - dt.timedelta(days=n) for n in range(9)]
    history = [kinds[n % 3](PID, day, f"{n}.75") for n, day in enumerate(reversed(days))]
    other = plain_snapshot(uuid.UUID(int=99), days[1], "1.00")

    async def main() -> None:
        async with await SqlAlchemySnapshotStore.open(url, connect_args=connect_args) as store:
            assert (store._totals_reader is not None) == url.startswith("postgresql")
            await store.upsert_many([*history, other], fence=1)
            read = await store.list_totals(PID, days[-2], days[1])
            assert read == [DailyTotals.of(s) for s in history[1:-1]]
            assert read == await core_twin(store).list_totals(PID, days[-2], days[1])
            assert (
                await store.list_totals(PID, DAY + dt.timedelta(days=1), DAY + dt.timedelta(days=2))
                == []
            )

    asyncio.run(main())


def test_a_write_after_a_chart_read_is_still_one_transaction(
    database: tuple[str, dict[str, object]],
) -> None:
    """The chart read runs outside a transaction on psycopg; its connection comes back whole.

    With a pool of one connection, a write after the read gets the very connection the read
    used: a batch refused late (after several statements were sent) stores nothing, as it
    would not if the read had left the connection committing each statement on its own.
    """
    url, connect_args = database
    batch = [plain_snapshot(uuid.UUID(int=n), DAY, f"{n}.00") for n in range(1, 301)]
    batch[249] = batch[249].replace(total_value=2.5)

    async def main() -> None:
        async with await SqlAlchemySnapshotStore.open(
            url, connect_args=connect_args, pool_size=1, max_overflow=0
        ) as store:
            await store.upsert_many([plain_snapshot(PID, DAY)])
            assert len(await store.list_totals(PID, DAY, DAY)) == 1
            with pytest.raises(InvalidInputError, match="total_value"):
                await store.upsert_many(batch, fence=2)
            assert len(await all_rows(store)) == 1

    asyncio.run(main())


@pytest.mark.postgres
@DRIVERS
def test_a_chart_read_whose_session_the_server_ended_fails_as_unavailable_then_recovers(
    pg_dsn: str, driver: str
) -> None:
    """The driver's error is the library's transient one, and the dead connection is dropped.

    The pool must not hand the connection out again: the next read, on a new connection,
    returns the chart.
    """
    history = [plain_snapshot(PID, DAY - dt.timedelta(days=n), f"{n}.00") for n in range(3)]

    async def main() -> None:
        async with pg_store(pg_dsn, driver) as store:
            await store.upsert_many(history, fence=1)
            terminate_backend(pg_dsn, await server_pid(store))
            with pytest.raises(DatabaseUnavailableError):
                await store.list_totals(PID, DAY - dt.timedelta(days=2), DAY)
            read = await store.list_totals(PID, DAY - dt.timedelta(days=2), DAY)
            assert read == [DailyTotals.of(s) for s in reversed(history)]

    asyncio.run(main())


@pytest.mark.postgres
@DRIVERS
def test_a_chart_read_cancelled_while_the_server_runs_it_leaves_the_store_usable(
    pg_dsn: str, driver: str
) -> None:
    """A read waiting on a lock is cancelled: no connection stays checked out, reads go on.

    Another transaction holds the table locked, so the read's query waits in the server when
    its task is cancelled; the cancellation reaches the caller, and the next read, once the
    lock is released, returns the chart.
    """
    history = [plain_snapshot(PID, DAY - dt.timedelta(days=n), f"{n}.00") for n in range(3)]

    async def main() -> None:
        async with pg_store(pg_dsn, driver) as store:
            await store.upsert_many(history, fence=1)
            async with store.engine.begin() as locker:
                await locker.execute(text("LOCK TABLE ps_snapshots IN ACCESS EXCLUSIVE MODE"))
                read = asyncio.create_task(store.list_totals(PID, DAY - dt.timedelta(days=2), DAY))
                await asyncio.sleep(0.3)
                assert not read.done()  # waiting on the lock
                read.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await read
            assert store.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
            got = await store.list_totals(PID, DAY - dt.timedelta(days=2), DAY)
            assert got == [DailyTotals.of(s) for s in reversed(history)]

    asyncio.run(main())
