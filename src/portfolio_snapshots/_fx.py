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

import dataclasses
import datetime as dt
import decimal
import re
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from portfolio_snapshots._dated import DatedValues
from portfolio_snapshots._decimal import EXACT, rounding_context
from portfolio_snapshots._ledger_errors import InvalidFxRateError, MissingFxRateError

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Mapping, Sequence

#: Significant digits of a derived (inverted) rate.
FX_PRECISION = 28

_FX = rounding_context(FX_PRECISION)

_ONE = Decimal(1)
_CURRENCY = re.compile(r"[A-Z]{3}")


def fx_context() -> decimal.Context:
    """Return a copy of the context inverse rates are computed in (28 digits, half-even)."""
    return _FX.copy()


@dataclasses.dataclass(frozen=True, slots=True)
class FxQuote:
    """The rate of one currency pair on one date.

    Attributes:
        base: The ISO 4217 code of the currency priced (one unit of it).
        quote: The ISO 4217 code of the currency the rate is expressed in.
        rate: Units of `quote` per unit of `base`; positive and finite.
        as_of: The date of the rate (on or before the date it is used for).
    """

    base: str
    quote: str
    rate: Decimal
    as_of: dt.date

    @property
    def pair(self) -> tuple[str, str]:
        """The ``(base, quote)`` pair."""
        return (self.base, self.quote)


@runtime_checkable
class FxRates(Protocol):
    """Exchange rates.

    Contract:
        - `get_rates` returns, for each requested ``(base, quote)`` pair it can answer, the
          latest rate dated on or before `as_of` (never after), keyed by the pair exactly as
          requested; the quote's `base` and `quote` are the pair's and its `as_of` is the
          date of the rate.
        - A pair with no rate is absent from the mapping: no error, no zero, no None.
        - An adapter that stores one direction of a pair may answer the other with
          `invert_quote`; callers that cannot rely on it request both directions
          (`pairs_with_inverses`) and pick with `resolve_rate`.
        - Identity pairs (``("USD", "USD")``) need not be asked for: `resolve_rate` answers
          them.
        - One call serves many pairs; transient faults raise `TransientError` (or
          `ConnectionError` / `TimeoutError`).
    """

    async def get_rates(
        self, pairs: Collection[tuple[str, str]], as_of: dt.date
    ) -> Mapping[tuple[str, str], FxQuote]:
        """Return the latest rate on or before `as_of` for each pair that has one."""
        ...


@runtime_checkable
class FxRateHistory(Protocol):
    """An optional capability of an `FxRates` adapter: a date range of rates in one call.

    Backfills use it, when the adapter has it, to ask for each pair's rates once for the whole
    range instead of once per day.

    Contract:
        - `get_rate_history` returns, for each requested pair, every rate stored under that
          exact pair dated from `start` to `end` inclusive, in ascending date order; pairs
          without any are absent. Inverse pairs are not derived here: callers ask for both
          directions (`pairs_with_inverses`).
    """

    async def get_rate_history(
        self, pairs: Collection[tuple[str, str]], start: dt.date, end: dt.date
    ) -> Mapping[tuple[str, str], Sequence[FxQuote]]:
        """Return the rates of each pair dated from `start` to `end` inclusive, by date."""
        ...


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


def require_rate(
    quotes: Mapping[tuple[str, str], FxQuote], base: str, quote: str, as_of: dt.date
) -> FxQuote:
    """Like `resolve_rate`, for callers that cannot go on without the rate.

    Args:
        quotes: Available quotes, keyed by pair.
        base: The currency to convert from.
        quote: The currency to convert into.
        as_of: The date the rate is for.

    Returns:
        The quote of ``(base, quote)``.

    Raises:
        MissingFxRateError: Neither direction of the pair is available: a missing rate is
            never taken as 1 or 0.
        InvalidFxRateError: A quote found is invalid.
    """
    found = resolve_rate(quotes, base, quote, as_of)
    if found is None:
        raise MissingFxRateError(base=base, quote=quote, as_of=as_of)
    return found


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


class InMemoryFxRates:
    """An `FxRates` over a dated rate history held in memory: the reference fake.

    Pairs are stored as given; a request for a pair stored only the other way round is
    answered with the inverted rate (`invert_quote`), and when both directions are stored
    the more recent rate on or before the date wins (see `resolve_rate`). Identity pairs are
    answered with rate 1. `request_count` counts the calls to `get_rates`.

    Args:
        quotes: The initial rate history.
    """

    def __init__(self, quotes: Iterable[FxQuote] = ()) -> None:
        """Hold `quotes`; see the class docstring."""
        self._rates: DatedValues[tuple[str, str], FxQuote] = DatedValues()
        self.request_count = 0
        for q in quotes:
            self.add(q)

    def add(self, quote: FxQuote) -> None:
        """Add `quote`, replacing any rate of the same pair and date.

        Raises:
            InvalidFxRateError: The quote is invalid (see `check_fx_quote`).
        """
        check_fx_quote(quote)
        self._rates.put(quote.pair, quote.as_of, quote)

    def add_rate(self, base: str, quote: str, as_of: dt.date, rate: Decimal) -> None:
        """Add the rate of ``base/quote`` on `as_of` (units of `quote` per unit of `base`)."""
        self.add(FxQuote(base, quote, rate, as_of))

    async def get_rate_history(
        self, pairs: Collection[tuple[str, str]], start: dt.date, end: dt.date
    ) -> dict[tuple[str, str], list[FxQuote]]:
        """Return every rate stored under each pair, dated from `start` to `end` inclusive."""
        self.request_count += 1
        found = {pair: self._rates.between(pair, start, end) for pair in pairs}
        return {pair: quotes for pair, quotes in found.items() if quotes}

    async def get_rates(
        self, pairs: Collection[tuple[str, str]], as_of: dt.date
    ) -> dict[tuple[str, str], FxQuote]:
        """Return the latest rate on or before `as_of` for each pair, direct or inverted."""
        self.request_count += 1
        found: dict[tuple[str, str], FxQuote] = {}
        for base, code in pairs:
            available = {}
            for pair in ((base, code), (code, base)):
                latest = self._rates.latest(pair, as_of)
                if latest is not None:
                    available[pair] = latest
            resolved = resolve_rate(available, base, code, as_of)
            if resolved is not None:
                found[base, code] = resolved
        return found
