from __future__ import annotations

import asyncio
import datetime as dt
import decimal
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portfolio_snapshots import InvalidInputError
from portfolio_snapshots._fx import check_fx_quote, convert, fx_context, invert_quote
from portfolio_snapshots.adapters.memory import InMemoryFxRates
from portfolio_snapshots.errors import InvalidFxRateError
from portfolio_snapshots.history import (
    FX_PRECISION,
    FxQuote,
    FxRates,
    pairs_with_inverses,
    resolve_rate,
)

D1 = dt.date(2024, 5, 1)
D2 = dt.date(2024, 5, 2)
D3 = dt.date(2024, 5, 3)

#: The documented bound: an inverted rate is within half a unit of its 28th significant
#: digit of the exact inverse, so |inverted * rate - 1| <= 5e-28.
HALF_ULP = Fraction(5, 10**28)

rates = st.decimals(
    min_value=Decimal("0.000001"), max_value=Decimal(1_000_000), places=6, allow_nan=False
)
amounts = st.decimals(
    min_value=Decimal(-1000000000), max_value=Decimal(1_000_000_000), places=2, allow_nan=False
)


def test_fx_context_is_28_digits_half_even() -> None:
    """fx_context is the documented context: 28 significant digits, ROUND_HALF_EVEN."""
    ctx = fx_context()
    assert (ctx.prec, ctx.rounding, FX_PRECISION) == (28, decimal.ROUND_HALF_EVEN, 28)


def test_invert_quote_rounds_once_to_28_digits() -> None:
    """1 / rate is exact when it terminates and correctly rounded to 28 digits otherwise."""
    assert invert_quote(FxQuote("EUR", "USD", Decimal(2), D1)) == FxQuote(
        "USD", "EUR", Decimal("0.5"), D1
    )
    assert invert_quote(FxQuote("USD", "JPY", Decimal(3), D1)).rate == Decimal(
        "0.3333333333333333333333333333"
    )
    # 1/1.5 = 0.666...: the 29th digit is a 6, so the 28th rounds up
    assert invert_quote(FxQuote("USD", "GBP", Decimal("1.5"), D1)).rate == Decimal(
        "0.6666666666666666666666666667"
    )


def test_invert_quote_ignores_the_thread_context() -> None:
    """The inverse is computed in fx_context, whatever precision the caller's context has."""
    with decimal.localcontext(decimal.Context(prec=3, rounding=decimal.ROUND_DOWN)):
        inverted = invert_quote(FxQuote("USD", "GBP", Decimal("1.5"), D1))
    assert inverted.rate == Decimal("0.6666666666666666666666666667")


@given(rate=rates, amount=amounts)
def test_converting_through_an_inverse_pair_matches_the_direct_pair(
    rate: Decimal, amount: Decimal
) -> None:
    """Converting with an inverted rate equals dividing by the direct one, within 5e-28 relative.

    Exactly: with ``s = invert_quote(r)``, ``|amount * s - amount / r| <= 5e-28 * |amount / r|``
    for every amount, checked in exact rational arithmetic.
    """
    direct = FxQuote("EUR", "USD", rate, D1)
    inverse = asyncio.run(InMemoryFxRates([direct]).get_rates([("USD", "EUR")], D1))["USD", "EUR"]
    assert inverse == invert_quote(direct)
    through_inverse = Fraction(convert(amount, inverse))
    exact = Fraction(amount) / Fraction(rate)
    assert abs(through_inverse - exact) <= HALF_ULP * abs(exact)
    assert abs(Fraction(inverse.rate) * Fraction(rate) - 1) <= HALF_ULP


@given(rate=rates, amount=amounts)
def test_a_round_trip_through_both_directions_returns_the_amount(
    rate: Decimal, amount: Decimal
) -> None:
    """EUR -> USD with the direct rate then back with the inverted one loses at most 5e-28."""
    direct = FxQuote("EUR", "USD", rate, D1)
    back = convert(convert(amount, direct), invert_quote(direct))
    assert abs(Fraction(back) - Fraction(amount)) <= HALF_ULP * abs(Fraction(amount))
    assert back.quantize(Decimal("0.01")) == amount


