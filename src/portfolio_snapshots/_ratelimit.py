"""A token bucket that spaces out market-data requests, for providers with a rate limit."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from typing import TYPE_CHECKING

from portfolio_snapshots._time import utc_now

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


class TokenBucket:
    """Allows `rate` requests per second on average, with bursts of up to `burst`.

    Each request takes one token; tokens come back at `rate` per second up to `burst`. A
    request that finds the bucket empty waits, through the injected `sleep`, until a token is
    due. Time comes from the injected `clock`, so tests drive it without waiting. One bucket
    may be shared by several jobs in one process to hold them to one provider limit.

    Args:
        rate: Requests per second, on average. Must be positive.
        burst: How many requests may go at once after a quiet spell (at least 1).
        clock: Returns the current time as an aware datetime.
        sleep: Waits the given seconds.
    """

    def __init__(
        self,
        rate: float,
        *,
        burst: int = 1,
        clock: Callable[[], dt.datetime] = utc_now,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"rate must be a positive number of requests per second, got {rate!r}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst}")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)  # float-ok: a count of tokens, not money
        self._updated = clock()
        self._lock = asyncio.Lock()
        #: Seconds spent waiting for tokens so far (for tests and metrics).
        self.waited = 0.0

    def _refill(self) -> None:
        now = self._clock()
        elapsed = (now - self._updated).total_seconds()
        if elapsed > 0:
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
            self._updated = now

    async def acquire(self) -> None:
        """Take one token, waiting until one is available."""
        async with self._lock:  # first come, first served
            self._refill()
            while self._tokens < 1:
                wait = (1 - self._tokens) / self.rate
                self.waited += wait
                before = self._clock()
                await self._sleep(wait)
                if self._clock() == before:
                    # A sleep that does not move the clock (an instant test sleep): count the
                    # wait as done rather than spin.
                    self._updated -= dt.timedelta(seconds=wait)
                self._refill()
            self._tokens -= 1
