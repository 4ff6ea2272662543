"""End-of-day closes and FX rates from CSV files: `CsvMarketData` and `CsvFxRates`.

The files users actually have: one row per close, with a header naming the columns.

Closes (`CsvMarketData`)::

    date,ticker,close,currency
    2025-06-27,ACME,101.25,USD
    2025-06-27,BRLN,48.10,EUR

Rates (`CsvFxRates`), units of `quote` per unit of `base`::

    date,base,quote,rate
    2025-06-27,EUR,USD,1.0843

Either takes one file or a folder (every ``*.csv`` file directly in it, in name order). The
files are read once, when the adapter is built, checked row by row and indexed by ticker (or
pair) and date: a request is a binary search, never a scan of the file. Columns are matched by
name, case and surrounding spaces aside, in any order; other columns are ignored. A file may
start with a UTF-8 byte-order mark (as spreadsheets write).

Each row is checked where it enters: a date written ``YYYY-MM-DD``, a plain decimal number
(``1234.50``: no thousands separator, no exponent; a rate above zero, a close zero or above,
since a delisted security's close of zero is a price), an ISO 4217 currency code, no
second row for the same ticker (or pair) and date in any of the files. The first row that
fails raises `MalformedFileError` naming the file, the line and the field.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, cast

from portfolio_snapshots._domain import QUOTE_MINOR_UNITS, FxQuote, PriceQuote
from portfolio_snapshots._errors import MalformedFileError
from portfolio_snapshots.adapters.memory import InMemoryFxRates, InMemoryMarketData
from portfolio_snapshots.adapters.splits import unadjust_splits

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
    from fractions import Fraction

    from portfolio_snapshots._ports import MarketData, PriceHistory

__all__ = ["ISO_4217_CODES", "CsvFxRates", "CsvMarketData"]

#: The active ISO 4217 currency codes: the currencies a file may name unless told otherwise.
ISO_4217_CODES: frozenset[str] = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD
    BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP
    DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR
    IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD
    MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB
    PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD
    SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS
    VED VES VND VUV WST XAF XAG XAU XCD XCG XDR XOF XPD XPF XPT YER ZAR ZMW ZWG ZWL
    """.split()  # noqa: SIM905 - a table of codes reads better than 170 quoted strings
)

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_NUMBER = re.compile(r"\d+(\.\d+)?")
_MAX_TICKER = 64


class _Rows:
    """Reads the rows of one CSV file as ``(line, {column: text})``, checking the header."""

    def __init__(self, path: Path, required: Sequence[str], optional: Sequence[str]) -> None:
        self.path = path
        self.name = os.fspath(path)
        self.required = required
        self.optional = optional

    def error(
        self, reason: str, line: int | None, field: str | None = None, value: object = None
    ) -> MalformedFileError:
        return MalformedFileError(reason, path=self.name, line=line, field=field, value=value)

    def __iter__(self) -> Iterator[tuple[int, dict[str, str]]]:
        with self.path.open(newline="", encoding="utf-8-sig") as file:
            reader = csv.reader(file)
            header = next(reader, None)
            if header is None:
                raise self.error("the file is empty; it needs a header line", None)
            columns = [name.strip().lower() for name in header]
            for name in self.required:
                if name not in columns:
                    raise self.error(
                        f"the header has no {name!r} column "
                        f"(it has: {', '.join(columns) or 'nothing'})",
                        reader.line_num,
                        name,
                    )
            wanted = {
                name: columns.index(name)
                for name in (*self.required, *self.optional)
                if name in columns
            }
            for row in reader:
                if not row or all(not cell.strip() for cell in row):
                    continue  # blank lines are allowed
                if len(row) != len(columns):
                    raise self.error(
                        f"the row has {len(row)} fields but the header names {len(columns)}"
                        " (an unquoted thousands separator, or a missing comma?)",
                        reader.line_num,
                    )
                yield reader.line_num, {name: row[i].strip() for name, i in wanted.items()}


def _files(path: str | os.PathLike[str]) -> list[Path]:
    """The file itself, or every ``*.csv`` directly in the folder, in name order."""
    root = Path(path)
    if root.is_dir():
        files = sorted(p for p in root.iterdir() if p.suffix.lower() == ".csv" and p.is_file())
        if not files:
            raise MalformedFileError("the folder holds no .csv file", path=os.fspath(root))
        return files
    if not root.is_file():
        raise FileNotFoundError(f"no such file or folder: {os.fspath(root)!r}")
    return [root]


