"""PostgreSQL: ps_snapshots partitioned by month, created ahead by create_month_partitions."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import text

from portfolio_snapshots.adapters.sqlalchemy import (
    SqlAlchemySnapshotStore,
    create_month_partitions,
)
from portfolio_snapshots.errors import InvalidInputError
from portfolio_snapshots.testing import check_snapshot_repository
from storage.pg_server import fresh_schema
from storage.samples import PID, rich_snapshot

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from portfolio_snapshots import PortfolioSnapshot


def partitions_of(rows: list[tuple[str, int]]) -> dict[str, int]:
    """Return the rows per partition, as (name, count) pairs give them."""
    return dict(rows)


@pytest.mark.postgres
def test_months_are_created_ahead_and_rows_go_to_their_month(pg_dsn: str) -> None:
    """Snapshots land in their month's partition, others in the default; reads see all."""
    days = [dt.date(2026, 11, 30), dt.date(2026, 12, 1), dt.date(2027, 3, 1)]
    written = [rich_snapshot(PID, day) for day in days]

    async def body() -> tuple[list[str], list[str], dict[str, int], list[PortfolioSnapshot]]:
        async with fresh_schema(pg_dsn) as (url, connect_args):
            store = await SqlAlchemySnapshotStore.open(
                url, connect_args=connect_args, partition_by_month=True
            )
            async with store:
                made = await create_month_partitions(
                    store.engine, dt.date(2026, 11, 15), dt.date(2027, 1, 2)
                )
                again = await create_month_partitions(
                    store.engine, dt.date(2026, 12, 1), dt.date(2026, 12, 31)
                )
                await store.upsert_many(written, fence=3)
                await store.upsert_many(written[:1], fence=2)  # fenced: left alone
                async with store.engine.connect() as conn:
                    rows = await conn.execute(
                        text(
                            "SELECT tableoid::regclass::text, count(*) FROM ps_snapshots GROUP BY 1"
                        )
                    )
                    counts = partitions_of([(str(r[0]), int(r[1])) for r in rows])
                listed = list(await store.list_snapshots(PID, days[0], days[-1]))
            return made, again, counts, listed

    made, again, counts, listed = asyncio.run(body())
    assert made == ["ps_snapshots_y2026m11", "ps_snapshots_y2026m12", "ps_snapshots_y2027m01"]
    assert again == []
    assert counts == {
        "ps_snapshots_y2026m11": 1,
        "ps_snapshots_y2026m12": 1,
        "ps_snapshots_default": 1,
    }
    assert listed == written


@pytest.mark.postgres
def test_a_partitioned_store_meets_the_snapshot_contract(pg_dsn: str) -> None:
    """The whole SnapshotRepository contract holds on a store partitioned by month."""

    @contextlib.asynccontextmanager
    async def factory() -> AsyncIterator[SqlAlchemySnapshotStore]:
        async with fresh_schema(pg_dsn) as (url, connect_args):
            store = await SqlAlchemySnapshotStore.open(
                url, connect_args=connect_args, partition_by_month=True
            )
            async with store:
                await create_month_partitions(
                    store.engine, dt.date(2025, 2, 1), dt.date(2025, 4, 1)
                )
                yield store

    check_snapshot_repository(factory)


def test_month_partitions_need_postgresql(tmp_path: Path) -> None:
    """create_month_partitions refuses an engine on SQLite with InvalidInputError."""

    async def body() -> list[str]:
        errors = []
        async with await SqlAlchemySnapshotStore.open(
            f"sqlite+aiosqlite:///{tmp_path / 's.db'}"
        ) as store:
            try:
                await create_month_partitions(
                    store.engine, dt.date(2026, 1, 1), dt.date(2026, 2, 1)
                )
            except InvalidInputError as error:
                errors.append(str(error))
        return errors

    assert asyncio.run(body()) == ["create_month_partitions needs PostgreSQL"]
