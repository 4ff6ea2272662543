import asyncio
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portfolio_snapshots import RetryPolicy, TransientError
from portfolio_snapshots.errors import InvalidPortfolioError


class Recorder:
    """An injected sleep that records the delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def failing(times: int, error: BaseException, result: str = "ok") -> tuple[list[int], object]:
    calls = [0]

    async def fn() -> str:
        calls[0] += 1
        if calls[0] <= times:
            raise error
        return result

    return calls, fn


def test_transient_errors_are_retried_until_success() -> None:
    """Two transient failures then success: three attempts, two sleeps."""
    sleep = Recorder()
    calls, fn = failing(2, TransientError("blip"))
    policy = RetryPolicy(max_attempts=5, initial_delay=1, multiplier=2, jitter=0)
    assert asyncio.run(policy.call(fn, sleep=sleep)) == "ok"  # type: ignore[arg-type]
    assert calls[0] == 3
    assert sleep.delays == [1, 2]


def test_attempts_are_capped_and_the_last_error_is_raised() -> None:
    """When every attempt fails, exactly max_attempts are made and the error is re-raised."""
    sleep = Recorder()
    calls, fn = failing(10, ConnectionError("down"))
    policy = RetryPolicy(max_attempts=4, jitter=0)
    with pytest.raises(ConnectionError) as info:
        asyncio.run(policy.call(fn, sleep=sleep))  # type: ignore[arg-type]
    assert calls[0] == 4
    assert len(sleep.delays) == 3
    assert info.value.__notes__ == ["after 4 attempt(s)"]


@pytest.mark.parametrize(
    "error",
    [ValueError("bad"), InvalidPortfolioError("bad"), KeyError("bug")],
)
def test_non_transient_errors_are_not_retried(error: Exception) -> None:
    """Bad input and programming errors fail at the first attempt."""
    sleep = Recorder()
    calls, fn = failing(1, error)
    with pytest.raises(type(error)):
        asyncio.run(RetryPolicy(max_attempts=5).call(fn, sleep=sleep))  # type: ignore[arg-type]
    assert (calls[0], sleep.delays) == (1, [])


def test_bad_input_is_never_retried_even_if_declared_transient() -> None:
    """An InvalidInputError is not retried even when ValueError is listed as transient."""
    policy = RetryPolicy(max_attempts=5, transient=(ValueError,))
    assert not policy.is_transient(InvalidPortfolioError("bad"))
    assert policy.is_transient(ValueError("flaky parser"))


def test_cancellation_is_never_retried() -> None:
    """CancelledError propagates at once and is not classed as transient."""
    sleep = Recorder()
    calls, fn = failing(1, asyncio.CancelledError())
    policy = RetryPolicy(max_attempts=5, transient=(BaseException,))
    assert not policy.is_transient(asyncio.CancelledError())
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(policy.call(fn, sleep=sleep))  # type: ignore[arg-type]
    assert (calls[0], sleep.delays) == (1, [])


def test_per_attempt_timeout_turns_a_hang_into_a_retried_timeout() -> None:
    """An attempt that exceeds the timeout is abandoned and retried."""
    calls = [0]

    async def fn() -> str:
        calls[0] += 1
        if calls[0] == 1:
            await asyncio.Event().wait()  # hangs until cancelled by the timeout
        return "ok"

    policy = RetryPolicy(max_attempts=2, timeout=0.01, jitter=0)
    assert asyncio.run(policy.call(fn, sleep=Recorder())) == "ok"
    assert calls[0] == 2


def test_retry_hook_sees_each_attempt_delay_and_error() -> None:
    """The hook is told the failed attempt number, the delay and the error."""
    seen: list[tuple[int, float, str]] = []
    _, fn = failing(2, TransientError("x"))
    policy = RetryPolicy(max_attempts=3, initial_delay=0.5, jitter=0)
    asyncio.run(
        policy.call(
            fn,  # type: ignore[arg-type]
            sleep=Recorder(),
            on_retry=lambda attempt, delay, error: seen.append((attempt, delay, str(error))),
        )
    )
    assert seen == [(1, 0.5, "x"), (2, 1.0, "x")]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"initial_delay": -1},
        {"multiplier": 0.5},
        {"jitter": float("nan")},
        {"timeout": 0},
    ],
)
def test_policy_rejects_impossible_settings(kwargs: dict[str, float]) -> None:
    """Settings that cannot describe a schedule are refused at construction."""
    with pytest.raises(ValueError, match="must be"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


@given(
    st.integers(min_value=1, max_value=60),
    st.floats(min_value=0, max_value=10),
    st.floats(min_value=1, max_value=4),
    st.floats(min_value=0, max_value=100),
    st.floats(min_value=0, max_value=5),
    st.integers(min_value=0, max_value=2**32),
)
def test_delays_stay_within_the_policy_bounds(
    attempt: int, initial: float, multiplier: float, max_delay: float, jitter: float, seed: int
) -> None:
    """Every delay lies in [min(max_delay, initial*multiplier**(n-1)), that + jitter]."""
    policy = RetryPolicy(
        initial_delay=initial, multiplier=multiplier, max_delay=max_delay, jitter=jitter
    )
    delay = policy.backoff(attempt, random.Random(seed))
    base = min(max_delay, initial * multiplier ** (attempt - 1))
    assert base <= delay <= base + jitter


def test_same_seed_gives_the_same_delays() -> None:
    """Jitter comes from the injected random source, so a seed makes delays repeatable."""
    policy = RetryPolicy(jitter=1)
    first = [policy.backoff(n, random.Random(7)) for n in range(1, 5)]
    second = [policy.backoff(n, random.Random(7)) for n in range(1, 5)]
    assert first == second


def test_no_retry_policy_makes_one_attempt() -> None:
    """RetryPolicy.no_retry() gives up after the first failure."""
    calls, fn = failing(1, TransientError("x"))
    with pytest.raises(TransientError):
        asyncio.run(RetryPolicy.no_retry().call(fn, sleep=Recorder()))  # type: ignore[arg-type]
    assert calls[0] == 1
