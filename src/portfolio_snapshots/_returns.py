"""Returns over a series of snapshots: time-weighted (per period and cumulative), Modified Dietz.

Pure functions over `PortfolioSnapshot` values of one portfolio, in ascending date order, that
carry ``net_contributions`` and ``external_flow`` (snapshots of a ledger-backed repository).

Conventions (see ``docs/history.md`` for the formulas and worked examples):

- The value of a snapshot is its ``total_value`` at the end of its date, flows included.
- The external flow of the period between two snapshots is the change in
  ``net_contributions`` plus ``net_transfers`` (units transferred in or out of the account are
  flows, as the peers count them, though not contributions of cash; None counts as none); for
  consecutive dates it must equal the later snapshot's ``external_flow``. Snapshots keep the
  net flow only, so a period's deposits and withdrawals are netted: its flow is a deposit
  when positive, a withdrawal when negative.
- `FlowTiming` says whether a period's flow is at work during the period (it happened at its
  start) or not (at its end); for daily snapshots the period is the flow's day. The default,
  `FlowTiming.DEPOSITS_START_WITHDRAWALS_END`, is Portfolio Performance's: a deposit earns the
  day's return, a withdrawal is taken out after it, so closing an account at a gain returns
  the gain.
- A period is refused (`UndefinedReturnError`) only when nothing is at work in it under the
  timing (the capital at work is zero or negative) while it gains or loses something; with
  nothing at work and nothing gained its return is zero.
- Every result is the exact rational value of its formula rounded once to 28 significant
  digits with ROUND_HALF_EVEN (`returns_context`); intermediate sums and products are exact.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import itertools
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


class FlowTiming(enum.StrEnum):
    """When, within its period, a deposit or withdrawal is taken to happen.

    A flow at the **start** of a period is at work during it (it earns the period's return); a
    flow at the **end** is not (a deposit arrives after the return, a withdrawal leaves after
    it). For daily snapshots the period is the flow's own day; for snapshots further apart,
    the period between them plays the role of the day. The timing decides the capital at work
    of a period, ``V_start + F`` when the flow ``F`` is at its start and ``V_start`` when at
    its end, and so the denominator of every return (see ``docs/history.md``).

    Attributes:
        START_OF_DAY: Every flow at the start of its day: a deposit is invested the day it
            arrives, a withdrawal leaves before the day's return. A period that withdraws
            more than it started with (closing an account at a gain) has no capital at work.
        DEPOSITS_START_WITHDRAWALS_END: Deposits at the start of their day, withdrawals at its
            end, as Portfolio Performance computes its true time-weighted rate of return:
            ``(V_end + withdrawals) / (V_start + deposits) - 1``. The default.
        END_OF_DAY: Every flow at the end of its day, the day weighting of Modified Dietz in
            its usual form: a flow weighs ``(T - t) / T`` of a ``T``-day period, ``t`` days
            after its start, so a flow on the last day weighs nothing; for a daily period the
            deposit does not earn that day's return (it was invested at the close).
    """

    START_OF_DAY = "start_of_day"
    DEPOSITS_START_WITHDRAWALS_END = "deposits_start_withdrawals_end"
    END_OF_DAY = "end_of_day"


#: The flow timing the returns functions use unless told otherwise.
DEFAULT_FLOW_TIMING = FlowTiming.DEPOSITS_START_WITHDRAWALS_END


def _at_start(flow: Decimal, timing: FlowTiming) -> bool:
    """Whether a period's net flow is at work during the period under `timing`."""
    if timing is FlowTiming.DEPOSITS_START_WITHDRAWALS_END:
        return flow > 0
    return timing is FlowTiming.START_OF_DAY


class PeriodReturn(NamedTuple):
    """The time-weighted return of the period between two consecutive snapshots.

    Attributes:
        start: The date of the earlier snapshot (the period starts at the end of it).
        end: The date of the later snapshot (the period ends at the end of it).
        value: ``(V_end - V_start - flow) / capital``, the capital at work being
            ``V_start + flow`` for a flow at the period's start and ``V_start`` for one at its
            end (see `FlowTiming`): 0.01 is +1 %.
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
        if snapshot.net_transfers is not None:  # units moved in or out are flows too
            with decimal.localcontext(EXACT):
                contributions += _amount(snapshot, "net_transfers")
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
                    f"differs from the day's change in net_contributions and net_transfers "
                    f"({flow})",
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


def _timing(flow_timing: FlowTiming | str) -> FlowTiming:
    """Return `flow_timing` as a `FlowTiming` (its string value is accepted)."""
    return FlowTiming(flow_timing)


def _factor(
    portfolio_id: UUID, period: _Period, timing: FlowTiming
) -> tuple[Decimal, Decimal] | None:
    """Return the period's growth as ``(capital + gain, capital)``, or None for a zero return.

    Raises:
        UndefinedReturnError: The capital at work is not above zero while the period gained
            or lost something.
    """
    with decimal.localcontext(EXACT):
        gain = period.end_value - period.begin_value - period.flow
        capital = period.begin_value
        if _at_start(period.flow, timing):
            capital += period.flow
        if capital > 0:
            return capital + gain, capital
    if gain == 0:
        return None  # nothing at work and nothing gained or lost: a return of zero
    raise UndefinedReturnError(
        f"no capital at work from the end of {period.start.isoformat()} to the end of "
        f"{period.end.isoformat()} with flows at the {_where(period.flow, timing)} "
        f"({timing.value}): value {period.begin_value}, flow {period.flow}, "
        f"gain {gain}",
        portfolio_id=portfolio_id,
        snapshot_date=period.end,
        field="capital",
        value=capital,
    )


def _where(flow: Decimal, timing: FlowTiming) -> str:
    return "start" if _at_start(flow, timing) else "end"


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


def time_weighted_returns(
    snapshots: Iterable[PortfolioSnapshot],
    *,
    flow_timing: FlowTiming | str = DEFAULT_FLOW_TIMING,
) -> tuple[PeriodReturn, ...]:
    """Return the time-weighted return of each period between consecutive snapshots.

    With one snapshot per day this is the daily return series. Each period's return is
    ``(V_end - V_start - F) / C``, ``C`` being the capital at work: ``V_start + F`` when the
    flow ``F`` is at the period's start, ``V_start`` when at its end (`flow_timing`). A flow is
    thus never counted as a gain or a loss. A period with no capital at work (``C <= 0``) and
    no gain returns zero (before funding, after closing).

    Args:
        snapshots: One portfolio's snapshots, in ascending date order, carrying
            ``net_contributions`` and ``external_flow``.
        flow_timing: When a period's flow happens (`FlowTiming`; its string value is
            accepted). By default deposits at the start and withdrawals at the end of their
            day, as Portfolio Performance does.

    Returns:
        One `PeriodReturn` per pair of consecutive snapshots (none for fewer than two).

    Raises:
        ValueError: `flow_timing` is not a `FlowTiming`.
        MissingFlowDataError: A snapshot lacks ``net_contributions`` or ``external_flow``.
        InvalidSnapshotSeriesError: The series mixes portfolios or currencies, its dates do
            not increase, an amount is not a finite Decimal, or a day's ``external_flow``
            differs from its change in ``net_contributions``.
        UndefinedReturnError: A period has no capital at work (``C <= 0``) yet gains or loses
            something; the error names the portfolio and the period's last date.
    """
    timing = _timing(flow_timing)
    snapshots = list(snapshots)
    periods = _periods(snapshots, at_least=0)
    results = []
    for period in periods:
        factor = _factor(snapshots[0].portfolio_id, period, timing)
        if factor is None:
            value = _ZERO
        else:
            end_value, capital = factor
            with decimal.localcontext(EXACT):
                gain = end_value - capital
            value = _divide(gain, capital)
        results.append(PeriodReturn(period.start, period.end, value, period.flow))
    return tuple(results)


def cumulative_time_weighted_return(
    snapshots: Iterable[PortfolioSnapshot],
    *,
    flow_timing: FlowTiming | str = DEFAULT_FLOW_TIMING,
) -> Decimal:
    """Return the time-weighted return from the first snapshot to the last.

    The product of the periods' growth factors minus one: ``prod((C + gain) / C) - 1`` over
    the periods of `time_weighted_returns` (a period of zero return counts as a factor of 1).
    The products are exact and divided once, so the result is the exact value rounded to 28
    significant digits: with no flows it is exactly ``V_last / V_first - 1`` rounded once.

    Args:
        snapshots: One portfolio's snapshots, in ascending date order, at least two, carrying
            ``net_contributions`` and ``external_flow``.
        flow_timing: When a period's flow happens (see `time_weighted_returns`).

    Returns:
        The cumulative return: 0.1 is +10 %.

    Raises:
        ValueError: `flow_timing` is not a `FlowTiming`.
        MissingFlowDataError: A snapshot lacks ``net_contributions`` or ``external_flow``.
        InvalidSnapshotSeriesError: Fewer than two snapshots, or the series is inconsistent
            (see `time_weighted_returns`).
        UndefinedReturnError: A period has no capital at work yet gains or loses something.
    """
    timing = _timing(flow_timing)
    snapshots = list(snapshots)
    periods = _periods(snapshots, at_least=2)
    pid = snapshots[0].portfolio_id
    factors = [f for f in (_factor(pid, p, timing) for p in periods) if f is not None]
    grown = _product([f[0] for f in factors])
    invested = _product([f[1] for f in factors])
    with decimal.localcontext(EXACT):
        gain = grown - invested
    return _divide(gain, invested)


def modified_dietz_return(
    snapshots: Iterable[PortfolioSnapshot],
    *,
    flow_timing: FlowTiming | str = DEFAULT_FLOW_TIMING,
) -> Decimal:
    """Return the Modified Dietz (money-weighted) return from the first snapshot to the last.

    ``(V_last - V_first - sum(F)) / (V_first + sum(w * F))``, each flow weighted by the share
    of the whole span it was at work, in days: ``w = (last date - d) / (last date - first
    date)``, ``d`` being the date of the snapshot before the flow's period for a flow at the
    period's start, the date of the snapshot after it for a flow at its end (`flow_timing`).
    For daily snapshots a deposit at the start of the first day weighs 1, one at the end of
    the last day 0. A series with no average capital at work and no gain returns zero.

    Args:
        snapshots: One portfolio's snapshots, in ascending date order, at least two, carrying
            ``net_contributions`` and ``external_flow``.
        flow_timing: When a period's flow happens (see `FlowTiming`); by default deposits at
            the start and withdrawals at the end of their day.

    Returns:
        The return over the whole period: 0.1 is +10 %.

    Raises:
        ValueError: `flow_timing` is not a `FlowTiming`.
        MissingFlowDataError: A snapshot lacks ``net_contributions`` or ``external_flow``.
        InvalidSnapshotSeriesError: Fewer than two snapshots, or the series is inconsistent
            (see `time_weighted_returns`).
        UndefinedReturnError: The average capital at work (the denominator) is zero or
            negative while the series gains or loses something; the error names the
            portfolio and the last date.
    """
    timing = _timing(flow_timing)
    snapshots = list(snapshots)
    periods = _periods(snapshots, at_least=2)
    first, last = snapshots[0], snapshots[-1]
    days = (last.snapshot_date - first.snapshot_date).days
    end = last.snapshot_date
    with decimal.localcontext(EXACT):
        flows = sum((p.flow for p in periods), _ZERO)
        weighted = sum(
            (
                (end - (p.start if _at_start(p.flow, timing) else p.end)).days * p.flow
                for p in periods
            ),
            _ZERO,
        )
        gain = last.total_value - first.total_value - flows
        # both sides of the fraction multiplied by `days`, so the weights stay exact integers
        scaled_gain = gain * days
        scaled_capital = first.total_value * days + weighted
    if scaled_capital > 0:
        return _divide(scaled_gain, scaled_capital)
    if gain == 0:
        return _ZERO
    raise UndefinedReturnError(
        f"no average capital at work from the end of {first.snapshot_date.isoformat()} to "
        f"the end of {end.isoformat()} ({timing.value}): the series gained {gain}",
        portfolio_id=first.portfolio_id,
        snapshot_date=end,
        field="average_capital",
        value=_divide(scaled_capital, Decimal(days)),
    )


#: How close the search of `money_weighted_return` gets to the daily growth factor whose
#: flows' present value is zero; the results are then rounded to `MWR_PLACES` places.
MWR_TOLERANCE = Decimal("1e-20")
#: Decimal places of the rates `money_weighted_return` returns.
MWR_PLACES = 12
_MWR_CTX = rounding_context(50)
_YEAR = 365
_HUGE = Decimal("1e15")
_QUANTUM = Decimal(1).scaleb(-MWR_PLACES)
#: Where the search for the daily growth factor looks for a change of sign, in order.
_BRACKET = tuple(
    Decimal(g)
    for g in (
        *("1e-30", "1e-12", "1e-6", "0.001", "0.1", "0.5", "0.9", "0.99", "0.999", "1"),
        *("1.001", "1.01", "1.1", "1.5", "2", "10", "100", "1e6", "1e12", "1e30"),
    )
)


class MoneyWeightedReturn(NamedTuple):
    """The internal rate of return (XIRR) of a series: the rate that makes its flows' value zero.

    Attributes:
        period_return: The return over the whole range, compounded: 0.1 is +10 %.
        annual_rate: The same rate per year of 365 days (``(1 + period_return) ** (365 /
            days) - 1``): the XIRR.
        annualized: `annual_rate` when the range spans a year or more, None for a shorter
            one (a short range's yearly rate extrapolates too far to show).
        days: The days from the first snapshot to the last.
    """

    period_return: Decimal
    annual_rate: Decimal
    annualized: Decimal | None
    days: int


def money_weighted_return(
    snapshots: Iterable[PortfolioSnapshot],
    *,
    flow_timing: FlowTiming | str = DEFAULT_FLOW_TIMING,
) -> MoneyWeightedReturn:
    """Return the money-weighted return (XIRR) of the series, from the first snapshot to the last.

    The flows, as the investor sees them: the first snapshot's value paid in at its date,
    each period's external flow (a deposit paid in, a withdrawal received), dated at the start
    of its period (the previous snapshot's date) or at its end (`flow_timing`), and the last
    snapshot's value received at its date. The rate is the daily growth factor ``g`` with
    ``sum(cf * g ** -(date - first date).days) == 0``, found by bisection in a 50-digit Decimal
    context to within `MWR_TOLERANCE`, then expressed over the range and per year and rounded
    to `MWR_PLACES` decimal places (ROUND_HALF_EVEN; a rate of 1E+15 or more, the yearly rate
    of a short range, to 28 significant digits). A series whose flows change sign more
    than once may have several such rates: the search returns the smallest it brackets.

    Args:
        snapshots: One portfolio's snapshots, in ascending date order, at least two, carrying
            ``net_contributions`` and ``external_flow``.
        flow_timing: When a period's flow happens (see `FlowTiming`); by default deposits at
            the start and withdrawals at the end of their day.

    Returns:
        The return over the range, its yearly rate, and the days it spans.

    Raises:
        ValueError: `flow_timing` is not a `FlowTiming`.
        MissingFlowDataError: A snapshot lacks ``net_contributions`` or ``external_flow``.
        InvalidSnapshotSeriesError: Fewer than two snapshots, or the series is inconsistent
            (see `time_weighted_returns`).
        UndefinedReturnError: No rate makes the flows' present value zero (for example money
            paid in and nothing ever received); the error names the portfolio and last date.
    """
    timing = _timing(flow_timing)
    snapshots = list(snapshots)
    periods = _periods(snapshots, at_least=2)
    first, last = snapshots[0], snapshots[-1]
    start = first.snapshot_date
    flows: dict[int, Decimal] = {0: -first.total_value}
    with decimal.localcontext(EXACT):
        for p in periods:
            if p.flow:
                day = (p.start if _at_start(p.flow, timing) else p.end) - start
                flows[day.days] = flows.get(day.days, _ZERO) - p.flow
        days = (last.snapshot_date - start).days
        flows[days] = flows.get(days, _ZERO) + last.total_value
    growth = _daily_growth(flows)
    if growth is None:
        raise UndefinedReturnError(
            "no rate of return makes the flows' present value zero (a series that only pays "
            "in, or only takes out, has none)",
            portfolio_id=first.portfolio_id,
            snapshot_date=last.snapshot_date,
            field="flows",
            value=dict(sorted(flows.items())),
        )
    with decimal.localcontext(_MWR_CTX):
        period, annual = _rounded(growth**days - 1), _rounded(growth**_YEAR - 1)
    return MoneyWeightedReturn(period, annual, annual if days >= _YEAR else None, days)


def _rounded(rate: Decimal) -> Decimal:
    """`rate` to `MWR_PLACES` places; to 28 significant digits when it is 1E+15 or more."""
    if abs(rate) < _HUGE:
        return rate.quantize(_QUANTUM)
    with decimal.localcontext(_CTX):
        return +rate


def _present_value(flows: dict[int, Decimal], growth: Decimal) -> Decimal:
    """``sum(cf * growth ** -day)``, in the 50-digit context."""
    with decimal.localcontext(_MWR_CTX):
        return sum((cf / growth**day for day, cf in flows.items()), _ZERO)


def _daily_growth(flows: dict[int, Decimal]) -> Decimal | None:
    """The smallest bracketed daily growth factor at which the flows' value is zero, or None."""
    values = [(g, _present_value(flows, g)) for g in _BRACKET]
    bracket = next(
        (
            (low, at_low, high, at_high)
            for (low, at_low), (high, at_high) in itertools.pairwise(values)
            if at_low == 0 or at_high == 0 or (at_low < 0) != (at_high < 0)
        ),
        None,
    )
    if bracket is None:
        return None
    low, at_low, high, at_high = bracket
    if at_low == 0 or at_high == 0:
        return low if at_low == 0 else high
    with decimal.localcontext(_MWR_CTX):
        while high - low > MWR_TOLERANCE:
            middle = (low + high) / 2
            at_middle = _present_value(flows, middle)
            if at_middle == 0:
                return middle
            if (at_middle < 0) == (at_low < 0):
                low, at_low = middle, at_middle
            else:
                high = middle
        return (low + high) / 2


def annualize(period_return: Decimal, days: int) -> Decimal:
    """Return the yearly rate (365-day years) of a return earned over `days` days.

    ``(1 + period_return) ** (365 / days) - 1``, in `returns_context` (28 significant digits,
    ROUND_HALF_EVEN). Meant for ranges of a year or more: a short range's rate, compounded
    over a year, says little.

    Args:
        period_return: A return over the range (from `cumulative_time_weighted_return`,
            say): 0.1 is +10 %.
        days: The days the range spans; at least 1.

    Returns:
        The yearly rate.

    Raises:
        ValueError: `days` is less than 1, or `period_return` is -100 % or less.
    """
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    if period_return <= -1:
        raise ValueError(f"a return of {period_return} (-100 % or less) has no yearly rate")
    with decimal.localcontext(_CTX):
        return (_ONE + period_return) ** (Decimal(365) / days) - 1
