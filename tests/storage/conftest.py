"""Fixtures for the storage tests: `pg_dsn`, a real PostgreSQL server (see `storage.pg_server`)."""

from __future__ import annotations

from storage.pg_server import pg_dsn

__all__ = ["pg_dsn"]
