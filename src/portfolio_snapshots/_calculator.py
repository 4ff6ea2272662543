"""Pure valuation: turns holdings and prices into a `PortfolioSnapshot`. No I/O, no clock.

Arithmetic runs in a private decimal context with unbounded precision, so ``quantity * price``
and every sum are exact whatever the host's thread context says; the only rounding is the
documented one: each position's market value is quantized to the currency's minor unit with
ROUND_HALF_EVEN.
"""

from __future__ import annotations

import decimal
from decimal import Decimal
from types import MappingProxyType
from typing import TYPE_CHECKING

from portfolio_snapshots._domain import (
    DEFAULT_CURRENCY,
    Portfolio,
    PortfolioSnapshot,
    PositionValuation,
    PriceQuote,
)
from portfolio_snapshots._errors import (
    CurrencyMismatchError,
    InvalidPortfolioError,
    InvalidPriceError,
    MissingPriceError,
)

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Iterable, Mapping
    from uuid import UUID

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

_EXACT = decimal.Context(
    prec=decimal.MAX_PREC,
    Emax=decimal.MAX_EMAX,
    Emin=decimal.MIN_EMIN,
    rounding=decimal.ROUND_HALF_EVEN,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)

# Building the named tuple through tuple.__new__ skips its Python-level __new__: the hot path
# of a daily run creates one per position.
_new_position = tuple.__new__


def exact_context() -> decimal.Context:
    """Return a copy of the decimal context the calculator computes in (unbounded precision)."""
    return _EXACT.copy()


