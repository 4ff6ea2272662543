"""The ``portfolio-snapshots`` command line, run through its installed entry point.

Every test starts the real console script in a subprocess (its own folder, the test app in
``cli_app.py`` named with ``--app``) and reads its exit code, its standard output (JSON where
asked) and its standard error (progress lines: not a terminal here).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest

from portfolio_snapshots.integrations.cli import ExitCode
from portfolio_snapshots.integrations.cli.demo import PORTFOLIOS, demo_today

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DATA = ROOT / "src/portfolio_snapshots/integrations/cli/demo_data"
ADA, BEN, CLEO = PORTFOLIOS["Ada"], PORTFOLIOS["Ben"], PORTFOLIOS["Cleo"]
GHOST = uuid.UUID("00000000-0000-4000-8000-00000000d0aa")
TODAY = demo_today()
FIRST = dt.date(2024, 1, 2)
TIMEOUT = 120


def _script() -> str:
    found = shutil.which("portfolio-snapshots", path=str(Path(sys.executable).parent))
    assert found, "the portfolio-snapshots console script is not installed beside this Python"
    return found


def _env(db: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CLI_TEST_", "PORTFOLIO_SNAPSHOTS_"))
    }
    env.update(
        PYTHONPATH=os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]),
        CLI_TEST_DB=str(db),
        PORTFOLIO_SNAPSHOTS_APP="cli_app:app",
        COLUMNS="200",
    )
    env.update(extra)
    return env


def cli(
    folder: Path, *args: str, db: Path | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own console script
        [_script(), *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
        cwd=folder,
        env=_env(db or folder / "test.sqlite3", **(env or {})),
    )


def cli_json(folder: Path, *args: str, code: int = 0, env: Mapping[str, str] | None = None) -> Any:
    result = cli(folder, *args, "--json", env=env)
    assert result.returncode == code, result.stderr + result.stdout
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder where the demo ran once (its database, its chart, its two outputs)."""
    folder = tmp_path_factory.mktemp("demo")
    first = cli(folder, "demo", "--json", "--progress-every", "0")
    assert first.returncode == 0, first.stderr
    (folder / "first.json").write_text(first.stdout)
    (folder / "first.err").write_text(first.stderr)
    return folder


def _demo_env(folder: Path) -> dict[str, str]:
    return {
        "PORTFOLIO_SNAPSHOTS_APP": "portfolio_snapshots.integrations.cli.demo:app",
        "PORTFOLIO_SNAPSHOTS_DEMO_DB": str(folder / "portfolio-snapshots-demo.sqlite3"),
    }


def _closes(ticker: str, day: str) -> Decimal:
    """The shipped close of `ticker` on `day`, read from the package data (split-adjusted)."""
    for line in (DATA / "prices.csv").read_text().splitlines():
        date, name, close, _currency = line.split(",")
        if (date, name) == (day, ticker):
            return Decimal(close)
    raise AssertionError(f"no close of {ticker} on {day} in the shipped data")


def _rate(day: str) -> Decimal:
    for line in (DATA / "fx.csv").read_text().splitlines():
        if line.startswith(day):
            return Decimal(line.split(",")[3])
    raise AssertionError(f"no EUR/USD rate on {day} in the shipped data")


