"""`SqliteSnapshotStore`: snapshots, the run ledger and the run lock in one SQLite file.

Standard library only (`sqlite3`). One store owns one connection, used by one dedicated worker
thread: every call is handed to that thread, so the event loop never blocks on the disk and the
connection is never touched by two threads. Calls from many tasks queue up and run one at a
time; several processes may share the file (WAL mode lets readers run beside the one writer,
and writers wait up to ``busy_timeout`` for each other).

Schema (version 2)::

    ps_snapshots      (portfolio_id BLOB (16 bytes), snapshot_date TEXT, currency TEXT,
                       cash_balance TEXT, holdings_value TEXT, total_value TEXT,
                       net_contributions TEXT NULL, external_flow TEXT NULL,
                       stale INTEGER, positions TEXT (compact), fence INTEGER,
                       cost_basis, unrealized_gain, realized_gain, dividends, interest,
                       fees, taxes, net_transfers TEXT NULL, cash_balances TEXT NULL,
                       PRIMARY KEY (portfolio_id, snapshot_date)) WITHOUT ROWID
    ps_prices         (snapshot_date TEXT, ticker TEXT, variant INTEGER, price TEXT,
                       price_date TEXT, price_currency TEXT NULL, fx_rate TEXT NULL,
                       stale INTEGER, PRIMARY KEY (snapshot_date, ticker, variant))
                       WITHOUT ROWID: each price a day's snapshots used, once
    ps_runs           (key TEXT PRIMARY KEY, params_hash, state, attempts, started_at,
                       finished_at NULL, report TEXT (JSON) NULL)
    ps_leases         (key TEXT PRIMARY KEY, owner, fence, expires_at)
    ps_fence_counter  (id = 1, value): the last fence handed out
    ps_schema_version (id = 1, version)

A position is stored as its ticker, quantity and market value (unless the price gives it back
exactly), the variant of its price row
in ``ps_prices``, and its accounting fields when it has any (see
`portfolio_snapshots.adapters._sql_codec`). A snapshot's accounting fields and cash balances
(its *books*) are NULL unless it has them: a snapshot without them is written by the statement
of the other columns only. Opening a version-1 file migrates it in place, in one transaction.

Decimals are TEXT (``str(Decimal)``), dates ISO 8601 text, portfolio ids their 16 bytes
(``UUID.bytes``, whose order is the UUIDs' order; version 1 kept their hyphenated text), times
fixed-width ISO 8601 UTC text. The primary key of ``ps_snapshots`` is the index that serves
`list_snapshots` and `existing_dates` (a range scan on ``(portfolio_id, snapshot_date)``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import os
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import TYPE_CHECKING, Concatenate, Final, ParamSpec, Self, TypeVar
from uuid import UUID

from portfolio_snapshots._domain import DailyTotals, Lease, PortfolioSnapshot, RunRecord, RunState
from portfolio_snapshots._errors import (
    DatabaseBusyError,
    InvalidInputError,
    LeaseLostError,
    RunKeyConflictError,
    SchemaVersionError,
)
from portfolio_snapshots.adapters._sql_codec import (
    BOOK_COLUMNS,
    SCHEMA_VERSION,
    PositionPrice,
    PriceCatalog,
    PriceContent,
    PriceDay,
    PricePlan,
    as_utc,
    book_texts,
    books_column_sql,
    books_from_columns,
    chunks,
    decimal_text,
    dedupe_sorted,
    flat_positions_from_json,
    flat_positions_from_text,
    from_utc_text,
    has_books,
    lease_lost_detail,
    optional_decimal,
    optional_decimal_text,
    optional_from_utc_text,
    price_from_row,
    referenced_prices,
    report_from_json,
    report_json,
    run_record,
    sqlite_error,
    totals_of_rows,
    utc_text,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
    from types import TracebackType

__all__ = ["DatabaseBusyError", "SchemaVersionError", "SqliteSnapshotStore"]

_T = TypeVar("_T")
_P = ParamSpec("_P")

# Version 1's tables, as version 1 created them.
_VERSION_1: Final = (
    """
        CREATE TABLE ps_snapshots (
            portfolio_id TEXT NOT NULL,
            snapshot_date TEXT NOT NULL,
            currency TEXT NOT NULL,
            cash_balance TEXT NOT NULL,
            holdings_value TEXT NOT NULL,
            total_value TEXT NOT NULL,
            net_contributions TEXT,
            external_flow TEXT,
            stale INTEGER NOT NULL,
            positions TEXT NOT NULL,
            fence INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (portfolio_id, snapshot_date)
        ) WITHOUT ROWID
        """,
    """
        CREATE TABLE ps_runs (
            key TEXT NOT NULL PRIMARY KEY,
            params_hash TEXT NOT NULL,
            state TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            report TEXT
        )
        """,
    """
        CREATE TABLE ps_leases (
            key TEXT NOT NULL PRIMARY KEY,
            owner TEXT NOT NULL,
            fence INTEGER NOT NULL,
            expires_at TEXT NOT NULL
        )
        """,
    """
        CREATE TABLE ps_fence_counter (
            id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
            value INTEGER NOT NULL
        )
        """,
)

# Version 2's tables: the snapshots' columns but the key, as the migration copies them.
_V2_COLUMNS: Final = (
    "currency TEXT NOT NULL, cash_balance TEXT NOT NULL, holdings_value TEXT NOT NULL, "
    "total_value TEXT NOT NULL, net_contributions TEXT, external_flow TEXT, "
    "stale INTEGER NOT NULL, positions TEXT NOT NULL, fence INTEGER NOT NULL DEFAULT 0, "
    "cost_basis TEXT, unrealized_gain TEXT, realized_gain TEXT, dividends TEXT, interest TEXT, "
    "fees TEXT, taxes TEXT, net_transfers TEXT, cash_balances TEXT"
)
_VERSION_2: Final = (
    """
    CREATE TABLE ps_prices (
        snapshot_date TEXT NOT NULL,
        ticker TEXT NOT NULL,
        variant INTEGER NOT NULL,
        price TEXT NOT NULL,
        price_date TEXT NOT NULL,
        price_currency TEXT,
        fx_rate TEXT,
        stale INTEGER NOT NULL,
        PRIMARY KEY (snapshot_date, ticker, variant)
    ) WITHOUT ROWID
    """,
    (
        "CREATE TABLE ps_snapshots_v2 (portfolio_id BLOB NOT NULL, "
        f"snapshot_date TEXT NOT NULL, {_V2_COLUMNS}, "
        "PRIMARY KEY (portfolio_id, snapshot_date)) WITHOUT ROWID"
    ),
)
#: Version-1 rows converted per statement while migrating.
_MIGRATION_CHUNK: Final = 2000


def _to_version_1(conn: sqlite3.Connection) -> None:
    for statement in _VERSION_1:
        conn.execute(statement)


def _to_version_2(conn: sqlite3.Connection) -> None:
    """Move every version-1 snapshot to the compact form, its prices into ``ps_prices``."""
    for statement in _VERSION_2:
        conn.execute(statement)
    catalog = PriceCatalog()
    reader = conn.execute(
        f"SELECT {_V1_COLUMNS}, fence FROM ps_snapshots "  # noqa: S608 - constant columns
        "ORDER BY portfolio_id, snapshot_date"
    )
    while rows := reader.fetchmany(_MIGRATION_CHUNK):
        snapshots = [_snapshot_of(row[:-1], flat_positions_from_json(str(row[6]))) for row in rows]
        fences = [int(row[-1]) for row in rows]
        plan = catalog.plan(snapshots)
        _write_prices(conn, plan)
        conn.executemany(
            f"INSERT INTO ps_snapshots_v2 (portfolio_id, snapshot_date, {', '.join(_CONTENT)}) "  # noqa: S608
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [_snapshot_row(s, f, plan) for s, f in zip(snapshots, fences, strict=True)],
        )
        plan.commit()
    conn.execute("DROP TABLE ps_snapshots")
    conn.execute("ALTER TABLE ps_snapshots_v2 RENAME TO ps_snapshots")


# Each step takes the schema from version i to i + 1; all pending steps run in one transaction.
_MIGRATIONS: Final = (_to_version_1, _to_version_2)

# The content columns, compared so that rewriting an identical row is skipped.
_CONTENT = (
    "currency",
    "cash_balance",
    "holdings_value",
    "total_value",
    "net_contributions",
    "external_flow",
    "stale",
    "positions",
    "fence",
)


def _upsert_sql(*, books: bool) -> str:
    """The upsert of snapshots with their books, or of those without (books set NULL)."""
    written = (*_CONTENT, *BOOK_COLUMNS) if books else _CONTENT
    differs = [f"ps_snapshots.{c} IS NOT excluded.{c}" for c in written]
    updates = [f"{c} = excluded.{c}" for c in written]
    if not books:
        # Replacing a row that had books clears them; a row without any is left alone.
        differs += [f"ps_snapshots.{c} IS NOT NULL" for c in BOOK_COLUMNS]
        updates += [f"{c} = NULL" for c in BOOK_COLUMNS]
    marks = ", ".join("?" * (len(written) + 2))
    return f"""
    INSERT INTO ps_snapshots (portfolio_id, snapshot_date, {", ".join(written)})
    VALUES ({marks})
    ON CONFLICT (portfolio_id, snapshot_date) DO UPDATE SET
        {", ".join(updates)}
    WHERE ({" OR ".join(differs)})
