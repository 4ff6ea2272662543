"""The snapshot router in a real FastAPI app, called through HTTPX: statuses, guards, schema."""

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Collection, Mapping
from decimal import Decimal
from typing import Annotated, Any

import httpx
import pytest
from fastapi import FastAPI, Header, HTTPException

from portfolio_snapshots import (
    InMemoryMarketData,
    InMemoryPortfolioRepository,
    InMemorySnapshotRepository,
    Portfolio,
    PriceQuote,
    SnapshotJob,
)
from portfolio_snapshots.adapters.memory import InMemoryRunLedger, InMemoryRunLock
from portfolio_snapshots.errors import DatabaseUnavailableError
from portfolio_snapshots.integrations import fastapi as snapshots_api
from portfolio_snapshots.integrations.fastapi import BackgroundRuns, snapshot_router
from portfolio_snapshots.testing import (
    FakeClock,
    Fault,
    FaultyRunLock,
    FaultySnapshotRepository,
    instant_retry,
)

NOW = dt.datetime(2026, 11, 27, 9, 30, tzinfo=dt.UTC)
TODAY = NOW.date()
YESTERDAY = TODAY - dt.timedelta(days=1)
ALICE = uuid.UUID(int=1)
BOB = uuid.UUID(int=2)  # holds a ticker without prices
ADMIN = {"Authorization": "Bearer admin-secret"}
USER = {"Authorization": "Bearer user-secret"}
PREFIX = "/admin/portfolios"


async def require_admin(authorization: Annotated[str | None, Header()] = None) -> None:
    """The host's admin guard: a bearer token."""
    if authorization is None:
        raise HTTPException(401, "sign in", headers={"WWW-Authenticate": "Bearer"})
    if authorization != ADMIN["Authorization"]:
        raise HTTPException(403, "admins only")


async def require_user(authorization: Annotated[str | None, Header()] = None) -> None:
    """The host's read guard: any known bearer token."""
    if authorization is None:
        raise HTTPException(401, "sign in", headers={"WWW-Authenticate": "Bearer"})
    if authorization not in {ADMIN["Authorization"], USER["Authorization"]}:
        raise HTTPException(403, "unknown token")


class GatedMarket:
    """Prices from an in-memory market; while `gate` is closed every request waits."""

    def __init__(self, inner: InMemoryMarketData) -> None:
        self.inner = inner
        self.gate = asyncio.Event()
        self.gate.set()
        self.waiting = asyncio.Event()

    async def get_prices(
        self, tickers: Collection[str], as_of: dt.date
    ) -> Mapping[str, PriceQuote]:
        self.waiting.set()
        await self.gate.wait()
        return await self.inner.get_prices(tickers, as_of)


class World:
    """Stores, market and job shared by the apps of one test."""

    def __init__(self, *, snapshots: Any = None, lock: Any = None) -> None:
        market = InMemoryMarketData()
        for back in range(10):
            market.add_price("AAA", TODAY - dt.timedelta(days=back), Decimal("10.125") + back)
        self.market = GatedMarket(market)
        self.snapshots = snapshots or InMemorySnapshotRepository()
        self.ledger = InMemoryRunLedger()
        self.lock = lock or InMemoryRunLock()
        self.portfolios = InMemoryPortfolioRepository(
            [
                Portfolio(ALICE, Decimal("100.10"), {"AAA": Decimal(3)}),
                Portfolio(BOB, Decimal(5), {"NOPE": Decimal(1)}),
            ]
        )

    def job(self, owner: str = "web-1") -> SnapshotJob:
        return SnapshotJob(
            portfolios=self.portfolios,
            snapshots=self.snapshots,
            market_data=self.market,
            ledger=self.ledger,
            lock=self.lock,
            clock=FakeClock(NOW),
            retry=instant_retry(),
            owner=owner,
        )


def make_app(job: SnapshotJob, **options: Any) -> FastAPI:
    app = FastAPI()

    def get_job() -> SnapshotJob:
        return job

    router = snapshot_router(get_job, admin=require_admin, reader=require_user, **options)
    app.include_router(router, prefix=PREFIX)
    return app


@contextlib.asynccontextmanager
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


def run(scenario: Any) -> None:
    asyncio.run(scenario())


