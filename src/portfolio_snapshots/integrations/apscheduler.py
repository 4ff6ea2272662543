"""The daily run at 00:00 UTC on an APScheduler 3.x ``AsyncIOScheduler`` (extra ``apscheduler``).

``schedule_daily_snapshots(scheduler, job)`` adds one job, ``daily_portfolio_snapshot``: a
`CronTrigger` at 00:00 UTC whatever the process's time zone, ``replace_existing=True`` (safe to
call at every start), ``coalesce=True`` and ``max_instances=1``. Each run snapshots the day that
just closed (``days_back=1``: at 00:00 UTC on the 28th it values the 27th, the last full day a
chart shows).

APScheduler's default misfire grace is one second, so a process that starts at 00:05, or
whose event loop was busy at midnight, would skip the day. Here the grace is a day by default,
and a scheduler started within the grace of the last 00:00 UTC runs that missed fire at once.
Several replicas may each run a scheduler: with a `RunLedger` and a `RunLock` on the job, the
run key ``daily:<date>`` and its lease make one of them do the work; the others report
``already_running`` or ``already_succeeded``.

`DailySnapshots` is the run itself, free of APScheduler: a coroutine any scheduler can call
(APScheduler 4's ``add_schedule`` included).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import TYPE_CHECKING, Any, TypeVar

from portfolio_snapshots._time import utc_now

try:
    from apscheduler.triggers.cron import CronTrigger
except ImportError as error:  # pragma: no cover - depends on the installed extra
    raise ImportError(
        "portfolio_snapshots.integrations.apscheduler needs APScheduler 3.x: "
        "pip install 'portfolio-snapshots[apscheduler]'"
    ) from error

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from portfolio_snapshots import RunReport, SnapshotJob

__all__ = [
    "DEFAULT_MISFIRE_GRACE",
    "JOB_ID",
    "DailySnapshots",
    "next_fire_time",
    "schedule_daily_snapshots",
]

_T = TypeVar("_T")

#: The id of the scheduled job: adding it again replaces it.
JOB_ID = "daily_portfolio_snapshot"

#: How late a 00:00 UTC fire may still run: a whole day, so a late start still runs the day.
DEFAULT_MISFIRE_GRACE = dt.timedelta(days=1)


class DailySnapshots:
    """The scheduled work: which day a run snapshots, and the run, without any scheduler.

    It keeps track of the runs it has in progress, so a host can stop them cleanly with
    `aclose` before closing the stores they use.

    Args:
        job: The job to run.
        days_back: How many days before the run's UTC date it snapshots: 1 (the default)
            values the day that just closed when fired at 00:00 UTC; 0 values the day just
            begun, with prices that are not closes yet.

    Raises:
        ValueError: `days_back` is negative.
    """

    def __init__(self, job: SnapshotJob, *, days_back: int = 1) -> None:
        if days_back < 0:
            raise ValueError(f"days_back must be 0 or more, got {days_back}")
        self.job = job
        self.days_back = days_back
        self._tasks: set[asyncio.Task[object]] = set()
        self._closing = False

    def day(self) -> dt.date:
        """Return the date a run started now snapshots (UTC, from the job's clock)."""
        return self.job.today() - dt.timedelta(days=self.days_back)

    async def run(self) -> RunReport | None:
        """Snapshot every portfolio for `day` under its daily run key; return the report.

        Returns None when `aclose` stopped the run.
        """
        return await self._tracked(self.job.run_daily(self.day()))

    async def catch_up(self, max_days: int = 7) -> list[RunReport] | None:
        """Run the daily runs missed while the host was down, through `day`.

        See `SnapshotJob.catch_up`: needs a job with a ledger; looks `max_days` back.
        Returns None when `aclose` stopped it.
        """
        return await self._tracked(self.job.catch_up(self.day(), max_days=max_days))

    async def aclose(self) -> None:
        """Cancel the runs in progress and wait until they have stopped.

        Call it when the host stops, after ``scheduler.shutdown()`` and before closing the
        stores: an interrupted run stays ``running`` in the ledger and resumes, under the same
        key, the next time that day is run.
        """
        self._closing = True
        tasks = set(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _tracked(self, work: Coroutine[Any, Any, _T]) -> _T | None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            return await work
        except asyncio.CancelledError:
            if self._closing:
                return None  # stopped on purpose by `aclose`: nothing for the scheduler to log
            raise
        finally:
            if task is not None:
                self._tasks.discard(task)


def schedule_daily_snapshots(
    scheduler: Any,  # noqa: ANN401 - APScheduler 3.x ships no type information
    job: SnapshotJob,
    *,
    days_back: int = 1,
    misfire_grace: dt.timedelta = DEFAULT_MISFIRE_GRACE,
    job_id: str = JOB_ID,
    catch_up_days: int = 0,
    now: Callable[[], dt.datetime] = utc_now,
) -> DailySnapshots:
    """Add the daily snapshot run to an APScheduler 3.x ``AsyncIOScheduler``, at 00:00 UTC.

    Call it before or after ``scheduler.start()``; calling it again replaces the job. The
    scheduler's own time zone does not matter: the trigger is in UTC. At shutdown, call
    ``scheduler.shutdown()`` then ``await daily.aclose()`` on the returned `DailySnapshots`,
    before closing the stores.

    Args:
        scheduler: The host's ``AsyncIOScheduler``.
        job: The job to run; give it a ledger and a lock when several processes schedule it.
        days_back: Which day a run snapshots, in days before its UTC date (see
            `DailySnapshots`); 1 by default, the day that just closed.
        misfire_grace: How late a fire may still run; a scheduler started within it of the
            last 00:00 UTC runs that fire at once. A day at most (the default), so a late
            run never spills into the next day's.
        job_id: The scheduled job's id.
        catch_up_days: When more than 0, also run `DailySnapshots.catch_up` once at start
            (as job ``<job_id>_catch_up``): the daily runs missed while the host was down,
            looking this many days back. Needs a job with a ledger.
        now: The wall clock APScheduler itself uses, to find the last 00:00 UTC (injected
            for tests; keep the default).

    Returns:
        The scheduled work (``scheduler.get_job(job_id)`` is the APScheduler ``Job``).

    Raises:
        ValueError: `misfire_grace` is not positive or longer than a day, `days_back` or
            `catch_up_days` is negative, or `catch_up_days` is set and the job has no ledger.
    """
    if not dt.timedelta(0) < misfire_grace <= dt.timedelta(days=1):
        raise ValueError(f"misfire_grace must be above 0 and at most a day, got {misfire_grace}")
    if catch_up_days < 0:
        raise ValueError(f"catch_up_days must be 0 or more, got {catch_up_days}")
    if catch_up_days and job.ledger is None:
        raise ValueError("catch_up_days needs a job with a ledger, to know which runs succeeded")
    daily = DailySnapshots(job, days_back=days_back)
    moment = now().astimezone(dt.UTC)
    last_fire = dt.datetime.combine(moment.date(), dt.time(0), tzinfo=dt.UTC)
    first: dict[str, dt.datetime] = {}
    if moment - last_fire <= misfire_grace:
        first["next_run_time"] = last_fire  # missed at most `misfire_grace` ago: run it now
    if catch_up_days:
        scheduler.add_job(
            daily.catch_up,
            "date",  # once, at start
            args=(catch_up_days,),
            id=f"{job_id}_catch_up",
            name="portfolio snapshots: daily runs missed while down",
            replace_existing=True,
            misfire_grace_time=None,
        )
    scheduler.add_job(
        daily.run,
        CronTrigger(hour=0, minute=0, timezone=dt.UTC),
        id=job_id,
        name="portfolio snapshots: the day that just closed",
        replace_existing=True,
        coalesce=True,
        max_instances=1,
        misfire_grace_time=int(misfire_grace.total_seconds()),
        **first,
    )
    return daily


def next_fire_time(scheduler: Any, job_id: str = JOB_ID) -> dt.datetime | None:  # noqa: ANN401
    """Return when the scheduled daily run fires next, in UTC (None: not scheduled, or paused).

    Args:
        scheduler: The ``AsyncIOScheduler`` it was added to.
        job_id: The scheduled job's id.
    """
    scheduled = scheduler.get_job(job_id)
    moment: dt.datetime | None = None if scheduled is None else scheduled.next_run_time
    return None if moment is None else moment.astimezone(dt.UTC)