"""  # noqa: S608 - only constant column names are interpolated


# A fenced write leaves alone the rows written under a newer lease.
_FENCED = " AND ps_snapshots.fence <= excluded.fence"
_UPSERT = _upsert_sql(books=False)
_UPSERT_FENCED = _UPSERT + _FENCED
_UPSERT_BOOKS = _upsert_sql(books=True)
_UPSERT_BOOKS_FENCED = _UPSERT_BOOKS + _FENCED

# The columns a read of version 1's table selects, and of version 2's.
_V1_COLUMNS = (
    "portfolio_id, snapshot_date, currency, cash_balance, holdings_value, total_value, "
    "positions, net_contributions, external_flow, stale"
)
_SNAPSHOT_COLUMNS = f"{_V1_COLUMNS}, {', '.join(BOOK_COLUMNS)}"


class _Write:
    """``with _Write(conn):`` runs the block in a ``BEGIN IMMEDIATE`` transaction.

    IMMEDIATE takes the write lock up front (waiting up to the busy timeout), so a transaction
    that reads, then writes, never fails halfway with a lock upgrade error.
    """

    __slots__ = ("_conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self._conn.execute("BEGIN IMMEDIATE")
        return self._conn

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            try:
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
        elif self._conn.in_transaction:
            self._conn.execute("ROLLBACK")


# --- what runs on the worker thread -------------------------------------------------------------


def _connect(path: str, busy_timeout: float, holder: list[sqlite3.Connection]) -> None:
    conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
    holder.append(conn)
    _migrate(conn, path)
    # After the version check: switching to WAL rewrites the file header, and a database of a
    # newer schema must be left untouched.
    conn.execute("PRAGMA journal_mode=WAL").fetchone()


def _migrate(conn: sqlite3.Connection, path: str) -> None:
    with _Write(conn):
        conn.execute(
            "CREATE TABLE IF NOT EXISTS ps_schema_version ("
            "id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)"
        )
        row = conn.execute("SELECT version FROM ps_schema_version WHERE id = 1").fetchone()
        found = 0 if row is None else int(row[0])
        if found > SCHEMA_VERSION:
            raise SchemaVersionError(found, SCHEMA_VERSION, where=path)
        if found == SCHEMA_VERSION:
            return
        for step in _MIGRATIONS[found:]:
            step(conn)
        conn.execute(
            "INSERT INTO ps_schema_version (id, version) VALUES (1, ?) "
            "ON CONFLICT (id) DO UPDATE SET version = excluded.version",
            (SCHEMA_VERSION,),
        )


def _close_all(holder: list[sqlite3.Connection]) -> None:
    for conn in holder:
        conn.close()
    holder.clear()


def _id(portfolio_id: object) -> bytes:
    """Return the stored form of a portfolio id: its 16 bytes.

    Raises:
        InvalidInputError: The id is not a `UUID`.
    """
    if not isinstance(portfolio_id, UUID):
        raise InvalidInputError(
            f"portfolio_id must be a UUID, got {type(portfolio_id).__name__}: {portfolio_id!r}"
        )
    return portfolio_id.bytes


def _uuid(stored: object) -> UUID:
    """Read a stored portfolio id: 16 bytes, or version 1's hyphenated text."""
    return UUID(bytes=stored) if isinstance(stored, bytes) else UUID(str(stored))


