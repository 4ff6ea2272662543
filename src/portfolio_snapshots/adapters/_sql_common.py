"""What the SQL stores share: their errors, the schema version, and how values become columns.

Both `SqliteSnapshotStore` and the SQLAlchemy store keep money as decimal text (``str`` of the
`Decimal`, read back with ``Decimal(text)``), so every value comes back with the same digits
and exponent it was written with; a snapshot's positions are one JSON text column of objects
whose amounts are decimal strings as well. Nothing here imports a database driver.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from json.encoder import encode_basestring
from typing import TYPE_CHECKING, Final, TypeVar
from uuid import UUID

from portfolio_snapshots._domain import POSITION_WIDTH, PositionValuation, RunRecord, RunState
from portfolio_snapshots._errors import InvalidInputError, SnapshotError, TransientError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from portfolio_snapshots._domain import PortfolioSnapshot

__all__ = [
    "SCHEMA_VERSION",
    "DatabaseBusyError",
    "DatabaseUnavailableError",
    "SchemaVersionError",
]

_T = TypeVar("_T")

#: The schema version this library writes and understands. Stores refuse newer databases.
SCHEMA_VERSION: Final = 1

#: Table names, shared by both stores (a ``ps_`` prefix keeps them apart from a host's own).
SNAPSHOTS_TABLE: Final = "ps_snapshots"
RUNS_TABLE: Final = "ps_runs"
LEASES_TABLE: Final = "ps_leases"
FENCE_COUNTER_TABLE: Final = "ps_fence_counter"
SCHEMA_VERSION_TABLE: Final = "ps_schema_version"

#: Keys per statement when asking which keys exist: well under every driver's parameter limit.
KEY_CHUNK: Final = 400

_TAKEN_OVER: Final = "the lease was taken over by another holder"
_EXPIRED: Final = "the lease expired before it was renewed"


class SchemaVersionError(SnapshotError):
    """The database was written by a newer version of portfolio-snapshots.

    The store refuses to use it and changes nothing in it: upgrade the library, or point the
    store at another database. Never retried.

    Attributes:
        found: The schema version recorded in the database.
        supported: The newest schema version this library knows.
    """

    def __init__(self, found: int, supported: int = SCHEMA_VERSION, *, where: str = "") -> None:
        """Build the error; `where` names the database (a path or a URL without password)."""
        place = f" {where}" if where else ""
        super().__init__(
            f"database{place} has schema version {found}, newer than version {supported} "
            "that this version of portfolio-snapshots knows; upgrade portfolio-snapshots "
            "(the database was left unchanged)"
        )
        self.found = found
        self.supported = supported


class DatabaseBusyError(TransientError):
    """The database is locked or busy (a lock timeout, a deadlock, a serialization failure).

    Transient: the job's `RetryPolicy` retries it.
    """


class DatabaseUnavailableError(TransientError):
    """The database cannot be reached, or the connection broke (refused, reset, shut down).

    Transient: the job's `RetryPolicy` retries it.
    """


# --- values <-> columns -----------------------------------------------------------------------


def decimal_text(value: Decimal, field: str) -> str:
    """Return `value` as text that reads back as an identical `Decimal`.

    Raises:
        InvalidInputError: `value` is not a Decimal (a float would lose money silently).
    """
    if not isinstance(value, Decimal):
        raise InvalidInputError(f"{field} must be a Decimal, got {type(value).__name__}")
    return str(value)


def optional_decimal_text(value: Decimal | None, field: str) -> str | None:
    """Like `decimal_text`, passing None through."""
    return None if value is None else decimal_text(value, field)


def optional_decimal(text: str | None) -> Decimal | None:
    """Read a nullable decimal column."""
    return None if text is None else Decimal(text)


def positions_json(positions: Sequence[PositionValuation]) -> str:
    """Encode a snapshot's positions as compact JSON, amounts as decimal strings.

    Fields at their defaults (no price currency, no FX rate, not stale) are left out.
    """
    items: list[dict[str, object]] = []
    for p in positions:
        item: dict[str, object] = {
            "ticker": p.ticker,
            "quantity": decimal_text(p.quantity, "quantity"),
            "price": decimal_text(p.price, "price"),
            "price_date": p.price_date.isoformat(),
            "market_value": decimal_text(p.market_value, "market_value"),
        }
        if p.price_currency is not None:
            item["price_currency"] = p.price_currency
        if p.fx_rate is not None:
            item["fx_rate"] = decimal_text(p.fx_rate, "fx_rate")
        if p.stale:
            item["stale"] = True
        items.append(item)
    return json.dumps(items, ensure_ascii=False, separators=(",", ":"))


def positions_from_json(text: str) -> tuple[PositionValuation, ...]:
    """Decode what `positions_json` wrote."""
    items: list[dict[str, object]] = json.loads(text)
    out = []
    for item in items:
        fx_rate = item.get("fx_rate")
        price_currency = item.get("price_currency")
        out.append(
            PositionValuation(
                str(item["ticker"]),
                Decimal(str(item["quantity"])),
                Decimal(str(item["price"])),
                dt.date.fromisoformat(str(item["price_date"])),
                Decimal(str(item["market_value"])),
                None if price_currency is None else str(price_currency),
                None if fx_rate is None else Decimal(str(fx_rate)),
                item.get("stale") is True,
            )
        )
    return tuple(out)


_STR: Final = frozenset({str})
_DATE: Final = frozenset({dt.date})
_DECIMAL: Final = frozenset({Decimal})


def flat_positions_json(flat: tuple[object, ...]) -> str:
    """Encode positions given flat, as `PortfolioSnapshot.flat_positions` holds them.

    Returns the very text `positions_json` returns for the same positions, without a dict and
    a ``json.dumps`` per position (writes spend most of their time here). Positions of the
    usual types are formatted directly; when any field is of another type (a subclass, a
    float...), each position goes through `positions_json` itself, so odd values are
    encoded, or refused, exactly as there.

    Raises:
        InvalidInputError: An amount is not a Decimal.
    """
    width = POSITION_WIDTH
    usual = (
        set(map(type, flat[1::width] + flat[2::width] + flat[4::width])) <= _DECIMAL
        and set(map(type, flat[0::width])) <= _STR
        and set(map(type, flat[3::width])) <= _DATE
    )
    parts: list[str] = []
    append = parts.append
    for i in range(0, len(flat), width):
        ticker, quantity, price, price_date, value, price_currency, fx_rate, stale = flat[
            i : i + width
        ]
        if usual and price_currency is None and fx_rate is None and not stale:
            # str(Decimal) and date.isoformat() never hold a character JSON would escape.
            append(
                f'{{"ticker":{encode_basestring(ticker)},"quantity":"{quantity!s}",'  # type: ignore[arg-type]
                f'"price":"{price!s}","price_date":"{price_date.isoformat()}",'  # type: ignore[attr-defined]
                f'"market_value":"{value!s}"}}'
            )
        else:
            append(_position_json(flat[i : i + width]))
    return "[" + ",".join(parts) + "]"


def _position_json(fields: tuple[object, ...]) -> str:
    """Encode one position's fields as `positions_json` does (without the brackets)."""
    ticker, quantity, price, price_date, value, price_currency, fx_rate, stale = fields
    if (
        type(ticker) is not str
        or type(quantity) is not Decimal
        or type(price) is not Decimal
        or type(price_date) is not dt.date
        or type(value) is not Decimal
        or (price_currency is not None and type(price_currency) is not str)
        or (fx_rate is not None and type(fx_rate) is not Decimal)
    ):
        # An odd position (a subclass, a float...): the reference encoder decides.
        return positions_json([PositionValuation(*fields)])[1:-1]  # type: ignore[arg-type]
    text = (
        f'{{"ticker":{encode_basestring(ticker)},"quantity":"{quantity!s}",'
        f'"price":"{price!s}","price_date":"{price_date.isoformat()}",'
        f'"market_value":"{value!s}"'
    )
    if price_currency is not None:
        text += f',"price_currency":{encode_basestring(price_currency)}'
    if fx_rate is not None:
        text += f',"fx_rate":"{fx_rate!s}"'
    if stale:
        text += ',"stale":true'
    return text + "}"