def test_the_demo_stores_a_year_and_a_half_and_prints_its_summary(demo_folder: Path) -> None:
    """The demo backfills every day of each portfolio, runs today and writes the chart."""
    report = json.loads((demo_folder / "first.json").read_text())
    assert report["today"] == "2025-06-30" == TODAY.isoformat()
    assert report["nothing_to_do"] is False
    assert report["backfill"]["status"] == report["daily"]["status"] == "completed"
    assert report["backfill"]["failed"] == report["daily"]["failed"] == 0
    # Ada from 2024-01-02, Ben from 2024-03-01, Cleo from 2024-10-01, each up to yesterday
    days = [
        (TODAY - dt.date(2024, 1, 2)).days,
        (TODAY - dt.date(2024, 3, 1)).days,
        (TODAY - dt.date(2024, 10, 1)).days,
    ]
    assert report["backfill"]["succeeded"] == sum(days)
    assert report["daily"]["succeeded"] == 3
    rows = {row["name"]: row for row in report["portfolios"]}
    assert rows["Ada"]["net_contributions"] == "28500.00"  # 20,000 and 17 monthly 500s
    assert rows["Ben"]["net_contributions"] == "45000.00"  # 50,000 less a 5,000 withdrawal
    assert rows["Cleo"]["since"] == "2024-10-01"
    assert report["chart"] == "portfolio-snapshots-demo.png"
    assert (demo_folder / "portfolio-snapshots-demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_demos_numbers_match_the_shipped_data_before_and_after_the_split(
    demo_folder: Path,
) -> None:
    """Ada's value the Friday before ACME's 4-for-1 split and the Monday of it, by hand."""
    stored = cli_json(
        demo_folder,
        "show",
        "--portfolio",
        str(ADA),
        "--start",
        "2024-09-13",
        "--end",
        "2024-09-16",
        env=_demo_env(demo_folder),
    )
    by_day = {s["snapshot_date"]: s for s in stored}
    # Cash on both days: 20,000 deposited, ACME 20 x 393.60 and GLBX 40 x 152.30 bought on
    # 2024-01-02, BRLN 50 x 69.04 on 2024-04-02, and 500 on the first weekday of each month
    # from February to September 2024 (8 deposits).
    cash = (
        Decimal(20000)
        - 20 * Decimal("393.60")
        - 40 * Decimal("152.30")
        - 50 * Decimal("69.04")
        + 8 * 500
    )
    assert cash == Decimal("6584.00")
    # Friday 2024-09-13: 20 ACME at the traded close (the file's split-adjusted close x 4),
    # 40 GLBX, and 50 BRLN in EUR at that day's EUR/USD rate, each rounded to the cent.
    acme = _closes("ACME", "2024-09-13") * 4
    brln = (50 * _closes("BRLN", "2024-09-13") * _rate("2024-09-13")).quantize(Decimal("0.01"))
    before = cash + 20 * acme + 40 * _closes("GLBX", "2024-09-13") + brln
    assert (acme, brln) == (Decimal("594.08"), Decimal("3506.12"))
    assert Decimal(by_day["2024-09-13"]["total_value"]) == before == Decimal("28257.72")
    # Monday 2024-09-16, the ex-date: 80 ACME at the close as it is.
    brln = (50 * _closes("BRLN", "2024-09-16") * _rate("2024-09-16")).quantize(Decimal("0.01"))
    after = cash + 80 * _closes("ACME", "2024-09-16") + 40 * _closes("GLBX", "2024-09-16") + brln
    assert Decimal(by_day["2024-09-16"]["total_value"]) == after == Decimal("28132.14")
    acme_after = next(p for p in by_day["2024-09-16"]["positions"] if p["ticker"] == "ACME")
    assert (acme_after["quantity"], acme_after["price"]) == ("80", "146.25")
    assert by_day["2024-09-15"]["total_value"] == by_day["2024-09-13"]["total_value"]  # a Sunday


def test_the_demo_run_again_finds_its_work_done(demo_folder: Path) -> None:
    """A second demo run stores nothing, says so, and prints the same summary."""
    again = cli(demo_folder, "demo")
    assert again.returncode == 0, again.stderr
    assert "Nothing to do: the backfill and today's run had already succeeded" in again.stdout
    assert "backfill-all:2024-01-02:2025-06-29: already succeeded" in again.stdout
    first = json.loads((demo_folder / "first.json").read_text())
    for row in first["portfolios"]:
        assert re.search(rf"{row['name']} \(USD\).*{re.escape(row['value'])}", again.stdout)
    assert "progress" not in again.stderr


def test_the_demos_progress_lines_when_not_on_a_terminal(demo_folder: Path) -> None:
    """Off a terminal, the backfill's progress is plain lines ending at every portfolio-day."""
    lines = [
        line
        for line in (demo_folder / "first.err").read_text().splitlines()
        if line.startswith("progress backfill")
    ]
    total = 3 * ((TODAY - FIRST).days)
    pattern = re.compile(
        r"progress backfill-all:2024-01-02:2025-06-29: (\d+)/(\d+) portfolio-days \(\d+%\), "
        r"0 failed, \d+/s, ETA \S+"
    )
    counts = [pattern.fullmatch(line) for line in lines]
    assert len(lines) > 2
    assert all(counts), lines
    done = [int(m.group(1)) for m in counts if m]
    assert done == sorted(done)
    assert done[-1] == total == int(counts[-1].group(2))  # type: ignore[union-attr]


def _plotted(data: object) -> list[Any]:
    """A line's x or y data as a list (matplotlib types it as any array-like)."""
    return list(cast("Sequence[Any]", data))


