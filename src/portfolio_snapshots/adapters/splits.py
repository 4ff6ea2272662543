"""`unadjust_splits`: serve closes as traded from a split-adjusted price source.

The ledger multiplies a position's quantity on a split's ex-date, so the job expects
*unadjusted* closes (as traded that day): then ``quantity * price`` is continuous across the
split. Many providers return *split-adjusted* history instead, every close before a split
divided by its ratio. This wrapper multiplies them back. The splits may be those of the ledger
itself (`portfolio_snapshots.history.ledger_splits`), so a host lists each split once.
"""

from __future__ import annotations

import decimal
from fractions import Fraction
from typing import TYPE_CHECKING

from portfolio_snapshots._decimal import EXACT
from portfolio_snapshots._domain import PriceQuote
from portfolio_snapshots._ports import MarketData, PriceHistory
from portfolio_snapshots._splits import (
    divide_price,
    fraction_to_decimal,
    ratio_problem,
    split_factor,
)

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Collection, Iterable, Mapping, Sequence
    from decimal import Decimal

__all__ = ["unadjust_splits"]

_ONE = Fraction(1)


class _Unadjusted:
    """A `MarketData` that multiplies each adjusted close back by the splits after it."""

    def __init__(
        self,
        inner: MarketData,
        splits: Mapping[str, Iterable[tuple[dt.date, Fraction | Decimal]]],
        adjusted_as_of: dt.date | None,
    ) -> None:
        self._inner = inner
        self._adjusted_as_of = adjusted_as_of
        self._splits: dict[str, list[tuple[dt.date, Fraction | Decimal]]] = {}
        for ticker, events in splits.items():
            checked = []
            for ex_date, ratio in events:
                reason = ratio_problem(ratio)
                if reason is not None:
                    raise ValueError(
                        f"split of {ticker!r} on {ex_date.isoformat()}: ratio {reason}, "
                        f"got {ratio!r}"
                    )
                checked.append((ex_date, ratio))
            self._splits[ticker] = sorted(checked, key=lambda event: event[0])

    def factor(self, ticker: str, day: dt.date) -> Fraction:
        """Return the product of the ratios of `ticker`'s splits after `day`.

        Only splits with an ex-date after `day` and on or before the series' adjustment date
        count: those are the ones the provider divided the close of `day` by.
        """
        return split_factor(self._splits.get(ticker, ()), day, self._adjusted_as_of)

    def _restore(self, quote: PriceQuote) -> PriceQuote:
        factor = self.factor(quote.ticker, quote.as_of)
        if factor == _ONE:
            return quote
        exact = fraction_to_decimal(factor)
        if exact is None:  # a 1-for-3 split: the product may not terminate
            price = divide_price(quote.price, 1 / factor)
        else:
            with decimal.localcontext(EXACT):
                price = quote.price * exact
        return PriceQuote(quote.ticker, price, quote.as_of, quote.currency)

    async def get_prices(self, tickers: Collection[str], as_of: dt.date) -> dict[str, PriceQuote]:
        """Return the inner source's closes, un-adjusted."""
        quotes = await self._inner.get_prices(tickers, as_of)
        return {t: self._restore(q) for t, q in quotes.items()}


class _UnadjustedWithHistory(_Unadjusted):
    """The same, for a source that also offers `PriceHistory`."""

    async def get_price_history(
        self, tickers: Collection[str], start: dt.date, end: dt.date
    ) -> dict[str, list[PriceQuote]]:
        """Return the inner source's history, every close un-adjusted."""
        inner = self._inner
        assert isinstance(inner, PriceHistory)  # noqa: S101 - guaranteed by unadjust_splits
        history: Mapping[str, Sequence[PriceQuote]] = await inner.get_price_history(
            tickers, start, end
        )
        return {t: [self._restore(q) for q in quotes] for t, quotes in history.items()}


def unadjust_splits(
    inner: MarketData,
    splits: Mapping[str, Iterable[tuple[dt.date, Fraction | Decimal]]],
    *,
    adjusted_as_of: dt.date | None = None,
) -> MarketData:
    """Wrap a split-adjusted price source so that it returns closes as traded.

    A close of ticker T dated d becomes ``adjusted * product(ratio)`` over T's splits whose
    ex-date is after d and on or before `adjusted_as_of`. The product is exact when it has a
    finite decimal expansion (always, for Decimal ratios); otherwise (a close times 1/3 for a
    1-for-3 reverse split) it is rounded to 28 significant digits, ROUND_HALF_EVEN. The result
    is the traded price up to the provider's own rounding of its adjusted series.

    Args:
        inner: The split-adjusted source. If it offers `PriceHistory`, so does the wrapper.
        splits: Per ticker, its splits as ``(ex_date, ratio)``, the ratio a `Fraction` or a
            `Decimal`: 2 for a 2-for-1 split, ``Fraction(1, 3)`` for a 1-for-3 reverse split.
            Pass ``ledger_splits(transactions)`` (`portfolio_snapshots.history`) to use the
            ledger's SPLIT transactions, or list the provider's corporate actions.
        adjusted_as_of: The date the provider last adjusted the series (None: every split
            listed has been applied, as with a live API).

    Returns:
        A `MarketData` (and `PriceHistory` when `inner` is one) serving unadjusted closes.

    Raises:
        ValueError: A ratio is not a Fraction or a finite Decimal, above zero.
    """
    cls = _UnadjustedWithHistory if isinstance(inner, PriceHistory) else _Unadjusted
    return cls(inner, splits, adjusted_as_of)