def flat_positions_from_json(text: str) -> tuple[object, ...]:
    """Decode what `positions_json` wrote into the flat form of `PortfolioSnapshot.from_flat`.

    The same values as `positions_from_json`, without building a `PositionValuation` each.
    """
    items: list[dict[str, object]] = json.loads(text)
    flat: list[object] = []
    extend = flat.extend
    date = dt.date.fromisoformat
    for item in items:
        fx_rate = item.get("fx_rate")
        price_currency = item.get("price_currency")
        extend(
            (
                str(item["ticker"]),
                Decimal(str(item["quantity"])),
                Decimal(str(item["price"])),
                date(str(item["price_date"])),
                Decimal(str(item["market_value"])),
                None if price_currency is None else str(price_currency),
                None if fx_rate is None else Decimal(str(fx_rate)),
                item.get("stale") is True,
            )
        )
    return tuple(flat)


def report_json(report: Mapping[str, object]) -> str:
    """Encode a run report as JSON.

    Raises:
        InvalidInputError: The report holds a value JSON cannot represent.
    """
    try:
        return json.dumps(dict(report), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"the run report is not JSON-serializable: {exc}") from exc


def report_from_json(text: str | None) -> dict[str, object] | None:
    """Decode what `report_json` wrote."""
    if text is None:
        return None
    report: dict[str, object] = json.loads(text)
    return report


