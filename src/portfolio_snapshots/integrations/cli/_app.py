"""The ``portfolio-snapshots`` command line: a Typer app over a host's `SnapshotJob`."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import enum
import json
import logging
import sqlite3
import sys
import traceback
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from portfolio_snapshots import (
    PortfolioNotFoundError,
    RecentRuns,
    RunReport,
    SnapshotJob,
)
from portfolio_snapshots.errors import (
    DatabaseAccessError,
    InvalidInputError,
    InvalidSnapshotSeriesError,
    LeaseLostError,
    SchemaVersionError,
    TransientError,
)
from portfolio_snapshots.history import PortfolioDayStream, cumulative_time_weighted_return
from portfolio_snapshots.integrations._loading import import_app, open_job
from portfolio_snapshots.integrations.cli._progress import ProgressView
from portfolio_snapshots.integrations.cli._stop import StopAfterWrites, stop_signals

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence
    from pathlib import Path

    from portfolio_snapshots import PortfolioSnapshot, RunRecord
    from portfolio_snapshots.events import RunEvent


class ExitCode(enum.IntEnum):
    """The exit status of every command.

    - ``OK`` (0): done; or nothing to do (the run key had already succeeded).
    - ``PARTIAL_FAILURE`` (1): the run finished, and some portfolio-days failed (listed).
    - ``REFUSED`` (2): bad input, nothing done: a bad option or date, an unknown portfolio
      or run key, a run key reused with other parameters, an ``--app`` that cannot be
      loaded, a malformed data file.
    - ``STORE_UNREACHABLE`` (3): the store (or another port) could not be reached, even
      after the retries, or refused access (`DatabaseAccessError`: a wrong password, a
      missing database); nothing is known to be done.
    - ``BUSY`` (4): another process holds the run key's lease (or took it over mid-run).
    - ``INTERNAL_ERROR`` (70): a bug; the traceback is printed.
    - ``INTERRUPTED`` (130): stopped by Ctrl-C (or SIGTERM) after the writes under way; run
      the same command again to resume under the same run key.
    """

    OK = 0
    PARTIAL_FAILURE = 1
    REFUSED = 2
    STORE_UNREACHABLE = 3
    BUSY = 4
    INTERNAL_ERROR = 70
    INTERRUPTED = 130


_UNREACHABLE = (TransientError, ConnectionError, TimeoutError, OSError, sqlite3.Error)


def exit_code_for(error: BaseException) -> ExitCode:
    """Return the exit code for an error that ended a command."""
    if isinstance(error, (InvalidInputError, PortfolioNotFoundError, ImportError)):
        return ExitCode.REFUSED
    if isinstance(error, LeaseLostError):
        return ExitCode.BUSY
    if isinstance(error, (*_UNREACHABLE, SchemaVersionError, DatabaseAccessError)):
        return ExitCode.STORE_UNREACHABLE
    return ExitCode.INTERNAL_ERROR


def exit_code_of(report: RunReport) -> ExitCode:
    """Return the exit code of a finished run."""
    if report.status == "already_running":
        return ExitCode.BUSY
    return ExitCode.PARTIAL_FAILURE if report.failed else ExitCode.OK


# --- output ---------------------------------------------------------------------------------


class Output:
    """Where a command writes: results on standard output, messages and progress on error.

    Args:
        json_mode: Results as JSON (one document on standard output), for scripts.
    """

    def __init__(self, *, json_mode: bool) -> None:
        self.json = json_mode
        wide = None if sys.stdout.isatty() else 160
        self.stdout = Console(highlight=False, width=wide)
        self.stderr = Console(stderr=True, highlight=False)

    def document(self, data: object) -> None:
        """Write `data` as one JSON document (Decimals, dates and ids as strings)."""
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
        sys.stdout.flush()

    def say(self, text: str) -> None:
        """Write a line of the human-readable result (not in JSON mode)."""
        if not self.json:
            self.stdout.print(text, markup=False, soft_wrap=True)

    def note(self, text: str) -> None:
        """Write a message on standard error."""
        self.stderr.print(text, markup=False, soft_wrap=True)

    def failure(self, error: BaseException) -> ExitCode:
        """Report the error that ended the command; return its exit code."""
        code = exit_code_for(error)
        message = str(error) or type(error).__name__
        if code is ExitCode.INTERNAL_ERROR:
            self.stderr.print(
                "".join(traceback.format_exception(error)), markup=False, highlight=False
            )
        kind = {
            ExitCode.REFUSED: "refused",
            ExitCode.STORE_UNREACHABLE: "store unreachable",
            ExitCode.BUSY: "busy",
        }.get(code, "internal error")
        self.note(f"{kind}: {message}")
        if self.json:
            self.document(
                {"error": {"type": type(error).__name__, "message": message, "exit_code": code}}
            )
        return code

    def report(self, report: RunReport) -> ExitCode:
        """Show a run's report; return its exit code."""
        code = exit_code_of(report)
        if self.json:
            self.document({**report.as_dict(), "exit_code": int(code)})
            return code
        counts = (
            f"{report.succeeded} stored, {report.failed} failed, {report.skipped} skipped, "
            f"{report.retried} retried"
        )
        name = report.key or report.kind
        if report.status == "already_succeeded":
            self.say(
                f"{name}: already succeeded (attempt {report.attempt}: {counts}); nothing to do"
            )
        elif report.status == "already_running":
            self.say(f"{name}: another process is running this key; nothing was done")
        else:
            self.say(f"{name}: completed, attempt {report.attempt}: {counts}")
        if report.failures:
            table = Table("portfolio", "date", "error", "message", title="failures")
            for f in report.failures[:20]:
                table.add_row(
                    str(f.portfolio_id), f.snapshot_date.isoformat(), f.error_type, f.message
                )
            self.stdout.print(table)
            if len(report.failures) > 20:  # noqa: PLR2004 - a screenful
                self.say(f"... and {len(report.failures) - 20} more (--json lists them all)")
        return code