def _date(rows: _Rows, line: int, text: str) -> dt.date:
    if _DATE.fullmatch(text):
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            pass
    raise rows.error("must be a date written YYYY-MM-DD", line, "date", text)


def _number(rows: _Rows, line: int, field: str, text: str, *, zero: bool = False) -> Decimal:
    """Read a plain decimal number above zero (or zero too, with `zero`)."""
    bound = "zero or above" if zero else "above zero"
    if "," in text:
        raise rows.error(
            "thousands separators and decimal commas are not accepted: "
            "write a plain number such as 1234.50",
            line,
            field,
            text,
        )
    if text.startswith("-") and _NUMBER.fullmatch(text[1:]):
        raise rows.error(f"must be {bound}", line, field, text)
    if not _NUMBER.fullmatch(text):
        raise rows.error("must be a plain decimal number such as 123.45", line, field, text)
    try:
        value = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid numbers
        raise rows.error("must be a plain decimal number", line, field, text) from None
    if value < 0 or (value == 0 and not zero):
        raise rows.error(f"must be {bound}", line, field, text)
    return value


def _currency(rows: _Rows, line: int, field: str, text: str, known: Collection[str]) -> str:
    if text not in known:
        raise rows.error(
            "is not a known currency: write its ISO 4217 code (USD, EUR, ...)", line, field, text
        )
    return text


def _where(rows: _Rows, line: int) -> str:
    return f"{rows.name}, line {line}"


class CsvMarketData:
    """A `MarketData` (and `PriceHistory`) over end-of-day closes read from CSV files.

    The columns are ``date``, ``ticker``, ``close`` and ``currency`` (the last may be left
    out when `default_currency` is given). Every file is read and checked when the adapter
    is built; requests are then answered from an index, like `InMemoryMarketData`'s:
    `get_prices` gives each ticker's latest close dated on or before the date, and
    `get_price_history` every close of a date range.

    Split-adjusted files (most providers' downloads divide every close before a split by its
    ratio) are served as traded through `unadjust_splits`: pass ``split_adjusted=True`` and
    the splits (``ledger_splits(transactions)`` gives the ledger's). The files are taken to be
    adjusted for every split up to their last date, unless `adjusted_as_of` says otherwise.

    Args:
        path: A CSV file, or a folder whose ``*.csv`` files are all read.
        split_adjusted: Whether the closes before a split were divided by its ratio.
        splits: Per ticker, its splits as ``(ex_date, ratio)`` (needed when
            `split_adjusted`).
        adjusted_as_of: The date the files were last adjusted (their last date by default).
        default_currency: The currency of every close when the files have no ``currency``
            column (None: the column is required).
        currencies: The currency codes a file may name (`ISO_4217_CODES` and the minor units
            of `QUOTE_MINOR_UNITS`, such as ``GBp``, by default).

    Raises:
        MalformedFileError: A file has no header or lacks a column, or a row has a bad
            date, number, currency or ticker, or repeats a ticker and date; the error names
            the file, the line and the field.
        FileNotFoundError: `path` does not exist.
        ValueError: ``split_adjusted`` without `splits`, or a split ratio that is not a
            Fraction or a finite Decimal, above zero.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        split_adjusted: bool = False,
        splits: Mapping[str, Iterable[tuple[dt.date, Fraction | Decimal]]] | None = None,
        adjusted_as_of: dt.date | None = None,
        default_currency: str | None = None,
        currencies: Collection[str] | None = None,
    ) -> None:
        if split_adjusted and splits is None:
            raise ValueError("split_adjusted=True needs the splits to undo (splits=...)")
        known = (
            ISO_4217_CODES | QUOTE_MINOR_UNITS.keys()
            if currencies is None
            else frozenset(currencies)
        )
        if default_currency is not None and default_currency not in known:
            raise ValueError(f"default_currency {default_currency!r} is not a known currency")
        self.files: tuple[str, ...] = tuple(os.fspath(f) for f in _files(path))
        closes = InMemoryMarketData()
        seen: dict[tuple[str, dt.date], str] = {}
        last: dt.date | None = None
        first: dt.date | None = None
        optional = ("currency",) if default_currency is not None else ()
        required = ("date", "ticker", "close") + (() if optional else ("currency",))
        for file in self.files:
            rows = _Rows(Path(file), required, optional)
            for line, row in rows:
                day = _date(rows, line, row["date"])
                ticker = row["ticker"]
                if not ticker or len(ticker) > _MAX_TICKER:
                    raise rows.error(
                        f"must be 1 to {_MAX_TICKER} characters", line, "ticker", ticker
                    )
                price = _number(rows, line, "close", row["close"], zero=True)
                text = row.get("currency") or default_currency
                currency = _currency(rows, line, "currency", text or "", known)
                earlier = seen.get((ticker, day))
                if earlier is not None:
                    raise rows.error(
                        f"a second close of {ticker!r} on that date (the first is at {earlier})",
                        line,
                        "date",
                        row["date"],
                    )
                seen[ticker, day] = _where(rows, line)
                closes.add(PriceQuote(ticker, price, day, currency))
                first = day if first is None or day < first else first
                last = day if last is None or day > last else last
        self.first_date = first
        self.last_date = last
        self.tickers: frozenset[str] = frozenset(t for t, _ in seen)
        source: MarketData = closes
        if split_adjusted:
            source = unadjust_splits(closes, splits or {}, adjusted_as_of=adjusted_as_of or last)
        self._prices = source
        # unadjust_splits keeps the history capability of the in-memory index it wraps
        self._history = cast("PriceHistory", source)

    async def get_prices(self, tickers: Collection[str], as_of: dt.date) -> dict[str, PriceQuote]:
        """Return each ticker's latest close dated on or before `as_of` (absent if none)."""
        return dict(await self._prices.get_prices(tickers, as_of))

    async def get_price_history(
        self, tickers: Collection[str], start: dt.date, end: dt.date
    ) -> dict[str, list[PriceQuote]]:
        """Return every close dated from `start` to `end` inclusive, by ticker, by date."""
        history = await self._history.get_price_history(tickers, start, end)
        return {ticker: list(quotes) for ticker, quotes in history.items()}