def test_the_chart_is_a_png_of_the_stored_series(demo_folder: Path) -> None:
    """``chart`` writes a valid PNG, and the figure plots exactly the stored series."""
    from PIL import Image

    from portfolio_snapshots.integrations.plot import chart_series, draw_chart

    out = cli_json(
        demo_folder,
        "chart",
        "--portfolio",
        str(BEN),
        "--out",
        "ben.png",
        env=_demo_env(demo_folder),
    )
    with Image.open(demo_folder / "ben.png") as image:
        image.verify()
        assert image.format == "PNG"
        assert image.size[0] > 500
        assert image.size[1] > 300
    stored = cli_json(demo_folder, "show", "--portfolio", str(BEN), env=_demo_env(demo_folder))
    assert out["points"] == len(stored) == (TODAY - dt.date(2024, 3, 1)).days + 1

    # The same series, read back from the store, drawn as the command draws it.
    async def read() -> list[Any]:
        import portfolio_snapshots as ps

        async with await ps.SqliteSnapshotStore.open(
            demo_folder / "portfolio-snapshots-demo.sqlite3"
        ) as store:
            return list(await store.list_snapshots(BEN, dt.date.min, TODAY))

    import asyncio

    snapshots = asyncio.run(read())
    figure = draw_chart(chart_series(snapshots))
    top, bottom = figure.axes
    lines = {line.get_label(): line for line in top.lines}
    dates = [dt.date.fromisoformat(s["snapshot_date"]) for s in stored]
    for label, field in (
        ("total value", "total_value"),
        ("cash", "cash_balance"),
        ("net contributions", "net_contributions"),
    ):
        assert _plotted(lines[label].get_xdata()) == dates
        assert _plotted(lines[label].get_ydata()) == [float(s[field]) for s in stored]
    (twr,) = bottom.lines[:1]
    assert twr.get_label() == "time-weighted return"
    plotted = _plotted(twr.get_ydata())
    assert plotted[0] == 0
    from portfolio_snapshots.history import cumulative_time_weighted_return

    assert abs(plotted[-1] - float(cumulative_time_weighted_return(snapshots) * 100)) < 1e-9


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A fresh folder (and so a fresh database) for one test."""
    return tmp_path


def test_each_run_command_reports_as_json(folder: Path) -> None:
    """run-daily, backfill and recompute print their report as JSON and exit 0."""
    daily = cli_json(folder, "run-daily")
    assert (daily["key"], daily["succeeded"], daily["exit_code"]) == (f"daily:{TODAY}", 3, 0)
    one = cli_json(
        folder, "backfill", "--portfolio", str(CLEO), "--start", "2025-06-01", "--end", "2025-06-29"
    )
    assert (one["kind"], one["succeeded"], one["key"]) == (
        "backfill",
        29,
        f"backfill:{CLEO}:2025-06-01:2025-06-29",
    )
    again = cli_json(
        folder, "backfill", "--portfolio", str(CLEO), "--start", "2025-06-01", "--end", "2025-06-29"
    )
    assert again["status"] == "already_succeeded"
    missing = cli_json(
        folder,
        "backfill",
        "--all",
        "--start",
        "2025-06-20",
        "--end",
        "2025-06-30",
        "--only-missing",
    )
    assert (missing["succeeded"], missing["skipped"]) == (3 * 11 - 3 - 10, 3 + 10)
    redo = cli_json(folder, "recompute", "--portfolio", str(CLEO), "--since", "2025-06-25")
    assert (redo["kind"], redo["succeeded"], redo["start"], redo["end"]) == (
        "recompute",
        6,
        "2025-06-25",
        "2025-06-30",
    )


def test_show_and_runs_print_json_and_tables(folder: Path) -> None:
    """`show` lists the stored days; runs lists the ledger's keys, latest first, or one key."""
    cli_json(
        folder, "backfill", "--portfolio", str(ADA), "--start", "2025-06-28", "--end", "2025-06-30"
    )
    shown = cli_json(folder, "show", "--portfolio", str(ADA))
    assert [s["snapshot_date"] for s in shown] == ["2025-06-28", "2025-06-29", "2025-06-30"]
    assert Decimal(shown[0]["total_value"]) == Decimal(shown[0]["cash_balance"]) + Decimal(
        shown[0]["holdings_value"]
    )
    table = cli(folder, "show", "--portfolio", str(ADA), "--start", "2025-06-29")
    assert table.returncode == 0
    assert "2025-06-29" in table.stdout
    assert "2025-06-28" not in table.stdout
    cli_json(folder, "run-daily")
    listed = cli_json(folder, "runs")
    assert {r["key"] for r in listed} == {f"daily:{TODAY}", f"backfill:{ADA}:2025-06-28:2025-06-30"}
    assert all(r["state"] == "succeeded" for r in listed)
    one = cli_json(folder, "runs", f"daily:{TODAY}")
    assert (one["attempts"], one["report"]["succeeded"]) == (1, 3)
    text = cli(folder, "runs")
    assert text.returncode == 0
    assert f"daily:{TODAY}" in text.stdout
    detail = cli(folder, "runs", f"daily:{TODAY}")
    assert detail.returncode == 0
    assert f"daily:{TODAY}: completed, attempt 1: 3 stored, 0 failed" in detail.stdout