# --- running ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    """The options every command shares.

    Attributes:
        app: The ``module:attribute`` of the host's job factory, or None.
    """

    app: str | None


def parse_date(text: str, option: str) -> dt.date:
    """Parse a ``YYYY-MM-DD`` option.

    Raises:
        InvalidInputError: It is not such a date.
    """
    try:
        if len(text) == 10:  # noqa: PLR2004 - YYYY-MM-DD
            return dt.date.fromisoformat(text)
    except ValueError:
        pass
    raise InvalidInputError(f"{option} must be a date written YYYY-MM-DD, got {text!r}")


def parse_portfolio_id(text: str) -> uuid.UUID:
    """Parse a ``--portfolio`` id.

    Raises:
        InvalidInputError: It is not a UUID.
    """
    try:
        return uuid.UUID(text)
    except ValueError:
        raise InvalidInputError(
            f"--portfolio must be a portfolio id (a UUID), got {text!r}"
        ) from None


def execute(
    settings: Settings | None,
    out: Output,
    body: Callable[[SnapshotJob], Awaitable[ExitCode]],
) -> NoReturn:
    """Load the job named by ``--app``, run `body` with it, and exit with its code."""

    async def main() -> ExitCode:
        if settings is None or settings.app is None:
            return out.failure(
                InvalidInputError(
                    "no app: pass --app module:attribute naming your SnapshotJob factory "
                    "(or set PORTFOLIO_SNAPSHOTS_APP)"
                )
            )
        try:
            async with open_job(import_app(settings.app)) as job:
                return await body(job)
        except Exception as error:  # noqa: BLE001 - every error becomes an exit code
            return out.failure(error)

    run_main(out, main)


def run_main(out: Output, main: Callable[[], Awaitable[ExitCode]]) -> NoReturn:
    """Run `main` in a new event loop and exit with the code it returns."""
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
        )

    async def guarded() -> ExitCode:
        return await main()

    try:
        code = asyncio.run(guarded())
    except KeyboardInterrupt:  # a Ctrl-C before a run took over the signal
        out.note("interrupted")
        code = ExitCode.INTERRUPTED
    raise typer.Exit(int(code))


async def run_with_progress(
    job: SnapshotJob,
    out: Output,
    call: Callable[[], Awaitable[RunReport]],
    *,
    label: str,
    total: int | None,
    interval: float,
) -> RunReport | None:
    """Run one job call with a progress view, stopping cleanly on Ctrl-C.

    Returns:
        The report, or None when the run was interrupted (its key left to resume).
    """
    view = ProgressView(
        out.stderr, label=label, total=total, interval=interval, bar=out.stderr.is_terminal
    )
    hooks = job.events

    def both(event: RunEvent, /) -> None:
        hooks(event)
        view(event)

    gate = StopAfterWrites(
        job.snapshots,
        lambda: out.note("stopping after the writes under way (Ctrl-C again to stop at once)"),
    )
    job.events, job.snapshots = both, gate
    try:
        task: asyncio.Task[RunReport] = asyncio.ensure_future(call())
        gate.task = task
        with stop_signals(gate.request_stop):
            try:
                report = await task
            except asyncio.CancelledError:
                if not gate.cancelled:
                    raise
                view.close()
                key = view.key or label
                out.note(
                    f"interrupted: run {key} stopped after the writes under way; "
                    "run the same command again to resume it"
                )
                return None
    finally:
        job.events, job.snapshots = hooks, gate.inner
        view.close()
    return report


async def count_portfolios(job: SnapshotJob, day: dt.date) -> int:
    """Count the portfolios active on `day` (one pass over the repository, for an ETA)."""
    repo = job.portfolios
    if isinstance(repo, PortfolioDayStream):
        return sum([1 async for _ in repo.iter_portfolio_days(day)])
    return sum([1 async for _ in repo.iter_portfolios(day)])


def snapshot_dict(s: PortfolioSnapshot) -> dict[str, object]:
    """A snapshot as JSON-friendly values (amounts as exact decimal strings)."""

    def text(value: Decimal | None) -> str | None:
        return None if value is None else str(value)

    return {
        "portfolio_id": str(s.portfolio_id),
        "snapshot_date": s.snapshot_date.isoformat(),
        "currency": s.currency,
        "cash_balance": str(s.cash_balance),
        "holdings_value": str(s.holdings_value),
        "total_value": str(s.total_value),
        "net_contributions": text(s.net_contributions),
        "external_flow": text(s.external_flow),
        "stale": s.stale,
        "positions": [
            {
                "ticker": p.ticker,
                "quantity": str(p.quantity),
                "price": str(p.price),
                "price_date": p.price_date.isoformat(),
                "price_currency": p.price_currency,
                "fx_rate": text(p.fx_rate),
                "market_value": str(p.market_value),
                "stale": p.stale,
            }
            for p in s.positions
        ],
    }


def record_dict(record: RunRecord) -> dict[str, object]:
    """A run ledger record as JSON-friendly values."""
    return {
        "key": record.key,
        "state": record.state.value,
        "attempts": record.attempts,
        "started_at": record.started_at.isoformat(),
        "finished_at": None if record.finished_at is None else record.finished_at.isoformat(),
        "report": None if record.report is None else dict(record.report),
    }


def percent(value: Decimal | None) -> str:
    """A return as a percentage with two decimals (``12.34%``)."""
    return "n/a" if value is None else f"{(value * 100).quantize(Decimal('0.01'))}%"


def twr_of(snapshots: Sequence[PortfolioSnapshot]) -> Decimal | None:
    """The cumulative time-weighted return of a series, or None when undefined."""
    try:
        return cumulative_time_weighted_return(snapshots)
    except InvalidSnapshotSeriesError:
        return None


async def stored_series(
    job: SnapshotJob, portfolio_id: uuid.UUID, start: dt.date | None, end: dt.date | None
) -> Sequence[PortfolioSnapshot]:
    """The stored snapshots of a portfolio (all of them by default).

    Raises:
        InvalidInputError: Nothing is stored and the repository does not know the portfolio.
    """
    first = start or dt.date.min
    last = end or job.today()
    if first > last:
        raise InvalidInputError(f"--start {first} is after --end {last}")
    series = await job.snapshots.list_snapshots(portfolio_id, first, last)
    if not series and await job.portfolios.get_portfolio(portfolio_id, job.today()) is None:
        raise InvalidInputError(
            f"unknown portfolio {portfolio_id}: nothing stored, and the app does not know it"
        )
    return series


def runs_table(records: Sequence[RunRecord]) -> Table:
    """The run ledger's records as a table."""
    table = Table("key", "state", "attempts", "started", "finished", "stored", "failed")
    for r in records:
        report: Mapping[str, object] = r.report or {}
        table.add_row(
            r.key,
            r.state.value,
            str(r.attempts),
            r.started_at.isoformat(timespec="seconds"),
            "" if r.finished_at is None else r.finished_at.isoformat(timespec="seconds"),
            str(report.get("succeeded", "")),
            str(report.get("failed", "")),
        )
    return table


