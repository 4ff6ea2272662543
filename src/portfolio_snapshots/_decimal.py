"""The exact decimal context every computation of the library runs in.

Unbounded precision, so products and sums of finite Decimals are exact whatever the host's
thread context says; the only roundings are the documented, explicit ones (quantizing to a
currency's minor unit, inverting an FX rate, a return).
"""

from __future__ import annotations

import decimal


def rounding_context(precision: int) -> decimal.Context:
    """Return a context of `precision` significant digits, ROUND_HALF_EVEN, trapping errors.

    Any exponent is allowed; invalid operations, division by zero and overflow raise.
    """
    return decimal.Context(
        prec=precision,
        Emax=decimal.MAX_EMAX,
        Emin=decimal.MIN_EMIN,
        rounding=decimal.ROUND_HALF_EVEN,
        traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
    )


#: Unbounded precision: products and sums of finite Decimals are exact. Never mutated.
EXACT = rounding_context(decimal.MAX_PREC)


def exact_context() -> decimal.Context:
    """Return a copy of the decimal context the library computes in (unbounded precision)."""
    return EXACT.copy()