class CsvFxRates:
    """An `FxRates` (and `FxRateHistory`) over exchange rates read from CSV files.

    The columns are ``date``, ``base``, ``quote`` and ``rate`` (units of `quote` per unit of
    `base`). Every file is read and checked when the adapter is built; requests are answered
    from an index, like `InMemoryFxRates`'s: a pair stored only the other way round is
    answered with the inverted rate, and identity pairs with 1.

    Args:
        path: A CSV file, or a folder whose ``*.csv`` files are all read.
        currencies: The currency codes a file may name (`ISO_4217_CODES` by default).

    Raises:
        MalformedFileError: A file has no header or lacks a column, or a row has a bad
            date, rate or currency, names the same currency twice, or repeats a pair and
            date; the error names the file, the line and the field.
        FileNotFoundError: `path` does not exist.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, currencies: Collection[str] | None = None
    ) -> None:
        known = ISO_4217_CODES if currencies is None else frozenset(currencies)
        self.files: tuple[str, ...] = tuple(os.fspath(f) for f in _files(path))
        rates = InMemoryFxRates()
        seen: dict[tuple[str, str, dt.date], str] = {}
        for file in self.files:
            rows = _Rows(Path(file), ("date", "base", "quote", "rate"), ())
            for line, row in rows:
                day = _date(rows, line, row["date"])
                base = _currency(rows, line, "base", row["base"], known)
                quote = _currency(rows, line, "quote", row["quote"], known)
                if base == quote:
                    raise rows.error("names the base currency again", line, "quote", quote)
                rate = _number(rows, line, "rate", row["rate"])
                earlier = seen.get((base, quote, day))
                if earlier is not None:
                    raise rows.error(
                        f"a second {base}/{quote} rate on that date (the first is at {earlier})",
                        line,
                        "date",
                        row["date"],
                    )
                seen[base, quote, day] = _where(rows, line)
                rates.add(FxQuote(base, quote, rate, day))
        self.pairs: frozenset[tuple[str, str]] = frozenset((b, q) for b, q, _ in seen)
        self._rates = rates

    async def get_rates(
        self, pairs: Collection[tuple[str, str]], as_of: dt.date
    ) -> dict[tuple[str, str], FxQuote]:
        """Return each pair's latest rate dated on or before `as_of`, direct or inverted."""
        return await self._rates.get_rates(pairs, as_of)

    async def get_rate_history(
        self, pairs: Collection[tuple[str, str]], start: dt.date, end: dt.date
    ) -> dict[tuple[str, str], list[FxQuote]]:
        """Return every rate stored under each pair, dated from `start` to `end` inclusive."""
        return await self._rates.get_rate_history(pairs, start, end)
