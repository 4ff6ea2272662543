"""Charts of a portfolio's stored series with matplotlib (extra ``plot``).

`chart_series` turns stored snapshots into the series a chart shows (total value, cash, net
contributions, and the cumulative time-weighted return), as exact Decimals; `draw_chart`
plots exactly those on a new figure (no pyplot, no global state, the Agg canvas), and
`save_chart` writes it as a PNG. Decimals become floats only for drawing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import UUID

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from portfolio_snapshots.errors import InvalidSnapshotSeriesError
from portfolio_snapshots.history import returns_context, time_weighted_returns

if TYPE_CHECKING:
    import os
    from collections.abc import Sequence

    from portfolio_snapshots import PortfolioSnapshot

__all__ = ["ChartSeries", "chart_series", "draw_chart", "save_chart"]

_ONE = Decimal(1)


@dataclasses.dataclass(frozen=True, slots=True)
class ChartSeries:
    """What a chart of one portfolio shows, one entry per stored snapshot, by date.

    Attributes:
        portfolio_id: The portfolio.
        currency: The currency of every amount.
        dates: The snapshot dates, ascending.
        total_value: Total value on each date.
        cash_balance: Cash on each date.
        net_contributions: Deposits minus withdrawals to each date, or None when the
            snapshots do not know them (a repository without a ledger).
        cumulative_twr: The time-weighted return from the first date to each date (0 on the
            first; 0.1 is +10 %), or None when it cannot be computed.
        note: Why `net_contributions` or `cumulative_twr` is missing, or None.
    """

    portfolio_id: UUID
    currency: str
    dates: tuple[dt.date, ...]
    total_value: tuple[Decimal, ...]
    cash_balance: tuple[Decimal, ...]
    net_contributions: tuple[Decimal, ...] | None
    cumulative_twr: tuple[Decimal, ...] | None
    note: str | None = None


def chart_series(snapshots: Sequence[PortfolioSnapshot]) -> ChartSeries:
    """Return the series to chart from one portfolio's snapshots in ascending date order.

    Args:
        snapshots: At least one snapshot of one portfolio, by date (as `list_snapshots`
            returns them).

    Returns:
        The series; the return is left out (with a `note`) when the snapshots lack flow data
        or a period's return is undefined.

    Raises:
        ValueError: `snapshots` is empty.
    """
    if not snapshots:
        raise ValueError("a chart needs at least one snapshot")
    first = snapshots[0]
    contributions: tuple[Decimal, ...] | None = None
    if all(s.net_contributions is not None for s in snapshots):
        contributions = tuple(s.net_contributions for s in snapshots)  # type: ignore[misc]
    twr: tuple[Decimal, ...] | None = None
    note = None
    try:
        periods = time_weighted_returns(snapshots)
    except InvalidSnapshotSeriesError as error:
        note = f"no time-weighted return: {error}"
    else:
        growth, values = _ONE, [Decimal(0)]
        with decimal.localcontext(returns_context()):
            for period in periods:
                growth *= _ONE + period.value
                values.append(growth - _ONE)
        twr = tuple(values)
    return ChartSeries(
        portfolio_id=first.portfolio_id,
        currency=first.currency,
        dates=tuple(s.snapshot_date for s in snapshots),
        total_value=tuple(s.total_value for s in snapshots),
        cash_balance=tuple(s.cash_balance for s in snapshots),
        net_contributions=contributions,
        cumulative_twr=twr,
        note=note,
    )


def _floats(values: Sequence[Decimal]) -> list[float]:
    return [float(v) for v in values]  # float-ok: drawing only, never stored


def draw_chart(series: ChartSeries, *, title: str | None = None) -> Figure:
    """Plot `series` on a new figure: amounts on top, the cumulative return below.

    The top panel's lines are labelled ``total value``, ``cash`` and ``net contributions``;
    the bottom panel's ``time-weighted return`` (in percent). The figure has an Agg canvas
    and belongs to no pyplot state.

    Args:
        series: What to plot (see `chart_series`).
        title: The figure's title (the portfolio id by default).

    Returns:
        The figure.
    """
    figure = Figure(figsize=(10, 6.5), layout="constrained")
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1.4))
    dates = list(series.dates)
    top.plot(dates, _floats(series.total_value), label="total value", linewidth=1.8)
    top.plot(dates, _floats(series.cash_balance), label="cash", linewidth=1.0)
    if series.net_contributions is not None:
        top.plot(
            dates,
            _floats(series.net_contributions),
            label="net contributions",
            linestyle="--",
            linewidth=1.2,
        )
    top.set_ylabel(series.currency)
    top.legend(loc="upper left")
    top.grid(visible=True, alpha=0.3)
    if series.cumulative_twr is not None:
        percent = [v * 100 for v in series.cumulative_twr]
        bottom.plot(dates, _floats(percent), label="time-weighted return", color="tab:green")
        bottom.axhline(0, color="grey", linewidth=0.8)
        bottom.legend(loc="upper left")
    else:
        bottom.text(0.5, 0.5, series.note or "no return", ha="center", transform=bottom.transAxes)
    bottom.set_ylabel("return, %")
    bottom.grid(visible=True, alpha=0.3)
    figure.suptitle(title or f"portfolio {series.portfolio_id}")
    return figure


def save_chart(
    series: ChartSeries, path: str | os.PathLike[str], *, title: str | None = None
) -> Path:
    """Draw `series` (see `draw_chart`) and write it to `path` as a PNG image.

    Args:
        series: What to plot.
        path: The PNG file to write.
        title: The figure's title.

    Returns:
        The path written.
    """
    out = Path(path)
    draw_chart(series, title=title).savefig(out, format="png", dpi=100)
    return out