def _snapshot_row(s: PortfolioSnapshot, fence: int, plan: PricePlan) -> tuple[object, ...]:
    pid, day, currency, cash, holdings, total, _, net, flow, stale = s.values[:10]
    return (
        _id(pid),
        day.isoformat(),
        currency,
        decimal_text(cash, "cash_balance"),
        decimal_text(holdings, "holdings_value"),
        decimal_text(total, "total_value"),
        optional_decimal_text(net, "net_contributions"),
        optional_decimal_text(flow, "external_flow"),
        1 if stale else 0,
        plan.encode(s),
        fence,
    )


def _snapshot_of(
    row: Sequence[object],
    positions: tuple[tuple[object, ...], tuple[object, ...]],
    portfolio_id: UUID | None = None,
    day: dt.date | None = None,
) -> PortfolioSnapshot:
    """Build a snapshot from a row of `_SNAPSHOT_COLUMNS`, or of `_V1_COLUMNS` (no books).

    `positions` are the flat positions and their flat books, as `flat_positions_from_text`
    decodes them; `portfolio_id` and `day`, when the caller has them already, spare reading
    them from the row.
    """
    pid, stored_day, currency, cash, holdings, total, _, net, flow, stale = row[:10]
    flat, position_books = positions
    return PortfolioSnapshot.from_values(
        (
            _uuid(pid) if portfolio_id is None else portfolio_id,
            dt.date.fromisoformat(str(stored_day)) if day is None else day,
            str(currency),
            Decimal(str(cash)),
            Decimal(str(holdings)),
            Decimal(str(total)),
            flat,
            optional_decimal(None if net is None else str(net)),
            optional_decimal(None if flow is None else str(flow)),
            bool(stale),
            *books_from_columns(row[10:]),
            position_books,
        )
    )


