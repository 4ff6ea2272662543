"""Retries with exponential backoff, for the job's calls to its ports.

A `RetryPolicy` is a frozen value; each job holds its own. Time and chance are injected: the
sleep function and the random source are arguments, so tests run instantly and repeatably.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from portfolio_snapshots._errors import InvalidInputError, TransientError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

T = TypeVar("T")


class RetryHook(Protocol):
    """Called before each retry with the attempt that failed, the delay and the error."""

    def __call__(self, attempt: int, delay: float, error: BaseException, /) -> None:
        """Observe one scheduled retry; `attempt` is the 1-based number that failed."""


DEFAULT_TRANSIENT: tuple[type[BaseException], ...] = (
    TransientError,
    ConnectionError,
    TimeoutError,
)


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How to retry a call that failed transiently.

    The delay after failed attempt ``n`` (1-based) is
    ``min(max_delay, initial_delay * multiplier ** (n - 1)) + uniform(0, jitter)``.

    Only errors that are instances of `transient` are retried; an `InvalidInputError` (bad
    input) and `asyncio.CancelledError` never are, whatever `transient` says.

    Attributes:
        max_attempts: Attempts in all, the first included (1 means no retry).
        initial_delay: Seconds before the first retry.
        multiplier: Growth of the delay from one retry to the next.
        max_delay: Cap on the backoff part of the delay, in seconds.
        jitter: Upper bound of the random seconds added to each delay.
        timeout: Seconds one attempt may take before it is abandoned with `TimeoutError`
            (which is transient by default); None for no limit.
        transient: The exception types worth retrying.
    """

    max_attempts: int = 3
    initial_delay: float = 0.5
    multiplier: float = 2.0
    max_delay: float = 30.0
    jitter: float = 0.25
    timeout: float | None = None
    transient: tuple[type[BaseException], ...] = DEFAULT_TRANSIENT

    def __post_init__(self) -> None:
        """Reject settings that cannot describe a retry schedule."""
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        for name in ("initial_delay", "max_delay", "jitter"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
        if not math.isfinite(self.multiplier) or self.multiplier < 1:
            raise ValueError(f"multiplier must be finite and >= 1, got {self.multiplier!r}")
        if self.timeout is not None and not (math.isfinite(self.timeout) and self.timeout > 0):
            raise ValueError(f"timeout must be a positive number of seconds, got {self.timeout!r}")

    @classmethod
    def no_retry(cls) -> RetryPolicy:
        """Return a policy that makes one attempt and never retries."""
        return cls(max_attempts=1)

    def is_transient(self, error: BaseException) -> bool:
        """Return whether `error` is worth another attempt under this policy."""
        if isinstance(error, (InvalidInputError, asyncio.CancelledError)):
            return False
        return isinstance(error, self.transient)

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Return the seconds to wait after failed attempt `attempt` (1-based)."""
        exponent = min(attempt - 1, 1024)  # keep the power finite; max_delay caps it anyway
        try:
            base = self.initial_delay * self.multiplier**exponent
        except OverflowError:
            base = self.max_delay
        delay = min(self.max_delay, base)
        if self.jitter:
            delay += rng.uniform(0, self.jitter)
        return delay

    async def call(
        self,
        fn: Callable[[], Awaitable[T]],
        *,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        rng: random.Random | None = None,
        on_retry: RetryHook | None = None,
    ) -> T:
        """Await ``fn()`` until it succeeds, fails for good, or the attempts run out.

        Args:
            fn: Makes one attempt; called afresh for every attempt.
            sleep: Waits between attempts (inject a no-op for instant tests).
            rng: Source of jitter (a fresh `random.Random` when omitted).
            on_retry: Told of every retry before its delay.

        Returns:
            What the successful attempt returned.

        Raises:
            BaseException: The error of the last attempt, when it was not transient or no
                attempt is left. `asyncio.CancelledError` propagates at once.
        """
        rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        attempt = 1
        while True:
            try:
                if self.timeout is None:
                    return await fn()
                async with asyncio.timeout(self.timeout):
                    return await fn()
            except Exception as error:
                if attempt >= self.max_attempts or not self.is_transient(error):
                    error.add_note(f"after {attempt} attempt(s)")
                    raise
                delay = self.backoff(attempt, rng)
                if on_retry is not None:
                    on_retry(attempt, delay, error)
                await sleep(delay)
                attempt += 1


@dataclasses.dataclass(frozen=True, slots=True)
class Attempted(Generic[T]):
    """A retried call that succeeded: what it returned, and the attempts it took."""

    value: T
    attempts: int


@dataclasses.dataclass(frozen=True, slots=True)
class GaveUp:
    """A retried call that failed for good: its last error, and the attempts made."""

    error: Exception
    attempts: int


#: What `attempt` returns: the value or the error, with the attempts made either way.
Outcome = Attempted[T] | GaveUp


async def attempt(
    policy: RetryPolicy,
    fn: Callable[[], Awaitable[T]],
    *,
    sleep: Callable[[float], Awaitable[object]],
    rng: random.Random,
    on_retry: RetryHook,
) -> Outcome[T]:
    """Await ``fn()`` under `policy`, and return the outcome instead of raising.

    Args:
        policy: The retry policy.
        fn: Makes one attempt; called afresh for every attempt.
        sleep: Waits between attempts.
        rng: Source of jitter.
        on_retry: Told of every retry before its delay.

    Returns:
        `Attempted` with the value, or `GaveUp` with the error `RetryPolicy.call` would have
        raised; either way with the number of attempts made. `asyncio.CancelledError` (and
        any other `BaseException` that is not an `Exception`) propagates.
    """
    made = 1

    def counting(failed: int, delay: float, error: BaseException, /) -> None:
        nonlocal made
        made = failed + 1
        on_retry(failed, delay, error)

    try:
        value = await policy.call(fn, sleep=sleep, rng=rng, on_retry=counting)
    except Exception as error:  # noqa: BLE001 - handed back to the caller as a value
        return GaveUp(error, made)
    return Attempted(value, made)