def test_partial_failure_exits_1_and_lists_the_failed_days(folder: Path) -> None:
    """A run where one portfolio has no price stores the others and exits 1."""
    report = cli_json(
        folder, "run-daily", code=ExitCode.PARTIAL_FAILURE, env={"CLI_TEST_MODE": "partial"}
    )
    assert (report["succeeded"], report["failed"]) == (3, 1)
    assert report["failures"][0]["portfolio_id"] == str(GHOST)
    assert report["failures"][0]["error_type"] == "MissingPriceError"
    text = cli(folder, "run-daily", "--date", "2025-06-29", env={"CLI_TEST_MODE": "partial"})
    assert text.returncode == 1
    assert "MissingPriceError" in text.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("backfill", "--portfolio", str(ADA), "--start", "2025-13-01"),
            "--start must be a date written YYYY-MM-DD",
        ),
        (
            ("backfill", "--portfolio", str(ADA), "--all", "--start", "2025-06-01"),
            "name one portfolio",
        ),
        (
            ("backfill", "--all", "--start", "2025-06-01", "--end", "2025-07-01"),
            "end is in the future",
        ),
        (
            ("backfill", "--portfolio", str(GHOST), "--start", "2025-06-01"),
            f"portfolio {GHOST} not found",
        ),
        (("show", "--portfolio", "not-a-uuid"), "--portfolio must be a portfolio id"),
        (("show", "--portfolio", str(GHOST)), "unknown portfolio"),
        (("runs", "no-such-key"), "unknown run key 'no-such-key'"),
        (
            ("recompute", "--portfolio", str(ADA), "--since", "2025-07-01"),
            "the date is in the future",
        ),
    ],
)
def test_bad_input_is_refused_with_exit_2(
    folder: Path, args: tuple[str, ...], message: str
) -> None:
    """Bad dates, ids, options and unknown portfolios or keys exit 2 with a JSON error."""
    result = cli(folder, *args, "--json")
    assert result.returncode == ExitCode.REFUSED, result.stderr
    assert message in result.stderr
    error = json.loads(result.stdout)["error"]
    assert message in error["message"]
    assert error["exit_code"] == 2


def test_a_run_key_reused_with_other_parameters_is_refused(folder: Path) -> None:
    """The same --key for another range exits 2 and changes nothing."""
    cli_json(folder, "backfill", "--portfolio", str(ADA), "--start", "2025-06-29", "--key", "mine")
    result = cli(
        folder, "backfill", "--portfolio", str(ADA), "--start", "2025-06-28", "--key", "mine"
    )
    assert result.returncode == ExitCode.REFUSED
    assert "RunKeyConflictError" not in result.stderr  # a sentence, not a traceback
    assert "mine" in result.stderr


