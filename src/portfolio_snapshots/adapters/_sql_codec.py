"""What the SQL stores share: their errors, the schema version, and how values become columns.

Both `SqliteSnapshotStore` and the SQLAlchemy store keep money as decimal text (``str`` of the
`Decimal`, read back with ``Decimal(text)``), so every value comes back with the same digits
and exponent it was written with.

Schema version 2 stores the prices a day's snapshots were valued with once per day, ticker and
*variant* in ``ps_prices`` (a variant is one distinct (price, price date, currency, FX rate,
stale) of that ticker on that day: a split adjusted for one portfolio only, or a close
converted into two base currencies, makes a second one), and a snapshot's positions as one
compact text: per position its ticker, quantity and market value (left out when the price
gives it back exactly: `value_field`), the variant of its price when it is not 0, and the
position's accounting fields (cost basis, realized gain, dividends) when it has any. Version 1
kept every position as a JSON object with its price spelled out (`positions_json`); version 2
still reads that form, and writes it for the rare snapshot whose tickers the compact form
cannot hold. A snapshot's own accounting fields
are columns of their own (`book_texts`), its cash per currency one compact text
(`cash_balances_text`). Nothing here imports a database driver.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, TypeVar
from uuid import UUID

from portfolio_snapshots._decimal import EXACT
from portfolio_snapshots._domain import (
    ACCOUNTING_FIELD_NAMES,
    POSITION_WIDTH,
    CalculatedValues,
    CashBalance,
    DailyTotals,
    PositionValuation,
    RunRecord,
    RunState,
    position_at,
)
from portfolio_snapshots._errors import DatabaseAccessError, DatabaseBusyError, InvalidInputError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from portfolio_snapshots._domain import PortfolioSnapshot


_T = TypeVar("_T")

#: The schema version this library writes and understands. Stores refuse newer databases.
SCHEMA_VERSION: Final = 2

#: Table names, shared by both stores (a ``ps_`` prefix keeps them apart from a host's own).
SNAPSHOTS_TABLE: Final = "ps_snapshots"
PRICES_TABLE: Final = "ps_prices"
RUNS_TABLE: Final = "ps_runs"
LEASES_TABLE: Final = "ps_leases"
FENCE_COUNTER_TABLE: Final = "ps_fence_counter"
SCHEMA_VERSION_TABLE: Final = "ps_schema_version"

#: Keys per statement when asking which keys exist: well under every driver's parameter limit.
KEY_CHUNK: Final = 400

#: The accounting fields, cash balances and position books of a snapshot read from a column
#: set without them.
NO_BOOKS: tuple[None, None, None, None, None, None, None, None, tuple[()], tuple[()]] = (
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    (),
    (),
)
#: The columns of ``ps_snapshots`` holding a snapshot's *books*: its accounting fields
#: (decimal text, in the order of `ACCOUNTING_FIELD_NAMES`) and its cash balances (text, see
#: `cash_balances_text`). NULL for a snapshot without them, which a write leaves out. The
#: positions' accounting fields (`PortfolioSnapshot.position_books`) go in the positions text.
BOOK_COLUMNS: Final = (*ACCOUNTING_FIELD_NAMES, "cash_balances")
#: The `BOOK_COLUMNS` of a snapshot without books, as `PortfolioSnapshot.values` holds them.
_NO_COLUMN_BOOKS: Final = NO_BOOKS[:-1]
#: The accounting fields of a position, in the order of `PortfolioSnapshot.position_books`
#: (its unrealized gain is not stored: it is its market value minus its cost basis).
POSITION_BOOK_FIELDS: Final = ("cost_basis", "realized_gain", "dividends")
_BOOKS_WIDTH: Final = len(POSITION_BOOK_FIELDS)
_NO_POSITION_BOOKS: Final = (None,) * _BOOKS_WIDTH

_TAKEN_OVER: Final = "the lease was taken over by another holder"
_EXPIRED: Final = "the lease expired before it was renewed"


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

    Fields at their defaults (no price currency, no FX rate, not stale, accounting fields
    None) are left out.
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
        for name, amount in zip(
            POSITION_BOOK_FIELDS, (p.cost_basis, p.realized_gain, p.dividends), strict=True
        ):
            if amount is not None:
                item[name] = decimal_text(amount, name)
        items.append(item)
    return json.dumps(items, ensure_ascii=False, separators=(",", ":"))


def _reference_json(flat: tuple[object, ...], books: tuple[object, ...]) -> str:
    """Encode flat positions and their books with `positions_json`, off the fast path."""
    return positions_json([position_at(flat, books, n) for n in range(len(flat) // POSITION_WIDTH)])


def flat_positions_from_json(text: str) -> tuple[tuple[object, ...], tuple[object, ...]]:
    """Decode what `positions_json` wrote into the flat forms of `PortfolioSnapshot.from_flat`.

    The stores read positions only this way: no `PositionValuation` is built per position.

    Returns:
        The positions' flat fields, and their flat accounting fields (`position_books`:
        empty when no position has any).
    """
    items: list[dict[str, object]] = json.loads(text)
    flat: list[object] = []
    extend = flat.extend
    books: list[object] = []
    date = dt.date.fromisoformat
    get_books = _books_of_item
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
        books.extend(get_books(item))
    return tuple(flat), _position_books_or_none(books)


def _position_books_or_none(books: list[object]) -> tuple[object, ...]:
    """Return `books` as `position_books` holds them: empty when every field is None."""
    return () if books.count(None) == len(books) else tuple(books)


def _books_of_item(item: Mapping[str, object]) -> tuple[Decimal | None, ...]:
    """Read a JSON position's accounting fields (absent: None)."""
    return tuple(
        None if (text := item.get(name)) is None else Decimal(str(text))
        for name in POSITION_BOOK_FIELDS
    )