class SnapshotCalculator:
    """Values portfolios exactly. Pure: no I/O, no clock, safe to share between tasks.

    Args:
        minor_units: Decimal places per ISO 4217 currency code, overriding
            `ISO_4217_MINOR_UNITS`.
        default_minor_unit: Decimal places for currencies not listed (2 by default).
    """

    __slots__ = ("_default_places", "_exponents", "_places")

    def __init__(
        self, *, minor_units: Mapping[str, int] | None = None, default_minor_unit: int = 2
    ) -> None:
        """Build a calculator; see the class docstring for the arguments."""
        places = dict(ISO_4217_MINOR_UNITS)
        places.update(minor_units or {})
        for code, n in [*places.items(), ("default", default_minor_unit)]:
            if type(n) is not int or not 0 <= n <= 18:  # noqa: PLR2004
                raise ValueError(f"minor unit for {code} must be an int in 0..18, got {n!r}")
        self._places = places
        self._default_places = default_minor_unit
        self._exponents: dict[str, Decimal] = {}

    def minor_unit(self, currency: str) -> int:
        """Return the number of decimal places amounts in `currency` are rounded to."""
        return self._places.get(currency, self._default_places)

    def _exponent(self, currency: str) -> Decimal:
        exp = self._exponents.get(currency)
        if exp is None:
            exp = Decimal(1).scaleb(-self.minor_unit(currency))
            self._exponents[currency] = exp
        return exp

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
        rows: dict[str, tuple[Decimal, Decimal]] = {}
        for ticker, quantity, price in holdings:
            if ticker in rows:
                raise InvalidPortfolioError(
                    "ticker appears more than once",
                    portfolio_id=portfolio_id,
                    snapshot_date=snapshot_date,
                    ticker=ticker,
                )
            rows[ticker] = (quantity, price)
        with decimal.localcontext(_EXACT):
            return self._value(
                portfolio_id,
                snapshot_date,
                currency,
                cash_balance,
                {t: q for t, (q, _) in rows.items()},
                lambda t: (rows[t][1], day, currency),
            )

    def value_portfolio(
        self, portfolio: Portfolio, quotes: Mapping[str, PriceQuote], snapshot_date: dt.date
    ) -> PortfolioSnapshot:
        """Value `portfolio` on `snapshot_date` with the given quotes.

        Args:
            portfolio: Cash and holdings as of the end of `snapshot_date`.
            quotes: Quotes by ticker; tickers not held are ignored.
            snapshot_date: The date valued.

        Returns:
            The snapshot; each position records its quote's price and date.

        Raises:
            MissingPriceError: A ticker held in a non-zero quantity has no quote.
            InvalidPortfolioError: A quantity or the cash is invalid.
            InvalidPriceError: A quote's price is invalid.
            CurrencyMismatchError: A quote is in another currency than the portfolio.
        """
        with decimal.localcontext(_EXACT):
            return self.value_in_context(portfolio, quotes, snapshot_date)

    def value_in_context(
        self, portfolio: Portfolio, quotes: Mapping[str, PriceQuote], snapshot_date: dt.date
    ) -> PortfolioSnapshot:
        """Like `value_portfolio`, for callers that already entered `exact_context()`.

        The job values a whole batch inside one context; outside it, use `value_portfolio`.
        """
        pid = portfolio.id

        def lookup(ticker: str) -> tuple[Decimal, dt.date, str]:
            quote = quotes.get(ticker)
            if quote is None:
                raise MissingPriceError(
                    portfolio_id=pid, snapshot_date=snapshot_date, ticker=ticker
                )
            return quote.price, quote.as_of, quote.currency

        return self._value(
            pid,
            snapshot_date,
            portfolio.currency,
            portfolio.cash_balance,
            portfolio.holdings,
            lookup,
            portfolio.net_contributions,
            portfolio.external_flow,
        )

    def _value(  # noqa: PLR0917 - hot path: positional arguments are the cheapest call
        self,
        pid: UUID,
        day: dt.date,
        currency: str,
        cash: Decimal,
        holdings: Mapping[str, Decimal],
        lookup: _Lookup,
        net_contributions: Decimal | None = None,
        external_flow: Decimal | None = None,
    ) -> PortfolioSnapshot:
        if type(cash) is not Decimal or not cash.is_finite():
            raise InvalidPortfolioError(
                "cash must be a finite Decimal",
                portfolio_id=pid,
                snapshot_date=day,
                field="cash_balance",
                value=cash,
            )
        exp = self._exponent(currency)
        total = Decimal(0).quantize(exp)
        positions = []
        for ticker in sorted(holdings):
            quantity = holdings[ticker]
            if type(quantity) is not Decimal or not quantity.is_finite() or quantity < 0:
                raise InvalidPortfolioError(
                    "quantity must be a finite, non-negative Decimal",
                    portfolio_id=pid,
                    snapshot_date=day,
                    field="quantity",
                    ticker=ticker,
                    value=quantity,
                )
            if not quantity:
                continue
            price, price_date, price_currency = lookup(ticker)
            if type(price) is not Decimal or not price.is_finite() or price <= 0:
                raise InvalidPriceError(
                    "price must be a finite Decimal above zero",
                    portfolio_id=pid,
                    snapshot_date=day,
                    field="price",
                    ticker=ticker,
                    value=price,
                )
            if price_date > day:
                raise InvalidPriceError(
                    f"price is dated {price_date.isoformat()}, after the snapshot date",
                    portfolio_id=pid,
                    snapshot_date=day,
                    field="price_date",
                    ticker=ticker,
                    value=price_date,
                )
            if price_currency != currency:
                raise CurrencyMismatchError(
                    portfolio_id=pid,
                    snapshot_date=day,
                    ticker=ticker,
                    expected=currency,
                    actual=price_currency,
                )
            value = (quantity * price).quantize(exp)
            total += value
            positions.append(
                _new_position(
                    PositionValuation,
                    (ticker, quantity, price, price_date, value, price_currency, None, False),
                )
            )
        return PortfolioSnapshot(
            pid,
            day,
            currency,
            cash,
            total,
            cash + total,
            tuple(positions),
            net_contributions,
            external_flow,
        )


if TYPE_CHECKING:
    from collections.abc import Callable

    _Lookup = Callable[[str], tuple[Decimal, dt.date, str]]

_DEFAULT = SnapshotCalculator()


def value_portfolio(
    portfolio: Portfolio,
    quotes: Mapping[str, PriceQuote],
    snapshot_date: dt.date,
    *,
    calculator: SnapshotCalculator | None = None,
) -> PortfolioSnapshot:
    """Value `portfolio` on `snapshot_date` against `quotes` (see `SnapshotCalculator`).

    Args:
        portfolio: Cash and holdings as of the end of `snapshot_date`.
        quotes: Quotes by ticker.
        snapshot_date: The date valued.
        calculator: The calculator to use; a default one (ISO 4217 minor units) otherwise.

    Returns:
        The snapshot.
    """
    return (calculator or _DEFAULT).value_portfolio(portfolio, quotes, snapshot_date)