@given(rate=rates)
def test_inverting_twice_stays_within_twice_the_bound(rate: Decimal) -> None:
    """Inverting an inverted rate gives the rate back within 2e / (1 - e), e = 5e-28."""
    twice = invert_quote(invert_quote(FxQuote("EUR", "USD", rate, D1)))
    assert twice.pair == ("EUR", "USD")
    bound = 2 * HALF_ULP / (1 - HALF_ULP)
    assert abs(Fraction(twice.rate) / Fraction(rate) - 1) <= bound


def test_convert_is_exact() -> None:
    """Convert multiplies exactly, leaving the rounding to the caller."""
    quote = FxQuote("EUR", "USD", Decimal("1.0873"), D1)
    assert convert(Decimal("1234.56"), quote) == Decimal("1342.337088")


def test_convert_rejects_a_float_or_non_finite_amount() -> None:
    """Convert takes finite Decimals only."""
    quote = FxQuote("EUR", "USD", Decimal(1), D1)
    with pytest.raises(TypeError):
        convert(1.5, quote)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="finite"):
        convert(Decimal("NaN"), quote)


# --- resolve_rate ---------------------------------------------------------------------------


def test_resolve_rate_prefers_the_direct_pair() -> None:
    """A direct quote is returned as it is."""
    direct = FxQuote("EUR", "USD", Decimal("1.08"), D1)
    assert resolve_rate({("EUR", "USD"): direct}, "EUR", "USD", D2) is direct


def test_resolve_rate_derives_the_inverse_pair() -> None:
    """With only the other direction available, the rate is its inverse."""
    stored = FxQuote("USD", "EUR", Decimal("0.8"), D1)
    assert resolve_rate({("USD", "EUR"): stored}, "EUR", "USD", D2) == FxQuote(
        "EUR", "USD", Decimal("1.25"), D1
    )


def test_resolve_rate_takes_the_more_recent_direction() -> None:
    """When both directions are there, the more recent wins, the direct one on a tie."""
    old_direct = FxQuote("EUR", "USD", Decimal("1.10"), D1)
    new_inverse = FxQuote("USD", "EUR", Decimal("0.8"), D2)
    quotes = {("EUR", "USD"): old_direct, ("USD", "EUR"): new_inverse}
    assert resolve_rate(quotes, "EUR", "USD", D3) == FxQuote("EUR", "USD", Decimal("1.25"), D2)
    same_day = {("EUR", "USD"): old_direct, ("USD", "EUR"): FxQuote("USD", "EUR", Decimal(1), D1)}
    assert resolve_rate(same_day, "EUR", "USD", D3) is old_direct


def test_resolve_rate_answers_identity_and_reports_missing() -> None:
    """An identity pair is rate 1 on the date asked; a pair with no quote is None."""
    assert resolve_rate({}, "USD", "USD", D1) == FxQuote("USD", "USD", Decimal(1), D1)
    assert resolve_rate({}, "EUR", "USD", D1) is None


@pytest.mark.parametrize(
    "rate", [Decimal(0), Decimal(-1), Decimal("NaN"), Decimal("Infinity"), 1.08]
)
def test_an_unusable_rate_is_an_error_naming_pair_date_and_value(rate: Any) -> None:
    """A rate of zero or less, non-finite or a float raises InvalidFxRateError."""
    quotes = {("EUR", "USD"): FxQuote("EUR", "USD", rate, D1)}
    with pytest.raises(InvalidFxRateError) as caught:
        resolve_rate(quotes, "EUR", "USD", D2)
    error = caught.value
    assert (error.base, error.quote, error.as_of) == ("EUR", "USD", D1)
    assert error.value is rate
    assert isinstance(error, InvalidInputError)
    assert "EUR/USD" in str(error)
    assert "2024-05-01" in str(error)