# --- schema version 2: prices once per day, positions compact ---------------------------------

#: Between the fields of a compact position, and between positions: decimal text never holds
#: them, and a snapshot with a ticker that does is written as JSON instead.
_FIELD: Final = "|"
_RECORD: Final = ";"

#: A price as stored in ``ps_prices``: price text, price date, currency, FX rate text, stale.
PriceContent = tuple[str, dt.date, str | None, str | None, bool]
#: The key of a ``ps_prices`` row without its variant: the snapshot date and the ticker.
PriceDay = tuple[dt.date, str]
#: One ``ps_prices`` row: snapshot date, ticker, variant, then the `PriceContent`.
PriceRow = tuple[dt.date, str, int, str, dt.date, str | None, str | None, bool]


def _compact_ticker(ticker: object) -> bool:
    """Whether `ticker` can be written in the compact form (else the snapshot goes as JSON)."""
    return (
        type(ticker) is str
        and ticker.isprintable()
        and ticker != ""
        and not ticker.startswith("[")
        and _FIELD not in ticker
        and _RECORD not in ticker
    )


def price_content(  # noqa: PLR0917 - a position's price fields, in order
    ticker: object,
    price: object,
    price_date: object,
    currency: object,
    fx_rate: object,
    stale: object,
) -> PriceContent:
    """Return the stored form of a position's price.

    Raises:
        InvalidInputError: The price or rate is not a Decimal, the date not a date, or the
            currency not text.
    """
    if not isinstance(price_date, dt.date) or isinstance(price_date, dt.datetime):
        raise InvalidInputError(
            f"price_date of {ticker!r} must be a date, got {type(price_date).__name__}"
        )
    if currency is not None and not isinstance(currency, str):
        raise InvalidInputError(
            f"price_currency of {ticker!r} must be text, got {type(currency).__name__}"
        )
    return (
        decimal_text(price, "price"),  # type: ignore[arg-type]
        price_date,
        currency,
        optional_decimal_text(fx_rate, "fx_rate"),  # type: ignore[arg-type]
        bool(stale),
    )


class PriceCatalog:
    """The ``ps_prices`` rows a store knows to be stored, and the variant of each.

    Rows are never changed once written, so what a store learnt stays true. A write goes
    through a `PricePlan`: `plan` lists the prices of a batch the catalog does not know (or
    `PricePlan.add` does, part by part, so that a streamed write plans each statement's
    snapshots as it sends them), the store looks up the stored variants of those tickers and
    days (`PricePlan.missing`), `PricePlan.resolve` gives every new price the next free variant
    and returns the rows to insert, `PricePlan.encode` writes each snapshot's positions, and
    `PricePlan.commit` records the new rows once the transaction committed.
    """

    __slots__ = ("_compact", "_known", "_seen")

    def __init__(self) -> None:
        """Start knowing nothing."""
        self._known: dict[tuple[dt.date, str, PriceContent], int] = {}
        # Per ticker, the price objects last seen, their day and their position text's tail
        # (the variant), for stored prices only: a run's portfolios share the day's objects.
        self._seen: dict[object, tuple[object, ...]] = {}
        # Tickers the compact form can hold.
        self._compact: set[object] = set()

    def compact(self, tickers: Sequence[object]) -> bool:
        """Whether every one of `tickers` can be written in the compact form."""
        known = self._compact
        try:
            if known.issuperset(tickers):
                return True
        except TypeError:  # an unhashable ticker: the JSON form refuses or writes it
            return False
        for ticker in tickers:
            if ticker not in known:
                if not _compact_ticker(ticker):
                    return False
                known.add(ticker)
        return True

    def plan(self, snapshots: Sequence[PortfolioSnapshot] = ()) -> PricePlan:
        """Return the plan of writing `snapshots`' prices (more can be added to it).

        Raises:
            InvalidInputError: A position's price, rate, date or currency has the wrong type.
        """
        if len(self._known) > MAX_REMEMBERED_PRICES:
            self._known.clear()
            self._seen.clear()
            self._compact.clear()
        return PricePlan(self, snapshots)


