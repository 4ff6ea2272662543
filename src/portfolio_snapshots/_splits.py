"""Splits between a close and the day it values: the factor, and the exact carried value.

Pure: no I/O, no clock. The ledger multiplies a position's quantity on a split's ex-date, so a
close dated before the ex-date and used on or after it (the latest close on or before a day
that has none yet) is in the units of before the split. Dividing it by the product of the
ratios of the splits in between puts it in the units the quantity is counted in:
``quantity * close / factor`` is then continuous across the split (see ``docs/history.md``).

The value is exact: ``quantity * close / factor`` rounded once to the currency's minor unit,
with ROUND_HALF_EVEN, like every market value. The price recorded beside it, ``close /
factor``, is exact whenever it has a finite decimal expansion (always for 2-for-1, 4-for-1,
10-for-1 or 1-for-10 splits, and whenever the ratio divides the close); otherwise (100 / 3
after a 3-for-1 split) it is rounded to `CARRIED_PRICE_PRECISION` significant digits, and the
value is still computed from the exact fraction, not from the rounded price.

A ratio is a `fractions.Fraction` (what the ledger records: ``Fraction(1, 3)`` for a 1-for-3
reverse split, exactly) or a `Decimal` (a host's own ``Decimal("0.1")``); both are read
exactly. `scale` is the ledger's one rounding of a quantity or a cost multiplied by a
fraction: exact when the result has a finite decimal expansion, otherwise rounded to
`DIVISION_PLACES` decimal places.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Final, TypeAlias

from portfolio_snapshots._decimal import EXACT, rounding_context
from portfolio_snapshots._errors import InvalidPortfolioError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from uuid import UUID

#: A split's ratio, new units per old unit: ``Fraction(1, 3)`` for a 1-for-3 reverse split (as
#: the ledger records it), or a Decimal (2 for a 2-for-1 split, 0.1 for 1-for-10).
SplitRatio: TypeAlias = "Fraction | Decimal"
#: Splits per ticker: ``(ex_date, ratio)`` pairs in ascending ex-date order.
SplitHistory: TypeAlias = "Mapping[str, tuple[tuple[dt.date, Fraction | Decimal], ...]]"

#: Significant digits of a carried price that has no finite decimal expansion.
CARRIED_PRICE_PRECISION = 28
#: Decimal places of a quantity or cost that `scale` cannot give exactly: the library's bound
#: on places (`portfolio_snapshots._parsing.MAX_PLACES`).
DIVISION_PLACES: Final = 18

_PRICE_CTX = rounding_context(CARRIED_PRICE_PRECISION)
_ONE = Fraction(1)
_DIVISION_SCALE = 10**DIVISION_PLACES


def split_factor(
    splits: Iterable[tuple[dt.date, Fraction | Decimal]], after: dt.date, through: dt.date | None
) -> Fraction:
    """Return the product of the ratios of the splits with ``after < ex_date <= through``.

    Args:
        splits: ``(ex_date, ratio)`` pairs, in any order; a ratio a `Fraction` or a `Decimal`.
        after: The date of the close: splits on or before it are already in the close.
        through: The last ex-date that counts (None: no limit).

    Returns:
        The exact product, as a `Fraction`; 1 when no split is in between.
    """
    factor = _ONE
    for ex_date, ratio in splits:
        if after < ex_date and (through is None or ex_date <= through):
            factor *= ratio if isinstance(ratio, Fraction) else Fraction(ratio)
    return factor


def _integer_ratio(value: Decimal | Fraction) -> tuple[int, int]:
    """Return ``(n, d)`` with ``value == n / d`` exactly, ``d > 0``."""
    if isinstance(value, Fraction):
        return value.numerator, value.denominator
    return value.as_integer_ratio()


def _divide(numerator: Decimal, divisor: Decimal | Fraction) -> tuple[int, int]:
    """Return ``numerator / divisor`` as a reduced fraction ``(n, d)``, ``d > 0``."""
    a, b = _integer_ratio(numerator)
    c, d = _integer_ratio(divisor)
    n, m = a * d, b * c
    if m < 0:
        n, m = -n, -m
    g = math.gcd(n, m)
    return n // g, m // g


def divide_to_unit(numerator: Decimal, divisor: Decimal | Fraction, unit: Decimal) -> Decimal:
    """Return ``numerator / divisor`` exactly rounded to `unit` with ROUND_HALF_EVEN.

    One rounding of the exact quotient, like ``(numerator / divisor).quantize(unit)`` would
    be if the division were exact; no intermediate precision is involved.

    Args:
        numerator: Any finite Decimal.
        divisor: A finite Decimal or a Fraction, other than zero.
        unit: The quantum, a power of ten (``Decimal("0.01")`` for cents).

    Returns:
        The rounded quotient, with `unit`'s exponent.
    """
    n, d = _divide(numerator, divisor)
    exponent = unit.as_tuple().exponent
    assert isinstance(exponent, int)  # noqa: S101 - a quantum is finite
    # n / d / 10**exponent, as an integer quotient and remainder
    if exponent <= 0:
        n *= 10**-exponent
    else:
        d *= 10**exponent
    q, r = divmod(abs(n), d)
    if 2 * r > d or (2 * r == d and q % 2):
        q += 1
    if n < 0:
        q = -q
    return Decimal(q).scaleb(exponent, context=EXACT)


def divide_price(price: Decimal, divisor: Decimal | Fraction) -> Decimal:
    """Return ``price / divisor``: exact when it terminates, else to 28 significant digits.

    Args:
        price: A finite Decimal.
        divisor: A finite Decimal or a Fraction, other than zero.

    Returns:
        The exact quotient when it has a finite decimal expansion (the reduced divisor has no
        prime factor but 2 and 5); otherwise the quotient correctly rounded to
        `CARRIED_PRICE_PRECISION` significant digits, ROUND_HALF_EVEN.
    """
    n, d = _divide(price, divisor)
    places = _terminating_places(d)
    if places is None:
        with decimal.localcontext(_PRICE_CTX):
            return Decimal(n) / Decimal(d)
    return Decimal(n * (10**places // d)).scaleb(-places, context=EXACT)


def _terminating_places(d: int) -> int | None:
    """Return the decimal places of ``n / d`` (``d > 0``, reduced) when it terminates, or None."""
    twos = (d & -d).bit_length() - 1
    rest = d >> twos
    fives = 0
    while rest % 5 == 0:
        rest //= 5
        fives += 1
    return max(twos, fives) if rest == 1 else None


def scale(value: Decimal, numerator: int, denominator: int) -> Decimal:
    """Return ``value * numerator / denominator``: exact when it terminates, else 18 places.

    The ledger's one rounding: a quantity multiplied by a split's ratio, and the part of a
    cost that leaves with part of a position. When the exact result has a finite decimal
    expansion it is returned as it is; otherwise (one third of 100) it is rounded to
    `DIVISION_PLACES` decimal places with ROUND_HALF_EVEN.

    Args:
        value: A finite Decimal.
        numerator: An int.
        denominator: An int other than zero.

    Returns:
        The product.
    """
    a, b = value.as_integer_ratio()
    n, d = a * numerator, b * denominator
    if d < 0:
        n, d = -n, -d
    g = math.gcd(n, d)
    if g != 1:
        n //= g
        d //= g
    if d == 1:
        return Decimal(n)
    places = _terminating_places(d)
    if places is not None:
        return Decimal(n * (10**places // d)).scaleb(-places, context=EXACT)
    q, r = divmod(abs(n) * _DIVISION_SCALE, d)
    if 2 * r > d or (2 * r == d and q % 2):
        q += 1
    return Decimal(-q if n < 0 else q).scaleb(-DIVISION_PLACES, context=EXACT)


def fraction_to_decimal(value: Fraction) -> Decimal | None:
    """Return `value` as an exact Decimal, or None when it has no finite decimal expansion."""
    n, d = value.numerator, value.denominator
    if d == 1:
        return Decimal(n)
    places = _terminating_places(d)
    if places is None:
        return None
    return Decimal(n * (10**places // d)).scaleb(-places, context=EXACT)


def carry_across_splits(
    *,
    portfolio_id: UUID,
    day: dt.date,
    ticker: str,
    splits: SplitHistory,
    price: Decimal,
    price_date: dt.date,
    gross: Decimal,
    value: Decimal,
    unit: Decimal,
) -> tuple[Decimal, Decimal]:
    """Return the market value and unit price of `ticker` on `day`, across its splits.

    Args:
        portfolio_id: The portfolio valued (named by the error).
        day: The date valued.
        ticker: The position's ticker, a key of `splits`.
        splits: The splits already applied to the portfolio's quantities.
        price: The close used, as dated.
        price_date: The date of the close.
        gross: ``quantity * price`` (times the FX rate, when converted), exact.
        value: `gross` rounded to `unit`: the value when no split is in between.
        unit: The quantum of the portfolio currency's minor unit.

    Returns:
        ``(value, price)`` unchanged when no split has its ex-date after `price_date` and on or
        before `day`; otherwise ``gross / factor`` rounded once to `unit` and ``price /
        factor`` (see `divide_price`), `factor` being the product of their ratios.

    Raises:
        InvalidPortfolioError: The ticker's splits are not ``(date, ratio)`` pairs with a
            ratio above zero (a `Fraction`, or a finite `Decimal`).
    """
    events: object = splits[ticker]
    reason = _invalid(events)
    if reason is not None:
        raise InvalidPortfolioError(
            reason,
            portfolio_id=portfolio_id,
            snapshot_date=day,
            field="splits",
            ticker=ticker,
            value=events,
        )
    factor = split_factor(splits[ticker], price_date, day)
    if factor == _ONE:
        return value, price
    return divide_to_unit(gross, factor, unit), divide_price(price, factor)


def _invalid(events: object) -> str | None:
    """Return why a ticker's splits are unusable, or None."""
    if not isinstance(events, (tuple, list)):
        return "must be a tuple of (ex_date, ratio) pairs"
    for event in events:
        if (
            not isinstance(event, tuple)
            or len(event) != 2  # noqa: PLR2004 - a pair
            or type(event[0]) is not dt.date
        ):
            return "must be a tuple of (ex_date, ratio) pairs"
        if ratio_problem(event[1]) is not None:
            return "ratio must be a Fraction or a finite Decimal, above zero"
    return None


def ratio_problem(ratio: object) -> str | None:
    """Say what is wrong with `ratio` as a split's ratio, or return None.

    A ratio is a `Fraction` or a finite `Decimal`, above zero (a float has lost the exact
    value; an int is refused so that a bool is too: write ``Fraction(2)``).
    """
    if isinstance(ratio, Fraction):
        return None if ratio > 0 else "must be above zero"
    if type(ratio) is not Decimal:
        return f"must be a Fraction or a Decimal, got {type(ratio).__name__}"
    if not ratio.is_finite() or ratio <= 0:
        return "must be a finite Decimal above zero"
    return None
