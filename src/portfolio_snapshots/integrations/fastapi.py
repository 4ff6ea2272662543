"""Admin and read endpoints for the snapshot job, as a FastAPI router (extra ``fastapi``).

``snapshot_router(get_job, admin=..., reader=...)`` returns an ``APIRouter`` the host mounts
under its own prefix. `get_job` is the host's dependency that returns its `SnapshotJob`;
`admin` and `reader` are the host's guard dependencies (they raise the host's 401 or 403):
the library never invents authentication. Library errors become statuses in one place, see
``docs/http-api.md``: 404 unknown portfolio, 422 bad input, 409 a run key busy or reused,
503 with ``Retry-After`` when a store or provider is unreachable.

With ``background=BackgroundRuns()`` the triggers answer 202 with the run key and a
``Location`` of its status URL, and the work runs in an asyncio task; a run cut short by a
restart resumes under the same key when triggered again.
"""

import asyncio
import dataclasses
import datetime as dt
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, Literal

import pydantic

try:
    from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
    from fastapi.responses import JSONResponse
except ImportError as error:  # pragma: no cover - depends on the installed extra
    raise ImportError(
        "portfolio_snapshots.integrations.fastapi needs FastAPI: "
        "pip install 'portfolio-snapshots[fastapi]'"
    ) from error

from portfolio_snapshots import RunReport, RunState, SnapshotJob
from portfolio_snapshots.errors import (
    InvalidInputError,
    LeaseLostError,
    PortfolioNotFoundError,
    RunAlreadyRunningError,
    RunKeyConflictError,
    SnapshotFailedError,
    TransientError,
)

__all__ = [
    "BackfillIn",
    "BackgroundRuns",
    "ErrorOut",
    "FailureOut",
    "PositionOut",
    "RunAcceptedOut",
    "RunReportOut",
    "RunStatusOut",
    "SnapshotOut",
    "snapshot_router",
]

_log = logging.getLogger("portfolio_snapshots.fastapi")


def _iso_date(value: object) -> object:
    if isinstance(value, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("give the UTC date as YYYY-MM-DD")
    return value


IsoDate = Annotated[dt.date, pydantic.BeforeValidator(_iso_date)]
DecimalText = Annotated[
    str,
    pydantic.Field(
        description="An exact decimal number as a string (never a float).",
        examples=["1234.56"],
        json_schema_extra={"format": "decimal"},
    ),
]
RecomputeId = Annotated[str, pydantic.Field(pattern=r"^[A-Za-z0-9._~-]{1,64}$")]
DateQuery = Annotated[
    IsoDate | None,
    Query(alias="date", description="The UTC date; by default the scheduled run's date."),
]
ForceQuery = Annotated[bool, Query(description="Recompute even if the day already succeeded.")]
RecomputeQuery = Annotated[
    RecomputeId | None,
    Query(description="With force: an id of the recompute; repeating it is idempotent."),
]
_DAY = "2026-11-27"
_KEY = f"daily:{_DAY}"


class _Out(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True)


class PositionOut(_Out):
    """One valued position: quantity, the price used and its date, the market value."""

    ticker: str
    quantity: DecimalText
    price: DecimalText
    price_date: dt.date
    market_value: DecimalText
    price_currency: str | None = None
    fx_rate: DecimalText | None = None
    stale: bool = False


class SnapshotOut(_Out):
    """A portfolio's valuation on one UTC date, as `PortfolioSnapshot.as_dict` gives it."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "portfolio_id": str(uuid.UUID(int=1)),
                    "snapshot_date": _DAY,
                    "currency": "USD",
                    "cash_balance": "100.00",
                    "holdings_value": "380.24",
                    "total_value": "480.24",
                    "positions": [
                        {
                            "ticker": "AAPL",
                            "quantity": "2",
                            "price": "190.12",
                            "price_date": _DAY,
                            "market_value": "380.24",
                            "price_currency": None,
                            "fx_rate": None,
                            "stale": False,
                        }
                    ],
                    "net_contributions": None,
                    "external_flow": None,
                    "stale": False,
                }
            ]
        }
    )

    portfolio_id: uuid.UUID
    snapshot_date: dt.date
    currency: str
    cash_balance: DecimalText
    holdings_value: DecimalText
    total_value: DecimalText
    positions: list[PositionOut]
    net_contributions: DecimalText | None = None
    external_flow: DecimalText | None = None
    stale: bool = False


class FailureOut(_Out):
    """One portfolio-day that could not be snapshotted; `kind` says why, for code."""

    portfolio_id: uuid.UUID
    snapshot_date: dt.date
    error_type: str
    message: str
    attempts: int
    kind: Literal["invalid_input", "missing_data", "transient", "not_found", "error"]


class RunReportOut(_Out):
    """What a run did, as `RunReport.as_dict` gives it."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "kind": "daily",
                    "start": _DAY,
                    "end": _DAY,
                    "started_at": f"{_DAY}T00:00:01+00:00",
                    "finished_at": f"{_DAY}T00:00:09+00:00",
                    "processed": 2,
                    "succeeded": 2,
                    "failed": 0,
                    "skipped": 0,
                    "retried": 0,
                    "failures": [],
                    "key": _KEY,
                    "status": "completed",
                    "attempt": 1,
                }
            ]
        }
    )

    kind: Literal["daily", "backfill", "backfill_all", "recompute"]
    start: dt.date
    end: dt.date
    started_at: dt.datetime
    finished_at: dt.datetime
    processed: int
    succeeded: int
    failed: int
    skipped: int
    retried: int
    failures: list[FailureOut]
    key: str | None
    status: Literal["completed", "already_running", "already_succeeded"]
    attempt: int