#: How many prices a `PriceCatalog` keeps before it starts over.
MAX_REMEMBERED_PRICES: Final = 200_000


class PricePlan:
    """How one batch's prices are written: see `PriceCatalog`."""

    __slots__ = ("_catalog", "_contents", "_memo", "_new", "_ready")

    def __init__(self, catalog: PriceCatalog, snapshots: Sequence[PortfolioSnapshot]) -> None:
        """Collect the prices of `snapshots` that `catalog` does not know."""
        self._catalog = catalog
        # Per (day, ticker), the prices of the batch the catalog does not know.
        self._contents: dict[PriceDay, list[PriceContent]] = {}
        # The positions text of each snapshot whose prices are all stored (most of a run's),
        # made in the pass that plans it; the others are encoded once their variants are known.
        self._ready: dict[int, str] = {}
        self._new: dict[tuple[dt.date, str, PriceContent], int] = {}
        self._memo: dict[object, tuple[object, ...]] = {}
        self.add(snapshots)

    def add(self, snapshots: Sequence[PortfolioSnapshot]) -> bool:
        """Plan `snapshots` too, before `resolve`.

        Returns:
            Whether every price planned so far is known to be stored (`missing` is empty).

        Raises:
            InvalidInputError: A position's price, rate, date or currency has the wrong type.
        """
        if snapshots:
            with decimal.localcontext(EXACT):
                self._plan(snapshots, self._ready, self._contents)
        return not self._contents

    @property
    def missing(self) -> list[PriceDay]:
        """The (day, ticker) pairs whose stored variants the store must look up, in order."""
        return sorted(self._contents)

    def _plan(  # noqa: C901 - the hot loop of a write, kept in one piece
        self,
        snapshots: Sequence[PortfolioSnapshot],
        ready: dict[int, str],
        wanted: dict[PriceDay, list[PriceContent]],
    ) -> None:
        """Fill `ready` and `wanted` (see `__init__`), in the EXACT context."""
        catalog = self._catalog
        known = catalog._known  # noqa: SLF001 - the plan is the catalog's helper
        seen = catalog._seen  # noqa: SLF001
        compact = catalog.compact
        width = POSITION_WIDTH
        for s in snapshots:
            day = s.values[1]
            flat = s.values[6]
            if len(flat) % width or not flat or not compact(flat[::width]):
                continue  # no positions, or written as JSON with the prices inline
            # Positions with accounting fields (rare) are encoded by encode().
            parts: list[str] | None = None if s.values[19] else []
            unit = _unit(s)
            # Every market value the calculator derived is left out, unchecked.
            calculated = s.values.__class__ is CalculatedValues
            # One position's fields at a time, by one C loop (no slice built per position).
            fields = iter(flat)
            for ticker, quantity, price, price_date, value, currency, fx_rate, stale in zip(
                *(fields,) * width, strict=True
            ):
                hit = seen.get(ticker)
                if (
                    hit is None
                    or hit[0] is not price
                    or hit[1] is not price_date
                    or hit[2] is not currency
                    or hit[3] is not fx_rate
                    or hit[4] is not stale
                    or hit[5] is not day  # a run's snapshots of a day share its date object
                ):
                    content = price_content(ticker, price, price_date, currency, fx_rate, stale)
                    variant = known.get((day, ticker, content))
                    if variant is None:
                        contents = wanted.setdefault((day, str(ticker)), [])
                        if content not in contents:
                            contents.append(content)
                        parts = None
                        continue
                    tail = f"{_FIELD}{variant}" if variant else ""
                    hit = (price, price_date, currency, fx_rate, stale, day, tail)
                    if type(price) is Decimal:
                        seen[ticker] = hit
                if parts is None:
                    continue
                if calculated or (
                    # `value_field`'s test, written out: this loop writes every position
                    unit is not None
                    and type(quantity) is Decimal
                    and type(value) is Decimal
                    and type(price) is Decimal
                    and fx_rate is None
                    and not (quantity * price).quantize(unit).compare_total(value)
                    and not value.is_signed()
                ):
                    parts.append(
                        f"{ticker}{_FIELD}{quantity!s}{_FIELD}{hit[6]}"
                        if hit[6]
                        else f"{ticker}{_FIELD}{quantity!s}"
                    )
                elif type(quantity) is not Decimal or type(value) is not Decimal:
                    parts = None  # encode() refuses it, naming the field
                else:
                    shown = value_field(quantity, price, fx_rate, unit, value)
                    parts.append(_position_text(ticker, quantity, shown, hit[6]))
            if parts is not None:
                ready[id(s)] = _RECORD.join(parts)

    def resolve(self, stored: Mapping[PriceDay, Mapping[int, PriceContent]]) -> list[PriceRow]:
        """Give each unknown price its stored variant or the next free one.

        Args:
            stored: The stored variants of the `missing` (day, ticker) pairs.

        Returns:
            The rows to insert into ``ps_prices``.
        """
        rows: list[PriceRow] = []
        new = self._new
        # In key order: batches written at once insert their new price rows in one global
        # order, so neither waits on a row the other holds while holding one it wants (a
        # deadlock on PostgreSQL when the rows came in the order each batch met them).
        for (day, ticker), contents in sorted(self._contents.items(), key=_price_day):
            variants = dict(stored.get((day, ticker), {}))
            by_content = {c: v for v, c in variants.items()}
            for content in contents:
                variant = by_content.get(content)
                if variant is None:
                    variant = len(variants)
                    while variant in variants:
                        variant += 1
                    variants[variant] = content
                    by_content[content] = variant
                    rows.append((day, ticker, variant, *content))
                new[day, ticker, content] = variant
        return rows

    def encode(self, s: PortfolioSnapshot) -> str:  # noqa: C901, PLR0912 - a write's hot loop
        """Return the compact positions of `s` (or, for odd tickers, their JSON).

        Raises:
            InvalidInputError: A quantity or market value is not a Decimal.
        """
        ready = self._ready.get(id(s))
        if ready is not None:
            return ready
        flat = s.values[6]
        width = POSITION_WIDTH
        if not flat:
            return "[]"
        catalog = self._catalog
        books = s.values[19]
        if len(flat) % width or not catalog.compact(flat[::width]):
            return _reference_json(flat, books)
        day = s.values[1]
        # Every position's market value has the exponent of the holdings' total (the
        # calculator quantizes each to the currency's unit): the unit its value is derived at.
        unit = _unit(s)
        calculated = s.values.__class__ is CalculatedValues  # every value left out, unchecked
        known = catalog._known  # noqa: SLF001 - the plan is the catalog's helper
        stored = catalog._seen  # noqa: SLF001
        new = self._new
        memo = self._memo
        parts: list[str] = []
        append = parts.append
        with decimal.localcontext(EXACT):  # for value_field
            for n, i in enumerate(range(0, len(flat), width)):
                ticker, quantity, price, price_date, value, currency, fx_rate, stale = flat[
                    i : i + width
                ]
                if type(quantity) is not Decimal:
                    decimal_text(quantity, "quantity")  # type: ignore[arg-type]
                if type(value) is not Decimal:
                    decimal_text(value, "market_value")  # type: ignore[arg-type]
                # A run's portfolios share the day's price objects: the variant found for the very
                # same objects (and day) is reused without building the price's texts again.
                seen = stored.get(ticker)
                if seen is None or seen[0] is not price or seen[5] != day:
                    seen = memo.get(ticker)
                if (
                    seen is not None
                    and seen[0] is price
                    and seen[1] is price_date
                    and seen[2] is currency
                    and seen[3] is fx_rate
                    and seen[4] is stale
                    and seen[5] == day
                ):
                    tail = seen[6]
                else:
                    content = price_content(ticker, price, price_date, currency, fx_rate, stale)
                    key = (day, ticker, content)
                    variant = known.get(key)  # type: ignore[arg-type]
                    if variant is None:
                        variant = new[key]  # type: ignore[index]
                    tail = f"{_FIELD}{variant}" if variant else ""
                    if type(price) is Decimal:
                        memo[ticker] = (price, price_date, currency, fx_rate, stale, day, tail)
                # A market value the reader derives from the quantity and the price, exactly as
                # the calculator made it, is left out (an empty field): a third of the text.
                shown = "" if calculated else value_field(quantity, price, fx_rate, unit, value)
                own = books[n * _BOOKS_WIDTH : (n + 1) * _BOOKS_WIDTH] if books else None
                if not own or own == _NO_POSITION_BOOKS:
                    append(_position_text(ticker, quantity, shown, tail))
                else:
                    # The variant's field is written (empty for 0) when accounting fields follow.
                    text = _position_books_text(own)
                    append(
                        f"{ticker}{_FIELD}{quantity!s}{_FIELD}{shown}{tail or _FIELD}{_FIELD}{text}"
                    )
        return _RECORD.join(parts)

    def commit(self) -> None:
        """Record the plan's prices as stored: call once its transaction committed."""
        self._catalog._known.update(self._new)  # noqa: SLF001 - the plan is the catalog's helper
        self._catalog._seen.update(self._memo)  # noqa: SLF001


