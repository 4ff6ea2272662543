"""Shared test configuration: Hypothesis profiles.

The ``ci`` profile is derandomized (the same examples on every run, so CI is never flaky) and
runs enough examples to matter; it is selected when the ``CI`` environment variable is set, or
explicitly with ``HYPOTHESIS_PROFILE=ci``. The ``dev`` profile explores randomly.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

from storage.pg_server import pg_dsn

__all__ = ["pg_dsn"]  # a real PostgreSQL for every test that asks (see storage/pg_server.py)

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=200,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