def test_trigger_snapshot_admin_only() -> None:
    """Triggering one portfolio's snapshot needs the admin guard: 401 anonymous, 403 a user."""

    async def scenario() -> None:
        async with client(make_app(World().job())) as http:
            url = f"{PREFIX}/{ALICE}/snapshots?date={YESTERDAY}"
            anonymous = await http.post(url)
            assert anonymous.status_code == 401
            assert anonymous.headers["WWW-Authenticate"] == "Bearer"
            assert (await http.post(url, headers=USER)).status_code == 403
            assert (await http.post(url, headers=ADMIN)).status_code == 201

    run(scenario)


def test_trigger_snapshot_success() -> None:
    """An admin trigger stores the day and answers 201 with the report; reads return it."""

    async def scenario() -> None:
        async with client(make_app(World().job())) as http:
            answer = await http.post(f"{PREFIX}/{ALICE}/snapshots?date={YESTERDAY}", headers=ADMIN)
            assert answer.status_code == 201
            report = answer.json()
            assert report["key"] == f"backfill:{ALICE}:{YESTERDAY}:{YESTERDAY}"
            assert (report["status"], report["succeeded"], report["failed"]) == (
                "completed",
                1,
                0,
            )
            read = await http.get(
                f"{PREFIX}/{ALICE}/snapshots",
                params={"start": str(YESTERDAY), "end": str(TODAY)},
                headers=USER,
            )
            assert read.status_code == 200
            (snapshot,) = read.json()
            assert snapshot["snapshot_date"] == str(YESTERDAY)
            assert snapshot["total_value"] == "133.48"  # 100.10 + 33.38 (33.375, half-even)
            assert snapshot["positions"][0]["price"] == "11.125"

    run(scenario)


def test_trigger_daily_snapshots_admin_only() -> None:
    """The daily trigger for all portfolios needs the admin guard: 401, 403, then 201."""

    async def scenario() -> None:
        async with client(make_app(World().job())) as http:
            url = f"{PREFIX}/snapshots/daily"
            assert (await http.post(url)).status_code == 401
            assert (await http.post(url, headers=USER)).status_code == 403
            answer = await http.post(url, headers=ADMIN)
            assert answer.status_code == 201
            report = answer.json()
            assert (report["start"], report["key"]) == (str(YESTERDAY), f"daily:{YESTERDAY}")
            assert (report["succeeded"], report["failed"]) == (1, 1)
            (failure,) = report["failures"]
            assert (failure["portfolio_id"], failure["kind"]) == (str(BOB), "missing_data")

    run(scenario)


def test_reads_need_the_read_guard() -> None:
    """Reading snapshots answers 401 without a token and 403 for an unknown one."""

    async def scenario() -> None:
        async with client(make_app(World().job())) as http:
            url = f"{PREFIX}/{ALICE}/snapshots?start={YESTERDAY}&end={TODAY}"
            assert (await http.get(url)).status_code == 401
            forged = {"Authorization": "Bearer forged"}
            assert (await http.get(url, headers=forged)).status_code == 403
            assert (await http.get(url, headers=USER)).status_code == 200

    run(scenario)


def test_a_repeated_trigger_answers_200_and_force_recomputes() -> None:
    """A key that succeeded answers 200 with its report; force=true recomputes it (201)."""

    async def scenario() -> None:
        world = World()
        async with client(make_app(world.job())) as http:
            url = f"{PREFIX}/{ALICE}/snapshots?date={YESTERDAY}"
            first = await http.post(url, headers=ADMIN)
            again = await http.post(url, headers=ADMIN)
            assert again.status_code == 200
            assert again.json()["status"] == "already_succeeded"
            assert again.json()["started_at"] == first.json()["started_at"]
            forced = await http.post(f"{url}&force=true&recompute_id=fix-1", headers=ADMIN)
            assert forced.status_code == 201
            assert forced.json()["key"].endswith(":force:fix-1")
            repeated = await http.post(f"{url}&force=true&recompute_id=fix-1", headers=ADMIN)
            assert repeated.status_code == 200

    run(scenario)