def _unit(s: PortfolioSnapshot) -> Decimal | None:
    """The snapshot's holdings value, the unit its positions' values are derived at; or None.

    Every market value the calculator makes has the exponent of the holdings' total (each is
    quantized to the currency's unit).
    """
    unit = s.values[4]
    return unit if type(unit) is Decimal and unit.is_finite() else None


def _position_text(ticker: object, quantity: object, value: str, tail: object) -> str:
    """A position without accounting fields: ticker, quantity, value (unless derived), variant."""
    # ``!s``: str() is what the reader parses back, and half the cost of format() for a Decimal.
    if value or tail:
        return f"{ticker}{_FIELD}{quantity!s}{_FIELD}{value}{tail}"
    return f"{ticker}{_FIELD}{quantity!s}"  # the usual position: nothing more


def _position_books_text(books: Sequence[object]) -> str:
    """Return a position's accounting fields as compact text: ``|``-separated, None empty.

    Trailing empty fields are left out (decimal text is never empty, so the text is not).

    Raises:
        InvalidInputError: A field is neither None nor a Decimal.
    """
    cost, realized, dividends = books
    if not (
        (cost is None or type(cost) is Decimal)
        and (realized is None or type(realized) is Decimal)
        and (dividends is None or type(dividends) is Decimal)
    ):
        # Refuses what is not a Decimal, naming the field; a subclass passes, as its text.
        return _FIELD.join(
            "" if amount is None else decimal_text(amount, name)  # type: ignore[arg-type]
            for name, amount in zip(POSITION_BOOK_FIELDS, books, strict=True)
        ).rstrip(_FIELD)
    return (
        f"{'' if cost is None else cost!s}{_FIELD}"
        f"{'' if realized is None else realized!s}{_FIELD}"
        f"{'' if dividends is None else dividends!s}"
    ).rstrip(_FIELD)