def test_usage_errors_exit_2(folder: Path) -> None:
    """An unknown option or a missing required one is a usage error: exit 2."""
    assert cli(folder, "backfill", "--portfolio", str(ADA)).returncode == 2  # no --start
    assert cli(folder, "show", "--nope").returncode == 2
    no_app = subprocess.run(  # noqa: S603
        [_script(), "runs", "--json"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
        cwd=folder,
        env={k: v for k, v in _env(folder / "x.sqlite3").items() if k != "PORTFOLIO_SNAPSHOTS_APP"},
    )
    assert no_app.returncode == 2
    assert "no app: pass --app module:attribute" in json.loads(no_app.stdout)["error"]["message"]
    bad = cli(folder, "--app", "cli_app:nothing_here", "runs")
    assert bad.returncode == 2
    assert "has no attribute 'nothing_here'" in bad.stderr


def test_an_unreachable_store_exits_3(folder: Path) -> None:
    """A ledger that cannot be reached, even after the retries, exits 3 and stores nothing."""
    result = cli(folder, "run-daily", "--json", env={"CLI_TEST_MODE": "unreachable"})
    assert result.returncode == ExitCode.STORE_UNREACHABLE, result.stderr
    assert json.loads(result.stdout)["error"]["type"] == "DatabaseUnavailableError"
    assert "store unreachable" in result.stderr
    with contextlib.closing(sqlite3.connect(folder / "test.sqlite3")) as db:
        assert db.execute("SELECT count(*) FROM ps_snapshots").fetchone() == (0,)
    missing_folder = cli(folder, "runs", db=folder / "no" / "such" / "folder.sqlite3")
    assert missing_folder.returncode == ExitCode.STORE_UNREACHABLE


def test_a_key_held_by_another_process_exits_4(folder: Path) -> None:
    """When another holder has the run key's lease, the run does nothing and exits 4."""
    report = cli_json(folder, "run-daily", code=ExitCode.BUSY, env={"CLI_TEST_MODE": "busy"})
    assert (report["status"], report["succeeded"]) == ("already_running", 0)


def test_a_bug_exits_70_with_its_traceback(folder: Path) -> None:
    """An unexpected error is a bug: exit 70, traceback on standard error."""
    result = cli(folder, "run-daily", env={"CLI_TEST_MODE": "bug"})
    assert result.returncode == ExitCode.INTERNAL_ERROR
    assert "Traceback" in result.stderr
    assert "RuntimeError: a bug in the host's factory" in result.stderr


@contextlib.contextmanager
def _running(folder: Path, *args: str, env: Mapping[str, str]) -> Iterator[subprocess.Popen[str]]:
    """Start the command; kill it on the way out if it is still running (also on failure)."""
    process = subprocess.Popen(  # noqa: S603 - our own console script
        [_script(), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=folder,
        env=_env(folder / "test.sqlite3", **env),
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=TIMEOUT)


def _stored_days(db: Path) -> dict[str, list[str]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT portfolio_id, snapshot_date FROM ps_snapshots ORDER BY 1, 2"
        ).fetchall()
    days: dict[str, list[str]] = {}
    for pid, day in rows:  # the store keeps each id as its 16 bytes
        days.setdefault(str(uuid.UUID(bytes=pid)), []).append(day)
    return days


def test_ctrl_c_stops_after_the_batch_in_flight_and_the_same_command_resumes(folder: Path) -> None:
    """SIGINT mid-backfill exits 130 with whole batches stored; rerun completes, no gap, no dup."""
    args = (
        "backfill",
        "--all",
        "--start",
        "2024-01-02",
        "--end",
        "2025-06-29",
        "--json",
        "--progress-every",
        "0",
    )
    with _running(folder, *args, env={"CLI_TEST_WRITE_DELAY": "0.05"}) as process:
        assert process.stderr is not None
        seen = []
        for line in process.stderr:
            seen.append(line)
            if line.startswith("progress "):  # some writes are done: interrupt now
                process.send_signal(signal.SIGINT)
                break
        out, err = process.communicate(timeout=TIMEOUT)
        assert process.returncode == ExitCode.INTERRUPTED, "".join(seen) + err
    assert "stopping after the writes under way" in err
    assert "run the same command again to resume it" in err
    assert out == ""
    partial = _stored_days(folder / "test.sqlite3")
    done_before = sum(len(d) for d in partial.values())
    total = (
        (TODAY - dt.date(2024, 1, 2)).days
        + (TODAY - dt.date(2024, 3, 1)).days
        + (TODAY - dt.date(2024, 10, 1)).days
    )
    assert 0 < done_before < total
    assert done_before % 25 == 0  # whole writes of batch_size 25, never part of one
    with contextlib.closing(sqlite3.connect(folder / "test.sqlite3")) as db:
        assert db.execute("SELECT state, attempts FROM ps_runs").fetchall() == [("running", 1)]
        assert db.execute("SELECT count(*) FROM ps_leases").fetchone() == (0,)  # released

    resumed = cli_json(folder, *args[:-3], "--progress-every", "0")
    assert (resumed["status"], resumed["attempt"], resumed["failed"]) == ("completed", 2, 0)
    assert resumed["succeeded"] == total - done_before
    stored = _stored_days(folder / "test.sqlite3")
    for pid, opened in (
        (ADA, dt.date(2024, 1, 2)),
        (BEN, dt.date(2024, 3, 1)),
        (CLEO, dt.date(2024, 10, 1)),
    ):
        expected = [
            (opened + dt.timedelta(days=n)).isoformat() for n in range((TODAY - opened).days)
        ]
        assert stored[str(pid)] == expected  # every day once: no gap, no duplicate
    again = cli_json(folder, *args[:-3])
    assert again["status"] == "already_succeeded"