_PRICE_COLUMNS = "snapshot_date, ticker, variant, price, price_date, price_currency, fx_rate, stale"


def _write_prices(conn: sqlite3.Connection, plan: PricePlan) -> None:
    """Look up the stored variants the plan needs, and insert its new prices."""
    stored: dict[PriceDay, dict[int, PriceContent]] = {}
    in_order = plan.missing
    missing = set(in_order)
    if missing:
        # One range scan per chunk of tickers: a daily run asks about one day, a backfill
        # about a range of days; rows of other pairs in the range are skipped.
        first, last = in_order[0][0].isoformat(), in_order[-1][0].isoformat()
        date = dt.date.fromisoformat
        for chunk in chunks(sorted({t for _, t in missing})):
            marks = ", ".join("?" * len(chunk))
            for day, ticker, variant, price, price_date, currency, fx_rate, stale in conn.execute(
                f"SELECT {_PRICE_COLUMNS} FROM ps_prices "  # noqa: S608 - placeholders
                f"WHERE snapshot_date BETWEEN ? AND ? AND ticker IN ({marks})",
                (first, last, *chunk),
            ):
                key = (date(day), ticker)
                if key in missing:
                    stored.setdefault(key, {})[variant] = (
                        price,
                        date(price_date),
                        currency,
                        fx_rate,
                        bool(stale),
                    )
    rows = plan.resolve(stored)
    if rows:
        conn.executemany(
            f"INSERT INTO ps_prices ({_PRICE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
            [
                (day.isoformat(), t, v, p, pd.isoformat(), c, fx, 1 if st else 0)
                for day, t, v, p, pd, c, fx, st in rows
            ],
        )


def _read_snapshots(
    conn: sqlite3.Connection, rows: list[tuple[object, ...]], portfolio_id: UUID | None = None
) -> list[PortfolioSnapshot]:
    """Build snapshots from rows of `_SNAPSHOT_COLUMNS`, reading the prices they refer to.

    With `portfolio_id`, every row is that portfolio's (its id is not parsed once a row).
    """
    texts = [(dt.date.fromisoformat(str(r[1])), str(r[6])) for r in rows]
    wanted = referenced_prices(texts)
    prices: dict[tuple[dt.date, str, int], PositionPrice] = {}
    by_day: dict[dt.date, list[str]] = {}
    for day, ticker in wanted:
        by_day.setdefault(day, []).append(ticker)
    tickers = sorted({t for _, t in wanted})
    if len(by_day) > 1:
        days = sorted(by_day)
        for chunk in chunks(tickers):
            marks = ", ".join("?" * len(chunk))
            found = conn.execute(
                f"SELECT {_PRICE_COLUMNS} FROM ps_prices "  # noqa: S608 - placeholders
                f"WHERE snapshot_date BETWEEN ? AND ? AND ticker IN ({marks})",
                (days[0].isoformat(), days[-1].isoformat(), *chunk),
            )
            _collect_prices(found, prices)
    else:
        for day, day_tickers in by_day.items():
            for chunk in chunks(sorted(day_tickers)):
                marks = ", ".join("?" * len(chunk))
                found = conn.execute(
                    f"SELECT {_PRICE_COLUMNS} FROM ps_prices "  # noqa: S608 - placeholders
                    f"WHERE snapshot_date = ? AND ticker IN ({marks})",
                    (day.isoformat(), *chunk),
                )
                _collect_prices(found, prices)
    return [
        _snapshot_of(
            row,
            flat_positions_from_text(text, day, prices, Decimal(str(row[4]))),
            portfolio_id,
            day,
        )
        for row, (day, text) in zip(rows, texts, strict=True)
    ]


def _collect_prices(
    found: Iterable[tuple[str, str, int, str, str, str | None, str | None, int]],
    prices: dict[tuple[dt.date, str, int], PositionPrice],
) -> None:
    date = dt.date.fromisoformat
    for day, ticker, variant, price, price_date, currency, fx_rate, stale in found:
        valued = date(day)
        # Most closes are of the day they value: one date parsed, not two.
        closed = valued if price_date == day else date(price_date)
        prices[valued, ticker, variant] = price_from_row(price, closed, currency, fx_rate, stale)