class RunAcceptedOut(_Out):
    """A trigger accepted for background work: poll `status_url` for its state."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "examples": [{"key": _KEY, "status_url": f"https://api.example/snapshots/runs/{_KEY}"}]
        }
    )

    key: str
    status_url: str


class RunStatusOut(_Out):
    """Where a run stands, with its latest report once it finished.

    ``pending`` (accepted, not started yet), ``running``, ``succeeded`` or ``failed``; `error`
    says why a background run could not run at all.
    """

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "examples": [{"key": _KEY, "state": "running", "attempts": 1, "report": None}]
        }
    )

    key: str
    state: Literal["pending", "running", "succeeded", "failed"]
    attempts: int = 0
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    report: RunReportOut | None = None
    error: str | None = None


class BackfillIn(pydantic.BaseModel):
    """A backfill of one portfolio: every day from `start` to `end` inclusive."""

    model_config = pydantic.ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"start": "2026-11-01", "end": _DAY, "only_missing": True}]
        },
    )

    start: IsoDate
    end: IsoDate
    only_missing: bool = False
    force: bool = False
    recompute_id: RecomputeId | None = None


class ErrorOut(_Out):
    """An error: what went wrong, and the run's report when a run made it."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={"examples": [{"detail": f"run {_KEY!r} is already running"}]}
    )

    detail: str
    report: RunReportOut | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class _Trigger:
    """What a trigger asks for: its run key, its work, and the dates and portfolio it covers."""

    key: str
    work: Callable[[], Awaitable[RunReport]]
    start: dt.date
    end: dt.date
    portfolio_id: uuid.UUID | None = None


#: Runs a trigger's work somewhere: called with a coroutine function, it must start it in
#: this process and return at once (`BackgroundRuns` does, as an asyncio task).
Spawn = Callable[[Callable[[], Awaitable[None]]], object]


