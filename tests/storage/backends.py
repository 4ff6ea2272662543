"""Factories for the SQL stores, each yielding a fresh, empty store: for the conformance suite.

Each factory takes no argument and returns an async context manager, like the factories of
``tests/conformance/backends.py``; the store it yields implements `SnapshotRepository`,
`RunLedger` and `RunLock` (pass the same factory for all three), and is closed, its file or
schema deleted, on exit::

    async with sqlite() as store: ...
    async with sqlalchemy_sqlite() as store: ...
    async with sqlalchemy_postgres() as store: ...   # needs PORTFOLIO_SNAPSHOTS_PG_DSN
    async with sqlalchemy_psycopg() as store: ...    # the same server, through psycopg 3

`sqlalchemy_postgres` (asyncpg) and `sqlalchemy_psycopg` read the server from
``PORTFOLIO_SNAPSHOTS_PG_DSN``, which the `pg_dsn` fixture (`storage.pg_server`) sets while it
is active: tests using it carry the ``postgres`` mark and request `pg_dsn`.
`STORAGE_BACKENDS` lists the four with their ids and marks.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from portfolio_snapshots import SqliteSnapshotStore
from portfolio_snapshots.adapters.sqlalchemy import SqlAlchemySnapshotStore
from storage.pg_server import DSN_ENV, fresh_schema, psycopg_connect_args, psycopg_url

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from contextlib import AbstractAsyncContextManager

__all__ = [
    "STORAGE_BACKENDS",
    "sqlalchemy_postgres",
    "sqlalchemy_psycopg",
    "sqlalchemy_sqlite",
    "sqlite",
]


@contextlib.asynccontextmanager
async def sqlite() -> AsyncIterator[SqliteSnapshotStore]:
    """Yield a `SqliteSnapshotStore` on a new file in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="portfolio-snapshots-") as directory:
        async with await SqliteSnapshotStore.open(Path(directory) / "store.db") as store:
            yield store


@contextlib.asynccontextmanager
async def sqlalchemy_sqlite() -> AsyncIterator[SqlAlchemySnapshotStore]:
    """Yield a `SqlAlchemySnapshotStore` on a new SQLite file (aiosqlite)."""
    with tempfile.TemporaryDirectory(prefix="portfolio-snapshots-") as directory:
        url = f"sqlite+aiosqlite:///{Path(directory) / 'store.db'}"
        async with await SqlAlchemySnapshotStore.open(url) as store:
            yield store


def _test_dsn() -> str:
    dsn = os.environ.get(DSN_ENV)
    if not dsn:
        raise RuntimeError(f"{DSN_ENV} is not set: request the pg_dsn fixture first")
    return dsn


@contextlib.asynccontextmanager
async def sqlalchemy_postgres() -> AsyncIterator[SqlAlchemySnapshotStore]:
    """Yield a `SqlAlchemySnapshotStore` on a new, empty schema of the test PostgreSQL."""
    async with (
        fresh_schema(_test_dsn()) as (url, connect_args),
        await SqlAlchemySnapshotStore.open(url, connect_args=connect_args) as store,
    ):
        yield store


@contextlib.asynccontextmanager
async def sqlalchemy_psycopg() -> AsyncIterator[SqlAlchemySnapshotStore]:
    """Like `sqlalchemy_postgres`, through psycopg 3 (``postgresql+psycopg://``)."""
    dsn = _test_dsn()
    async with (
        fresh_schema(dsn) as (_, connect_args),
        await SqlAlchemySnapshotStore.open(
            psycopg_url(dsn), connect_args=psycopg_connect_args(connect_args)
        ) as store,
    ):
        yield store


#: ``(id, factory, marks)`` for each store, in the shape of the conformance `Backend` entries.
STORAGE_BACKENDS: list[
    tuple[
        str,
        Callable[[], AbstractAsyncContextManager[SqliteSnapshotStore | SqlAlchemySnapshotStore]],
        tuple[pytest.MarkDecorator, ...],
    ]
] = [
    ("sqlite", sqlite, ()),
    ("sqlalchemy-sqlite", sqlalchemy_sqlite, ()),
    ("sqlalchemy-postgres", sqlalchemy_postgres, (pytest.mark.postgres,)),
    ("sqlalchemy-psycopg", sqlalchemy_psycopg, (pytest.mark.postgres,)),
]
