"""The bad-input matrix: one table of bad values, each with what every door must make of it.

A `Case` is one kind of bad input. It reaches the library through up to two doors:

- **the job**: `portfolio` builds what a `PortfolioRepository` hands over for the culprit, or
  `quote` builds what a `MarketData` adapter answers for the culprit's own ticker; `job` is
  the expected outcome of a daily run (`Refused`: the culprit fails with that error class,
  whose message names `field`; `Accepted`: it is stored, with that total);
- **a parser**: `parsed` is the parser, the untrusted mapping and the expected outcome.
  Cases of the job whose value has a parser form derive it from the same value (`parse`).

Each case gets its own portfolio id and its own ticker (`culprit_id`, `culprit_ticker`), so one
daily run can carry every case at once and the report still tells them apart.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import types
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Literal

from portfolio_snapshots import Portfolio, PriceQuote
from portfolio_snapshots.errors import (
    CurrencyMismatchError,
    FutureTransactionError,
    InvalidPortfolioError,
    InvalidPriceError,
    InvalidTransactionError,
    MissingPriceError,
    UnknownTransactionKindError,
)

DAY = dt.date(2026, 11, 27)
#: Every good ticker's close on `DAY`.
PRICE = Decimal(10)
#: The cash of every culprit, unless the case changes it.
CASH = Decimal(100)
#: The quantity every culprit holds of its own ticker, unless the case changes it.
QUANTITY = Decimal(2)


@dataclasses.dataclass(frozen=True)
class Refused:
    """The value is refused with `error` (exactly that class), naming `field` when given.

    Through a parser, `field` is the start of the error's `field`; through the job, the
    failure's message holds ``field=``.
    """

    error: type[Exception]
    field: str | None = None


@dataclasses.dataclass(frozen=True)
class Accepted:
    """The value is accepted, as documented; through the job, the snapshot has `total`."""

    total: Decimal | None = None
    why: str = ""


Expect = Refused | Accepted
Parser = Literal["portfolio", "quote", "transaction"]
PortfolioMaker = Callable[[uuid.UUID, str], object]
QuoteMaker = Callable[[str], object]


@dataclasses.dataclass(frozen=True)
class Parsed:
    """A parser form: which parser, the mapping it is given, and what it must make of it."""

    parser: Parser
    data: Callable[[uuid.UUID, str], object]
    expect: Expect


@dataclasses.dataclass(frozen=True)
class Case:
    """One kind of bad input, and what each door it goes through must make of it."""

    name: str
    job: Expect | None = None
    portfolio: PortfolioMaker | None = None
    quote: QuoteMaker | None = None
    parsed: Parsed | None = None


def culprit_id(index: int) -> uuid.UUID:
    """Return the portfolio id of the case at `index` of `CASES`."""
    return uuid.UUID(int=0xBAD0000 + index)


def culprit_ticker(index: int) -> str:
    """Return the ticker the culprit of the case at `index` holds (priced at `PRICE`)."""
    return f"C{index}"


_KEEP = object()


def _portfolio(
    *,
    id_: object = _KEEP,
    cash: object = CASH,
    holdings: object = _KEEP,
    currency: object = "USD",
    net_contributions: object = None,
    external_flow: object = None,
) -> PortfolioMaker:
    def make(pid: uuid.UUID, ticker: str) -> object:
        if id_ is _KEEP:
            the_id: object = pid
        elif callable(id_):
            the_id = id_(pid)
        else:
            the_id = id_
        held = (
            {ticker: QUANTITY}
            if holdings is _KEEP
            else holdings(ticker)
            if callable(holdings)
            else holdings
        )
        return Portfolio(
            the_id,  # type: ignore[arg-type]
            cash,  # type: ignore[arg-type]
            held,  # type: ignore[arg-type]
            currency,  # type: ignore[arg-type]
            net_contributions,  # type: ignore[arg-type]
            external_flow,  # type: ignore[arg-type]
        )

    return make


def _as_data(make: PortfolioMaker) -> Callable[[uuid.UUID, str], object]:
    """The parser form of a portfolio: its fields as a mapping, values as they are."""

    def data(pid: uuid.UUID, ticker: str) -> object:
        p = make(pid, ticker)
        assert isinstance(p, Portfolio)
        return {
            "id": p.id,
            "cash_balance": p.cash_balance,
            "holdings": p.holdings,
            "currency": p.currency,
        }

    return data


def port(
    name: str,
    job: Expect,
    parse: Expect | None = None,
    **fields: object,
) -> Case:
    """A case of a portfolio's field; with `parse`, the same value through `parse_portfolio`."""
    make = _portfolio(**fields)
    parsed = None if parse is None else Parsed("portfolio", _as_data(make), parse)
    return Case(name, job, portfolio=make, parsed=parsed)