def _position_books(fields: list[str]) -> list[Decimal | None]:
    """Read the accounting fields of a compact position split into `fields` (five or more)."""
    texts = fields[4 : 4 + _BOOKS_WIDTH]
    texts += [""] * (_BOOKS_WIDTH - len(texts))
    return [Decimal(t) if t else None for t in texts]


def referenced_prices(texts: Iterable[tuple[dt.date, str]]) -> set[PriceDay]:
    """Return the (day, ticker) pairs whose prices compact positions `texts` refer to.

    Args:
        texts: ``(snapshot_date, positions text)`` of the rows read.
    """
    wanted: set[PriceDay] = set()
    for day, text in texts:
        if text.startswith("["):
            continue
        for position in text.split(_RECORD):
            wanted.add((day, position.split(_FIELD, 1)[0]))
    return wanted


_multiply = EXACT.multiply


def derived_value(
    quantity: Decimal, price: Decimal, fx_rate: Decimal | None, unit: Decimal
) -> Decimal:
    """Return a position's market value as the calculator makes it.

    ``quantity x price (x fx_rate)``, exact, quantized half to even to the exponent of `unit`
    (the snapshot's holdings value, whose exponent is its currency's unit).
    """
    gross = _multiply(quantity, price)
    if fx_rate is not None:
        gross = _multiply(gross, fx_rate)
    return gross.quantize(unit, context=EXACT)


def value_field(
    quantity: object, price: object, fx_rate: object, unit: Decimal | None, value: object
) -> str:
    """Return the market-value field of a position's text: empty when a reader derives it.

    Empty only when `derived_value` gives `value` back digit for digit (same sign, digits and
    exponent: a zero quantity at a negative price derives a negative zero, so a positive zero
    value is then written; a negative value, or a negative zero, is always written), so that
    what is read equals what was written; otherwise the value's text. A write's hot loop: one
    call, made in the `EXACT` context (`PriceCatalog.plan` and `PricePlan.encode` enter it
    once).

    Args:
        quantity: The position's quantity.
        price: The price it was valued at (in its own currency).
        fx_rate: The rate into the snapshot's currency, or None.
        unit: The snapshot's holdings value, or None when it is not a finite Decimal.
        value: The position's market value.
    """
    if (
        unit is not None
        and type(value) is Decimal
        and type(quantity) is Decimal
        and type(price) is Decimal
    ):
        if fx_rate is None:
            gross = quantity * price
        elif type(fx_rate) is Decimal:
            gross = quantity * price * fx_rate
        else:
            return str(value)
        # compare_total: the same sign, digits and exponent (== takes -0 for 0, 1.0 for 1.00).
        if not gross.quantize(unit).compare_total(value) and not value.is_signed():
            return ""
    return str(value)


def price_from_row(
    price: str, price_date: dt.date, currency: str | None, fx_rate: str | None, stale: object
) -> tuple[Decimal, dt.date, str | None, Decimal | None, bool]:
    """Return a stored price's fields as a position holds them."""
    return (
        Decimal(price),
        price_date,
        currency,
        None if fx_rate is None else Decimal(fx_rate),
        bool(stale),
    )


#: A price as a position holds it: price, price date, currency, FX rate, stale.
PositionPrice = tuple[Decimal, dt.date, str | None, Decimal | None, bool]


