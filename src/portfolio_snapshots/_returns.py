"""Returns over a series of snapshots: time-weighted (per period and cumulative), Modified Dietz.

Pure functions over `PortfolioSnapshot` values of one portfolio, in ascending date order, that
carry ``net_contributions`` and ``external_flow`` (snapshots of a ledger-backed repository).

Conventions (see ``docs/history.md`` for the formulas):

- The value of a snapshot is its ``total_value`` at the end of its date, flows included.
- The external flow of the period between two snapshots is the change in
  ``net_contributions``; for consecutive dates it must equal the later snapshot's
  ``external_flow``.
- A flow is assumed to happen at the **start** of the period it falls in: at the start of its
  day for daily snapshots, right after the earlier snapshot otherwise. Flows thus earn the
  period's return, as when a deposit is invested the day it arrives.
- Every result is the exact rational value of its formula rounded once to 28 significant
  digits with ROUND_HALF_EVEN (`returns_context`); intermediate sums and products are exact.
"""

from __future__ import annotations

import datetime as dt
import decimal
from decimal import Decimal
from typing import TYPE_CHECKING, NamedTuple

from portfolio_snapshots._decimal import EXACT, rounding_context
from portfolio_snapshots._errors import (
    InvalidSnapshotSeriesError,
    MissingFlowDataError,
    UndefinedReturnError,
)

if TYPE_CHECKING:
    from collections.abc import Iterable
    from uuid import UUID

    from portfolio_snapshots._domain import PortfolioSnapshot

#: Significant digits of every return computed here.
RETURNS_PRECISION = 28

_CTX = rounding_context(RETURNS_PRECISION)

_ZERO = Decimal(0)
_ONE = Decimal(1)


def _divide(numerator: Decimal, denominator: Decimal) -> Decimal:
    """Return the quotient correctly rounded to 28 significant digits."""
    with decimal.localcontext(_CTX):
        return numerator / denominator


def returns_context() -> decimal.Context:
    """Return a copy of the context returns are rounded in (28 digits, ROUND_HALF_EVEN)."""
    return _CTX.copy()


class PeriodReturn(NamedTuple):
    """The time-weighted return of the period between two consecutive snapshots.

    Attributes:
        start: The date of the earlier snapshot (the period starts at the end of it).
        end: The date of the later snapshot (the period ends at the end of it).
        value: ``(V_end - V_start - flow) / (V_start + flow)``: 0.01 is +1 %.
        flow: Deposits minus withdrawals during the period.
    """

    start: dt.date
    end: dt.date
    value: Decimal
    flow: Decimal


class _Period(NamedTuple):
    start: dt.date
    end: dt.date
    begin_value: Decimal
    flow: Decimal
    end_value: Decimal


def _amount(snapshot: PortfolioSnapshot, field: str) -> Decimal:
    value: object = getattr(snapshot, field)
    if value is None:
        raise MissingFlowDataError(
            "is unknown: returns need snapshots of a ledger-backed repository, "
            "which know deposits and withdrawals",
            portfolio_id=snapshot.portfolio_id,
            snapshot_date=snapshot.snapshot_date,
            field=field,
            value=None,
        )
    if type(value) is not Decimal or not value.is_finite():
        raise InvalidSnapshotSeriesError(
            "must be a finite Decimal",
            portfolio_id=snapshot.portfolio_id,
            snapshot_date=snapshot.snapshot_date,
            field=field,
            value=value,
        )
    return value


def _mismatch(snapshot: PortfolioSnapshot, reason: str, field: str, value: object) -> Exception:
    return InvalidSnapshotSeriesError(
        reason,
        portfolio_id=snapshot.portfolio_id,
        snapshot_date=snapshot.snapshot_date,
        field=field,
        value=value,
    )