def test_an_unknown_portfolio_is_404() -> None:
    """Triggers and reads of a portfolio the repository does not know answer 404."""

    async def scenario() -> None:
        stranger = uuid.UUID(int=404)
        async with client(make_app(World().job())) as http:
            trigger = await http.post(f"{PREFIX}/{stranger}/snapshots", headers=ADMIN)
            assert trigger.status_code == 404
            assert str(stranger) in trigger.json()["detail"]
            backfill = await http.post(
                f"{PREFIX}/{stranger}/snapshots/backfill",
                json={"start": str(YESTERDAY), "end": str(TODAY)},
                headers=ADMIN,
            )
            assert backfill.status_code == 404
            read = await http.get(
                f"{PREFIX}/{stranger}/snapshots?start={TODAY}&end={TODAY}", headers=USER
            )
            assert read.status_code == 404

    run(scenario)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", f"/not-a-uuid/snapshots?date={YESTERDAY}", None),
        ("POST", f"/{ALICE}/snapshots?date=2026-13-01", None),
        ("POST", f"/{ALICE}/snapshots?date=27.11.2026", None),
        ("POST", f"/{ALICE}/snapshots?date=1764201600", None),
        ("POST", f"/{ALICE}/snapshots?date={TODAY + dt.timedelta(days=1)}", None),
        ("POST", f"/snapshots/daily?date={TODAY + dt.timedelta(days=1)}", None),
        ("POST", f"/{ALICE}/snapshots/backfill", {"start": str(TODAY), "end": str(YESTERDAY)}),
        ("POST", f"/{ALICE}/snapshots/backfill", {"start": "2024-01-01", "end": str(TODAY)}),
        ("POST", f"/{ALICE}/snapshots/backfill", {"start": str(TODAY), "end": str(TODAY), "x": 1}),
        ("GET", f"/{ALICE}/snapshots?start={TODAY}&end={YESTERDAY}", None),
        ("GET", f"/{ALICE}/snapshots?start=2020-01-01&end={TODAY}", None),
        ("POST", f"/{ALICE}/snapshots?force=true&recompute_id=no/slashes", None),
    ],
    ids=[
        "malformed-id",
        "no-such-month",
        "not-iso",
        "a-timestamp",
        "future-day",
        "future-daily",
        "start-after-end",
        "range-too-long",
        "unknown-field",
        "read-start-after-end",
        "read-range-too-long",
        "bad-recompute-id",
    ],
)
def test_bad_input_is_422(method: str, path: str, body: dict[str, object] | None) -> None:
    """Malformed ids and dates, backwards, future or too long ranges answer 422."""

    async def scenario() -> None:
        async with client(make_app(World().job(), max_days=400)) as http:
            headers = ADMIN if method == "POST" else USER
            answer = await http.request(method, PREFIX + path, json=body, headers=headers)
            assert answer.status_code == 422, answer.text

    run(scenario)


def test_a_day_that_cannot_be_valued_is_422_with_its_report() -> None:
    """One portfolio's day failing for a missing price answers 422, naming ticker and kind."""

    async def scenario() -> None:
        async with client(make_app(World().job())) as http:
            answer = await http.post(f"{PREFIX}/{BOB}/snapshots?date={YESTERDAY}", headers=ADMIN)
            assert answer.status_code == 422
            body = answer.json()
            assert "MissingPriceError" in body["detail"]
            assert "'NOPE'" in body["detail"]
            assert body["report"]["failures"][0]["kind"] == "missing_data"

    run(scenario)


def test_a_store_that_is_down_is_503_with_retry_after() -> None:
    """Writes, leases and reads failing with DatabaseUnavailableError answer 503 Retry-After."""

    async def scenario() -> None:
        down = Fault(fail_rate=1.0, error=DatabaseUnavailableError)
        world = World(snapshots=FaultySnapshotRepository(InMemorySnapshotRepository(), down))
        async with client(make_app(world.job(), retry_after=7)) as http:
            trigger = await http.post(f"{PREFIX}/{ALICE}/snapshots", headers=ADMIN)
            assert trigger.status_code == 503
            assert trigger.headers["Retry-After"] == "7"
            assert trigger.json()["report"]["failures"][0]["kind"] == "transient"
            read = await http.get(
                f"{PREFIX}/{ALICE}/snapshots?start={TODAY}&end={TODAY}", headers=USER
            )
            assert read.status_code == 503
            assert read.headers["Retry-After"] == "7"
        locked_out = World(lock=FaultyRunLock(InMemoryRunLock(), down))
        async with client(make_app(locked_out.job())) as http:
            daily = await http.post(f"{PREFIX}/snapshots/daily", headers=ADMIN)
            assert daily.status_code == 503
            assert "Retry-After" in daily.headers

    run(scenario)


def test_a_key_reused_with_other_parameters_is_409() -> None:
    """A backfill whose key the host already ran with other parameters answers 409."""

    async def scenario() -> None:
        job = World().job()
        # the host ran the trigger's key itself, but computing only the missing dates
        key = job.backfill_key(ALICE, YESTERDAY, TODAY)
        await job.backfill(ALICE, YESTERDAY, TODAY, only_missing=True, key=key)
        async with client(make_app(job)) as http:
            answer = await http.post(
                f"{PREFIX}/{ALICE}/snapshots/backfill",
                json={"start": str(YESTERDAY), "end": str(TODAY)},
                headers=ADMIN,
            )
            assert answer.status_code == 409
            assert "different parameters" in answer.json()["detail"]

    run(scenario)


