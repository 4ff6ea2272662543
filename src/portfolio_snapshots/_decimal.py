"""The exact decimal context every computation of the library runs in.

Unbounded precision, so products and sums of finite Decimals are exact whatever the host's
thread context says; the only roundings are the documented, explicit ones (quantizing to a
currency's minor unit, inverting an FX rate, a return).
"""

from __future__ import annotations

import decimal

EXACT = decimal.Context(
    prec=decimal.MAX_PREC,
    Emax=decimal.MAX_EMAX,
    Emin=decimal.MIN_EMIN,
    rounding=decimal.ROUND_HALF_EVEN,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)


def exact_context() -> decimal.Context:
    """Return a copy of the decimal context the library computes in (unbounded precision)."""
    return EXACT.copy()