def flat_positions_from_text(
    text: str,
    day: dt.date,
    prices: Mapping[tuple[dt.date, str, int], PositionPrice],
    holdings_value: Decimal,
) -> tuple[tuple[object, ...], tuple[object, ...]]:
    """Decode a stored positions text (compact, or version 1's JSON) into the flat forms.

    Args:
        text: The ``positions`` column.
        day: The snapshot date.
        prices: The stored prices, by (snapshot date, ticker, variant).
        holdings_value: The snapshot's ``holdings_value``: a market value left out of the
            text is derived at its exponent (`derived_value`).

    Returns:
        The positions' flat fields, and their flat accounting fields (`position_books`:
        empty when no position has any).

    Raises:
        KeyError: A position refers to a price that is not stored (a damaged database).
    """
    if text.startswith("["):
        return flat_positions_from_json(text)
    flat: list[object] = []
    extend = flat.extend
    books: list[object] | None = None
    for n, position in enumerate(text.split(_RECORD)):
        fields = position.split(_FIELD)
        ticker = fields[0]
        count = len(fields)
        variant = int(fields[3]) if count > 3 and fields[3] else 0  # noqa: PLR2004
        price, price_date, currency, fx_rate, stale = prices[day, ticker, variant]
        quantity = Decimal(fields[1])
        extend(
            (
                ticker,
                quantity,
                price,
                price_date,
                Decimal(fields[2])
                if count > 2 and fields[2]  # noqa: PLR2004
                else derived_value(quantity, price, fx_rate, holdings_value),
                currency,
                fx_rate,
                stale,
            )
        )
        # The position's accounting fields follow the variant; fields after those are for
        # later versions of the position (see storage.md).
        if count > 4:  # noqa: PLR2004
            if books is None:
                books = list(_NO_POSITION_BOOKS * n)
            books += _position_books(fields)
        elif books is not None:
            books += _NO_POSITION_BOOKS
    return tuple(flat), () if books is None else _position_books_or_none(books)


# --- a snapshot's books: accounting fields and cash per currency ------------------------------


def has_books(s: PortfolioSnapshot) -> bool:
    """Whether `s` has an accounting field or cash balances, which the short write leaves out.

    The stores write a snapshot without them (the common one) with the statement of the
    columns they always wrote, so its write costs nothing more; its book columns are NULL.
    """
    return s.values[10:19] != _NO_COLUMN_BOOKS


def book_texts(s: PortfolioSnapshot) -> tuple[str | None, ...]:
    """Return the `BOOK_COLUMNS` of `s`: its accounting fields' texts, then its cash balances'.

    Raises:
        InvalidInputError: A field is neither None nor a Decimal, or a cash balance is not a
            `CashBalance` of Decimal amounts.
    """
    values = s.values
    return (
        *(
            optional_decimal_text(amount, name)
            for name, amount in zip(ACCOUNTING_FIELD_NAMES, values[10:18], strict=True)
        ),
        cash_balances_text(values[18]),
    )


def books_from_columns(
    columns: Sequence[object],
) -> tuple[
    Decimal | None,
    Decimal | None,
    Decimal | None,
    Decimal | None,
    Decimal | None,
    Decimal | None,
    Decimal | None,
    Decimal | None,
    tuple[CashBalance, ...],
]:
    """Read a snapshot's books from its `BOOK_COLUMNS` as text (none at all: no books)."""
    if not any(c is not None for c in columns):
        return _NO_COLUMN_BOOKS
    cb, ug, rg, dv, it, fe, tx, nt, cash = columns
    return (
        None if cb is None else Decimal(str(cb)),
        None if ug is None else Decimal(str(ug)),
        None if rg is None else Decimal(str(rg)),
        None if dv is None else Decimal(str(dv)),
        None if it is None else Decimal(str(it)),
        None if fe is None else Decimal(str(fe)),
        None if tx is None else Decimal(str(tx)),
        None if nt is None else Decimal(str(nt)),
        cash_balances_from_text(None if cash is None else str(cash)),
    )