def _upsert(
    conn: sqlite3.Connection,
    snapshots: Sequence[PortfolioSnapshot],
    fence: int | None,
    catalog: PriceCatalog,
) -> None:
    stored_fence = 0 if fence is None else fence
    ordered = dedupe_sorted(snapshots)
    if not ordered:
        return
    plan = catalog.plan(ordered)
    with _Write(conn):
        _write_prices(conn, plan)
        rows = [_snapshot_row(s, stored_fence, plan) for s in ordered if not has_books(s)]
        if rows:
            conn.executemany(_UPSERT if fence is None else _UPSERT_FENCED, rows)
        if len(rows) < len(ordered):
            booked = [
                (*_snapshot_row(s, stored_fence, plan), *book_texts(s))
                for s in ordered
                if has_books(s)
            ]
            conn.executemany(_UPSERT_BOOKS if fence is None else _UPSERT_BOOKS_FENCED, booked)
    plan.commit()


def _get(conn: sqlite3.Connection, portfolio_id: UUID, day: dt.date) -> PortfolioSnapshot | None:
    conn.execute("BEGIN")  # one read snapshot for the row and its prices
    try:
        rows = conn.execute(
            f"SELECT {_SNAPSHOT_COLUMNS} FROM ps_snapshots "  # noqa: S608 - constant columns
            "WHERE portfolio_id = ? AND snapshot_date = ?",
            (_id(portfolio_id), day.isoformat()),
        ).fetchall()
        found = _read_snapshots(conn, rows)
    finally:
        conn.execute("COMMIT")
    return found[0] if found else None


def _list(
    conn: sqlite3.Connection, portfolio_id: UUID, start: dt.date, end: dt.date
) -> list[PortfolioSnapshot]:
    conn.execute("BEGIN")  # one read snapshot for the rows and their prices
    try:
        rows = conn.execute(
            f"SELECT {_SNAPSHOT_COLUMNS} FROM ps_snapshots "  # noqa: S608 - constant columns
            "WHERE portfolio_id = ? AND snapshot_date BETWEEN ? AND ? ORDER BY snapshot_date",
            (_id(portfolio_id), start.isoformat(), end.isoformat()),
        ).fetchall()
        return _read_snapshots(conn, rows, portfolio_id)
    finally:
        conn.execute("COMMIT")


# What a totals read selects after the key: the fields of `DailyTotals`, in its order.
_TOTALS_FIELDS = (
    "currency, total_value, cash_balance, holdings_value, net_contributions, stale, "
    f"external_flow, {', '.join(BOOK_COLUMNS[:-1])}"
)
_TOTALS_COLUMNS = f"portfolio_id, snapshot_date, {_TOTALS_FIELDS}"
# What the chart read (`list_totals`) selects after the date: the books in one column.
_CHART_FIELDS = (
    "currency, total_value, cash_balance, holdings_value, net_contributions, stale, "
    f"external_flow, {books_column_sql('char')}"
)


def _daily_totals(row: tuple[object, ...]) -> DailyTotals:
    pid, day, currency, total, cash, holdings, net, stale, *optional = row
    return DailyTotals(
        _uuid(pid),
        dt.date.fromisoformat(str(day)),
        str(currency),
        Decimal(str(total)),
        Decimal(str(cash)),
        Decimal(str(holdings)),
        optional_decimal(None if net is None else str(net)),
        bool(stale),
        *(optional_decimal(None if x is None else str(x)) for x in optional),
    )


def _list_totals(
    conn: sqlite3.Connection, portfolio_id: UUID, start: dt.date, end: dt.date
) -> list[DailyTotals]:
    rows = conn.execute(
        f"SELECT snapshot_date, {_CHART_FIELDS} FROM ps_snapshots "  # noqa: S608 - constant
        "WHERE portfolio_id = ? AND snapshot_date BETWEEN ? AND ? ORDER BY snapshot_date",
        (_id(portfolio_id), start.isoformat(), end.isoformat()),
    ).fetchall()
    return totals_of_rows(portfolio_id, rows, dt.date.fromisoformat)


def _totals_on(
    conn: sqlite3.Connection, day: dt.date, portfolio_ids: Sequence[UUID]
) -> list[DailyTotals]:
    found: list[DailyTotals] = []
    conn.execute("BEGIN")  # one read snapshot for every chunk
    try:
        for chunk in chunks(portfolio_ids):
            marks = ", ".join("?" * len(chunk))
            rows = conn.execute(
                f"SELECT {_TOTALS_COLUMNS} FROM ps_snapshots "  # noqa: S608 - placeholders
                f"WHERE snapshot_date = ? AND portfolio_id IN ({marks})",
                (day.isoformat(), *(_id(p) for p in chunk)),
            ).fetchall()
            found.extend(_daily_totals(r) for r in rows)
    finally:
        conn.execute("COMMIT")
    found.sort(key=lambda t: t.portfolio_id)
    return found


