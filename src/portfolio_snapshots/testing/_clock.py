"""Time under the test's control: a fake clock, a sleep that only moves it, instant retries.

`SnapshotJob` takes its clock, its sleep and its random source as arguments, so a test hands
it these instead of patching anything::

    clock = FakeClock()
    job = SnapshotJob(..., clock=clock, sleep=FakeSleep(clock), rng=random.Random(0))

The fake sleep does not drive asyncio's own timers: a `RetryPolicy.timeout` still counts
real seconds of the event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt

from portfolio_snapshots import RetryPolicy

__all__ = ["FakeClock", "FakeSleep", "instant_retry"]

_DEFAULT_START = dt.datetime(2025, 1, 2, 12, 0, tzinfo=dt.UTC)


def _utc(when: dt.datetime) -> dt.datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"the fake clock needs an aware datetime, got the naive {when!r}")
    return when.astimezone(dt.UTC)


class FakeClock:
    """A clock that moves only when told: call it for the time, an aware UTC datetime.

    Pass it as the ``clock=`` of `SnapshotJob` (or anything taking a ``() -> datetime``).

    Args:
        start: The time the clock shows first; aware, converted to UTC. Defaults to
            2025-01-02 12:00 UTC.

    Raises:
        ValueError: `start` is naive.
    """

    __slots__ = ("_now",)

    def __init__(self, start: dt.datetime = _DEFAULT_START) -> None:
        self._now = _utc(start)

    def __call__(self) -> dt.datetime:
        """Return the current fake time, in UTC."""
        return self._now

    def today(self) -> dt.date:
        """Return the current fake date in UTC."""
        return self._now.date()

    def advance(self, delta: dt.timedelta) -> dt.datetime:
        """Move the clock forward by `delta`.

        Args:
            delta: How far to move; zero or more.

        Returns:
            The new time.

        Raises:
            ValueError: `delta` is negative (use `set` to go back in time on purpose).
        """
        if delta < dt.timedelta(0):
            raise ValueError(f"advance() moves forward only, got {delta!r}; use set() instead")
        self._now += delta
        return self._now

    def set(self, when: dt.datetime) -> None:
        """Put the clock at `when`, forward or back.

        Args:
            when: The new time; aware, converted to UTC.

        Raises:
            ValueError: `when` is naive.
        """
        self._now = _utc(when)

    def __repr__(self) -> str:
        """Show the current fake time."""
        return f"FakeClock({self._now.isoformat()})"


class FakeSleep:
    """An async sleep that returns at once, recording each delay and moving a `FakeClock`.

    Pass it as the ``sleep=`` of `SnapshotJob`, `RetryPolicy.call` or a fault wrapper. It
    still yields to the event loop once per call, so other tasks run as they would.

    Args:
        clock: The clock to move forward by each delay; none when None.

    Attributes:
        delays: The seconds asked for, in order.
    """

    __slots__ = ("clock", "delays")

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.clock = clock
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        """Record `seconds`, move the clock by it (by nothing if negative) and yield once."""
        self.delays.append(seconds)
        if self.clock is not None and seconds > 0:
            self.clock.advance(dt.timedelta(seconds=seconds))
        await asyncio.sleep(0)

    @property
    def total(self) -> float:
        """The sum of the delays asked for, in seconds."""
        return sum(self.delays)


def instant_retry(policy: RetryPolicy | None = None) -> RetryPolicy:
    """Return `policy` with every wait set to zero, so its retries happen at once.

    The number of attempts, the exceptions retried and the per-attempt timeout are kept: the
    job still retries exactly as in production, only without waiting. To check the waits
    themselves, keep the real policy and pass a `FakeSleep` instead.

    Args:
        policy: The policy to speed up; the default `RetryPolicy` when None.

    Returns:
        A copy with ``initial_delay``, ``max_delay`` and ``jitter`` at zero.
    """
    return dataclasses.replace(
        policy or RetryPolicy(), initial_delay=0.0, max_delay=0.0, jitter=0.0
    )