def _periods(snapshots: Iterable[PortfolioSnapshot], *, at_least: int) -> list[_Period]:
    """Check the series and return its periods (one fewer than snapshots)."""
    periods: list[_Period] = []
    first: PortfolioSnapshot | None = None
    previous: PortfolioSnapshot | None = None
    previous_contributions = _ZERO
    count = 0
    for snapshot in snapshots:
        count += 1
        if first is None:
            first = snapshot
        elif snapshot.portfolio_id != first.portfolio_id:
            raise _mismatch(
                snapshot, "the series mixes portfolios", "portfolio_id", snapshot.portfolio_id
            )
        elif snapshot.currency != first.currency:
            raise _mismatch(
                snapshot,
                f"the series mixes currencies (it starts in {first.currency})",
                "currency",
                snapshot.currency,
            )
        value = _amount(snapshot, "total_value")
        contributions = _amount(snapshot, "net_contributions")
        day_flow = _amount(snapshot, "external_flow")
        if previous is not None:
            day = snapshot.snapshot_date
            if day <= previous.snapshot_date:
                raise _mismatch(
                    snapshot,
                    f"dates must increase (it follows {previous.snapshot_date.isoformat()})",
                    "snapshot_date",
                    day,
                )
            with decimal.localcontext(EXACT):
                flow = contributions - previous_contributions
            if (day - previous.snapshot_date).days == 1 and day_flow != flow:
                raise _mismatch(
                    snapshot,
                    f"differs from the day's change in net_contributions ({flow})",
                    "external_flow",
                    day_flow,
                )
            periods.append(_Period(previous.snapshot_date, day, previous.total_value, flow, value))
        previous = snapshot
        previous_contributions = contributions
    if count < at_least:
        raise InvalidSnapshotSeriesError(
            f"a return needs at least {at_least} snapshots",
            portfolio_id=None if first is None else first.portfolio_id,
            field="snapshots",
            value=count,
        )
    return periods


def _factor(portfolio_id: UUID, period: _Period) -> tuple[Decimal, Decimal] | None:
    """Return the period's growth as ``(V_end, V_start + flow)``, or None for 0 / 0.

    Raises:
        UndefinedReturnError: The capital at work, ``V_start + flow``, is not above zero while
            something is left at the end.
    """
    with decimal.localcontext(EXACT):
        capital = period.begin_value + period.flow
    if capital > 0:
        return period.end_value, capital
    if capital == 0 and period.end_value == 0:
        return None  # nothing at work and nothing left: a return of zero
    raise UndefinedReturnError(
        f"the capital at work from {period.start.isoformat()} is not above zero "
        f"(value {period.begin_value} plus flow {period.flow})",
        portfolio_id=portfolio_id,
        snapshot_date=period.end,
        field="capital",
        value=capital,
    )


def _product(values: list[Decimal]) -> Decimal:
    """Return the exact product of `values`, multiplied pairwise (fast for long series)."""
    if not values:
        return _ONE
    with decimal.localcontext(EXACT):
        while len(values) > 1:
            paired = [a * b for a, b in zip(values[::2], values[1::2], strict=False)]
            if len(values) % 2:
                paired.append(values[-1])
            values = paired
    return values[0]


def time_weighted_returns(snapshots: Iterable[PortfolioSnapshot]) -> tuple[PeriodReturn, ...]:
    """Return the time-weighted return of each period between consecutive snapshots.

    With one snapshot per day this is the daily return series. Each period's return is
    ``(V_end - V_start - F) / (V_start + F)`` with the period's flow ``F`` at its start, so a
    flow is never counted as a gain or a loss; a period with nothing at work and nothing left
    (``V_start + F == 0 == V_end``) returns zero.

    Args:
        snapshots: One portfolio's snapshots, in ascending date order, carrying
            ``net_contributions`` and ``external_flow``.

    Returns:
        One `PeriodReturn` per pair of consecutive snapshots (none for fewer than two).

    Raises:
        MissingFlowDataError: A snapshot lacks ``net_contributions`` or ``external_flow``.
        InvalidSnapshotSeriesError: The series mixes portfolios or currencies, its dates do
            not increase, an amount is not a finite Decimal, or a day's ``external_flow``
            differs from its change in ``net_contributions``.
        UndefinedReturnError: A period's capital at work is zero or negative while value is
            left at its end.
    """
    snapshots = list(snapshots)
    periods = _periods(snapshots, at_least=0)
    results = []
    for period in periods:
        factor = _factor(snapshots[0].portfolio_id, period)
        if factor is None:
            value = _ZERO
        else:
            end_value, capital = factor
            with decimal.localcontext(EXACT):
                gain = end_value - capital
            value = _divide(gain, capital)
        results.append(PeriodReturn(period.start, period.end, value, period.flow))
    return tuple(results)