def _dates(
    conn: sqlite3.Connection, portfolio_id: UUID, start: dt.date, end: dt.date
) -> frozenset[dt.date]:
    rows = conn.execute(
        "SELECT snapshot_date FROM ps_snapshots "
        "WHERE portfolio_id = ? AND snapshot_date BETWEEN ? AND ?",
        (_id(portfolio_id), start.isoformat(), end.isoformat()),
    ).fetchall()
    return frozenset(dt.date.fromisoformat(r[0]) for r in rows)


def _keys(
    conn: sqlite3.Connection, keys: Collection[tuple[UUID, dt.date]]
) -> frozenset[tuple[UUID, dt.date]]:
    by_portfolio: dict[UUID, set[dt.date]] = {}
    for pid, day in keys:
        by_portfolio.setdefault(pid, set()).add(day)
    found: set[tuple[UUID, dt.date]] = set()
    conn.execute("BEGIN")  # one read snapshot for every chunk
    try:
        for pid, days in by_portfolio.items():
            for chunk in chunks(sorted(days)):
                marks = ", ".join("?" * len(chunk))
                rows = conn.execute(
                    "SELECT snapshot_date FROM ps_snapshots "  # noqa: S608 - only placeholders
                    f"WHERE portfolio_id = ? AND snapshot_date IN ({marks})",
                    (_id(pid), *(d.isoformat() for d in chunk)),
                ).fetchall()
                found.update((pid, dt.date.fromisoformat(r[0])) for r in rows)
    finally:
        conn.execute("COMMIT")
    return frozenset(found)


def _run_row(conn: sqlite3.Connection, key: str) -> RunRecord | None:
    row = conn.execute(
        "SELECT key, params_hash, state, attempts, started_at, finished_at, report "
        "FROM ps_runs WHERE key = ?",
        (key,),
    ).fetchone()
    if row is None:
        return None
    key, params_hash, state, attempts, started_at, finished_at, report = row
    return run_record(
        key,
        params_hash,
        state,
        attempts,
        from_utc_text(started_at),
        optional_from_utc_text(finished_at),
        report_from_json(report),
    )


def _recent_runs(conn: sqlite3.Connection, limit: int) -> list[RunRecord]:
    keys = conn.execute(
        "SELECT key FROM ps_runs ORDER BY started_at DESC, key LIMIT ?", (max(limit, 0),)
    ).fetchall()
    return [r for (key,) in keys if (r := _run_row(conn, key)) is not None]


def _start(conn: sqlite3.Connection, key: str, params_hash: str, now: dt.datetime) -> RunRecord:
    with _Write(conn):
        record = _run_row(conn, key)
        if record is None:
            attempts = 1
        elif record.params_hash != params_hash:
            raise RunKeyConflictError(key)
        elif record.state is RunState.SUCCEEDED:
            return record
        else:
            attempts = record.attempts + 1
        conn.execute(
            "INSERT INTO ps_runs (key, params_hash, state, attempts, started_at, finished_at, "
            "report) VALUES (?, ?, ?, ?, ?, NULL, NULL) ON CONFLICT (key) DO UPDATE SET "
            "state = excluded.state, attempts = excluded.attempts, "
            "started_at = excluded.started_at, finished_at = NULL, report = NULL",
            (key, params_hash, RunState.RUNNING.value, attempts, utc_text(now)),
        )
    return RunRecord(key, params_hash, RunState.RUNNING, attempts, now)


def _finish(
    conn: sqlite3.Connection,
    key: str,
    state: RunState,
    report: Mapping[str, object],
    now: dt.datetime,
) -> RunRecord:
    encoded = report_json(report)
    with _Write(conn):
        record = _run_row(conn, key)
        if record is None:
            raise KeyError(f"run key {key!r} was never started")
        conn.execute(
            "UPDATE ps_runs SET state = ?, finished_at = ?, report = ? WHERE key = ?",
            (RunState(state).value, utc_text(now), encoded, key),
        )
    return RunRecord(
        key,
        record.params_hash,
        RunState(state),
        record.attempts,
        record.started_at,
        now,
        report_from_json(encoded),
    )


def _next_fence(conn: sqlite3.Connection) -> int:
    conn.execute(
        "INSERT INTO ps_fence_counter (id, value) VALUES (1, 1) "
        "ON CONFLICT (id) DO UPDATE SET value = value + 1"
    )
    fence: int = conn.execute("SELECT value FROM ps_fence_counter WHERE id = 1").fetchone()[0]
    return fence


