"""Loading a host's job from ``module:attribute``, shared by the integrations.

The command line (``--app``) and the Dask integration (each worker builds its own job, with
its own connections) name the host's `SnapshotJob`, or a factory of one, by import path.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from portfolio_snapshots import SnapshotJob
from portfolio_snapshots.errors import InvalidInputError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


def import_app(spec: str, *, option: str = "--app") -> object:
    """Import ``module:attribute`` (the attribute may be dotted), as uvicorn does.

    The current folder is searched first, so ``--app myapp:make_job`` finds ``myapp.py``.

    Raises:
        InvalidInputError: The spec is malformed, or the module or attribute does not exist.
    """
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise InvalidInputError(f"{option} must be module:attribute, got {spec!r}")
    here = os.fspath(Path.cwd())
    if here not in sys.path:
        sys.path.insert(0, here)
    try:
        target: object = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and (module_name == error.name or module_name.startswith(f"{error.name}.")):
            raise InvalidInputError(f"{option}: cannot import module {module_name!r}") from error
        raise
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise InvalidInputError(
                f"{option}: {module_name!r} has no attribute {attribute!r}"
            ) from None
    return target


@contextlib.asynccontextmanager
async def open_job(target: object) -> AsyncIterator[SnapshotJob]:
    """Turn what ``--app`` names into a job, entering (and later exiting) its context.

    `target` may be a `SnapshotJob`, or a callable (sync or async) returning one, or
    returning a context manager (sync or async) that yields one: the way to close stores.

    Raises:
        InvalidInputError: `target` gives no `SnapshotJob`.
    """
    if isinstance(target, SnapshotJob):
        yield target
        return
    if not callable(target):
        raise InvalidInputError(
            f"--app must name a SnapshotJob or a factory of one, got {target!r}"
        )
    made: object = target()
    if inspect.isawaitable(made):
        made = await made
    if isinstance(made, contextlib.AbstractAsyncContextManager):
        async with made as job:
            yield _checked(job)
    elif isinstance(made, contextlib.AbstractContextManager):
        with made as job:
            yield _checked(job)
    else:
        yield _checked(made)


def _checked(job: object) -> SnapshotJob:
    if not isinstance(job, SnapshotJob):
        raise InvalidInputError(f"--app returned {type(job).__name__}, not a SnapshotJob")
    return job
