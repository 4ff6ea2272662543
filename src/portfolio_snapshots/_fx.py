"""Exchange rates: the `FxRates` port, the `FxQuote` value and pure helpers to use them.

A rate is the price of one unit of `base` in `quote`: ``FxQuote("EUR", "USD", 1.08)`` says
one euro is worth 1.08 dollars, so an amount in EUR times the rate is the amount in USD (the
``fx_rate`` of a `PositionValuation` is such a rate, from the price's currency into the
portfolio's).

Inverse pairs are derived: when only EUR/USD is known, USD/EUR is ``1 / rate``, computed in
`fx_context`: 28 significant digits, ROUND_HALF_EVEN. The inverted rate is thus the correctly
rounded value of the exact inverse: its relative error is at most half a unit in the 28th
significant digit, ``|inverted * rate - 1| <= 5e-28``. Direct rates and conversions are
exact: nothing else is rounded here (the caller quantizes amounts to a currency's minor
unit).
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
from decimal import Decimal
from typing import TYPE_CHECKING

from portfolio_snapshots._decimal import EXACT, rounding_context
from portfolio_snapshots._domain import FxQuote
from portfolio_snapshots._errors import InvalidFxRateError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

#: Significant digits of a derived (inverted) rate.
FX_PRECISION = 28

_FX = rounding_context(FX_PRECISION)

_ONE = Decimal(1)
_CURRENCY = re.compile(r"[A-Z]{3}")


def fx_context() -> decimal.Context:
    """Return a copy of the context inverse rates are computed in (28 digits, half-even)."""
    return _FX.copy()


def check_fx_quote(
    quote: FxQuote, *, pair: tuple[str, str] | None = None, as_of: dt.date | None = None
) -> None:
    """Check that `quote` is usable: currencies, a positive finite Decimal rate, its date.

    Args:
        quote: The quote.
        pair: When given, the pair the quote must be for (the key it was found under).
        as_of: When given, the date the quote is used for: it must not be dated after it.

    Raises:
        InvalidFxRateError: A currency is not three upper-case letters, the rate is not a
            Decimal, not finite or not above zero, the quote is for another pair, or it is
            dated after `as_of`.
    """
    base, code = quote.base, quote.quote
    rate: object = quote.rate
    day: object = quote.as_of
    for currency in (base, code):
        if type(currency) is not str or not _CURRENCY.fullmatch(currency):
            raise InvalidFxRateError(
                f"currency {currency!r} is not an ISO 4217 code (three upper-case letters)",
                base=str(base),
                quote=str(code),
                as_of=None,
                value=rate,
            )
    if type(day) is not dt.date:
        raise InvalidFxRateError(
            f"the rate's date must be a date, got {day!r}",
            base=base,
            quote=code,
            as_of=None,
            value=rate,
        )
    if type(rate) is not Decimal or not rate.is_finite() or rate <= 0:
        raise InvalidFxRateError(
            "must be a finite Decimal above zero", base=base, quote=code, as_of=day, value=rate
        )
    if pair is not None and quote.pair != pair:
        raise InvalidFxRateError(
            f"found under the pair {pair[0]}/{pair[1]}",
            base=base,
            quote=code,
            as_of=day,
            value=rate,
        )
    if as_of is not None and day > as_of:
        raise InvalidFxRateError(
            f"dated after the date asked for ({as_of.isoformat()})",
            base=base,
            quote=code,
            as_of=day,
            value=rate,
        )


def invert_quote(quote: FxQuote) -> FxQuote:
    """Return the quote of the inverse pair: ``1 / rate``, rounded to 28 significant digits.

    Args:
        quote: A valid quote (see `check_fx_quote`).

    Returns:
        The quote of ``(quote.quote, quote.base)``, same date. The rate is the exact inverse
        rounded once with ROUND_HALF_EVEN in `fx_context`.

    Raises:
        InvalidFxRateError: `quote` is not valid.
    """
    check_fx_quote(quote)
    with decimal.localcontext(_FX):
        rate = _ONE / quote.rate
    return FxQuote(quote.quote, quote.base, rate, quote.as_of)


def resolve_rate(
    quotes: Mapping[tuple[str, str], FxQuote], base: str, quote: str, as_of: dt.date
) -> FxQuote | None:
    """Find the rate converting `base` into `quote` among `quotes`, direct or inverse.

    An identity pair is rate 1. Otherwise the direct quote ``(base, quote)`` or the inverted
    ``(quote, base)`` one is used; when both are present, the more recent wins (the direct
    one on a tie), so a stale direct rate never hides a fresh inverse one.

    Args:
        quotes: Available quotes, keyed by pair (what `FxRates.get_rates` returned).
        base: The currency to convert from.
        quote: The currency to convert into.
        as_of: The date the rate is for; quotes dated after it are errors.

    Returns:
        The quote of ``(base, quote)``, or None when neither direction is available.

    Raises:
        InvalidFxRateError: A quote found is invalid (see `check_fx_quote`).
    """
    if base == quote:
        return FxQuote(base, quote, _ONE, as_of)
    direct = quotes.get((base, quote))
    inverse = quotes.get((quote, base))
    if direct is not None:
        check_fx_quote(direct, pair=(base, quote), as_of=as_of)
    if inverse is not None:
        check_fx_quote(inverse, pair=(quote, base), as_of=as_of)
        if direct is None or inverse.as_of > direct.as_of:
            return invert_quote(inverse)
    return direct


def pairs_with_inverses(pairs: Iterable[tuple[str, str]]) -> frozenset[tuple[str, str]]:
    """Return `pairs` and their inverses, identity pairs left out: what to ask an `FxRates`.

    Args:
        pairs: The conversions needed, as ``(from, into)`` pairs.

    Returns:
        The pairs to request so that `resolve_rate` finds any rate stored in one direction.
    """
    wanted: set[tuple[str, str]] = set()
    for base, quote in pairs:
        if base != quote:
            wanted.add((base, quote))
            wanted.add((quote, base))
    return frozenset(wanted)


def convert(amount: Decimal, quote: FxQuote) -> Decimal:
    """Return ``amount * quote.rate`` exactly: `amount` in `quote.base`, converted to `quote.quote`.

    The product is not rounded; quantize it to the target currency's minor unit.

    Args:
        amount: A finite Decimal amount in ``quote.base``.
        quote: The rate to apply.

    Returns:
        The amount in ``quote.quote``.

    Raises:
        InvalidFxRateError: The quote is invalid.
        TypeError: `amount` is not a Decimal.
        ValueError: `amount` is not finite.
    """
    value: object = amount
    if type(value) is not Decimal:
        raise TypeError(f"amount must be a Decimal, got {amount!r}")
    if not amount.is_finite():
        raise ValueError(f"amount must be finite, got {amount!r}")
    check_fx_quote(quote)
    with decimal.localcontext(EXACT):
        return amount * quote.rate
