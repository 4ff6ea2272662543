"""The ``portfolio-snapshots`` command line (extra ``cli``: Typer and rich).

Conventions follow uvicorn's and celery's: ``--app module:attribute`` (or
``$PORTFOLIO_SNAPSHOTS_APP``) names the host's `SnapshotJob`, or a factory of one (sync or
async) that may return a context manager yielding it, so stores are closed on exit.

Commands: ``run-daily``, ``backfill`` (with a progress bar driven by the run's events),
``recompute``, ``show``, ``chart`` (extra ``plot``), ``runs``, and ``demo``, which needs no
app. Every command takes ``--json``; `ExitCode` lists the exit codes. Ctrl-C stops a run after
the writes under way, and the same command resumes it under the same run key. See
``docs/cli.md``.
"""

from __future__ import annotations

from portfolio_snapshots.integrations.cli._app import ExitCode
from portfolio_snapshots.integrations.cli._commands import app

__all__ = ["ExitCode", "app", "main"]


def main() -> None:
    """Run the command line (the ``portfolio-snapshots`` console script)."""
    app(prog_name="portfolio-snapshots")


ExitCode.__module__ = __name__
