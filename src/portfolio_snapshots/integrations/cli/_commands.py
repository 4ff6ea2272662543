"""The commands of ``portfolio-snapshots``."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from portfolio_snapshots import PortfolioSnapshot, RunReport
from portfolio_snapshots.errors import InvalidInputError
from portfolio_snapshots.integrations.cli import demo as demo_world
from portfolio_snapshots.integrations.cli._app import (
    ExitCode,
    Json,
    Key,
    Output,
    PortfolioOpt,
    ProgressEvery,
    Settings,
    count_portfolios,
    execute,
    exit_code_of,
    parse_date,
    parse_portfolio_id,
    percent,
    recent_runs_of,
    record_dict,
    run_main,
    run_with_progress,
    runs_table,
    snapshot_dict,
    stored_series,
    twr_of,
    write_chart,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from portfolio_snapshots import SnapshotJob

app = typer.Typer(
    name="portfolio-snapshots",
    help=(
        "Run, backfill, inspect and chart the daily portfolio snapshots of a host's "
        "SnapshotJob (named with --app module:attribute), or run the self-contained demo."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def _main(
    ctx: typer.Context,
    app_spec: Annotated[
        str | None,
        typer.Option(
            "--app",
            "-A",
            envvar="PORTFOLIO_SNAPSHOTS_APP",
            help=(
                "module:attribute of your SnapshotJob, or of a factory (sync or async) "
                "returning one or a context manager yielding one."
            ),
        ),
    ] = None,
) -> None:
    ctx.obj = Settings(app=app_spec)


def _settings(ctx: typer.Context) -> Settings | None:
    obj: Any = ctx.obj
    return obj if isinstance(obj, Settings) else None


def _date(text: str | None, option: str) -> dt.date | None:
    return None if text is None else parse_date(text, option)


@app.command("run-daily")
def _run_daily_command(
    ctx: typer.Context,
    date: Annotated[
        str | None, typer.Option("--date", help="The date to snapshot (today in UTC).")
    ] = None,
    key: Key = None,
    json_output: Json = False,
    progress_every: ProgressEvery = 5.0,
) -> None:
    """Snapshot every active portfolio for one date (today's UTC date by default)."""
    out = Output(json_mode=json_output)

    async def body(job: SnapshotJob) -> ExitCode:
        day = _date(date, "--date")
        report = await run_with_progress(
            job,
            out,
            lambda: job.run_daily(day, key=key),
            label="daily",
            total=None,
            interval=progress_every,
        )
        return ExitCode.INTERRUPTED if report is None else out.report(report)

    execute(_settings(ctx), out, body)


@app.command("backfill")
def _backfill_command(
    ctx: typer.Context,
    start: Annotated[str, typer.Option("--start", help="The first date (YYYY-MM-DD).")],
    portfolio: Annotated[
        str | None, typer.Option("--portfolio", help="One portfolio's id.")
    ] = None,
    all_portfolios: Annotated[
        bool, typer.Option("--all", help="Every portfolio active on the end date.")
    ] = False,
    end: Annotated[
        str | None, typer.Option("--end", help="The last date (today in UTC by default).")
    ] = None,
    only_missing: Annotated[
        bool, typer.Option("--only-missing", help="Compute only the days not stored yet.")
    ] = False,
    key: Key = None,
    json_output: Json = False,
    progress_every: ProgressEvery = 5.0,
) -> None:
    """Snapshot one portfolio (or all) for every day from --start to --end, with progress."""
    out = Output(json_mode=json_output)

    async def body(job: SnapshotJob) -> ExitCode:
        if (portfolio is None) == (not all_portfolios):
            raise InvalidInputError("name one portfolio (--portfolio ID) or every one (--all)")
        first = parse_date(start, "--start")
        last = _date(end, "--end") or job.today()
        days = max((last - first).days + 1, 0)
        call: Callable[[], Awaitable[RunReport]]
        if portfolio is not None:
            pid = parse_portfolio_id(portfolio)
            total: int | None = days

            def call() -> Awaitable[RunReport]:
                return job.backfill(pid, first, last, only_missing=only_missing, key=key)

        else:
            total = days * await count_portfolios(job, last) if days else None

            def call() -> Awaitable[RunReport]:
                return job.backfill_all(first, last, only_missing=only_missing, key=key)

        report = await run_with_progress(
            job, out, call, label="backfill", total=total, interval=progress_every
        )
        return ExitCode.INTERRUPTED if report is None else out.report(report)

    execute(_settings(ctx), out, body)


@app.command("recompute")
def _recompute_command(
    ctx: typer.Context,
    portfolio: PortfolioOpt,
    since: Annotated[str, typer.Option("--since", help="The first date to rewrite.")],
    key: Key = None,
    json_output: Json = False,
    progress_every: ProgressEvery = 5.0,
) -> None:
    """Rewrite a portfolio's stored snapshots from --since on (after a late transaction).

    Each call gets a new run key unless --key names one; pass the same --key again to resume
    an interrupted recompute.
    """
    out = Output(json_mode=json_output)

    async def body(job: SnapshotJob) -> ExitCode:
        pid = parse_portfolio_id(portfolio)
        day = parse_date(since, "--since")
        report = await run_with_progress(
            job,
            out,
            lambda: job.recompute_since(pid, day, key=key),
            label="recompute",
            total=max((job.today() - day).days + 1, 0),
            interval=progress_every,
        )
        return ExitCode.INTERRUPTED if report is None else out.report(report)

    execute(_settings(ctx), out, body)


@app.command("show")
def _show_command(
    ctx: typer.Context,
    portfolio: PortfolioOpt,
    start: Annotated[str | None, typer.Option("--start", help="From this date.")] = None,
    end: Annotated[str | None, typer.Option("--end", help="To this date.")] = None,
    json_output: Json = False,
) -> None:
    """Print a portfolio's stored snapshots (every one by default) as a table."""
    out = Output(json_mode=json_output)

    async def body(job: SnapshotJob) -> ExitCode:
        pid = parse_portfolio_id(portfolio)
        series = await stored_series(job, pid, _date(start, "--start"), _date(end, "--end"))
        if out.json:
            out.document([snapshot_dict(s) for s in series])
            return ExitCode.OK
        table = Table(
            "date",
            "cash",
            "holdings",
            "total value",
            "net contributions",
            "flow",
            "stale",
            title=f"portfolio {pid} ({series[0].currency if series else 'nothing stored'})",
        )
        for s in series:
            table.add_row(
                s.snapshot_date.isoformat(),
                str(s.cash_balance),
                str(s.holdings_value),
                str(s.total_value),
                "" if s.net_contributions is None else str(s.net_contributions),
                "" if s.external_flow is None else str(s.external_flow),
                "yes" if s.stale else "",
            )
        out.stdout.print(table)
        return ExitCode.OK

    execute(_settings(ctx), out, body)


@app.command("chart")
def _chart_command(
    ctx: typer.Context,
    portfolio: PortfolioOpt,
    out_path: Annotated[Path, typer.Option("--out", help="The PNG file to write.")] = Path(
        "value.png"
    ),
    start: Annotated[str | None, typer.Option("--start", help="From this date.")] = None,
    end: Annotated[str | None, typer.Option("--end", help="To this date.")] = None,
    json_output: Json = False,
) -> None:
    """Chart total value, cash and net contributions, and the time-weighted return, as PNG."""
    out = Output(json_mode=json_output)

    async def body(job: SnapshotJob) -> ExitCode:
        pid = parse_portfolio_id(portfolio)
        series = await stored_series(job, pid, _date(start, "--start"), _date(end, "--end"))
        if not series:
            raise InvalidInputError(
                f"portfolio {pid} has no stored snapshot in that range to chart"
            )
        written, note = write_chart(series, out_path, title=f"portfolio {pid}")
        if out.json:
            out.document(
                {
                    "out": os.fspath(written),
                    "portfolio_id": str(pid),
                    "points": len(series),
                    "first": series[0].snapshot_date.isoformat(),
                    "last": series[-1].snapshot_date.isoformat(),
                    "note": note,
                }
            )
        else:
            out.say(f"wrote {written}: {len(series)} days of portfolio {pid}")
            if note:
                out.say(note)
        return ExitCode.OK

    execute(_settings(ctx), out, body)


@app.command("runs")
def _runs_command(
    ctx: typer.Context,
    key: Annotated[str | None, typer.Argument(help="One run key, with its report.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many runs to list.")] = 20,
    json_output: Json = False,
) -> None:
    """List the latest run keys and their state from the run ledger (or show one key)."""
    out = Output(json_mode=json_output)

    async def body(job: SnapshotJob) -> ExitCode:
        if key is not None:
            if job.ledger is None:
                raise InvalidInputError("the job keeps no run ledger (SnapshotJob(ledger=...))")
            record = await job.ledger.get(key)
            if record is None:
                raise InvalidInputError(f"unknown run key {key!r}")
            records = [record]
        else:
            records = list(await recent_runs_of(job).recent_runs(limit))
        if out.json:
            found = [record_dict(r) for r in records]
            out.document(found[0] if key is not None else found)
        else:
            out.stdout.print(runs_table(records))
            if key is not None and records[0].report is not None:
                out.report(RunReport.from_dict(records[0].report))  # its counts and failures
        return ExitCode.OK

    execute(_settings(ctx), out, body)


@app.command("demo")
def _demo_command(
    db: Annotated[Path, typer.Option("--db", help="The SQLite file to create or reuse.")] = Path(
        demo_world.DEFAULT_DB
    ),
    today: Annotated[
        str | None,
        typer.Option("--today", help="The demo's today (the end of the shipped history)."),
    ] = None,
    chart_path: Annotated[
        Path, typer.Option("--chart", help="The PNG chart of Ada's history to write.")
    ] = Path("portfolio-snapshots-demo.png"),
    json_output: Json = False,
    progress_every: ProgressEvery = 5.0,
) -> None:
    """Run the whole job on a shipped world: backfill, daily run, summary and chart.

    Creates an SQLite file, values three portfolios from their transaction ledgers at a
    shipped price history (a 4-for-1 split, a stock in EUR) for every day of a year and a
    half, then prints value, net contributions and time-weighted return per portfolio.
    Run it again: it finds its work done.
    """
    out = Output(json_mode=json_output)

    async def main() -> ExitCode:
        try:
            return await _demo(out, db, today, chart_path, progress_every)
        except Exception as error:  # noqa: BLE001 - every error becomes an exit code
            return out.failure(error)

    run_main(out, main)


@dataclasses.dataclass(frozen=True, slots=True)
class _Summary:
    """One demo portfolio on the demo's today."""

    name: str
    portfolio_id: uuid.UUID
    series: Sequence[PortfolioSnapshot]

    def as_dict(self) -> dict[str, object]:
        last = self.series[-1] if self.series else None
        return {
            "name": self.name,
            "portfolio_id": str(self.portfolio_id),
            "since": self.series[0].snapshot_date.isoformat() if self.series else None,
            "currency": None if last is None else last.currency,
            "value": None if last is None else str(last.total_value),
            "net_contributions": (
                None
                if last is None or last.net_contributions is None
                else str(last.net_contributions)
            ),
            "twr": None if not self.series else _text(twr_of(self.series)),
        }

    def row(self) -> tuple[str, ...]:
        if not self.series:
            return (self.name, "", "", "", "", "")
        last = self.series[-1]
        contributions = last.net_contributions
        return (
            f"{self.name} ({last.currency})",
            self.series[0].snapshot_date.isoformat(),
            str(last.total_value),
            "" if contributions is None else str(contributions),
            "" if contributions is None else str(last.total_value - contributions),
            percent(twr_of(self.series)),
        )


def _text(value: object) -> str | None:
    return None if value is None else str(value)


async def _demo_runs(
    job: SnapshotJob, out: Output, first: dt.date, end: dt.date, interval: float
) -> list[RunReport] | None:
    """The demo's backfill up to yesterday, then today's run; None if interrupted."""
    days = (end - first).days + 1
    reports: list[RunReport] = []
    for label, total, call in (
        ("backfill", days * len(demo_world.PORTFOLIOS), lambda: job.backfill_all(first, end)),
        ("daily", None, job.run_daily),
    ):
        report = await run_with_progress(
            job, out, call, label=label, total=total, interval=interval
        )
        if report is None:
            return None
        reports.append(report)
    return reports


def _demo_chart(summaries: list[_Summary], path: Path, out: Output) -> str | None:
    """Chart Ada's history when matplotlib is there; return the file written."""
    ada = summaries[0].series
    if not ada:
        return None
    try:
        written, _ = write_chart(ada, path, title="Ada (demo portfolio)")
    except ImportError as missing:
        out.note(f"no chart: {missing}")
        return None
    return os.fspath(written)


def _demo_text(
    out: Output,
    db: Path,
    today: dt.date,
    reports: list[RunReport],
    summaries: list[_Summary],
    written: str | None,
) -> None:
    for report in reports:
        out.report(report)
    table = Table(
        "portfolio",
        "since",
        "value",
        "net contributions",
        "gain",
        "time-weighted return",
        title=f"demo portfolios on {today}",
    )
    for summary in summaries:
        table.add_row(*summary.row())
    out.stdout.print(table)
    if written:
        out.say(f"chart of Ada's history: {written}")
    if all(r.status == "already_succeeded" for r in reports):
        out.say(
            f"Nothing to do: the backfill and today's run had already succeeded in {db} "
            "(their run keys are in its ledger). Delete the file to start over."
        )
    env = "" if os.fspath(db) == demo_world.DEFAULT_DB else f"{demo_world.DB_ENV}={db} "
    out.say(
        f"Try: {env}portfolio-snapshots --app portfolio_snapshots.integrations.cli.demo:app "
        f"show --portfolio {demo_world.PORTFOLIOS['Cleo']}"
    )


async def _demo(
    out: Output, db: Path, today_text: str | None, chart_path: Path, interval: float
) -> ExitCode:
    today = _date(today_text, "--today") or demo_world.demo_today()
    first = min(tx.trade_date for tx in demo_world.demo_transactions())
    if today <= first:
        raise InvalidInputError(f"--today must be after {first}, the demo's first transaction")
    async with demo_world.open_demo_job(db, today=today) as job:
        out.note(f"demo database {db}; today is {today} (the end of the shipped price history)")
        reports = await _demo_runs(job, out, first, today - dt.timedelta(days=1), interval)
        if reports is None:
            return ExitCode.INTERRUPTED
        summaries = [
            _Summary(name, pid, await job.snapshots.list_snapshots(pid, first, today))
            for name, pid in demo_world.PORTFOLIOS.items()
        ]
    written = _demo_chart(summaries, chart_path, out)
    code = ExitCode(max(exit_code_of(r) for r in reports))
    if out.json:
        out.document(
            {
                "db": os.fspath(db),
                "today": today.isoformat(),
                "nothing_to_do": all(r.status == "already_succeeded" for r in reports),
                "backfill": reports[0].as_dict(),
                "daily": reports[1].as_dict(),
                "portfolios": [s.as_dict() for s in summaries],
                "chart": written,
                "exit_code": int(code),
            }
        )
    else:
        _demo_text(out, db, today, reports, summaries, written)
    return code
