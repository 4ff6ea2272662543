"""Stopping a run on Ctrl-C after the writes under way, so it resumes under the same key."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Callable, Collection, Iterator, Sequence
    from uuid import UUID

    from portfolio_snapshots import PortfolioSnapshot, SnapshotRepository


class StopAfterWrites:
    """A `SnapshotRepository` wrapper that lets a run stop between two writes.

    After `request_stop`, the writes already under way finish (each is atomic); no new one
    starts; and once none is under way the run's task is cancelled. The job then releases its
    lease and leaves its run key unfinished in the ledger, so the same command resumes it,
    skipping what was stored. A second request cancels the task at once (still safe: a
    cancelled write stores nothing).

    Args:
        inner: The job's snapshot repository.
        on_stop: Told once, when the first stop is requested (to say so on the terminal).
    """

    def __init__(self, inner: SnapshotRepository, on_stop: Callable[[], object]) -> None:
        self.inner = inner
        self.on_stop = on_stop
        self.task: asyncio.Future[Any] | None = None
        self.stopping = False
        self.cancelled = False
        self._in_flight = 0

    def request_stop(self) -> None:
        """Stop after the writes under way (the second call: at once)."""
        if self.stopping:
            self._cancel()
            return
        self.stopping = True
        self.on_stop()
        if self._in_flight == 0:
            self._cancel()

    def _cancel(self) -> None:
        if not self.cancelled and self.task is not None:
            self.cancelled = True
            self.task.cancel()

    async def upsert_many(
        self, snapshots: Sequence[PortfolioSnapshot], *, fence: int | None = None
    ) -> None:
        """Write through, unless stopping: then wait for the cancellation on its way."""
        if self.stopping:
            await asyncio.Event().wait()  # the task is cancelled once the writes under way end
        self._in_flight += 1
        try:
            await self.inner.upsert_many(snapshots, fence=fence)
        finally:
            self._in_flight -= 1
            if self.stopping and self._in_flight == 0:
                self._cancel()

    async def existing_keys(
        self, keys: Collection[tuple[UUID, dt.date]]
    ) -> frozenset[tuple[UUID, dt.date]]:
        """Read through."""
        return await self.inner.existing_keys(keys)

    async def get_snapshot(self, portfolio_id: UUID, day: dt.date) -> PortfolioSnapshot | None:
        """Read through."""
        return await self.inner.get_snapshot(portfolio_id, day)

    async def list_snapshots(
        self, portfolio_id: UUID, start: dt.date, end: dt.date
    ) -> Sequence[PortfolioSnapshot]:
        """Read through."""
        return await self.inner.list_snapshots(portfolio_id, start, end)

    async def existing_dates(
        self, portfolio_id: UUID, start: dt.date, end: dt.date
    ) -> frozenset[dt.date]:
        """Read through."""
        return await self.inner.existing_dates(portfolio_id, start, end)


@contextlib.contextmanager
def stop_signals(handler: Callable[[], object]) -> Iterator[None]:
    """Call `handler` on SIGINT and SIGTERM while the block runs (where the loop allows it)."""
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, handler)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - Windows
            continue
        installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