def cash_balances_text(balances: Sequence[CashBalance]) -> str | None:
    """Return the ``cash_balances`` column of a snapshot's balances: None when there are none.

    Compact text, as positions: ``USD|100.00|100.00;EUR|50.00|54.13|1.0825``, one balance
    after another (``;``), each its currency, amount and value, then its FX rate and ``1`` for
    a stale rate, trailing empty fields left out. When a currency holds ``|`` or ``;``, a
    control character, or starts with ``[``, the balances go as a JSON array of objects
    instead, which readers tell by its first character.

    Raises:
        InvalidInputError: A balance is not a `CashBalance`, or an amount, value or rate is
            not a Decimal.
    """
    if not balances:
        return None
    rows: list[tuple[object, str, str, str | None, bool]] = []
    compact = True
    for balance in balances:
        if not isinstance(balance, CashBalance):
            raise InvalidInputError(
                f"cash_balances must hold CashBalance values, got {type(balance).__name__}"
            )
        currency, amount, value, fx_rate, stale = balance
        rows.append(
            (
                currency,
                decimal_text(amount, "cash_balances.amount"),
                decimal_text(value, "cash_balances.value"),
                optional_decimal_text(fx_rate, "cash_balances.fx_rate"),
                bool(stale),
            )
        )
        compact = compact and _compact_ticker(currency)
    if not compact:
        items = [
            {"currency": c, "amount": a, "value": v, "fx_rate": r, "stale": st}
            for c, a, v, r, st in rows
        ]
        try:
            return json.dumps(items, ensure_ascii=False, separators=(",", ":"))
        except TypeError as exc:
            raise InvalidInputError(f"cash_balances cannot be stored: {exc}") from exc
    return _RECORD.join(
        f"{c}{_FIELD}{a}{_FIELD}{v}{_FIELD}{r or ''}{_FIELD}{'1' if st else ''}".rstrip(_FIELD)
        for c, a, v, r, st in rows
    )


def cash_balances_from_text(text: str | None) -> tuple[CashBalance, ...]:
    """Read what `cash_balances_text` wrote (NULL: no balances)."""
    if text is None:
        return ()
    if text.startswith("["):
        items: list[dict[str, object]] = json.loads(text)
        return tuple(
            CashBalance(
                item["currency"],  # type: ignore[arg-type]
                Decimal(str(item["amount"])),
                Decimal(str(item["value"])),
                None if item.get("fx_rate") is None else Decimal(str(item["fx_rate"])),
                item.get("stale") is True,
            )
            for item in items
        )
    balances = []
    for balance in text.split(_RECORD):
        fields = balance.split(_FIELD)
        n = len(fields)
        balances.append(
            CashBalance(
                fields[0],
                Decimal(fields[1]),
                Decimal(fields[2]),
                Decimal(fields[3]) if n > 3 and fields[3] else None,  # noqa: PLR2004
                n > 4 and fields[4] == "1",  # noqa: PLR2004
            )
        )
    return tuple(balances)


def _price_day(item: tuple[PriceDay, object]) -> PriceDay:
    return item[0]


#: The amount columns of the books that a totals read selects (`DailyTotals`' order).
TOTALS_BOOK_COLUMNS: Final = BOOK_COLUMNS[:-1]
#: The code of the character that joins them in a totals read's one books column (U+001F,
#: which decimal text never holds).
BOOKS_JOINED_BY_CODE: Final = 31
_BOOKS_JOINED_BY: Final = chr(BOOKS_JOINED_BY_CODE)


def books_column_sql(char_function: str) -> str:
    """The SQL of a totals read's books column: NULL when the row has no book amount.

    Otherwise the eight amounts' texts (an empty one for NULL) joined by U+001F: a chart
    over thousands of days without books then reads, and tests, one NULL per day instead of
    eight (the driver's fetch and the building of each day's `DailyTotals` are that much
    shorter).

    Args:
        char_function: The dialect's function from a code to its character (``chr`` on
            PostgreSQL, ``char`` on SQLite).
    """
    none = " AND ".join(f"{c} IS NULL" for c in TOTALS_BOOK_COLUMNS)
    joined = f" || {char_function}({BOOKS_JOINED_BY_CODE}) || ".join(
        f"coalesce({c}, '')" for c in TOTALS_BOOK_COLUMNS
    )
    return f"CASE WHEN {none} THEN NULL ELSE {joined} END"


def totals_of_rows(
    portfolio_id: UUID, rows: Iterable[Sequence[Any]], date: Callable[[Any], dt.date] | None
) -> list[DailyTotals]:
    """Build the `DailyTotals` of one portfolio from a totals read's rows, by the chart's loop.

    Args:
        portfolio_id: The portfolio the rows are of.
        rows: ``(snapshot_date, currency, total_value, cash_balance, holdings_value,
            net_contributions, stale, external_flow, books)``, amounts as their decimal text
            (the order of `DailyTotals` after the key), and the books as `books_column_sql`
            selects them.
        date: Reads the driver's snapshot date (text on SQLite), or None when the driver
            returns `datetime.date` values (PostgreSQL).
    """
    # The hot loop of a chart, with everything bound locally; the named tuples are made by
    # `tuple.__new__`, which spares each its Python-level ``__new__`` (a third of the loop).
    number, new, make = Decimal, tuple.__new__, DailyTotals
    totals: list[DailyTotals] = []
    append = totals.append
    # A day's cash, net contributions and flow are mostly the day before's (they change with
    # a transaction, not with prices): an amount whose text is the day before's is its Decimal.
    cash_text: object = None
    net_text: object = None
    flow_text: object = None
    cash_value: Decimal | None = None
    net_value: Decimal | None = None
    flow_value: Decimal | None = None
    for day, currency, total, cash, holdings, net, stale, flow, books in rows:
        if books is not None:
            append(
                _booked(
                    portfolio_id,
                    day if date is None else date(day),
                    currency,
                    total,
                    cash,
                    holdings,
                    net,
                    stale,
                    flow,
                    books,
                )
            )
            continue
        if cash != cash_text:
            cash_text, cash_value = cash, number(cash)
        if net != net_text:
            net_text, net_value = net, None if net is None else number(net)
        if flow != flow_text:
            flow_text, flow_value = flow, None if flow is None else number(flow)
        append(
            new(
                make,
                (
                    portfolio_id,
                    day if date is None else date(day),
                    currency,
                    number(total),
                    cash_value,
                    number(holdings),
                    net_value,
                    bool(stale),
                    flow_value,
                    None,  # the eight book amounts, the usual day's: written out, not unpacked
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                ),
            )
        )
    return totals


