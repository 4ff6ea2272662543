"""`CsvMarketData` and `CsvFxRates`: the market-data contract, split-adjusted files, bad rows."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import tempfile
import unittest
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from portfolio_snapshots import InMemoryMarketData, PriceQuote
from portfolio_snapshots.adapters.csv import CsvFxRates, CsvMarketData
from portfolio_snapshots.errors import MalformedFileError
from portfolio_snapshots.history import FxQuote
from portfolio_snapshots.testing import MarketDataContract, check_market_data

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Collection, Sequence

    from portfolio_snapshots import MarketData

HEADER = "date,ticker,close,currency\n"


def _rows(quotes: Sequence[PriceQuote]) -> str:
    return "".join(f"{q.as_of},{q.ticker},{q.price},{q.currency}\n" for q in quotes)


@contextlib.asynccontextmanager
async def _csv_file(quotes: Sequence[PriceQuote]) -> AsyncIterator[MarketData]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "closes.csv"
        path.write_text(HEADER + _rows(quotes), encoding="utf-8")
        yield CsvMarketData(path)


@contextlib.asynccontextmanager
async def _csv_folder(quotes: Sequence[PriceQuote]) -> AsyncIterator[MarketData]:
    """One file per ticker, columns in another order, a byte-order mark and a blank line."""
    with tempfile.TemporaryDirectory() as folder:
        for ticker in sorted({q.ticker for q in quotes}):
            lines = [
                f"{q.currency},{q.price},{q.ticker},{q.as_of}" for q in quotes if q.ticker == ticker
            ]
            text = "\ufeff Currency , CLOSE,ticker,Date\n" + "\n".join(lines) + "\n\n"
            (Path(folder) / f"{ticker}.csv").write_text(text, encoding="utf-8")
        yield CsvMarketData(folder)


class TestCsvFile(MarketDataContract):
    """`MarketDataContract` on a `CsvMarketData` over one file."""

    def make_market_data(
        self, quotes: Sequence[PriceQuote]
    ) -> contextlib.AbstractAsyncContextManager[MarketData]:
        return _csv_file(quotes)


class TestCsvFolder(MarketDataContract):
    """`MarketDataContract` on a `CsvMarketData` over a folder of files."""

    def make_market_data(
        self, quotes: Sequence[PriceQuote]
    ) -> contextlib.AbstractAsyncContextManager[MarketData]:
        return _csv_folder(quotes)


class TestInMemory(MarketDataContract):
    """`MarketDataContract` on the in-memory reference fake."""

    def make_market_data(
        self, quotes: Sequence[PriceQuote]
    ) -> contextlib.AbstractAsyncContextManager[MarketData]:
        return contextlib.nullcontext(InMemoryMarketData(quotes))


def test_the_check_function_passes_the_shipped_adapters() -> None:
    """`check_market_data` runs the whole contract without pytest on both adapters."""
    check_market_data(lambda quotes: contextlib.nullcontext(InMemoryMarketData(quotes)))
    check_market_data(_csv_file)


class _FromTheFuture(InMemoryMarketData):
    """Breaks the contract: answers with the first close of a ticker, whatever the date."""

    async def get_prices(self, tickers: Collection[str], as_of: dt.date) -> dict[str, PriceQuote]:
        history = await self.get_price_history(tickers, dt.date.min, dt.date.max)
        return {t: quotes[0] for t, quotes in history.items()}


def test_the_contract_catches_a_close_from_the_future() -> None:
    """An adapter that answers with closes dated after the request fails the contract."""
    with pytest.raises(AssertionError, match="conformance check MarketDataContract"):
        check_market_data(lambda quotes: contextlib.nullcontext(_FromTheFuture(quotes)))


class _NoHistory:
    def __init__(self, quotes: Sequence[PriceQuote]) -> None:
        self._inner = InMemoryMarketData(quotes)

    async def get_prices(self, tickers: Collection[str], as_of: dt.date) -> dict[str, PriceQuote]:
        return await self._inner.get_prices(tickers, as_of)


def test_an_adapter_without_history_skips_only_the_history_checks() -> None:
    """The `PriceHistory` checks skip for an adapter that lacks the capability; the rest run."""
    check_market_data(lambda quotes: contextlib.nullcontext(_NoHistory(quotes)))
    with pytest.raises(unittest.SkipTest, match="does not offer PriceHistory"):
        _Bound().test_history_of_one_day()


class _Bound(MarketDataContract):
    def make_market_data(
        self, quotes: Sequence[PriceQuote]
    ) -> contextlib.AbstractAsyncContextManager[MarketData]:
        return contextlib.nullcontext(_NoHistory(quotes))


def _write(tmp_path: Path, text: str, name: str = "closes.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _prices(market: CsvMarketData, tickers: list[str], day: dt.date) -> dict[str, PriceQuote]:
    return asyncio.run(market.get_prices(tickers, day))


def test_split_adjusted_closes_are_served_as_traded(tmp_path: Path) -> None:
    """With ``split_adjusted``, closes before a 4-for-1 split come back multiplied by 4."""
    path = _write(
        tmp_path,
        HEADER
        + "2024-09-12,ACME,103.10,USD\n2024-09-13,ACME,104.00,USD\n2024-09-16,ACME,105.25,USD\n",
    )
    split = dt.date(2024, 9, 16)
    market = CsvMarketData(path, split_adjusted=True, splits={"ACME": [(split, Decimal(4))]})
    assert _prices(market, ["ACME"], dt.date(2024, 9, 13))["ACME"].price == Decimal("416.00")
    assert _prices(market, ["ACME"], split)["ACME"].price == Decimal("105.25")
    history = asyncio.run(market.get_price_history(["ACME"], dt.date(2024, 9, 12), split))
    assert [q.price for q in history["ACME"]] == [
        Decimal("412.40"),
        Decimal("416.00"),
        Decimal("105.25"),
    ]
    as_is = CsvMarketData(path)
    assert _prices(as_is, ["ACME"], dt.date(2024, 9, 13))["ACME"].price == Decimal("104.00")


def test_a_zero_close_is_read_as_a_price(tmp_path: Path) -> None:
    """A close of zero (a delisted security) is a price, not a malformed row."""
    path = _write(tmp_path, HEADER + "2024-09-12,ACME,3.10,USD\n2024-09-13,ACME,0,USD\n")
    market = CsvMarketData(path)
    assert _prices(market, ["ACME"], dt.date(2024, 9, 13))["ACME"].price == Decimal(0)


def test_a_split_after_the_files_last_date_is_not_undone(tmp_path: Path) -> None:
    """The files count as adjusted up to their last date: a later split leaves them alone."""
    path = _write(tmp_path, HEADER + "2024-09-13,ACME,104.00,USD\n")
    market = CsvMarketData(
        path, split_adjusted=True, splits={"ACME": [(dt.date(2024, 12, 2), Decimal(4))]}
    )
    assert _prices(market, ["ACME"], dt.date(2024, 9, 13))["ACME"].price == Decimal("104.00")


def test_split_adjusted_needs_the_splits(tmp_path: Path) -> None:
    """``split_adjusted=True`` without splits is refused at once."""
    path = _write(tmp_path, HEADER + "2024-09-13,ACME,104.00,USD\n")
    with pytest.raises(ValueError, match="splits"):
        CsvMarketData(path, split_adjusted=True)


def test_the_files_are_read_once(tmp_path: Path) -> None:
    """Requests are answered from the index built at start: the files may go away after."""
    path = _write(tmp_path, HEADER + "2024-09-13,ACME,104.00,USD\n2024-09-13,BRLN,48.10,EUR\n")
    market = CsvMarketData(path)
    path.unlink()
    assert _prices(market, ["ACME", "BRLN"], dt.date(2024, 9, 20))["BRLN"] == PriceQuote(
        "BRLN", Decimal("48.10"), dt.date(2024, 9, 13), "EUR"
    )
    assert market.tickers == {"ACME", "BRLN"}
    assert (market.first_date, market.last_date) == (dt.date(2024, 9, 13), dt.date(2024, 9, 13))


def test_a_file_without_currency_column_takes_the_default(tmp_path: Path) -> None:
    """With `default_currency`, the currency column may be left out."""
    path = _write(tmp_path, "date,ticker,close,volume\n2024-09-13,ACME,104.00,1200\n")
    market = CsvMarketData(path, default_currency="USD")
    assert _prices(market, ["ACME"], dt.date(2024, 9, 13))["ACME"].currency == "USD"
    with pytest.raises(MalformedFileError, match="no 'currency' column"):
        CsvMarketData(path)


MALFORMED = [
    pytest.param(
        "date,ticker,price,currency\n2024-09-13,ACME,104.00,USD\n",
        1,
        "close",
        None,
        "the header has no 'close' column",
        id="missing-column",
    ),
    pytest.param(
        HEADER + "2024-09-13,ACME,104.00,USD\n13/09/2024,ACME,105.00,USD\n",
        3,
        "date",
        "13/09/2024",
        "must be a date written YYYY-MM-DD",
        id="bad-date",
    ),
    pytest.param(
        HEADER + "2024-02-30,ACME,105.00,USD\n",
        2,
        "date",
        "2024-02-30",
        "must be a date written YYYY-MM-DD",
        id="impossible-date",
    ),
    pytest.param(
        HEADER + '2024-09-13,ACME,"1,234.50",USD\n',
        2,
        "close",
        "1,234.50",
        "thousands separators",
        id="thousands-separator",
    ),
    pytest.param(
        HEADER + "2024-09-13,ACME,1,234.50,USD\n",
        2,
        None,
        None,
        "the row has 5 fields but the header names 4",
        id="unquoted-thousands-separator",
    ),
    pytest.param(
        HEADER + "2024-09-13,ACME,1.2e3,USD\n",
        2,
        "close",
        "1.2e3",
        "must be a plain decimal number",
        id="exponent",
    ),
    pytest.param(
        HEADER + "2024-09-13,ACME,-0.50,USD\n",
        2,
        "close",
        "-0.50",
        "must be zero or above",
        id="negative-price",
    ),
    pytest.param(
        HEADER
        + "2024-09-13,ACME,104.00,USD\n2024-09-16,ACME,105.00,USD\n2024-09-13,ACME,104.50,USD\n",
        4,
        "date",
        "2024-09-13",
        "a second close of 'ACME' on that date (the first is at ",
        id="duplicate-date",
    ),
    pytest.param(
        HEADER + "2024-09-13,ACME,104.00,XYZ\n",
        2,
        "currency",
        "XYZ",
        "is not a known currency",
        id="unknown-currency",
    ),
    pytest.param(
        HEADER + "2024-09-13,,104.00,USD\n",
        2,
        "ticker",
        "",
        "must be 1 to 64 characters",
        id="empty-ticker",
    ),
]


@pytest.mark.parametrize(("text", "line", "field", "value", "reason"), MALFORMED)
def test_a_malformed_file_names_the_file_line_and_field(
    tmp_path: Path, text: str, line: int, field: str | None, value: str | None, reason: str
) -> None:
    """Each kind of bad row raises one `MalformedFileError` that names where and what."""
    path = _write(tmp_path, text)
    with pytest.raises(MalformedFileError) as raised:
        CsvMarketData(path)
    error = raised.value
    assert (error.path, error.line, error.field, error.value) == (str(path), line, field, value)
    assert reason in str(error)
    assert str(error).startswith(f"{path}, line {line}: ")
    assert isinstance(error, ValueError)


def test_a_duplicate_across_files_names_both(tmp_path: Path) -> None:
    """The same ticker and date in two files of a folder is an error naming both places."""
    _write(tmp_path, HEADER + "2024-09-13,ACME,104.00,USD\n", "a.csv")
    second = _write(
        tmp_path, HEADER + "2024-09-12,ACME,103.00,USD\n2024-09-13,ACME,104.00,USD\n", "b.csv"
    )
    with pytest.raises(MalformedFileError) as raised:
        CsvMarketData(tmp_path)
    assert (raised.value.path, raised.value.line) == (str(second), 3)
    assert f"{tmp_path / 'a.csv'}, line 2" in str(raised.value)


def test_an_empty_file_or_folder_is_refused(tmp_path: Path) -> None:
    """A file without a header, or a folder without CSV files, raises a clear error."""
    with pytest.raises(MalformedFileError, match=r"holds no \.csv file"):
        CsvMarketData(tmp_path)
    path = _write(tmp_path, "")
    with pytest.raises(MalformedFileError, match="the file is empty"):
        CsvMarketData(path)
    with pytest.raises(FileNotFoundError):
        CsvMarketData(tmp_path / "nope.csv")


FX_HEADER = "date,base,quote,rate\n"


def test_fx_rates_on_or_before_direct_and_inverted(tmp_path: Path) -> None:
    """`CsvFxRates` answers the latest rate on or before the date, either way round."""
    path = _write(
        tmp_path, FX_HEADER + "2024-09-12,EUR,USD,1.1000\n2024-09-16,EUR,USD,1.1250\n", "fx.csv"
    )
    rates = CsvFxRates(path)
    got = asyncio.run(
        rates.get_rates([("EUR", "USD"), ("USD", "EUR"), ("GBP", "USD")], dt.date(2024, 9, 15))
    )
    assert got[("EUR", "USD")] == FxQuote("EUR", "USD", Decimal("1.1000"), dt.date(2024, 9, 12))
    assert got[("USD", "EUR")].as_of == dt.date(2024, 9, 12)
    assert got[("USD", "EUR")].rate * Decimal("1.1") == Decimal(1)
    assert ("GBP", "USD") not in got
    history = asyncio.run(
        rates.get_rate_history([("EUR", "USD")], dt.date(2024, 9, 13), dt.date(2024, 9, 16))
    )
    assert [q.rate for q in history[("EUR", "USD")]] == [Decimal("1.1250")]
    assert rates.pairs == {("EUR", "USD")}


@pytest.mark.parametrize(
    ("row", "field", "value"),
    [
        ("2024-09-12,EUR,USD,-1.1", "rate", "-1.1"),
        ("2024-09-12,EUR,USD,0", "rate", "0"),
        ("2024-09-12,EUR,usd,1.1", "quote", "usd"),
        ("2024-09-12,EUR,EUR,1", "quote", "EUR"),
        ("12.09.2024,EUR,USD,1.1", "date", "12.09.2024"),
    ],
)
def test_a_malformed_rate_names_its_line_and_field(
    tmp_path: Path, row: str, field: str, value: str
) -> None:
    """A bad FX row raises `MalformedFileError` naming the line and the field."""
    path = _write(tmp_path, FX_HEADER + "2024-09-11,EUR,USD,1.1\n" + row + "\n", "fx.csv")
    with pytest.raises(MalformedFileError) as raised:
        CsvFxRates(path)
    assert (raised.value.line, raised.value.field, raised.value.value) == (3, field, value)


def test_a_duplicate_rate_is_refused(tmp_path: Path) -> None:
    """A second rate for the same pair and date is an error naming the first."""
    path = _write(
        tmp_path, FX_HEADER + "2024-09-11,EUR,USD,1.1\n2024-09-11,EUR,USD,1.2\n", "fx.csv"
    )
    with pytest.raises(MalformedFileError, match=r"a second EUR/USD rate on that date .*line 2"):
        CsvFxRates(path)