def as_utc(moment: dt.datetime) -> dt.datetime:
    """Return `moment` in UTC; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def utc_text(moment: dt.datetime) -> str:
    """Return `moment` as fixed-width ISO 8601 UTC text, so that text order is time order."""
    return as_utc(moment).isoformat(timespec="microseconds")


def from_utc_text(text: str) -> dt.datetime:
    """Read what `utc_text` wrote, as an aware UTC datetime."""
    return as_utc(dt.datetime.fromisoformat(text))


def optional_from_utc_text(text: str | None) -> dt.datetime | None:
    """Like `from_utc_text`, passing None through."""
    return None if text is None else from_utc_text(text)


def dedupe_sorted(snapshots: Iterable[PortfolioSnapshot]) -> list[PortfolioSnapshot]:
    """Keep the last snapshot of each key, ordered by key.

    One row per key per statement is what ``ON CONFLICT DO UPDATE`` needs, and writing keys in
    one global order keeps concurrent batches from deadlocking on each other's rows.
    """
    last: dict[tuple[UUID, dt.date], PortfolioSnapshot] = {}
    for s in snapshots:
        last[s.portfolio_id, s.snapshot_date] = s
    if set(map(type, (pid for pid, _ in last))) <= _UUID:
        # The order of UUIDs is that of their integers, which compare without a Python call.
        return [last[k] for k in sorted(last, key=_int_key)]
    return [last[k] for k in sorted(last)]


_UUID: Final = frozenset({UUID})


def _int_key(key: tuple[UUID, dt.date]) -> tuple[int, dt.date]:
    return key[0].int, key[1]


def run_record(  # noqa: PLR0917 - one argument per column
    key: str,
    params_hash: str,
    state: str,
    attempts: int,
    started_at: dt.datetime,
    finished_at: dt.datetime | None,
    report: dict[str, object] | None,
) -> RunRecord:
    """Build a `RunRecord` from the columns of a stored run."""
    return RunRecord(key, params_hash, RunState(state), attempts, started_at, finished_at, report)


def lease_lost_detail(held_fence: int | None, fence: int) -> str:
    """Say why a renewal failed: the lease is gone or newer (taken over), else it expired."""
    return _TAKEN_OVER if held_fence != fence else _EXPIRED


def chunks(items: Sequence[_T], size: int = KEY_CHUNK) -> Iterable[Sequence[_T]]:
    """Yield `items` in slices of at most `size`."""
    for i in range(0, len(items), size):
        yield items[i : i + size]