def quantity(value: object) -> Callable[[str], object]:
    """Holdings of the culprit's ticker in `value` (a bad quantity)."""
    return lambda ticker: {ticker: value}


def key(value: object) -> Callable[[str], object]:
    """Holdings of `value` (a bad ticker) in `QUANTITY`."""
    return lambda _ticker: {value: QUANTITY}


def _quote(
    *,
    price: object = PRICE,
    as_of: object = DAY,
    currency: object = "USD",
    ticker: object = _KEEP,
) -> QuoteMaker:
    return lambda t: PriceQuote(
        t if ticker is _KEEP else ticker,  # type: ignore[arg-type]
        price,  # type: ignore[arg-type]
        as_of,  # type: ignore[arg-type]
        currency,  # type: ignore[arg-type]
    )


def quote(name: str, job: Expect, parse: Expect | None = None, **fields: object) -> Case:
    """A case of a quote's field; with `parse`, the same value through `parse_price_quote`."""
    make = _quote(**fields)

    def data(_pid: uuid.UUID, ticker: str) -> object:
        q = make(ticker)
        assert isinstance(q, PriceQuote)
        return {"ticker": q.ticker, "price": q.price, "as_of": q.as_of, "currency": q.currency}

    parsed = None if parse is None else Parsed("quote", data, parse)
    return Case(name, job, quote=make, parsed=parsed)


def raw_quote(name: str, job: Expect, make: QuoteMaker) -> Case:
    """A case of something a market-data adapter answers that is not a `PriceQuote`."""
    return Case(name, job, quote=make)


def parsed(name: str, parser: Parser, data: Mapping[str, object], expect: Expect) -> Case:
    """A case of a parser only: untrusted data with no form the job could be handed."""
    return Case(name, parsed=Parsed(parser, lambda _pid, _ticker: data, expect))


def _good_portfolio_data(**changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "id": "00000000-0000-4000-8000-000000000001",
        "cash_balance": "100.00",
        "holdings": {"AAA": "2"},
        "currency": "USD",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not _DROP}


def _good_quote_data(**changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "ticker": "AAA",
        "price": "10.5",
        "as_of": "2026-11-27",
        "currency": "USD",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not _DROP}


def _buy(**changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "portfolio_id": "00000000-0000-4000-8000-000000000001",
        "trade_date": "2026-11-27",
        "kind": "buy",
        "ticker": "AAA",
        "quantity": "2",
        "price": "10.5",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not _DROP}


_DROP = object()
_IPE = InvalidPortfolioError
_PRICE = InvalidPriceError
_TX = InvalidTransactionError
_MISSING = MissingPriceError
_HELD = CASH + QUANTITY * PRICE  # a culprit's total when its value is accepted as it stands
_CASH_ONLY = CASH  # ... when its only holding counts for nothing


class _UUIDSubclass(uuid.UUID):
    __slots__ = ()


class _DecimalSubclass(Decimal):
    __slots__ = ()


def _lookalike(pid: uuid.UUID, ticker: str) -> object:
    """Not a Portfolio, with every field a Portfolio has."""
    return types.SimpleNamespace(
        id=pid,
        cash_balance=CASH,
        holdings={ticker: QUANTITY},
        currency="USD",
        net_contributions=None,
        external_flow=None,
        splits=None,
    )