def _held(conn: sqlite3.Connection, key: str) -> tuple[str, int, dt.datetime] | None:
    row = conn.execute(
        "SELECT owner, fence, expires_at FROM ps_leases WHERE key = ?", (key,)
    ).fetchone()
    return None if row is None else (row[0], row[1], from_utc_text(row[2]))


def _acquire(
    conn: sqlite3.Connection, key: str, owner: str, ttl: dt.timedelta, now: dt.datetime
) -> Lease | None:
    expires_at = now + ttl
    with _Write(conn):
        held = _held(conn, key)
        if held is not None and held[0] != owner and held[2] > as_utc(now):
            return None
        fence = _next_fence(conn)
        conn.execute(
            "INSERT INTO ps_leases (key, owner, fence, expires_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, fence = excluded.fence, "
            "expires_at = excluded.expires_at",
            (key, owner, fence, utc_text(expires_at)),
        )
    return Lease(key, owner, fence, expires_at)


def _renew(conn: sqlite3.Connection, lease: Lease, ttl: dt.timedelta, now: dt.datetime) -> Lease:
    expires_at = now + ttl
    with _Write(conn):
        held = _held(conn, lease.key)
        if held is None or held[1] != lease.fence or held[2] <= as_utc(now):
            raise LeaseLostError(
                lease.key, lease_lost_detail(None if held is None else held[1], lease.fence)
            )
        conn.execute(
            "UPDATE ps_leases SET expires_at = ? WHERE key = ?", (utc_text(expires_at), lease.key)
        )
    return Lease(lease.key, held[0], lease.fence, expires_at)


def _release(conn: sqlite3.Connection, lease: Lease) -> None:
    with _Write(conn):
        conn.execute("DELETE FROM ps_leases WHERE key = ? AND fence = ?", (lease.key, lease.fence))


# --- the store ------------------------------------------------------------------------------------