def test_an_unusable_inverse_rate_is_an_error_too() -> None:
    """An inverse quote is checked before it is inverted."""
    quotes = {("USD", "EUR"): FxQuote("USD", "EUR", Decimal(0), D1)}
    with pytest.raises(InvalidFxRateError) as caught:
        resolve_rate(quotes, "EUR", "USD", D2)
    assert (caught.value.base, caught.value.quote) == ("USD", "EUR")


def test_a_rate_dated_after_the_date_asked_is_an_error() -> None:
    """A quote dated after the date it is used for is rejected (on-or-before semantics)."""
    quotes = {("EUR", "USD"): FxQuote("EUR", "USD", Decimal(1), D3)}
    with pytest.raises(InvalidFxRateError, match="after"):
        resolve_rate(quotes, "EUR", "USD", D2)


def test_a_quote_under_the_wrong_key_is_an_error() -> None:
    """A quote must be for the pair it is keyed under."""
    quotes = {("EUR", "USD"): FxQuote("GBP", "USD", Decimal(1), D1)}
    with pytest.raises(InvalidFxRateError, match="EUR/USD"):
        resolve_rate(quotes, "EUR", "USD", D2)


@pytest.mark.parametrize("code", ["eur", "EURO", ""])
def test_a_bad_currency_code_is_an_error(code: str) -> None:
    """Both currencies of a quote must be three upper-case letters."""
    with pytest.raises(InvalidFxRateError, match="ISO 4217"):
        check_fx_quote(FxQuote(code, "USD", Decimal(1), D1))


def test_pairs_with_inverses() -> None:
    """pairs_with_inverses adds each pair's inverse and drops identity pairs."""
    assert pairs_with_inverses([("EUR", "USD"), ("USD", "USD")]) == {
        ("EUR", "USD"),
        ("USD", "EUR"),
    }


# --- InMemoryFxRates ------------------------------------------------------------------------


def test_in_memory_rates_answer_on_or_before_the_date() -> None:
    """get_rates returns the latest rate dated on or before as_of; none before the first."""
    fx = InMemoryFxRates()
    fx.add_rate("EUR", "USD", D1, Decimal("1.08"))
    fx.add_rate("EUR", "USD", D3, Decimal("1.10"))
    assert isinstance(fx, FxRates)

    async def rates(day: dt.date) -> Any:
        return await fx.get_rates([("EUR", "USD")], day)

    assert asyncio.run(rates(D2)) == {("EUR", "USD"): FxQuote("EUR", "USD", Decimal("1.08"), D1)}
    assert asyncio.run(rates(D3))["EUR", "USD"].rate == Decimal("1.10")
    assert asyncio.run(rates(D1 - dt.timedelta(days=1))) == {}
    assert fx.request_count == 3


def test_in_memory_rates_store_pairs_as_given_and_answer_inverses() -> None:
    """A pair stored one way is answered both ways, keyed as requested; unknown pairs are absent."""
    fx = InMemoryFxRates([FxQuote("USD", "JPY", Decimal(150), D1)])
    found = asyncio.run(
        fx.get_rates([("USD", "JPY"), ("JPY", "USD"), ("USD", "USD"), ("GBP", "USD")], D2)
    )
    assert found == {
        ("USD", "JPY"): FxQuote("USD", "JPY", Decimal(150), D1),
        ("JPY", "USD"): FxQuote("JPY", "USD", Decimal("0.006666666666666666666666666667"), D1),
        ("USD", "USD"): FxQuote("USD", "USD", Decimal(1), D2),
    }


def test_in_memory_rates_replace_a_rate_of_the_same_date() -> None:
    """Adding a rate for a pair and date already stored replaces it."""
    fx = InMemoryFxRates()
    fx.add_rate("EUR", "USD", D1, Decimal("1.08"))
    fx.add_rate("EUR", "USD", D1, Decimal("1.09"))
    assert asyncio.run(fx.get_rates([("EUR", "USD")], D1))["EUR", "USD"].rate == Decimal("1.09")


def test_in_memory_rates_reject_unusable_rates_on_add() -> None:
    """InMemoryFxRates validates the rates it stores."""
    with pytest.raises(InvalidFxRateError):
        InMemoryFxRates().add_rate("EUR", "USD", D1, Decimal(-1))