def test_a_trigger_while_the_same_key_runs_is_409() -> None:
    """While a key runs, triggering it again answers 409, on this replica and on another."""

    async def scenario() -> None:
        world = World()
        world.market.gate.clear()
        url = f"{PREFIX}/snapshots/daily?date={YESTERDAY}"
        async with (
            client(make_app(world.job("web-1"))) as http,
            client(make_app(world.job("web-2"))) as replica,
        ):
            first = asyncio.create_task(http.post(url, headers=ADMIN))
            await world.market.waiting.wait()  # the first run holds the lease, pricing
            here = await http.post(url, headers=ADMIN)
            assert here.status_code == 409
            assert "already running" in here.json()["detail"]
            there = await replica.post(url, headers=ADMIN)  # the lease says no
            assert there.status_code == 409
            assert there.json()["report"]["status"] == "already_running"
            world.market.gate.set()
            assert (await first).status_code == 201


def test_background_trigger_answers_202_then_its_status_reaches_succeeded() -> None:
    """With background runs a trigger answers 202 and a Location; polling it shows the run."""

    async def scenario() -> None:
        world = World()
        world.market.gate.clear()
        runs = BackgroundRuns()
        try:
            async with client(make_app(world.job(), background=runs)) as http:
                answer = await http.post(f"{PREFIX}/snapshots/daily", headers=ADMIN)
                assert answer.status_code == 202
                accepted = answer.json()
                assert accepted["key"] == f"daily:{YESTERDAY}"
                assert answer.headers["Location"] == accepted["status_url"]
                assert accepted["status_url"].endswith(f"{PREFIX}/snapshots/runs/daily:{YESTERDAY}")
                await world.market.waiting.wait()
                running = await http.get(accepted["status_url"], headers=ADMIN)
                assert running.status_code == 200
                assert running.json()["state"] == "running"
                again = await http.post(f"{PREFIX}/snapshots/daily", headers=ADMIN)
                assert again.status_code == 409
                world.market.gate.set()
                await runs.join()
                done = (await http.get(accepted["status_url"], headers=ADMIN)).json()
                assert (done["state"], done["attempts"]) == ("failed", 1)  # BOB has no price
                assert done["report"]["succeeded"] == 1
                assert done["report"]["failures"][0]["kind"] == "missing_data"
                one = await http.post(f"{PREFIX}/{ALICE}/snapshots", headers=ADMIN)
                await runs.join()
                status = await http.get(one.json()["status_url"], headers=ADMIN)
                assert status.json()["state"] == "succeeded"
                repeat = await http.post(f"{PREFIX}/{ALICE}/snapshots", headers=ADMIN)
                assert repeat.status_code == 202  # accepted; the run finds the key succeeded
                await runs.join()
                status = await http.get(repeat.headers["Location"], headers=ADMIN)
                assert (status.json()["state"], status.json()["attempts"]) == ("succeeded", 1)
        finally:
            await runs.aclose()

    run(scenario)


def test_a_background_run_cut_by_a_restart_resumes_under_its_key() -> None:
    """A run cancelled mid-way (a restart) stays running; triggered again it resumes, attempt 2."""

    async def scenario() -> None:
        world = World()
        world.market.gate.clear()
        before = BackgroundRuns()
        async with client(make_app(world.job("web-1"), background=before)) as http:
            answer = await http.post(
                f"{PREFIX}/{ALICE}/snapshots/backfill",
                json={"start": str(YESTERDAY), "end": str(TODAY)},
                headers=ADMIN,
            )
            key = answer.json()["key"]
            await world.market.waiting.wait()
            await before.aclose()  # the process stops mid-run
        world.market.gate.set()
        after = BackgroundRuns()
        try:
            async with client(make_app(world.job("web-2"), background=after)) as http:
                status = (await http.get(f"{PREFIX}/snapshots/runs/{key}", headers=ADMIN)).json()
                assert status["state"] == "running"  # what the ledger knows of the cut run
                again = await http.post(
                    f"{PREFIX}/{ALICE}/snapshots/backfill",
                    json={"start": str(YESTERDAY), "end": str(TODAY)},
                    headers=ADMIN,
                )
                assert again.status_code == 202
                assert again.json()["key"] == key
                await after.join()
                done = (await http.get(f"{PREFIX}/snapshots/runs/{key}", headers=ADMIN)).json()
                assert (done["state"], done["attempts"]) == ("succeeded", 2)
                assert done["report"]["attempt"] == 2
                assert done["report"]["succeeded"] == 2
        finally:
            await after.aclose()

    run(scenario)