class BackgroundRuns:
    """Runs triggers' work in asyncio tasks it holds: pass it as ``background=``.

    Close it when the app stops (``await runs.aclose()`` in the lifespan): unfinished runs
    are cancelled, stay ``running`` in the ledger, and resume under their key when
    triggered again.
    """

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(self, work: Callable[[], Awaitable[None]]) -> None:
        """Start `work` as a task on the running loop."""

        async def run() -> None:
            await work()

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def join(self) -> None:
        """Wait until every run started so far, and any they started, has ended."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def aclose(self) -> None:
        """Cancel the unfinished runs and wait for them to stop."""
        tasks = set(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


_KIND_STATUS = {
    "invalid_input": 422,
    "missing_data": 422,
    "transient": 503,
    "not_found": 404,
    "error": 500,
}


def _status_of(error: BaseException) -> int | None:
    """The HTTP status of a library error (None: not one we map, a 500)."""
    if isinstance(error, PortfolioNotFoundError):
        return 404
    if isinstance(error, (RunKeyConflictError, RunAlreadyRunningError, LeaseLostError)):
        return 409
    if isinstance(error, SnapshotFailedError):
        return _KIND_STATUS[error.kind]
    if isinstance(error, InvalidInputError):
        return 422
    if isinstance(error, (TransientError, ConnectionError, TimeoutError)):
        return 503
    return None


def snapshot_router(  # noqa: C901, PLR0915 - one closure per endpoint
    get_job: Callable[..., Any],
    *,
    admin: Callable[..., Any],
    reader: Callable[..., Any],
    background: Spawn | None = None,
    days_back: int = 1,
    max_days: int = 366,
    retry_after: int = 30,
    tags: Sequence[str] = ("portfolio snapshots",),
) -> APIRouter:
    """Return the snapshot endpoints as a router to mount under the host's prefix.

    Args:
        get_job: The host's dependency returning its `SnapshotJob`.
        admin: The host's guard dependency for the triggers and run status.
        reader: The host's guard dependency for reading a portfolio's snapshots.
        background: Where triggers run their work: None to answer when the run ends (201),
            or a `BackgroundRuns` (or any `Spawn`) to answer 202 at once. Background runs
            need a job with a ledger.
        days_back: The date a trigger without ``date=`` takes, in days before today (UTC):
            1, the day the scheduled 00:00 UTC run takes (keep it equal to the scheduler's).
        max_days: The longest date range a backfill or a read may span.
        retry_after: Seconds a 503 asks the client to wait (``Retry-After``).
        tags: OpenAPI tags of the endpoints.

    Returns:
        The router.
    """
    router = APIRouter(tags=list(tags))
    admin_only, readers = [Depends(admin)], [Depends(reader)]
    in_flight: set[str] = set()
    errors: dict[str, str] = {}  # why a background run raised, by key
    elsewhere: set[str] = set()  # keys whose background run found another holder at work
    run_errors: dict[int | str, dict[str, Any]] = {
        code: {"model": ErrorOut} for code in (404, 409, 422, 503)
    }
    trigger_responses = {
        **run_errors,
        200: {"model": RunReportOut, "description": "The run key already succeeded"},
        202: {"model": RunAcceptedOut, "description": "Accepted for background work"},
    }

    def fail(status: int, detail: str, report: RunReport | None = None) -> JSONResponse:
        body = ErrorOut(
            detail=detail,
            report=None if report is None else RunReportOut.model_validate(report.as_dict()),
        )
        headers = {"Retry-After": str(retry_after)} if status == 503 else None  # noqa: PLR2004
        return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)

    def check_range(job: SnapshotJob, start: dt.date, end: dt.date) -> None:
        today = job.today()
        if start > end or end > today or (end - start).days >= max_days:
            raise HTTPException(
                422,
                f"invalid date range {start}..{end}: it must run forward, end by today "
                f"({today} UTC) and span at most {max_days} days",
            )

    async def require_known(job: SnapshotJob, portfolio_id: uuid.UUID) -> None:
        try:
            known = await job.portfolios.get_portfolio(portfolio_id, job.today())
        except InvalidInputError:
            return  # known, though its state cannot be built: the run reports its days
        if known is None:
            raise PortfolioNotFoundError(portfolio_id)

    def answer(report: RunReport, response: Response) -> Any:  # noqa: ANN401
        if report.status == "already_running":
            return fail(409, f"run {report.key!r} is already running", report)
        if report.status == "already_succeeded":
            response.status_code = 200
        elif report.failed and not report.succeeded:
            kinds = {f.kind for f in report.failures}
            status = 503 if kinds == {"transient"} else min(_KIND_STATUS[k] for k in kinds)
            first = report.failures[0]
            return fail(status, f"{first.error_type}: {first.message}", report)
        return RunReportOut.model_validate(report.as_dict())

    async def trigger(request: Request, response: Response, job: SnapshotJob, run: _Trigger) -> Any:  # noqa: ANN401
        key = run.key
        check_range(job, run.start, run.end)
        if key in in_flight:  # this process runs it: a second run would share the lease owner
            return fail(409, f"run {key!r} is already running")
        if background is not None:
            return await accept(request, job, run, background)
        in_flight.add(key)
        try:
            report = await run.work()
        except Exception as error:  # noqa: BLE001 - library errors become statuses
            return fail_with(error)
        finally:
            in_flight.discard(key)
        return answer(report, response)

    async def accept(request: Request, job: SnapshotJob, run: _Trigger, spawn: Spawn) -> Any:  # noqa: ANN401
        """Answer a background trigger: check what can be checked now, then 202 and spawn."""
        key = run.key
        if job.ledger is None:
            raise RuntimeError("background runs need a job with a RunLedger")
        if run.portfolio_id is not None:
            try:
                await require_known(job, run.portfolio_id)
            except Exception as error:  # noqa: BLE001 - library errors become statuses
                return fail_with(error)

        async def tracked() -> None:
            try:
                if (await run.work()).status == "already_running":
                    elsewhere.add(key)
            except Exception as error:  # noqa: BLE001 - kept for the status endpoint
                errors[key] = f"{type(error).__name__}: {error}"
                _log.exception("background snapshot run %r failed", key)
            finally:
                in_flight.discard(key)

        in_flight.add(key)
        errors.pop(key, None)
        elsewhere.discard(key)
        spawn(tracked)
        url = str(request.url_for("snapshot_run_status", key=key))
        accepted = RunAcceptedOut(key=key, status_url=url)
        return JSONResponse(accepted.model_dump(), status_code=202, headers={"Location": url})

    def fail_with(error: Exception) -> JSONResponse:
        status = _status_of(error)
        if status is None:
            raise error
        return fail(status, str(error))

    def default_day(job: SnapshotJob, day: dt.date | None) -> dt.date:
        return job.today() - dt.timedelta(days=days_back) if day is None else day

    def forced(job: SnapshotJob, key: str, force: bool, recompute_id: str | None) -> str:
        return job.forced_key(key, recompute_id) if force else key

    @router.post(
        "/snapshots/daily",
        status_code=201,
        response_model=RunReportOut,
        responses=trigger_responses,
        dependencies=admin_only,
        summary="Snapshot every portfolio for one day",
    )
    async def trigger_daily_snapshots(
        *,
        request: Request,
        response: Response,
        job: Annotated[SnapshotJob, Depends(get_job)],
        day: DateQuery = None,
        force: ForceQuery = False,
        recompute_id: RecomputeQuery = None,
    ) -> Any:  # noqa: ANN401
        on = default_day(job, day)
        key = forced(job, job.daily_key(on), force, recompute_id)
        run = _Trigger(key, lambda: job.run_daily(on, key=key), on, on)
        return await trigger(request, response, job, run)

    @router.post(
        "/{portfolio_id}/snapshots",
        status_code=201,
        response_model=RunReportOut,
        responses=trigger_responses,
        dependencies=admin_only,
        summary="Snapshot one portfolio for one day",
    )
    async def trigger_snapshot(
        portfolio_id: uuid.UUID,
        *,
        request: Request,
        response: Response,
        job: Annotated[SnapshotJob, Depends(get_job)],
        day: DateQuery = None,
        force: ForceQuery = False,
        recompute_id: RecomputeQuery = None,
    ) -> Any:  # noqa: ANN401
        on = default_day(job, day)
        key = forced(job, job.backfill_key(portfolio_id, on, on), force, recompute_id)
        run = _Trigger(
            key, lambda: job.backfill(portfolio_id, on, on, key=key), on, on, portfolio_id
        )
        return await trigger(request, response, job, run)

    @router.post(
        "/{portfolio_id}/snapshots/backfill",
        status_code=201,
        response_model=RunReportOut,
        responses=trigger_responses,
        dependencies=admin_only,
        summary="Snapshot one portfolio for every day of a range",
    )
    async def trigger_backfill(
        portfolio_id: uuid.UUID,
        body: BackfillIn,
        *,
        request: Request,
        response: Response,
        job: Annotated[SnapshotJob, Depends(get_job)],
    ) -> Any:  # noqa: ANN401
        start, end, only_missing = body.start, body.end, body.only_missing
        key = job.backfill_key(portfolio_id, start, end, only_missing=only_missing)
        key = forced(job, key, body.force, body.recompute_id)

        def work() -> Awaitable[RunReport]:
            return job.backfill(portfolio_id, start, end, only_missing=only_missing, key=key)

        return await trigger(request, response, job, _Trigger(key, work, start, end, portfolio_id))

    @router.get(
        "/{portfolio_id}/snapshots",
        response_model=list[SnapshotOut],
        responses={code: {"model": ErrorOut} for code in (404, 422, 503)},
        dependencies=readers,
        summary="The stored snapshots of one portfolio, by date",
    )
    async def list_snapshots(
        portfolio_id: uuid.UUID,
        start: Annotated[IsoDate, Query()],
        end: Annotated[IsoDate, Query()],
        job: Annotated[SnapshotJob, Depends(get_job)],
    ) -> Any:  # noqa: ANN401
        try:
            check_range(job, start, end)
            await require_known(job, portfolio_id)
            found = await job.snapshots.list_snapshots(portfolio_id, start, end)
        except HTTPException:
            raise
        except Exception as error:  # noqa: BLE001 - library errors become statuses
            return fail_with(error)
        return [SnapshotOut.model_validate(s.as_dict()) for s in found]

    @router.get(
        "/snapshots/runs/{key:path}",
        name="snapshot_run_status",
        response_model=RunStatusOut,
        responses={code: {"model": ErrorOut} for code in (404, 503)},
        dependencies=admin_only,
        summary="A run's state and latest report",
    )
    async def run_status(key: str, job: Annotated[SnapshotJob, Depends(get_job)]) -> Any:  # noqa: ANN401
        try:
            record = None if job.ledger is None else await job.ledger.get(key)
        except Exception as error:  # noqa: BLE001 - library errors become statuses
            return fail_with(error)
        if key in errors and key not in in_flight:
            return RunStatusOut(key=key, state="failed", error=errors[key])
        if record is None:
            if key in in_flight:
                return RunStatusOut(key=key, state="pending")
            if key in elsewhere:  # the holder has not recorded its start in the ledger yet
                return RunStatusOut(key=key, state="running")
            return fail(404, f"no run {key!r} is known")
        state = record.state.value
        if key in in_flight and record.state is not RunState.RUNNING:
            state = "pending"  # accepted, its ledger record still that of an earlier attempt
        return RunStatusOut(
            key=key,
            state=state,  # type: ignore[arg-type]
            attempts=record.attempts,
            started_at=record.started_at,
            finished_at=record.finished_at,
            report=None if record.report is None else RunReportOut.model_validate(record.report),
        )

    return router
