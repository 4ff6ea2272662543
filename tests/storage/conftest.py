"""Fixtures for the storage tests.

`pg_dsn`: a real PostgreSQL server (see `storage.pg_server`). `factory`: each storage
backend's factory (`storage.backends.STORAGE_BACKENDS`), the PostgreSQL ones with the server
running: a test taking `factory` runs once per backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from storage.backends import STORAGE_BACKENDS
from storage.pg_server import pg_dsn

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractAsyncContextManager

    from portfolio_snapshots import SqliteSnapshotStore
    from portfolio_snapshots.adapters.sqlalchemy import SqlAlchemySnapshotStore

    Factory = Callable[
        [], AbstractAsyncContextManager[SqliteSnapshotStore | SqlAlchemySnapshotStore]
    ]

__all__ = ["factory", "pg_dsn"]


@pytest.fixture(
    params=[pytest.param(made, id=name, marks=marks) for name, made, marks in STORAGE_BACKENDS]
)
def factory(request: pytest.FixtureRequest) -> Factory:
    """Each storage backend's factory; the PostgreSQL one with its server running."""
    if request.node.get_closest_marker("postgres") is not None:
        request.getfixturevalue("pg_dsn")
    made: Factory = request.param
    return made