def cumulative_time_weighted_return(snapshots: Iterable[PortfolioSnapshot]) -> Decimal:
    """Return the time-weighted return from the first snapshot to the last.

    The product of the periods' growth factors minus one: ``prod((V_end) / (V_start + F)) - 1``
    over the periods of `time_weighted_returns`. The products are exact and divided once, so
    the result is the exact value rounded to 28 significant digits: with no flows it is
    exactly ``V_last / V_first - 1`` rounded once.

    Args:
        snapshots: One portfolio's snapshots, in ascending date order, at least two, carrying
            ``net_contributions`` and ``external_flow``.

    Returns:
        The cumulative return: 0.1 is +10 %.

    Raises:
        MissingFlowDataError: A snapshot lacks ``net_contributions`` or ``external_flow``.
        InvalidSnapshotSeriesError: Fewer than two snapshots, or the series is inconsistent
            (see `time_weighted_returns`).
        UndefinedReturnError: A period's capital at work is zero or negative while value is
            left at its end.
    """
    snapshots = list(snapshots)
    periods = _periods(snapshots, at_least=2)
    pid = snapshots[0].portfolio_id
    factors = [f for f in (_factor(pid, p) for p in periods) if f is not None]
    grown = _product([f[0] for f in factors])
    invested = _product([f[1] for f in factors])
    with decimal.localcontext(EXACT):
        gain = grown - invested
    return _divide(gain, invested)


def modified_dietz_return(snapshots: Iterable[PortfolioSnapshot]) -> Decimal:
    """Return the Modified Dietz (money-weighted) return from the first snapshot to the last.

    ``(V_last - V_first - sum(F)) / (V_first + sum(w * F))``, each flow weighted by the share
    of the period it was at work: ``w = (last date - date of the snapshot before the flow) /
    (last date - first date)``, in days (a flow at the start of the first day weighs 1, one
    at the start of the last day ``1 / days``). A series worth zero throughout, without
    flows, returns zero.

    Args:
        snapshots: One portfolio's snapshots, in ascending date order, at least two, carrying
            ``net_contributions`` and ``external_flow``.

    Returns:
        The return over the whole period: 0.1 is +10 %.

    Raises:
        MissingFlowDataError: A snapshot lacks ``net_contributions`` or ``external_flow``.
        InvalidSnapshotSeriesError: Fewer than two snapshots, or the series is inconsistent
            (see `time_weighted_returns`).
        UndefinedReturnError: The average capital at work (the denominator) is zero or
            negative.
    """
    snapshots = list(snapshots)
    periods = _periods(snapshots, at_least=2)
    first, last = snapshots[0], snapshots[-1]
    days = (last.snapshot_date - first.snapshot_date).days
    with decimal.localcontext(EXACT):
        flows = sum((p.flow for p in periods), _ZERO)
        weighted = sum(((last.snapshot_date - p.start).days * p.flow for p in periods), _ZERO)
        gain = last.total_value - first.total_value - flows
        # both sides of the fraction multiplied by `days`, so the weights stay exact integers
        scaled_gain = gain * days
        scaled_capital = first.total_value * days + weighted
    if scaled_capital > 0:
        return _divide(scaled_gain, scaled_capital)
    if scaled_capital == 0 and gain == 0:
        return _ZERO
    raise UndefinedReturnError(
        f"the average capital at work from {first.snapshot_date.isoformat()} is not above zero",
        portfolio_id=first.portfolio_id,
        snapshot_date=last.snapshot_date,
        field="average_capital",
        value=_divide(scaled_capital, Decimal(days)),
    )