CASES: list[Case] = [
    # --- the portfolio's id ---------------------------------------------------------------
    port("id: its UUID's text", Refused(_IPE, "id"), Accepted(), id_=str),
    port(
        "id: its UUID's text, upper case",
        Refused(_IPE, "id"),
        Accepted(),
        id_=lambda u: str(u).upper(),
    ),
    port("id: its UUID's 16 bytes", Refused(_IPE, "id"), id_=lambda u: u.bytes),
    port("id: text that is no UUID", Refused(_IPE, "id"), Refused(_IPE, "id"), id_="portfolio-7"),
    port("id: an int", Refused(_IPE, "id"), id_=7),
    port("id: None", Refused(_IPE, "id"), Refused(_IPE, "id"), id_=None),
    port(
        "id: a UUID subclass",
        Accepted(_HELD, why="a subclass of uuid.UUID is a UUID: asyncpg hands ids as one"),
        id_=lambda u: _UUIDSubclass(int=u.int),
    ),
    port("id: an empty string", Refused(_IPE, "id"), Refused(_IPE, "id"), id_=""),
    Case(
        "not a Portfolio: a look-alike with every field",
        Refused(_IPE, "portfolio"),
        portfolio=_lookalike,
    ),
    Case(
        "not a Portfolio: a dict",
        Refused(_IPE, "id"),
        portfolio=lambda pid, _t: {"id": pid, "cash_balance": CASH},
    ),
    Case("not a Portfolio: None", Refused(_IPE, "id"), portfolio=lambda _pid, _t: None),
    # --- cash --------------------------------------------------------------------------------
    port("cash: a float", Refused(_IPE, "cash_balance"), Refused(_IPE, "cash_balance"), cash=100.5),
    port(
        "cash: NaN",
        Refused(_IPE, "cash_balance"),
        Refused(_IPE, "cash_balance"),
        cash=Decimal("NaN"),
    ),
    port(
        "cash: sNaN",
        Refused(_IPE, "cash_balance"),
        Refused(_IPE, "cash_balance"),
        cash=Decimal("sNaN"),
    ),
    port(
        "cash: Infinity",
        Refused(_IPE, "cash_balance"),
        Refused(_IPE, "cash_balance"),
        cash=Decimal("Infinity"),
    ),
    port(
        "cash: -Infinity",
        Refused(_IPE, "cash_balance"),
        Refused(_IPE, "cash_balance"),
        cash=Decimal("-Infinity"),
    ),
    port(
        "cash: 1E+18",
        Refused(_IPE, "cash_balance"),
        Refused(_IPE, "cash_balance"),
        cash=Decimal("1E+18"),
    ),
    port(
        "cash: -1E+18",
        Refused(_IPE, "cash_balance"),
        Refused(_IPE, "cash_balance"),
        cash=Decimal("-1E+18"),
    ),
    port(
        "cash: 1E+99999999",
        Refused(_IPE, "cash_balance"),
        Refused(_IPE, "cash_balance"),
        cash=Decimal("1E+99999999"),
    ),
    port("cash: a str", Refused(_IPE, "cash_balance"), Accepted(), cash="100"),
    port("cash: an int", Refused(_IPE, "cash_balance"), Accepted(), cash=100),
    port("cash: None", Refused(_IPE, "cash_balance"), Refused(_IPE, "cash_balance"), cash=None),
    port("cash: a bool", Refused(_IPE, "cash_balance"), cash=True),
    port("cash: a Decimal subclass", Refused(_IPE, "cash_balance"), cash=_DecimalSubclass(100)),
    port(
        "cash: negative (an overdraft)",
        Accepted(Decimal(-5) + QUANTITY * PRICE),
        Accepted(),
        cash=Decimal(-5),
    ),
    port("cash: -0", Accepted(QUANTITY * PRICE), Accepted(), cash=Decimal("-0")),
    port(
        "cash: 25 decimal places",
        Accepted(Decimal("0.1234567890123456789012345") + QUANTITY * PRICE),
        Refused(_IPE, "cash_balance"),
        cash=Decimal("0.1234567890123456789012345"),
    ),
    port(
        "cash: an exponent (1E+3)",
        Accepted(Decimal(1000) + QUANTITY * PRICE),
        Accepted(),
        cash=Decimal("1E+3"),
    ),
    port(
        "cash: just below 1E+18",
        Accepted(Decimal("999999999999999999.99") + QUANTITY * PRICE),
        Accepted(),
        cash=Decimal("999999999999999999.99"),
    ),
    # --- the holdings container -------------------------------------------------------------
    port("holdings: None", Refused(_IPE, "holdings"), Refused(_IPE, "holdings"), holdings=None),
    port(
        "holdings: a list of pairs",
        Refused(_IPE, "holdings"),
        Refused(_IPE, "holdings"),
        holdings=lambda t: [(t, QUANTITY)],
    ),
    port(
        "holdings: a str",
        Refused(_IPE, "holdings"),
        Refused(_IPE, "holdings"),
        holdings=lambda t: t,
    ),
    port(
        "holdings: a tuple of pairs",
        Refused(_IPE, "holdings"),
        Refused(_IPE, "holdings"),
        holdings=lambda t: ((t, QUANTITY),),
    ),
    port(
        "holdings: a set of tickers",
        Refused(_IPE, "holdings"),
        Refused(_IPE, "holdings"),
        holdings=lambda t: {t},
    ),
    port("holdings: an int", Refused(_IPE, "holdings"), Refused(_IPE, "holdings"), holdings=3),
    port(
        "holdings: a read-only mapping",
        Accepted(_HELD),
        Accepted(),
        holdings=lambda t: types.MappingProxyType({t: QUANTITY}),
    ),
    port("holdings: empty", Accepted(_CASH_ONLY), Accepted(), holdings={}),
    # --- tickers -----------------------------------------------------------------------------
    port("ticker: empty", Refused(_IPE, "holdings"), Refused(_IPE, "holdings"), holdings=key("")),
    port(
        "ticker: white space only",
        Refused(_IPE, "holdings"),
        Refused(_IPE, "holdings"),
        holdings=key("   "),
    ),
    port(
        "ticker: padded on the left",
        Refused(_IPE, "holdings"),
        Refused(_IPE, "holdings"),
        holdings=key(" PADL"),
    ),
    port(
        "ticker: padded on the right",
        Refused(_IPE, "holdings"),
        Refused(_IPE, "holdings"),
        holdings=key("PADR "),
    ),
    port(
        "ticker: a no-break space in front",
        Refused(_IPE, "holdings"),
        Refused(_IPE, "holdings"),
        holdings=key("\u00a0NBSP"),
    ),
    port(
        "ticker: a NUL character",
        Refused(_IPE, "holdings"),
        Refused(_IPE, "holdings"),
        holdings=key("NU\x00L"),
    ),
    port(
        "ticker: a new line",
        Refused(_IPE, "holdings"),
        Refused(_IPE, "holdings"),
        holdings=key("NEW\nLINE"),
    ),
    port(
        "ticker: an escape character",
        Refused(_IPE, "holdings"),
        Refused(_IPE, "holdings"),
        holdings=key("ESC\x1b[0m"),
    ),
    port(
        "ticker: a zero-width space",
        Refused(_IPE, "holdings"),
        Refused(_IPE, "holdings"),
        holdings=key("ZERO\u200bWIDTH"),
    ),
    port(
        "ticker: a right-to-left override",
        Refused(_IPE, "holdings"),
        Refused(_IPE, "holdings"),
        holdings=key("\u202eRTL"),
    ),
    port(
        "ticker: a lone surrogate",
        Refused(_IPE, "holdings"),
        Refused(_IPE, "holdings"),
        holdings=key("SUR\ud800"),
    ),
    port(
        "ticker: 65 characters",
        Refused(_IPE, "holdings"),
        Refused(_IPE, "holdings"),
        holdings=key("L" * 65),
    ),
    port(
        "ticker: 10,000 characters",
        Refused(_IPE, "holdings"),
        Refused(_IPE, "holdings"),
        holdings=key("M" * 10_000),
    ),
    port("ticker: an int", Refused(_IPE, "holdings"), Refused(_IPE, "holdings"), holdings=key(7)),
    port("ticker: None", Refused(_IPE, "holdings"), Refused(_IPE, "holdings"), holdings=key(None)),
    port(
        "ticker: bytes",
        Refused(_IPE, "holdings"),
        Accepted(why="decoded as UTF-8 text"),
        holdings=key(b"BYTES"),
    ),
    port(
        "ticker: an int beside a str",
        Refused(_IPE, "holdings"),
        Refused(_IPE, "holdings"),
        holdings=lambda t: {t: QUANTITY, 8: QUANTITY},
    ),
    port(
        "ticker: full-width letters (no such ticker)",
        Refused(_MISSING),
        Accepted(),
        holdings=key("\uff26\uff37"),
    ),
    port(
        "ticker: an emoji (no such ticker)",
        Refused(_MISSING),
        Accepted(),
        holdings=key("\U0001f4c8"),
    ),
    port(
        "ticker: lower case (no such ticker)", Refused(_MISSING), Accepted(), holdings=key("lower")
    ),
    port(
        "ticker: exactly 64 characters (no such ticker)",
        Refused(_MISSING),
        Accepted(),
        holdings=key("X" * 64),
    ),
    port(
        "ticker: empty, held in zero",
        Accepted(_CASH_ONLY, "a zero holding is left out before its ticker is looked at"),
        Refused(_IPE, "holdings"),
        holdings=lambda _t: {"": Decimal(0)},
    ),
    # --- quantities --------------------------------------------------------------------------
    port(
        "quantity: a float",
        Refused(_IPE, "quantity"),
        Refused(_IPE, "holdings"),
        holdings=quantity(2.5),
    ),
    port(
        "quantity: NaN",
        Refused(_IPE, "quantity"),
        Refused(_IPE, "holdings"),
        holdings=quantity(Decimal("NaN")),
    ),
    port(
        "quantity: sNaN",
        Refused(_IPE, "quantity"),
        Refused(_IPE, "holdings"),
        holdings=quantity(Decimal("sNaN")),
    ),
    port(
        "quantity: Infinity",
        Refused(_IPE, "quantity"),
        Refused(_IPE, "holdings"),
        holdings=quantity(Decimal("Infinity")),
    ),
    port(
        "quantity: -Infinity",
        Refused(_IPE, "quantity"),
        Refused(_IPE, "holdings"),
        holdings=quantity(Decimal("-Infinity")),
    ),
    port(
        "quantity: negative",
        Refused(_IPE, "quantity"),
        Refused(_IPE, "holdings"),
        holdings=quantity(Decimal(-1)),
    ),
    port(
        "quantity: -0",
        Accepted(_CASH_ONLY, "-0 is zero: the holding is left out"),
        Accepted(),
        holdings=quantity(Decimal("-0")),
    ),
    port(
        "quantity: 1E+18",
        Refused(_IPE, "quantity"),
        Refused(_IPE, "holdings"),
        holdings=quantity(Decimal("1E+18")),
    ),
    port(
        "quantity: 1E+99999999",
        Refused(_IPE, "quantity"),
        Refused(_IPE, "holdings"),
        holdings=quantity(Decimal("1E+99999999")),
    ),
    port(
        "quantity: 25 decimal places",
        Accepted(CASH + Decimal(20)),
        Refused(_IPE, "holdings"),
        holdings=quantity(Decimal("2.0000000000000000000000001")),
    ),
    port(
        "quantity: 1E-30",
        Accepted(_CASH_ONLY),
        Refused(_IPE, "holdings"),
        holdings=quantity(Decimal("1E-30")),
    ),
    port("quantity: a str", Refused(_IPE, "quantity"), Accepted(), holdings=quantity("2")),
    port("quantity: an int", Refused(_IPE, "quantity"), Accepted(), holdings=quantity(2)),
    port(
        "quantity: None",
        Refused(_IPE, "quantity"),
        Refused(_IPE, "holdings"),
        holdings=quantity(None),
    ),
    port("quantity: a bool", Refused(_IPE, "quantity"), holdings=quantity(True)),  # noqa: FBT003
    port(
        "quantity: a Decimal subclass",
        Refused(_IPE, "quantity"),
        holdings=quantity(_DecimalSubclass(2)),
    ),
    Case(
        "quantity: zero, held at a bad price",
        Accepted(_CASH_ONLY, "a zero holding is left out before its price is looked at"),
        portfolio=_portfolio(holdings=quantity(Decimal(0))),
        quote=_quote(price=Decimal(-1)),
    ),
    # --- currencies --------------------------------------------------------------------------
    port("currency: empty", Refused(_IPE, "currency"), Refused(_IPE, "currency"), currency=""),
    port(
        "currency: lower case", Refused(_IPE, "currency"), Refused(_IPE, "currency"), currency="usd"
    ),
    port("currency: None", Refused(_IPE, "currency"), Refused(_IPE, "currency"), currency=None),
    port(
        "currency: two letters", Refused(_IPE, "currency"), Refused(_IPE, "currency"), currency="US"
    ),
    port(
        "currency: four letters",
        Refused(_IPE, "currency"),
        Refused(_IPE, "currency"),
        currency="USDD",
    ),
    port(
        "currency: its number (840)",
        Refused(_IPE, "currency"),
        Refused(_IPE, "currency"),
        currency=840,
    ),
    port(
        "currency: a non-ASCII letter",
        Refused(_IPE, "currency"),
        Refused(_IPE, "currency"),
        currency="\u00dcSD",
    ),
    port("currency: padded", Refused(_IPE, "currency"), Refused(_IPE, "currency"), currency=" USD"),
    port(
        "currency: bytes",
        Refused(_IPE, "currency"),
        Accepted(why="decoded as UTF-8 text"),
        currency=b"USD",
    ),
    port(
        "currency: another than its quotes', no FX",
        Refused(CurrencyMismatchError),
        Accepted(),
        currency="EUR",
    ),
    port(
        "currency: XXX, no holdings",
        Accepted(_CASH_ONLY, "a well-formed code not in ISO 4217's table has 2 places"),
        Accepted(),
        currency="XXX",
        holdings={},
    ),
    # --- net contributions and the day's external flow ---------------------------------------
    port("net_contributions: a float", Refused(_IPE, "net_contributions"), net_contributions=5.5),
    port(
        "net_contributions: NaN",
        Refused(_IPE, "net_contributions"),
        net_contributions=Decimal("NaN"),
    ),
    port(
        "net_contributions: Infinity",
        Refused(_IPE, "net_contributions"),
        net_contributions=Decimal("Infinity"),
    ),
    port("net_contributions: a str", Refused(_IPE, "net_contributions"), net_contributions="5"),
    port("net_contributions: an int", Refused(_IPE, "net_contributions"), net_contributions=5),
    port(
        "net_contributions: 1E+18",
        Refused(_IPE, "net_contributions"),
        net_contributions=Decimal("1E+18"),
    ),
    port(
        "net_contributions: 1E+99999999",
        Refused(_IPE, "net_contributions"),
        net_contributions=Decimal("1E+99999999"),
    ),
    port(
        "net_contributions: negative",
        Accepted(_HELD, "withdrawals above deposits"),
        net_contributions=Decimal(-50),
    ),
    port("external_flow: a float", Refused(_IPE, "external_flow"), external_flow=1.5),
    port("external_flow: sNaN", Refused(_IPE, "external_flow"), external_flow=Decimal("sNaN")),
    port(
        "external_flow: -Infinity",
        Refused(_IPE, "external_flow"),
        external_flow=Decimal("-Infinity"),
    ),
    port("external_flow: -1E+18", Refused(_IPE, "external_flow"), external_flow=Decimal("-1E+18")),
    port("external_flow: a bool", Refused(_IPE, "external_flow"), external_flow=False),
    # --- quotes from the market data ---------------------------------------------------------
    quote(
        "as_of: a datetime",
        Refused(_PRICE, "price_date"),
        Refused(_PRICE, "as_of"),
        as_of=dt.datetime(2026, 11, 27, tzinfo=dt.UTC),
    ),
    quote(
        "as_of: a naive datetime",
        Refused(_PRICE, "price_date"),
        Refused(_PRICE, "as_of"),
        as_of=dt.datetime(2026, 11, 27),  # noqa: DTZ001 - the point
    ),
    quote("as_of: None", Refused(_PRICE, "price_date"), Refused(_PRICE, "as_of"), as_of=None),
    quote("as_of: a str", Refused(_PRICE, "price_date"), Accepted(), as_of="2026-11-27"),
    quote(
        "as_of: an int (a timestamp)",
        Refused(_PRICE, "price_date"),
        Refused(_PRICE, "as_of"),
        as_of=1_764_201_600,
    ),
    quote(
        "as_of: the next day",
        Refused(_PRICE, "price_date"),
        Accepted(),
        as_of=DAY + dt.timedelta(days=1),
    ),
    quote(
        "as_of: a year later",
        Refused(_PRICE, "price_date"),
        Accepted(),
        as_of=DAY + dt.timedelta(days=365),
    ),
    quote(
        "as_of: a month old (stale)",
        Refused(_MISSING),
        Accepted(),
        as_of=DAY - dt.timedelta(days=30),
    ),
    quote(
        "price: zero",
        Accepted(CASH, "a zero close is a price: a delisted or worthless security"),
        Accepted(),
        price=Decimal(0),
    ),
    quote(
        "price: negative", Refused(_PRICE, "price"), Refused(_PRICE, "price"), price=Decimal(-10)
    ),
    quote("price: -0", Refused(_PRICE, "price"), Refused(_PRICE, "price"), price=Decimal("-0")),
    quote("price: a float", Refused(_PRICE, "price"), Refused(_PRICE, "price"), price=10.5),
    quote("price: NaN", Refused(_PRICE, "price"), Refused(_PRICE, "price"), price=Decimal("NaN")),
    quote("price: sNaN", Refused(_PRICE, "price"), Refused(_PRICE, "price"), price=Decimal("sNaN")),
    quote(
        "price: Infinity",
        Refused(_PRICE, "price"),
        Refused(_PRICE, "price"),
        price=Decimal("Infinity"),
    ),
    quote(
        "price: 1E+18", Refused(_PRICE, "price"), Refused(_PRICE, "price"), price=Decimal("1E+18")
    ),
    quote(
        "price: 1E+99", Refused(_PRICE, "price"), Refused(_PRICE, "price"), price=Decimal("1E+99")
    ),
    quote("price: a str", Refused(_PRICE, "price"), Accepted(), price="10"),
    quote("price: an int", Refused(_PRICE, "price"), Accepted(), price=10),
    quote("price: None", Refused(_PRICE, "price"), Refused(_PRICE, "price"), price=None),
    quote(
        "price: 25 decimal places",
        Accepted(CASH + Decimal(20)),
        Refused(_PRICE, "price"),
        price=Decimal("10.0000000000000000000000001"),
    ),
    quote(
        "quote currency: empty",
        Refused(_PRICE, "currency"),
        Refused(_PRICE, "currency"),
        currency="",
    ),
    quote(
        "quote currency: lower case",
        Refused(_PRICE, "currency"),
        Refused(_PRICE, "currency"),
        currency="usd",
    ),
    quote(
        "quote currency: None",
        Refused(_PRICE, "currency"),
        Refused(_PRICE, "currency"),
        currency=None,
    ),
    quote(
        "quote currency: another, no FX", Refused(CurrencyMismatchError), Accepted(), currency="EUR"
    ),
    quote(
        "quote ticker: another than the one asked for",
        Refused(_PRICE, "quote"),
        ticker="SOMETHING_ELSE",
    ),
    raw_quote(
        "quote: a dict",
        Refused(_PRICE, "quote"),
        lambda t: {"ticker": t, "price": PRICE, "as_of": DAY},
    ),
    raw_quote("quote: None", Refused(_PRICE, "quote"), lambda _t: None),
    raw_quote("quote: a Decimal", Refused(_PRICE, "quote"), lambda _t: PRICE),
    raw_quote(
        "quote: a tuple of its fields", Refused(_PRICE, "quote"), lambda t: (t, PRICE, DAY, "USD")
    ),
    # --- portfolios through the parser only ---------------------------------------------------
    parsed("portfolio: a list, not a mapping", "portfolio", ["id", "cash_balance"], Refused(_IPE)),  # type: ignore[arg-type]
    parsed("portfolio: None", "portfolio", None, Refused(_IPE)),  # type: ignore[arg-type]
    parsed("portfolio: no id", "portfolio", _good_portfolio_data(id=_DROP), Refused(_IPE, "id")),
    parsed(
        "portfolio: no cash",
        "portfolio",
        _good_portfolio_data(cash_balance=_DROP),
        Refused(_IPE, "cash_balance"),
    ),
    parsed("portfolio: no holdings", "portfolio", _good_portfolio_data(holdings=_DROP), Accepted()),
    parsed(
        "portfolio: an extra field",
        "portfolio",
        _good_portfolio_data(owner="me"),
        Refused(_IPE, "owner"),
    ),
    parsed(
        "portfolio: net contributions (not a parser field)",
        "portfolio",
        _good_portfolio_data(net_contributions="5"),
        Refused(_IPE, "net_contributions"),
    ),
    parsed(
        "portfolio: cash with a thousands separator",
        "portfolio",
        _good_portfolio_data(cash_balance="1,000.00"),
        Refused(_IPE, "cash_balance"),
    ),
    parsed(
        "portfolio: cash with a decimal comma",
        "portfolio",
        _good_portfolio_data(cash_balance="12,50"),
        Refused(_IPE, "cash_balance"),
    ),
    parsed(
        "portfolio: cash 'NaN'",
        "portfolio",
        _good_portfolio_data(cash_balance="NaN"),
        Refused(_IPE, "cash_balance"),
    ),
    parsed(
        "portfolio: cash 'Infinity'",
        "portfolio",
        _good_portfolio_data(cash_balance="Infinity"),
        Refused(_IPE, "cash_balance"),
    ),
    parsed(
        "portfolio: cash '1e3'", "portfolio", _good_portfolio_data(cash_balance="1e3"), Accepted()
    ),
    parsed(
        "portfolio: cash '1E+99999999'",
        "portfolio",
        _good_portfolio_data(cash_balance="1E+99999999"),
        Refused(_IPE, "cash_balance"),
    ),
    parsed(
        "portfolio: cash ''",
        "portfolio",
        _good_portfolio_data(cash_balance=""),
        Refused(_IPE, "cash_balance"),
    ),
    parsed(
        "portfolio: cash '$100'",
        "portfolio",
        _good_portfolio_data(cash_balance="$100"),
        Refused(_IPE, "cash_balance"),
    ),
    parsed(
        "portfolio: cash as a dict",
        "portfolio",
        _good_portfolio_data(cash_balance={"amount": "1"}),
        Refused(_IPE, "cash_balance"),
    ),
    parsed(
        "portfolio: a quantity as a nested dict",
        "portfolio",
        _good_portfolio_data(holdings={"AAA": {"q": "1"}}),
        Refused(_IPE, "holdings"),
    ),
    parsed(
        "portfolio: a quantity '1,000'",
        "portfolio",
        _good_portfolio_data(holdings={"AAA": "1,000"}),
        Refused(_IPE, "holdings"),
    ),
    parsed(
        "portfolio: a quantity '2e1'",
        "portfolio",
        _good_portfolio_data(holdings={"AAA": "2e1"}),
        Accepted(),
    ),
    parsed(
        "portfolio: a quantity '-0'",
        "portfolio",
        _good_portfolio_data(holdings={"AAA": "-0"}),
        Accepted(),
    ),
    parsed(
        "portfolio: an id as an int", "portfolio", _good_portfolio_data(id=1), Refused(_IPE, "id")
    ),
    parsed(
        "portfolio: an id with braces",
        "portfolio",
        _good_portfolio_data(id="{00000000-0000-4000-8000-000000000001}"),
        Accepted(),
    ),
    parsed(
        "portfolio: currency as a list",
        "portfolio",
        _good_portfolio_data(currency=["USD"]),
        Refused(_IPE, "currency"),
    ),
    # --- quotes through the parser only --------------------------------------------------------
    parsed("quote: a list, not a mapping", "quote", ["AAA", "10"], Refused(_PRICE)),  # type: ignore[arg-type]
    parsed("quote: no ticker", "quote", _good_quote_data(ticker=_DROP), Refused(_PRICE, "ticker")),
    parsed("quote: no as_of", "quote", _good_quote_data(as_of=_DROP), Refused(_PRICE, "as_of")),
    parsed(
        "quote: an extra field", "quote", _good_quote_data(source="feed"), Refused(_PRICE, "source")
    ),
    parsed(
        "quote: as_of a datetime's text",
        "quote",
        _good_quote_data(as_of="2026-11-27T00:00:00"),
        Refused(_PRICE, "as_of"),
    ),
    parsed(
        "quote: as_of a timestamp's text",
        "quote",
        _good_quote_data(as_of="1764201600"),
        Refused(_PRICE, "as_of"),
    ),
    parsed(
        "quote: as_of a float timestamp",
        "quote",
        _good_quote_data(as_of=1_764_201_600.0),
        Refused(_PRICE, "as_of"),
    ),
    parsed(
        "quote: as_of day first",
        "quote",
        _good_quote_data(as_of="27/11/2026"),
        Refused(_PRICE, "as_of"),
    ),
    parsed(
        "quote: as_of no such day",
        "quote",
        _good_quote_data(as_of="2026-02-30"),
        Refused(_PRICE, "as_of"),
    ),
    parsed(
        "quote: price with a thousands separator",
        "quote",
        _good_quote_data(price="1,000.5"),
        Refused(_PRICE, "price"),
    ),
    parsed(
        "quote: price '1E+99'", "quote", _good_quote_data(price="1E+99"), Refused(_PRICE, "price")
    ),
    parsed("quote: price '1.05e1'", "quote", _good_quote_data(price="1.05e1"), Accepted()),
    parsed("quote: ticker an int", "quote", _good_quote_data(ticker=7), Refused(_PRICE, "ticker")),
    # --- transactions through parse_transaction ---------------------------------------------
    parsed("transaction: a list, not a mapping", "transaction", ["buy"], Refused(_TX, "value")),  # type: ignore[arg-type]
    parsed(
        "transaction: a trade date as a timestamp's text",
        "transaction",
        _buy(trade_date="1764201600"),
        Refused(_TX, "trade_date"),
    ),
    parsed("transaction: no kind", "transaction", _buy(kind=_DROP), Refused(_TX, "kind")),
    parsed(
        "transaction: an unknown kind",
        "transaction",
        _buy(kind="steal"),
        Refused(UnknownTransactionKindError, "kind"),
    ),
    parsed(
        "transaction: a kind as an int",
        "transaction",
        _buy(kind=1),
        Refused(UnknownTransactionKindError, "kind"),
    ),
    parsed("transaction: a kind in upper case", "transaction", _buy(kind="BUY"), Accepted()),
    parsed(
        "transaction: no portfolio id",
        "transaction",
        _buy(portfolio_id=_DROP),
        Refused(_TX, "portfolio_id"),
    ),
    parsed(
        "transaction: a portfolio id that is no UUID",
        "transaction",
        _buy(portfolio_id="p-1"),
        Refused(_TX, "portfolio_id"),
    ),
    parsed(
        "transaction: a trade date as a timestamp",
        "transaction",
        _buy(trade_date=1_764_201_600),
        Refused(_TX, "trade_date"),
    ),
    parsed(
        "transaction: a trade date as a datetime",
        "transaction",
        _buy(trade_date=dt.datetime(2026, 11, 27, tzinfo=dt.UTC)),
        Refused(_TX, "trade_date"),
    ),
    parsed(
        "transaction: a trade date as a datetime's text",
        "transaction",
        _buy(trade_date="2026-11-27T10:00:00Z"),
        Refused(_TX, "trade_date"),
    ),
    parsed(
        "transaction: a quantity as a float",
        "transaction",
        _buy(quantity=2.0),
        Refused(_TX, "quantity"),
    ),
    parsed(
        "transaction: a quantity '1E+99999999'",
        "transaction",
        _buy(quantity="1E+99999999"),
        Refused(_TX, "quantity"),
    ),
    parsed(
        "transaction: a quantity 'NaN'",
        "transaction",
        _buy(quantity="NaN"),
        Refused(_TX, "quantity"),
    ),
    parsed(
        "transaction: a negative quantity",
        "transaction",
        _buy(quantity="-2"),
        Refused(_TX, "quantity"),
    ),
    parsed(
        "transaction: a price '1,000'", "transaction", _buy(price="1,000"), Refused(_TX, "price")
    ),
    parsed(
        "transaction: a fee 'Infinity'", "transaction", _buy(fee="Infinity"), Refused(_TX, "fee")
    ),
    parsed(
        "transaction: a currency in lower case",
        "transaction",
        _buy(currency="usd"),
        Refused(_TX, "currency"),
    ),
    parsed("transaction: an empty ticker", "transaction", _buy(ticker=""), Refused(_TX, "ticker")),
    parsed(
        "transaction: a ticker with a NUL",
        "transaction",
        _buy(ticker="A\x00B"),
        Refused(_TX, "ticker"),
    ),
    parsed(
        "transaction: a buy without a ticker",
        "transaction",
        _buy(ticker=_DROP),
        Refused(_TX, "ticker"),
    ),
    parsed("transaction: an extra field", "transaction", _buy(note="hi"), Refused(_TX, "note")),
    parsed(
        "transaction: a split ratio of zero",
        "transaction",
        {
            "portfolio_id": "00000000-0000-4000-8000-000000000001",
            "trade_date": "2026-11-27",
            "kind": "split",
            "ticker": "AAA",
            "ratio": "0",
        },
        Refused(_TX, "ratio"),
    ),
    parsed(
        "transaction: dated after today",
        "transaction",
        _buy(trade_date="2026-11-28"),
        Refused(FutureTransactionError, "trade_date"),
    ),
]
