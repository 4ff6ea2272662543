"""A host app in one file: admin endpoints, reads and the daily run at 00:00 UTC.

To run:
    pip install -e '.[fastapi,apscheduler]' uvicorn
    SNAPSHOTS_ADMIN_TOKEN=change-me uvicorn fastapi_app:app --app-dir examples
    curl -XPOST -H 'Authorization: Bearer change-me' :8000/admin/portfolios/snapshots/daily

or, without a server, ``python examples/fastapi_app.py``: it drives the app through HTTPX in
this process (its lifespan included) and prints what the endpoints answer.

Two parts. "Adapters" stands in for the host's own database and price provider (in-memory
portfolios and closes). "Host glue" is what a backend engineer writes around the library: the
embedded SQLite store as snapshot store, run ledger and lock; a bearer-token guard for admins
and one for readers; the scheduler started and stopped in the lifespan; the router mounted.
Triggers answer 202 and run in the background; the scheduler catches up missed days at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import secrets
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

from apscheduler.schedulers.asyncio import (  # pyright: ignore[reportMissingTypeStubs] - no types
    AsyncIOScheduler,
)
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from portfolio_snapshots import (
    InMemoryMarketData,
    InMemoryPortfolioRepository,
    Portfolio,
    SnapshotJob,
    SqliteSnapshotStore,
    date_range,
    utc_now,
)
from portfolio_snapshots.integrations.apscheduler import schedule_daily_snapshots
from portfolio_snapshots.integrations.fastapi import BackgroundRuns, snapshot_router

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

# --- adapters: the host's own portfolios and prices (in memory here) ----------------------

ALICE = uuid.UUID("00000000-0000-0000-0000-00000000a11c")
BOB = uuid.UUID("00000000-0000-0000-0000-000000000b0b")


def host_adapters() -> tuple[InMemoryPortfolioRepository, InMemoryMarketData]:
    """Two portfolios, and ten days of closes up to today."""
    portfolios = InMemoryPortfolioRepository(
        [
            Portfolio(ALICE, Decimal("1200.00"), {"AAPL": Decimal(10), "MSFT": Decimal("2.5")}),
            Portfolio(BOB, Decimal("50.00"), {"VTI": Decimal("12.345")}),
        ]
    )
    market = InMemoryMarketData()
    today = utc_now().date()
    for i, day in enumerate(date_range(today - dt.timedelta(days=9), today)):
        market.add_price("AAPL", day, Decimal("189.50") + i)
        market.add_price("MSFT", day, Decimal("410.25") - i)
        market.add_price("VTI", day, Decimal("255.10") + Decimal(i) / 4)
    return portfolios, market


# --- host glue ----------------------------------------------------------------------------

ADMIN_TOKEN = os.environ.get("SNAPSHOTS_ADMIN_TOKEN", "change-me")
READ_TOKEN = os.environ.get("SNAPSHOTS_READ_TOKEN", "read-only")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(HTTPBearer(auto_error=False))]


def check_token(credentials: HTTPAuthorizationCredentials | None, *tokens: str) -> None:
    """401 without a bearer token, 403 with one that is not among `tokens`."""
    if credentials is None:
        raise HTTPException(401, "bearer token required", {"WWW-Authenticate": "Bearer"})
    if not any(secrets.compare_digest(credentials.credentials, t) for t in tokens):
        raise HTTPException(403, "not allowed")


def require_admin(credentials: Credentials) -> None:
    """The admin guard: triggers and run status."""
    check_token(credentials, ADMIN_TOKEN)


def require_reader(credentials: Credentials) -> None:
    """The read guard: a portfolio's stored snapshots."""
    check_token(credentials, ADMIN_TOKEN, READ_TOKEN)


def get_job(request: Request) -> SnapshotJob:
    """The job the lifespan built."""
    job: SnapshotJob = request.app.state.job
    return job


runs = BackgroundRuns()


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncGenerator[None, None]:
    """Open the store, build the job, schedule it; stop it all at shutdown."""
    portfolios, market = host_adapters()
    async with await SqliteSnapshotStore.open(os.environ.get("SNAPSHOTS_DB", "app.db")) as db:
        app.state.job = job = SnapshotJob(
            portfolios=portfolios, snapshots=db, market_data=market, ledger=db, lock=db
        )
        scheduler = AsyncIOScheduler(timezone=dt.UTC)
        daily = schedule_daily_snapshots(scheduler, job, catch_up_days=7)
        scheduler.start()
        try:
            yield
        finally:
            scheduler.shutdown(wait=False)
            await daily.aclose()  # stop runs in progress before the store closes
            await runs.aclose()


app = FastAPI(title="Portfolio snapshots host", lifespan=lifespan)
app.include_router(
    snapshot_router(get_job, admin=require_admin, reader=require_reader, background=runs),
    prefix="/admin/portfolios",
)

# --- without a server: drive the app through HTTPX ----------------------------------------


async def demo() -> None:
    """Call each endpoint once, as an admin and as a reader, and print the answers."""
    import httpx  # noqa: PLC0415 - only the demo needs it

    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    reader = {"Authorization": f"Bearer {READ_TOKEN}"}
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as http,
    ):
        base = "/admin/portfolios"
        daily = f"{base}/snapshots/daily"
        print("anonymous trigger:", (await http.post(daily)).status_code)
        print("reader trigger:", (await http.post(daily, headers=reader)).status_code)
        accepted = await http.post(daily, headers=admin)
        print("admin trigger:", accepted.status_code, accepted.json()["key"])
        state, status = "pending", dict[str, Any]()
        for _ in range(600):  # a client polls the status URL until the run has ended
            status = (await http.get(accepted.headers["Location"], headers=admin)).json()
            state = status["state"]
            if state not in {"pending", "running"}:
                break
            await asyncio.sleep(0.05)
        print("daily run:", state, f"{status['report']['succeeded']} portfolios stored")
        day = status["report"]["start"]
        read = await http.get(f"{base}/{ALICE}/snapshots?start={day}&end={day}", headers=reader)
        print("reader sees:", read.status_code, f"total {read.json()[0]['total_value']} on {day}")
        unknown = await http.post(f"{base}/{uuid.UUID(int=7)}/snapshots", headers=admin)
        print("unknown portfolio:", unknown.status_code)


if __name__ == "__main__":
    asyncio.run(demo())