def recent_runs_of(job: SnapshotJob) -> RecentRuns:
    """The job's ledger, when it can list its runs.

    Raises:
        InvalidInputError: The job keeps no ledger, or one that cannot list runs.
    """
    ledger = job.ledger
    if ledger is None:
        raise InvalidInputError(
            "the job keeps no run ledger (SnapshotJob(ledger=...)): no runs to list"
        )
    if not isinstance(ledger, RecentRuns):
        raise InvalidInputError(
            f"the run ledger {type(ledger).__name__} cannot list its runs (RecentRuns); "
            "name a key: portfolio-snapshots runs KEY"
        )
    return ledger


def write_chart(
    snapshots: Sequence[PortfolioSnapshot], path: Path, *, title: str | None = None
) -> tuple[Path, str | None]:
    """Chart `snapshots` into the PNG file `path`; return it and the chart's note.

    Raises:
        InvalidInputError: matplotlib is not installed (the ``plot`` extra).
    """
    try:
        from portfolio_snapshots.integrations.plot import (  # noqa: PLC0415 - only with the extra
            chart_series,
            save_chart,
        )
    except ImportError as error:
        raise ImportError(
            "charts need matplotlib: pip install 'portfolio-snapshots[plot]'"
        ) from error
    data = chart_series(snapshots)
    return save_chart(data, path, title=title), data.note


Json = Annotated[bool, typer.Option("--json", help="Print the result as one JSON document.")]
ProgressEvery = Annotated[
    float,
    typer.Option(
        "--progress-every",
        min=0,
        help="Seconds between progress lines when standard error is not a terminal.",
    ),
]
Key = Annotated[
    str | None,
    typer.Option("--key", help="The run key (the job's default key for these parameters)."),
]
PortfolioOpt = Annotated[str, typer.Option("--portfolio", help="The portfolio id.")]