def _booked(  # noqa: PLR0917 - a totals row's fields, in order
    portfolio_id: UUID,
    day: dt.date,
    currency: str,
    total: str,
    cash: str,
    holdings: str,
    net: str | None,
    stale: object,
    flow: str | None,
    books: str,
) -> DailyTotals:
    """Build the `DailyTotals` of a totals row that has books (see `books_column_sql`)."""
    texts = books.split(_BOOKS_JOINED_BY)
    if len(texts) != len(TOTALS_BOOK_COLUMNS):
        msg = f"the books of portfolio {portfolio_id} on {day} cannot be read: {books!r}"
        raise ValueError(msg)
    return DailyTotals(
        portfolio_id,
        day,
        currency,
        Decimal(total),
        Decimal(cash),
        Decimal(holdings),
        optional_decimal(net),
        bool(stale),
        optional_decimal(flow),
        *(Decimal(t) if t else None for t in texts),
    )


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
    keyed = [(s.values[0], s.values[1], s) for s in snapshots]
    if {type(pid) for pid, _, _ in keyed} <= _UUID:
        # UUIDs are equal and ordered as their integers are, which hash and compare in C.
        by_int = {(pid.int, day): s for pid, day, s in keyed}
        return [by_int[k] for k in sorted(by_int)]
    last = {(pid, day): s for pid, day, s in keyed}
    return [last[k] for k in sorted(last)]


_UUID: Final = frozenset({UUID})


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


# --- SQLite's errors --------------------------------------------------------------------------

# Primary result codes (https://sqlite.org/rescode.html) for "try again later": BUSY, LOCKED,
# and PROTOCOL (a race between WAL connections).
_SQLITE_BUSY_CODES: Final = frozenset({5, 6, 15})
_SQLITE_NOTE: Final = " (SQLite has no password)"
# Primary result codes for a file that cannot be used as it stands, and what to check.
_SQLITE_ACCESS: Final = {
    14: (  # CANTOPEN
        "SQLite cannot open the file",
        "that the directory exists, that the path names a file (not a directory), and that "
        "the process may read and write there" + _SQLITE_NOTE,
    ),
    26: (  # NOTADB
        "the file is not an SQLite database",
        "the path: it must name an SQLite database, or a file to create",
    ),
    3: (  # PERM
        "SQLite was denied access to the file",
        "the permissions of the file and its directory" + _SQLITE_NOTE,
    ),
    8: (  # READONLY, with every extended code (a read-only file, directory, -wal or -shm)
        "SQLite cannot write the file",
        "that the process may write the file, its directory and its -wal and -shm files"
        + _SQLITE_NOTE,
    ),
    23: (  # AUTH
        "the SQLite authorizer refused access",
        "the authorizer installed on the connection" + _SQLITE_NOTE,
    ),
}


def sqlite_error(exc: BaseException, path: str) -> Exception | None:
    """Return the library's error for an SQLite error, or None to raise `exc` itself.

    Locked and busy databases become `DatabaseBusyError` (transient); a file that cannot be
    opened, written or read as an SQLite database becomes `DatabaseAccessError` (never
    retried, whose message names `path` and what to check). Works on the standard library's
    `sqlite3.Error`, also as aiosqlite raises it, without importing a driver.

    Args:
        exc: The error SQLite raised.
        path: The database file, for the message.
    """
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(exc)
    lowered = text.lower()
    if (
        primary in _SQLITE_BUSY_CODES
        or "database is locked" in lowered
        or "database table is locked" in lowered
    ):
        return DatabaseBusyError(f"SQLite database is busy: {text}")
    if primary in _SQLITE_ACCESS:
        problem, check = _SQLITE_ACCESS[primary]
        return DatabaseAccessError(f"{problem} ({text})", database=path, check=check)
    return None
