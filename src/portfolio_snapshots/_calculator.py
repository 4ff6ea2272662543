"""Pure valuation: turns holdings and prices into a `PortfolioSnapshot`. No I/O, no clock.

Arithmetic runs in a private decimal context with unbounded precision, so ``quantity * price``
and every sum are exact whatever the host's thread context says; the only rounding is the
documented one: each position's market value is quantized to the currency's minor unit with
ROUND_HALF_EVEN.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import TYPE_CHECKING, TypeAlias

from portfolio_snapshots._decimal import EXACT
from portfolio_snapshots._domain import (
    DEFAULT_CURRENCY,
    POSITION_WIDTH,
    QUOTE_MINOR_UNITS,
    Accounting,
    CalculatedValues,
    CashBalance,
    Portfolio,
    PortfolioSnapshot,
    PriceQuote,
)
from portfolio_snapshots._errors import (
    CurrencyMismatchError,
    InvalidFxRateError,
    InvalidPortfolioError,
    InvalidPriceError,
    MissingFxRateError,
    MissingPriceError,
    SnapshotError,
)
from portfolio_snapshots._fx import resolve_rate
from portfolio_snapshots._parsing import (
    MAX_INTEGER_DIGITS,
    currency_problem,
    quote_currency_problem,
    ticker_problem,
)
from portfolio_snapshots._splits import carry_across_splits

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from uuid import UUID

    from portfolio_snapshots._domain import FxQuote
    from portfolio_snapshots._splits import SplitHistory

    _ErrorFactory = Callable[[UUID, str | None], Exception]

#: ISO 4217 currencies whose minor unit is not 2 decimal places. Any other code uses
#: `SnapshotCalculator`'s ``default_minor_unit``; pass ``minor_units`` to override either.
ISO_4217_MINOR_UNITS: Mapping[str, int] = MappingProxyType(
    {
        # zero decimal places
        "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
        "PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0,
        "XPF": 0,
        # three decimal places
        "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
        # four decimal places
        "CLF": 4, "UYW": 4,
    }
)  # fmt: skip


#: How old a close (or an FX rate) may be before it counts as missing, by default.
DEFAULT_MAX_PRICE_AGE = dt.timedelta(days=7)

# The hot path builds each snapshot's positions as one flat tuple (see PortfolioSnapshot).
_from_values = PortfolioSnapshot.from_values
_new_snapshot = object.__new__
_set_snapshot_values = PortfolioSnapshot.__dict__["values"].__set__
_calculated = tuple.__new__  # `CalculatedValues` from a literal tuple
_ZERO = Decimal(0)
#: Amounts and quantities must be below this in magnitude (`portfolio_snapshots._parsing`).
_LIMIT = Decimal(f"1E+{MAX_INTEGER_DIGITS}")
_NEGATIVE_LIMIT = -_LIMIT
#: A snapshot's eight accounting fields (`ACCOUNTING_FIELD_NAMES`), in order.
_Books: TypeAlias = tuple[
    Decimal | None,
    Decimal | None,
    Decimal | None,
    Decimal | None,
    Decimal | None,
    Decimal | None,
    Decimal | None,
    Decimal | None,
]
_UNKNOWN_BOOKS: _Books = (None, None, None, None, None, None, None, None)
_NO_CASH_BALANCES: tuple[CashBalance, ...] = ()
_NO_POSITION_BOOKS: tuple[object, ...] = ()
_ACCOUNTING_AMOUNTS = (
    "realized_gain",
    "dividends",
    "interest",
    "fees",
    "taxes",
    "net_transfers",
)
_ACCOUNTING_MAPPINGS = ("cost_basis", "position_realized", "position_dividends")
# How many `Accounting` values a calculator remembers (then it forgets them all).
_KNOWN_BOOKS = 4096


class SnapshotCalculator:
    """Values portfolios exactly. Pure: no I/O, no clock, safe to share between tasks.

    Args:
        minor_units: Decimal places per ISO 4217 currency code, overriding
            `ISO_4217_MINOR_UNITS`.
        default_minor_unit: Decimal places for currencies not listed (2 by default).
    """

    __slots__ = ("_default_places", "_known_books", "_places", "_units")

    def __init__(
        self, *, minor_units: Mapping[str, int] | None = None, default_minor_unit: int = 2
    ) -> None:
        places = dict(ISO_4217_MINOR_UNITS)
        places.update(minor_units or {})
        for code, n in [*places.items(), ("default", default_minor_unit)]:
            if type(n) is not int or not 0 <= n <= 18:  # noqa: PLR2004
                raise ValueError(f"minor unit for {code} must be an int in 0..18, got {n!r}")
        self._places = places
        self._default_places = default_minor_unit
        self._units: dict[str, tuple[Decimal, Decimal]] = {}
        self._known_books: dict[int, _KnownBooks] = {}

    def minor_unit(self, currency: str) -> int:
        """Return the number of decimal places amounts in `currency` are rounded to."""
        return self._places.get(currency, self._default_places)

    def _unit(self, currency: str) -> tuple[Decimal, Decimal]:
        """Return the quantize exponent of `currency` and zero at that exponent."""
        unit = self._units.get(currency)
        if unit is None:
            reason = currency_problem(currency)
            if reason is not None:
                raise InvalidPortfolioError(reason, field="currency", value=currency)
            exp = Decimal(1).scaleb(-self.minor_unit(currency))
            unit = self._units[currency] = (exp, Decimal(0).quantize(exp))
        return unit

    def calculate_snapshot(
        self,
        *,
        portfolio_id: UUID,
        snapshot_date: dt.date,
        cash_balance: Decimal,
        holdings: Iterable[tuple[str, Decimal, Decimal]],
        currency: str = DEFAULT_CURRENCY,
        price_date: dt.date | None = None,
    ) -> PortfolioSnapshot:
        """Value explicit ``(ticker, quantity, price)`` holdings.

        Args:
            portfolio_id: The portfolio valued.
            snapshot_date: The date valued.
            cash_balance: Cash held, in `currency`.
            holdings: ``(ticker, quantity, price)`` triples, in any order; each ticker once.
            currency: The currency of the cash and the prices.
            price_date: The date of the prices (defaults to `snapshot_date`).

        Returns:
            The snapshot, positions sorted by ticker, zero quantities omitted.

        Raises:
            InvalidPortfolioError: A quantity or the cash is negative, non-finite or not a
                Decimal, or a ticker appears twice.
            InvalidPriceError: A price is zero, negative, non-finite or not a Decimal.
        """
        day = snapshot_date if price_date is None else price_date
        quantities: dict[str, Decimal] = {}
        quotes: dict[str, PriceQuote] = {}
        for ticker, quantity, price in holdings:
            if ticker in quantities:
                raise InvalidPortfolioError(
                    "ticker appears more than once",
                    portfolio_id=portfolio_id,
                    snapshot_date=snapshot_date,
                    ticker=ticker,
                )
            quantities[ticker] = quantity
            quotes[ticker] = PriceQuote(ticker, price, day, currency)
        with decimal.localcontext(EXACT):
            return self._value(
                portfolio_id,
                snapshot_date,
                currency,
                cash_balance,
                quantities,
                PriceTable(quotes, snapshot_date),
            )

    def value_portfolio(
        self,
        portfolio: Portfolio,
        quotes: Mapping[str, PriceQuote],
        snapshot_date: dt.date,
        *,
        max_price_age: dt.timedelta | None = DEFAULT_MAX_PRICE_AGE,
    ) -> PortfolioSnapshot:
        """Value `portfolio` on `snapshot_date` with the given quotes.

        Args:
            portfolio: Cash and holdings as of the end of `snapshot_date`.
            quotes: Quotes by ticker; tickers not held are ignored.
            snapshot_date: The date valued.
            max_price_age: A quote older than this counts as missing (None: any age).

        Returns:
            The snapshot; each position records its quote's price and date.

        Raises:
            MissingPriceError: A ticker held in a non-zero quantity has no quote, or only one
                older than `max_price_age`.
            InvalidPortfolioError: A quantity or the cash is invalid.
            InvalidPriceError: A quote's price is invalid.
            CurrencyMismatchError: A quote is in another currency than the portfolio.
        """
        table = PriceTable(quotes, snapshot_date, max_price_age=max_price_age)
        with decimal.localcontext(EXACT):
            return self._value(
                portfolio.id,
                snapshot_date,
                portfolio.currency,
                portfolio.cash_balance,
                portfolio.holdings,
                table,
                portfolio.net_contributions,
                portfolio.external_flow,
                portfolio.splits,
                portfolio.foreign_cash,
                portfolio.accounting,
            )

    def value_many(
        self, portfolios: Iterable[Portfolio], table: PriceTable
    ) -> tuple[list[PortfolioSnapshot], list[tuple[Portfolio, Exception]]]:
        """Value many portfolios on the table's date; what cannot be valued is set aside.

        The job's hot path: one decimal context, one price table, one loop.

        Args:
            portfolios: Portfolios as of the end of ``table.day``.
            table: The day's checked quotes.

        Returns:
            The snapshots, and each portfolio that failed with its error (the same errors as
            `value_portfolio` raises).
        """
        valued: list[PortfolioSnapshot] = []
        failed: list[tuple[Portfolio, Exception]] = []
        value = self._value
        day = table.day
        with decimal.localcontext(EXACT):
            for p in portfolios:
                try:
                    snapshot = value(
                        p.id,
                        day,
                        p.currency,
                        p.cash_balance,
                        p.holdings,
                        table,
                        p.net_contributions,
                        p.external_flow,
                        p.splits,
                        p.foreign_cash,
                        p.accounting,
                    )
                except SnapshotError as error:
                    failed.append((p, error))
                except Exception as error:  # noqa: BLE001 - reported per portfolio by the caller
                    failed.append((p, _explained(p, day, error)))
                else:
                    valued.append(snapshot)
        return valued, failed

    def _value(  # noqa: C901, PLR0912, PLR0917 - hot path: one loop, positional arguments
        self,
        pid: UUID,
        day: dt.date,
        currency: str,
        cash: Decimal,
        holdings: Mapping[str, Decimal],
        table: PriceTable,
        net_contributions: Decimal | None = None,
        external_flow: Decimal | None = None,
        splits: SplitHistory | None = None,
        foreign_cash: Mapping[str, Decimal] | None = None,
        accounting: Accounting | None = None,
    ) -> PortfolioSnapshot:
        if type(cash) is not Decimal or not cash.is_finite() or not _NEGATIVE_LIMIT < cash < _LIMIT:
            raise InvalidPortfolioError(
                f"cash must be a finite Decimal below {_LIMIT} in magnitude",
                portfolio_id=pid,
                snapshot_date=day,
                field="cash_balance",
                value=cash,
            )
        if table.day != day:
            raise ValueError(f"price table is for {table.day}, not {day}")
        if (
            net_contributions is not None
            and (
                net_contributions.__class__ is not Decimal
                or not net_contributions.is_finite()
                or not _NEGATIVE_LIMIT < net_contributions < _LIMIT
            )
        ) or (
            external_flow is not None
            and (
                external_flow.__class__ is not Decimal
                or not external_flow.is_finite()
                or not _NEGATIVE_LIMIT < external_flow < _LIMIT
            )
        ):
            _check_flows(pid, day, net_contributions, external_flow)
        exp, total = self._units.get(currency) or self._unit(currency)
        good = table.good
        flat: list[object] = []
        any_stale = False
        carried = False  # a value carried across a split: not derived from its price
        # Names bound to locals: this loop runs once per position of every portfolio.
        decimal_type, zero, limit = Decimal, _ZERO, _LIMIT
        for ticker in sorted(holdings):
            quantity = holdings[ticker]
            # One test for the usual held quantity; a NaN makes the comparison raise
            # InvalidOperation (the context traps it), turned into its error below.
            try:
                usual = quantity.__class__ is decimal_type and zero < quantity < limit
            except decimal.InvalidOperation:
                usual = False
            if not usual:
                if quantity.__class__ is decimal_type and quantity.is_zero():
                    continue  # held in a quantity of zero: nothing to value
                raise _bad_quantity(pid, day, ticker, quantity)
            try:
                price, price_date, price_currency, stale = good[ticker]
            except KeyError:
                raise table.error(pid, ticker) from None
            if price_currency == currency:
                rate = None
                value = (quantity * price).quantize(exp)
            else:
                rate, rate_stale = table.rate(pid, ticker, price_currency, currency)
                value = (quantity * price * rate).quantize(exp)
                stale = stale or rate_stale
            if splits is not None and price_date < day and ticker in splits:
                carried = True
                gross = quantity * price if rate is None else quantity * price * rate
                value, price = carry_across_splits(
                    portfolio_id=pid,
                    day=day,
                    ticker=ticker,
                    splits=splits,
                    price=price,
                    price_date=price_date,
                    gross=gross,
                    value=value,
                    unit=exp,
                )
            if stale:
                any_stale = True
            total += value
            flat += (ticker, quantity, price, price_date, value, price_currency, rate, stale)
        # Every value is quantity x price (x rate), quantized, and not signed (a quantity and
        # a price are positive or zero): the fields go in a `CalculatedValues`, unless carried.
        kind = tuple if carried else CalculatedValues
        if foreign_cash is None and accounting is None:
            # `PortfolioSnapshot.from_values`, written out: one call less per portfolio.
            snapshot = _new_snapshot(PortfolioSnapshot)
            _set_snapshot_values(
                snapshot,
                _calculated(
                    kind,
                    (
                        pid,
                        day,
                        currency,
                        cash,
                        total,
                        cash + total,
                        tuple(flat),
                        net_contributions,
                        external_flow,
                        any_stale,
                        None,  # the eight accounting fields (_UNKNOWN_BOOKS), spelled out:
                        None,  # a literal tuple is built faster than one with an unpacking
                        None,
                        None,
                        None,
                        None,
                        None,
                        None,
                        _NO_CASH_BALANCES,
                        _NO_POSITION_BOOKS,
                    ),
                ),
            )
            return snapshot
        balances = _NO_CASH_BALANCES
        if foreign_cash:
            cash, balances, cash_stale = _cash_balances(
                pid, day, currency, cash, foreign_cash, table, exp
            )
            any_stale = any_stale or cash_stale
        books, position_books = (
            (_UNKNOWN_BOOKS, _NO_POSITION_BOOKS)
            if accounting is None
            else _books(pid, day, flat, holdings, total, accounting, self._known_books)
        )
        return _from_values(
            _calculated(
                kind,
                (
                    pid,
                    day,
                    currency,
                    cash,
                    total,
                    cash + total,
                    tuple(flat),
                    net_contributions,
                    external_flow,
                    any_stale,
                    *books,
                    balances,
                    position_books,
                ),
            )
        )


class PriceTable:
    """The quotes (and FX rates) for one date, each checked once.

    The valid ones are kept ready for valuation, the invalid ones with the reason, so only the
    portfolios that hold an invalid one fail.

    Missing data policy: a close or rate dated more than `max_price_age` before `day` counts as
    missing (`MissingPriceError`, `MissingFxRateError`), unless `carry_forward` is set: then it
    is used, and the position and its snapshot are marked ``stale``. A missing price or rate is
    never taken as zero or one.

    Args:
        quotes: Quotes by ticker, as `MarketData.get_prices` returned them.
        day: The date being valued; a quote dated after it is invalid.
        max_price_age: The age past which a close or rate is stale; None for no limit.
        carry_forward: Use stale closes and rates (marked ``stale``) instead of failing.
        fx_rates: FX quotes by ``(base, quote)`` pair, as `FxRates.get_rates` returned them;
            None when no FX source is configured (any conversion is then a
            `CurrencyMismatchError`). Inverse pairs are derived.
    """

    __slots__ = (
        "_carry",
        "_fx",
        "_max_age",
        "_rates",
        "bad",
        "day",
        "good",
    )

    def __init__(
        self,
        quotes: Mapping[str, PriceQuote],
        day: dt.date,
        *,
        max_price_age: dt.timedelta | None = DEFAULT_MAX_PRICE_AGE,
        carry_forward: bool = False,
        fx_rates: Mapping[tuple[str, str], FxQuote] | None = None,
    ) -> None:
        self.day = day
        self._max_age = max_price_age
        self._carry = carry_forward
        self._fx: dict[tuple[str, str], FxQuote] | None = (
            None if fx_rates is None else dict(fx_rates)
        )
        self._rates: dict[tuple[str, str], tuple[Decimal, bool] | _ErrorFactory] = {}
        self.good: dict[str, tuple[Decimal, dt.date, str, bool]] = {}
        self.bad: dict[str, tuple[str, str, object]] = {}
        self.add_quotes(quotes)

    def add_quotes(self, quotes: Mapping[str, PriceQuote]) -> None:
        """Check and add more quotes of the same day (a later batch's new tickers).

        Args:
            quotes: The quotes found, by ticker.
        """
        day, max_age, carry = self.day, self._max_age, self._carry
        oldest = dt.date.min if max_age is None else day - max_age
        good, bad = self.good, self.bad
        for ticker, quote in quotes.items():
            if quote.__class__ is not PriceQuote:
                bad[ticker] = (f"not a PriceQuote: {type(quote).__name__}", "quote", quote)
                continue
            price, as_of, currency = quote.price, quote.as_of, quote.currency
            if quote.ticker != ticker:
                # the price of another instrument would be stored as this one's
                bad[ticker] = (
                    f"the quote answered for {ticker!r} is for {quote.ticker!r}",
                    "quote",
                    quote.ticker,
                )
            elif (
                type(price) is not Decimal
                or not price.is_finite()
                or price.is_signed()
                or price >= _LIMIT
            ):
                bad[ticker] = (f"price must be a finite Decimal in [0, {_LIMIT})", "price", price)
            elif as_of.__class__ is not dt.date:
                bad[ticker] = (
                    f"the price date must be a datetime.date, got {type(as_of).__name__}",
                    "price_date",
                    as_of,
                )
            elif (reason := quote_currency_problem(currency)) is not None:
                bad[ticker] = (reason, "currency", currency)
            elif as_of > day:
                bad[ticker] = (
                    f"price is dated {as_of.isoformat()}, after the snapshot date",
                    "price_date",
                    as_of,
                )
            elif as_of < oldest and not carry:
                bad[ticker] = (_too_old(as_of, max_age), "stale", as_of)
            else:
                if currency in QUOTE_MINOR_UNITS:  # pence and the like: exactly, by the table
                    currency, per_major = QUOTE_MINOR_UNITS[currency]
                    with decimal.localcontext(EXACT):
                        price /= per_major
                good[ticker] = (price, as_of, currency, as_of < oldest)

    def add_rates(self, rates: Mapping[tuple[str, str], FxQuote]) -> None:
        """Add more FX rates of the same day; conversions are looked up afresh.

        Args:
            rates: The rates found, by pair.
        """
        if self._fx is None:
            self._fx = {}
        self._fx.update(rates)
        self._rates.clear()

    def refuse(self, ticker: str, reason: str, field: str, value: object) -> None:
        """Record that `ticker` has no usable price today, and why.

        Args:
            ticker: The ticker.
            reason: Why, in words.
            field: ``"ticker"`` for a malformed ticker (its holders fail with
                `InvalidPortfolioError`), ``"request"`` for a price request that failed for
                good (`MissingPriceError`), or a quote field (`InvalidPriceError`).
            value: The offending value.
        """
        self.good.pop(ticker, None)
        self.bad[ticker] = (reason, field, value)

    def currencies(self, tickers: Iterable[str]) -> set[str]:
        """Return the currencies of the valid quotes of `tickers`."""
        good = self.good
        return {good[t][2] for t in tickers if t in good}

    def error(self, portfolio_id: UUID | None, ticker: str) -> SnapshotError:
        """Return the error for valuing `ticker` of `portfolio_id`: invalid or missing price."""
        bad = self.bad.get(ticker)
        if bad is None:
            return MissingPriceError(
                portfolio_id=portfolio_id, snapshot_date=self.day, ticker=ticker
            )
        reason, field, value = bad
        if field in {"stale", "request"}:
            return MissingPriceError(
                portfolio_id=portfolio_id, snapshot_date=self.day, ticker=ticker, detail=reason
            )
        if field == "ticker":
            return InvalidPortfolioError(
                reason,
                portfolio_id=portfolio_id,
                snapshot_date=self.day,
                field="holdings",
                ticker=ticker,
                value=value,
            )
        return InvalidPriceError(
            reason,
            portfolio_id=portfolio_id,
            snapshot_date=self.day,
            field=field,
            ticker=ticker,
            value=value,
        )

    def rate(
        self, portfolio_id: UUID, ticker: str | None, from_currency: str, to_currency: str
    ) -> tuple[Decimal, bool]:
        """Return the rate converting `from_currency` into `to_currency`, and its staleness.

        `ticker` is the position needing it, for the error (None for cash held in
        `from_currency`).

        Raises:
            CurrencyMismatchError: No FX source is configured.
            MissingFxRateError: Neither direction of the pair has a usable rate.
            InvalidFxRateError: The rate found is invalid.
        """
        pair = (from_currency, to_currency)
        found = self._rates.get(pair)
        if found is None:
            found = self._rates[pair] = self._resolve(pair)
        if callable(found):
            raise found(portfolio_id, ticker)
        return found

    def _resolve(self, pair: tuple[str, str]) -> tuple[Decimal, bool] | _ErrorFactory:
        """Look the pair up once; a failure is kept as a factory of errors naming a position."""
        day, (base, quote_currency) = self.day, pair
        if self._fx is None:
            return lambda pid, ticker: CurrencyMismatchError(
                portfolio_id=pid,
                snapshot_date=day,
                ticker=ticker,
                expected=quote_currency,
                actual=base,
            )
        try:
            quote = resolve_rate(self._fx, base, quote_currency, day)
        except InvalidFxRateError as error:
            invalid = error

            def named(pid: UUID, ticker: str | None) -> Exception:
                new = InvalidFxRateError(
                    str(invalid.args[0]) if invalid.args else "invalid rate",
                    base=invalid.base,
                    quote=invalid.quote,
                    as_of=invalid.as_of,
                    value=invalid.value,
                )
                held = "cash" if ticker is None else f"ticker {ticker!r}"
                new.add_note(f"portfolio {pid}, {held}, on {day.isoformat()}")
                return new

            return named
        if quote is None:
            return lambda pid, ticker: MissingFxRateError(
                base=base, quote=quote_currency, as_of=day, portfolio_id=pid, ticker=ticker
            )
        oldest = dt.date.min if self._max_age is None else day - self._max_age
        if quote.as_of >= oldest:
            return quote.rate, False
        if self._carry:
            return quote.rate, True
        detail = (
            f"the latest FX rate {base}/{quote_currency} on or before {day.isoformat()} is "
            f"older than max_price_age ({self._max_age}): dated"
        )
        rate_date = quote.as_of
        return lambda pid, ticker: MissingFxRateError(
            base=base,
            quote=quote_currency,
            as_of=rate_date,
            portfolio_id=pid,
            ticker=ticker,
            detail=detail,
        )


def _bad_quantity(pid: UUID, day: dt.date, ticker: str, quantity: object) -> InvalidPortfolioError:
    return InvalidPortfolioError(
        f"quantity must be a finite Decimal from 0 to below {_LIMIT}",
        portfolio_id=pid,
        snapshot_date=day,
        field="quantity",
        ticker=ticker,
        value=quantity,
    )


def _amount_problem(value: object) -> str | None:
    if type(value) is not Decimal or not value.is_finite() or not _NEGATIVE_LIMIT < value < _LIMIT:
        return f"must be a finite Decimal below {_LIMIT} in magnitude"
    return None


def _cash_balances(  # noqa: PLR0917 - the valuation's own arguments
    pid: UUID,
    day: dt.date,
    currency: str,
    cash: Decimal,
    foreign_cash: Mapping[str, Decimal],
    table: PriceTable,
    exp: Decimal,
) -> tuple[Decimal, tuple[CashBalance, ...], bool]:
    """Value cash held in other currencies at the day's rates.

    Returns:
        The cash in all currencies valued in `currency`, every balance (the portfolio's own
        currency first, then by code), and whether a rate was stale.
    """
    if not isinstance(foreign_cash, Mapping):
        raise InvalidPortfolioError(
            "must be None or a mapping of ISO 4217 codes to Decimal balances",
            portfolio_id=pid,
            snapshot_date=day,
            field="foreign_cash",
            value=foreign_cash,
        )
    balances = [CashBalance(currency, cash, cash)]
    total = cash
    any_stale = False
    for code in sorted(foreign_cash, key=str):
        amount = foreign_cash[code]
        reason = currency_problem(code)
        if reason is None and code == currency:
            reason = "is the portfolio's own currency: its cash belongs in cash_balance"
        if reason is None:
            reason = _amount_problem(amount)
            value: object = amount
        else:
            value = code
        if reason is not None:
            raise InvalidPortfolioError(
                f"cash in {code!r} {reason}",
                portfolio_id=pid,
                snapshot_date=day,
                field="foreign_cash",
                value=value,
            )
        rate, stale = table.rate(pid, None, code, currency)
        converted = (amount * rate).quantize(exp)
        balances.append(CashBalance(code, amount, converted, rate, stale))
        total += converted
        any_stale = any_stale or stale
    return total, tuple(balances), any_stale


def _books(  # noqa: PLR0917 - the valuation's own arguments
    pid: UUID,
    day: dt.date,
    flat: list[object],
    holdings: Mapping[str, Decimal],
    holdings_value: Decimal,
    accounting: Accounting,
    known: dict[int, _KnownBooks],
) -> tuple[_Books, tuple[object, ...]]:
    """Return the snapshot's eight accounting fields and its positions' (`position_books`).

    Each `Accounting` value is checked whole the first time it is seen, and what it says of
    the tickers held (each one's cost basis, realized gain and dividends: the snapshot's
    `position_books`, and the cost basis in total) is looked up then and remembered in
    `known`, by identity (the value is immutable), with the holdings it was looked up for.
    A ledger hands the same books and holdings for every day without a transaction, so a
    backfill checks and looks them up once; each other day costs a subtraction.
    """
    entry = known.get(id(accounting))
    if entry is None or entry[0] is not accounting or entry[1] is not holdings:
        tickers = tuple(flat[::POSITION_WIDTH])
        if entry is None or entry[0] is not accounting:
            _check_books(pid, day, accounting)
        entry = _look_up_books(pid, day, accounting, holdings, tickers)  # type: ignore[arg-type]
        if len(known) >= _KNOWN_BOOKS:
            known.clear()
        known[id(accounting)] = entry
    cost = entry[4]
    return (
        cost,
        None if cost is None else holdings_value - cost,
        accounting.realized_gain,
        accounting.dividends,
        accounting.interest,
        accounting.fees,
        accounting.taxes,
        accounting.net_transfers,
    ), entry[3]


#: What a calculator remembers of one `Accounting` value: the value itself, the holdings and
#: tickers it was looked up for, the snapshot's `position_books` for them, and their cost
#: basis in total (None when one is unknown).
_KnownBooks: TypeAlias = tuple[
    Accounting, "Mapping[str, Decimal]", tuple[str, ...], tuple[object, ...], "Decimal | None"
]


def _look_up_books(
    pid: UUID,
    day: dt.date,
    accounting: Accounting,
    holdings: Mapping[str, Decimal],
    tickers: tuple[str, ...],
) -> _KnownBooks:
    """Look up the (checked) books' figures of `tickers`, in order."""
    costs_of, realized, dividends = (
        accounting.cost_basis,
        accounting.position_realized,
        accounting.position_dividends,
    )
    books: list[object] = []
    total: Decimal | None = None if costs_of is None else _ZERO
    for t in tickers:
        cost = None if costs_of is None else costs_of.get(t)
        if cost is None:
            total = None
        elif total is not None:
            total = EXACT.add(total, cost)
        books.extend(
            (
                cost,
                None if realized is None else realized.get(t, _ZERO),
                None if dividends is None else dividends.get(t, _ZERO),
            )
        )
    if total is not None and not _NEGATIVE_LIMIT < total < _LIMIT:
        raise _bad_book(pid, day, "cost_basis", None, total)
    position_books = () if books.count(None) == len(books) else tuple(books)
    return accounting, holdings, tickers, position_books, total


def _check_books(pid: UUID, day: dt.date, accounting: Accounting) -> None:
    """Check the books' type, amounts and every entry of their per-ticker mappings."""
    if type(accounting) is not Accounting:
        raise InvalidPortfolioError(
            "must be None or an Accounting value",
            portfolio_id=pid,
            snapshot_date=day,
            field="accounting",
            value=accounting,
        )
    amounts = (
        accounting.realized_gain,
        accounting.dividends,
        accounting.interest,
        accounting.fees,
        accounting.taxes,
        accounting.net_transfers,
    )
    for name, amount in zip(_ACCOUNTING_AMOUNTS, amounts, strict=True):
        if amount is not None and (reason := _amount_problem(amount)) is not None:
            raise InvalidPortfolioError(
                reason, portfolio_id=pid, snapshot_date=day, field=name, value=amount
            )
    # Seen as objects: a host may hand in anything.
    mappings: tuple[object, object, object] = (
        accounting.cost_basis,
        accounting.position_realized,
        accounting.position_dividends,
    )
    for name, per_ticker in zip(_ACCOUNTING_MAPPINGS, mappings, strict=True):
        if per_ticker is None:
            continue
        if not isinstance(per_ticker, Mapping):
            raise InvalidPortfolioError(
                "must be None or a mapping of tickers to Decimal amounts",
                portfolio_id=pid,
                snapshot_date=day,
                field=name,
                value=per_ticker,
            )
        for ticker, amount in per_ticker.items():
            if _amount_problem(amount) is not None:
                raise _bad_book(pid, day, name, ticker if isinstance(ticker, str) else None, amount)


def _bad_book(pid: UUID, day: dt.date, field: str, ticker: str | None, amount: object) -> Exception:
    """The error for a per-ticker figure that is not a finite Decimal within the bounds."""
    return InvalidPortfolioError(
        f"must be a finite Decimal below {_LIMIT} in magnitude",
        portfolio_id=pid,
        snapshot_date=day,
        field=field,
        ticker=ticker,
        value=amount,
    )


def _check_flows(
    pid: UUID, day: dt.date, net_contributions: Decimal | None, external_flow: Decimal | None
) -> None:
    for name, amount in (
        ("net_contributions", net_contributions),
        ("external_flow", external_flow),
    ):
        if amount is not None and (
            type(amount) is not Decimal
            or not amount.is_finite()
            or not _NEGATIVE_LIMIT < amount < _LIMIT
        ):
            raise InvalidPortfolioError(
                f"must be None or a finite Decimal below {_LIMIT} in magnitude",
                portfolio_id=pid,
                snapshot_date=day,
                field=name,
                value=amount,
            )


def _explained(portfolio: Portfolio, day: dt.date, error: Exception) -> Exception:
    """Name what in `portfolio` made valuing it fail with `error` (not one of ours).

    Only on this failure path: a ticker that is not a `str` (``sorted`` fails on it), or a
    value so large that the arithmetic overflows. The error is kept as the cause.
    """
    for ticker in portfolio.holdings:
        reason = ticker_problem(ticker)
        if reason is not None:
            found = InvalidPortfolioError(
                reason,
                portfolio_id=portfolio.id,
                snapshot_date=day,
                field="holdings",
                value=ticker,
            )
            break
    else:
        if not isinstance(error, ArithmeticError):
            return error
        found = InvalidPortfolioError(
            f"an amount is too large to value ({type(error).__name__})",
            portfolio_id=portfolio.id,
            snapshot_date=day,
            field="holdings",
            value=None,
        )
    found.__cause__ = error
    return found


def _too_old(as_of: dt.date, max_age: dt.timedelta | None) -> str:
    return f"the latest close is from {as_of.isoformat()}, older than max_price_age ({max_age})"


_DEFAULT = SnapshotCalculator()


def value_portfolio(
    portfolio: Portfolio,
    quotes: Mapping[str, PriceQuote],
    snapshot_date: dt.date,
    *,
    calculator: SnapshotCalculator | None = None,
    max_price_age: dt.timedelta | None = DEFAULT_MAX_PRICE_AGE,
) -> PortfolioSnapshot:
    """Value `portfolio` on `snapshot_date` against `quotes` (see `SnapshotCalculator`).

    Args:
        portfolio: Cash and holdings as of the end of `snapshot_date`.
        quotes: Quotes by ticker.
        snapshot_date: The date valued.
        calculator: The calculator to use; a default one (ISO 4217 minor units) otherwise.
        max_price_age: A quote older than this counts as missing (None: any age).

    Returns:
        The snapshot.
    """
    return (calculator or _DEFAULT).value_portfolio(
        portfolio, quotes, snapshot_date, max_price_age=max_price_age
    )