class SqliteSnapshotStore:
    """A `SnapshotRepository`, `RunLedger` (with `RecentRuns`) and `RunLock` in one SQLite file.

    It also reads totals without positions (`SnapshotTotals`), for charts.

    Open it with `open` and close it with `close`, or use it as an async context manager::

        async with await SqliteSnapshotStore.open("snapshots.db") as store:
            job = SnapshotJob(..., snapshots=store, ledger=store, lock=store)

    The file is created and migrated on open, and switched to WAL mode. Busy and locked
    errors become `DatabaseBusyError` (a `TransientError`, retried by the job's policy); a
    file that cannot be opened, written or read as an SQLite database becomes
    `DatabaseAccessError` (never retried); other `sqlite3` errors are raised as they are.

    Fencing follows the `SnapshotRepository` contract: each row keeps the fence it was written
    with, a fenced write skips rows stored under a greater fence, an unfenced write replaces
    and stores fence 0. Lease fences come from one counter row, so they strictly increase for
    the life of the file.
    """

    def __init__(self, path: str, conn: sqlite3.Connection, executor: ThreadPoolExecutor) -> None:
        """Wrap an open connection; use `open` instead, which also migrates the file."""
        self._path = path
        self._conn = conn
        self._executor = executor
        self._closed = False
        # The prices known to be stored; only the worker thread touches them.
        self._prices = PriceCatalog()

    @classmethod
    async def open(cls, path: str | os.PathLike[str], *, busy_timeout: float = 5.0) -> Self:
        """Open (creating and migrating as needed) the database at `path`.

        Args:
            path: The database file. ``":memory:"`` is not supported.
            busy_timeout: Seconds a statement waits for another connection's lock before
                it fails with `DatabaseBusyError`.

        Returns:
            The open store.

        Raises:
            SchemaVersionError: The file's schema is newer than this library's; the file is
                left unchanged.
            DatabaseBusyError: Another connection held the database locked too long.
            DatabaseAccessError: The file cannot be opened (its directory does not exist, it
                is a directory, the process may not read or write it) or is not an SQLite
                database. Never retried; SQLite has no password.
        """
        name = os.fspath(path)
        if name == ":memory:" or name.startswith("file::memory:"):
            raise ValueError("SqliteSnapshotStore needs a database file, not ':memory:'")
        executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="portfolio-snapshots-sqlite"
        )
        holder: list[sqlite3.Connection] = []
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(executor, _connect, name, busy_timeout, holder)
        except BaseException as exc:
            # Runs after `_connect` (one worker, in order), also when we were cancelled.
            closing = executor.submit(_close_all, holder)
            executor.shutdown(wait=False)
            if not isinstance(exc, asyncio.CancelledError):
                await asyncio.wrap_future(closing)
            mapped = sqlite_error(exc, name) if isinstance(exc, sqlite3.Error) else None
            if mapped is None:
                raise
            raise mapped from exc
        return cls(name, holder[0], executor)

    @property
    def path(self) -> str:
        """The database file."""
        return self._path

    async def close(self) -> None:
        """Close the connection and stop the worker thread; closing twice is harmless."""
        if self._closed:
            return
        self._closed = True
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._conn.close)
        finally:
            self._executor.shutdown(wait=True)

    async def __aenter__(self) -> Self:
        """Return the store itself."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the store."""
        await self.close()

    async def _run(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, _P], _T],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T:
        if self._closed:
            raise RuntimeError("the SqliteSnapshotStore is closed")
        call = functools.partial(fn, self._conn, *args, **kwargs)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, call)
        except sqlite3.Error as exc:
            mapped = sqlite_error(exc, self._path)
            if mapped is None:
                raise
            raise mapped from exc

    # SnapshotRepository

    async def upsert_many(
        self, snapshots: Sequence[PortfolioSnapshot], *, fence: int | None = None
    ) -> None:
        """Insert or replace `snapshots` in one transaction (see the class docstring on fences).

        A batch holding a key twice stores the later snapshot; a row identical to the one
        stored (fence included) is not rewritten.
        """
        await self._run(_upsert, list(snapshots), fence, self._prices)

    async def existing_keys(
        self, keys: Collection[tuple[UUID, dt.date]]
    ) -> frozenset[tuple[UUID, dt.date]]:
        """Return the ``(portfolio_id, snapshot_date)`` keys among `keys` that are stored."""
        if not keys:
            return frozenset()
        return await self._run(_keys, list(keys))

    async def get_snapshot(self, portfolio_id: UUID, day: dt.date) -> PortfolioSnapshot | None:
        """Return the stored snapshot of `portfolio_id` on `day`, or None."""
        return await self._run(_get, portfolio_id, day)

    async def list_snapshots(
        self, portfolio_id: UUID, start: dt.date, end: dt.date
    ) -> list[PortfolioSnapshot]:
        """Return the snapshots of `portfolio_id` from `start` to `end` inclusive, by date."""
        return await self._run(_list, portfolio_id, start, end)

    async def existing_dates(
        self, portfolio_id: UUID, start: dt.date, end: dt.date
    ) -> frozenset[dt.date]:
        """Return the dates from `start` to `end` inclusive that have a stored snapshot."""
        return await self._run(_dates, portfolio_id, start, end)

    # SnapshotTotals

    async def list_totals(
        self, portfolio_id: UUID, start: dt.date, end: dt.date
    ) -> list[DailyTotals]:
        """Return the totals of `portfolio_id` from `start` to `end` inclusive, by date.

        Reads only the total columns: no position is read or decoded (the chart read path).
        """
        return await self._run(_list_totals, portfolio_id, start, end)

    async def totals_on(self, day: dt.date, portfolio_ids: Collection[UUID]) -> list[DailyTotals]:
        """Return the totals on `day` of those `portfolio_ids` that have a snapshot, by id."""
        ids = sorted(set(portfolio_ids))
        if not ids:
            return []
        return await self._run(_totals_on, day, ids)

    # RunLedger

    async def start(self, key: str, params_hash: str, now: dt.datetime) -> RunRecord:
        """Create or resume the run `key`, or return it unchanged when it already succeeded."""
        return await self._run(_start, key, params_hash, now)

    async def finish(
        self, key: str, state: RunState, report: Mapping[str, object], now: dt.datetime
    ) -> RunRecord:
        """Record that the latest attempt of `key` ended in `state` with `report`."""
        return await self._run(_finish, key, state, report, now)

    async def get(self, key: str) -> RunRecord | None:
        """Return the record of `key`, or None."""
        return await self._run(_run_row, key)

    async def recent_runs(self, limit: int) -> list[RunRecord]:
        """Return the `limit` most recently started runs, latest first (the `RecentRuns` way)."""
        return await self._run(_recent_runs, limit)

    # RunLock

    async def acquire(
        self, key: str, owner: str, ttl: dt.timedelta, now: dt.datetime
    ) -> Lease | None:
        """Take the lease on `key` for `ttl`, or return None if someone else holds it."""
        return await self._run(_acquire, key, owner, ttl, now)

    async def renew(self, lease: Lease, ttl: dt.timedelta, now: dt.datetime) -> Lease:
        """Extend `lease` by `ttl` from `now`, or raise `LeaseLostError`."""
        return await self._run(_renew, lease, ttl, now)

    async def release(self, lease: Lease) -> None:
        """Give `lease` up if it is still held."""
        await self._run(_release, lease)
