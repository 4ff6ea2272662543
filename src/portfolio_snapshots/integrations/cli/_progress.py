"""Progress of a run, driven by its events: a rich bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from portfolio_snapshots.events import RunEvent, RunProgress, RunStarted

if TYPE_CHECKING:
    from collections.abc import Callable

    from rich.console import Console


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    return str(dt.timedelta(seconds=round(seconds)))


class ProgressView:
    """An event hook that shows how far a run is, in portfolio-days.

    On a terminal it draws a rich progress bar (done of total, percent, rate, time left);
    otherwise it prints a plain line at most every `interval` seconds, and one at the end.
    It reads only the run's events (`RunStarted`, `RunProgress`), never the store.

    Args:
        console: Where to draw (standard error).
        label: What the run is (``backfill``, ...), until its key is known.
        total: Portfolio-days the run covers, when known (None: no percent, no ETA).
        interval: Seconds between two plain lines (0: a line per event).
        bar: Draw a bar (a terminal) rather than plain lines.
        clock: Seconds of a monotonic clock, for the rate and the ETA.
    """

    def __init__(
        self,
        console: Console,
        *,
        label: str,
        total: int | None,
        interval: float,
        bar: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console
        self.label = label
        self.total = total
        self.interval = interval
        self.clock = clock
        self.key: str | None = None
        self.attempt = 1
        self.done = 0
        self.failed = 0
        self.seen = False
        self._started = clock()
        self._printed_at: float | None = None
        self._printed_done = -1
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        if bar:
            self._bar = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(),
                console=console,
                get_time=clock,
            )
            self._task = self._bar.add_task(label, total=total, rate="")
            self._bar.start()

    def __call__(self, event: RunEvent, /) -> None:
        """Follow one event of the run."""
        if isinstance(event, RunStarted):
            self.key, self.attempt = event.key, event.attempt
            if self._bar is not None and self._task is not None and event.key:
                self._bar.update(self._task, description=event.key)
        elif isinstance(event, RunProgress):
            self.seen = True
            self.done = event.succeeded + event.failed + event.skipped
            self.failed = event.failed
            self._show(final=False)

    def rate(self) -> float | None:
        """Portfolio-days per second so far, or None before any second has passed."""
        elapsed = self.clock() - self._started
        return self.done / elapsed if elapsed > 0 else None

    def line(self) -> str:
        """The plain progress line for the counts so far."""
        rate = self.rate()
        name = self.key or self.label
        if self.total:
            left = None if not rate else max(self.total - self.done, 0) / rate
            share = f"{self.done}/{self.total} portfolio-days ({100 * self.done // self.total}%)"
            tail = f", ETA {_eta(left)}"
        else:
            share, tail = f"{self.done} portfolio-days", ""
        speed = "?" if rate is None else f"{rate:.0f}"
        return f"progress {name}: {share}, {self.failed} failed, {speed}/s{tail}"

    def _show(self, *, final: bool) -> None:
        if self._bar is not None and self._task is not None:
            rate = self.rate()
            self._bar.update(
                self._task,
                completed=self.done,
                rate="" if rate is None else f"{rate:.0f} days/s",
            )
            return
        now = self.clock()
        due = self._printed_at is None or now - self._printed_at >= self.interval
        if (due or final) and self.done != self._printed_done:
            self.console.print(self.line(), markup=False, highlight=False, soft_wrap=True)
            self._printed_at, self._printed_done = now, self.done

    def close(self) -> None:
        """Show the last counts (if the run told any) and stop drawing."""
        if self.seen:
            self._show(final=True)
        if self._bar is not None:
            self._bar.stop()