def test_a_background_run_that_cannot_start_reports_failed_with_its_error() -> None:
    """An error raised by the background work shows on the status URL as state failed."""

    async def scenario() -> None:
        job = World().job()
        key = job.backfill_key(ALICE, YESTERDAY, TODAY)
        await job.backfill(ALICE, YESTERDAY, TODAY, only_missing=True, key=key)
        runs = BackgroundRuns()
        try:
            async with client(make_app(job, background=runs)) as http:
                answer = await http.post(
                    f"{PREFIX}/{ALICE}/snapshots/backfill",
                    json={"start": str(YESTERDAY), "end": str(TODAY)},
                    headers=ADMIN,
                )
                assert answer.status_code == 202
                await runs.join()
                status = (await http.get(answer.headers["Location"], headers=ADMIN)).json()
                assert status["state"] == "failed"
                assert status["error"].startswith("RunKeyConflictError")
        finally:
            await runs.aclose()

    run(scenario)


def test_an_unknown_run_key_is_404() -> None:
    """The status of a key no run used answers 404."""

    async def scenario() -> None:
        async with client(make_app(World().job())) as http:
            answer = await http.get(f"{PREFIX}/snapshots/runs/daily:1999-01-01", headers=ADMIN)
            assert answer.status_code == 404

    run(scenario)


def test_the_openapi_schema_lists_every_route_and_model_with_decimals_as_strings() -> None:
    """OpenAPI has the five routes under the host's prefix and every model, money as strings."""
    schema = make_app(World().job()).openapi()
    routes = {(path, method) for path, item in schema["paths"].items() for method in item}
    assert routes == {
        (f"{PREFIX}/snapshots/daily", "post"),
        (f"{PREFIX}/{{portfolio_id}}/snapshots", "post"),
        (f"{PREFIX}/{{portfolio_id}}/snapshots", "get"),
        (f"{PREFIX}/{{portfolio_id}}/snapshots/backfill", "post"),
        (f"{PREFIX}/snapshots/runs/{{key}}", "get"),
    }
    models = schema["components"]["schemas"]
    for name in snapshots_api.__all__:
        if name.endswith(("In", "Out")):
            assert name in models, name
    for name in ("SnapshotOut", "RunReportOut", "RunStatusOut", "RunAcceptedOut", "BackfillIn"):
        assert models[name]["examples"], name
    for field in ("cash_balance", "holdings_value", "total_value"):
        assert models["SnapshotOut"]["properties"][field]["type"] == "string"
    assert models["PositionOut"]["properties"]["price"]["type"] == "string"
    daily = schema["paths"][f"{PREFIX}/snapshots/daily"]["post"]["responses"]
    assert {"200", "201", "202", "404", "409", "422", "503"} <= set(daily)


class GatedLedger(InMemoryRunLedger):
    """A ledger whose `start` waits for `gate`: a holder caught between lease and ledger."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()

    async def start(self, key: str, params_hash: str, now: dt.datetime) -> Any:
        self.waiting.set()
        await self.gate.wait()
        return await super().start(key, params_hash, now)


def test_a_background_run_that_finds_another_holder_shows_running_until_it_ends() -> None:
    """Accepted while another replica holds the key (not yet in the ledger): status running."""

    async def scenario() -> None:
        world = World()
        ledger = GatedLedger()
        world.ledger = ledger
        other = asyncio.create_task(world.job("replica").run_daily(YESTERDAY))
        await ledger.waiting.wait()  # the replica holds the lease, its ledger start pending
        runs = BackgroundRuns()
        try:
            async with client(make_app(world.job("web-1"), background=runs)) as http:
                answer = await http.post(f"{PREFIX}/snapshots/daily", headers=ADMIN)
                assert answer.status_code == 202
                await runs.join()  # it found the key held: nothing to do here
                status = await http.get(answer.headers["Location"], headers=ADMIN)
                assert status.json()["state"] == "running"
                ledger.gate.set()
                await other
                done = await http.get(answer.headers["Location"], headers=ADMIN)
                assert done.json()["state"] == "failed"  # BOB has no price: the run's state
                assert done.json()["report"]["succeeded"] == 1
        finally:
            ledger.gate.set()
            await runs.aclose()

    run(scenario)
