"""Fault-injecting wrappers for the ports: a real adapter inside, scripted failures outside.

Each wrapper delegates every call to the adapter it wraps, after asking its `Fault` whether
the call should be delayed, fail or hang. The wrappers satisfy the ports' protocols, so they
plug into `SnapshotJob` (or a host's own code) wherever the wrapped adapter would.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import math
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar
from uuid import UUID

from portfolio_snapshots import (
    MarketData,
    PortfolioRepository,
    RunLedger,
    RunLock,
    SnapshotRepository,
    TransientError,
)

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import (
        AsyncIterator,
        Awaitable,
        Collection,
        Iterable,
        Mapping,
        Sequence,
    )

    from portfolio_snapshots import (
        Lease,
        Portfolio,
        PortfolioSnapshot,
        PriceQuote,
        RunRecord,
        RunState,
    )

__all__ = [
    "Fault",
    "FaultyMarketData",
    "FaultyPortfolioRepository",
    "FaultyRunLedger",
    "FaultyRunLock",
    "FaultySnapshotRepository",
]


@dataclasses.dataclass(frozen=True, slots=True)
class Fault:
    """Which calls of a wrapped port go wrong, and how.

    A call covered by the fault (see `methods`) first waits `delay` seconds, then fails when
    any trigger fires: it is one of the first `fail_first` covered calls, a draw from the
    seeded random source falls under `fail_rate`, or it involves one of `tickers` or
    `portfolio_ids`. A failing call raises ``error(message)``, or waits until cancelled when
    `hang` is set. ``Fault()`` injects nothing: the wrapper then only counts calls.

    Examples: ``Fault(fail_first=2)`` fails two calls then heals;
    ``Fault(fail_rate=0.3, seed=7)`` fails about 30% of calls, the same ones on every run;
    ``Fault(fail_rate=1.0, hang=True)`` hangs every call;
    ``Fault(tickers=frozenset({"AAPL"}), error=ConnectionError)`` fails every price request
    that asks for AAPL.

    Attributes:
        fail_first: How many covered calls fail first, before any succeeds.
        fail_rate: The probability (0 to 1) that a covered call fails, drawn from a
            `random.Random` seeded with `seed`.
        seed: The seed of the random source behind `fail_rate`.
        tickers: A price request (`MarketData.get_prices`) that asks for any of these fails.
        portfolio_ids: A call that involves any of these portfolios fails: `get_portfolio`,
            `iter_portfolios` (when the stream reaches the portfolio, mid-stream), and every
            `SnapshotRepository` method whose arguments name the portfolio.
        delay: Seconds every covered call waits first, through the wrapper's `sleep`.
        hang: A failing call waits until it is cancelled instead of raising.
        error: Builds the exception raised, from a message naming the call; an exception
            class taking a message works. `TransientError` by default, which the default
            `RetryPolicy` retries.
        methods: The names of the methods the fault covers; empty covers them all. The
            others are delegated untouched (and still counted).
    """

    fail_first: int = 0
    fail_rate: float = 0.0
    seed: int = 0
    tickers: frozenset[str] = frozenset()
    portfolio_ids: frozenset[UUID] = frozenset()
    delay: float = 0.0
    hang: bool = False
    error: Callable[[str], BaseException] = TransientError
    methods: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        """Reject settings that describe no schedule of faults.

        Raises:
            ValueError: A count, rate or delay is out of range.
        """
        if self.fail_first < 0:
            raise ValueError(f"fail_first must be >= 0, got {self.fail_first}")
        if not 0 <= self.fail_rate <= 1:
            raise ValueError(f"fail_rate must be between 0 and 1, got {self.fail_rate!r}")
        if not math.isfinite(self.delay) or self.delay < 0:
            raise ValueError(f"delay must be finite and >= 0, got {self.delay!r}")


_NO_FAULT = Fault()


_Inner = TypeVar("_Inner")


class _Injector(Generic[_Inner]):
    """The bookkeeping shared by every wrapper: counts, triggers, delays and failures."""

    _port_methods: frozenset[str] = frozenset()

    def __init__(
        self,
        inner: _Inner,
        fault: Fault | None = None,
        *,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        """Wrap `inner`; see the wrapper's docstring for the arguments."""
        self.inner = inner
        self.calls = 0
        self.failures = 0
        self.calls_by_method: collections.Counter[str] = collections.Counter()
        self._sleep = sleep
        self.fault = fault or _NO_FAULT  # the setter also sets the count and the seed

    @property
    def fault(self) -> Fault:
        """The fault in force; assigning one restarts its `fail_first` count and its seed.

        Raises:
            ValueError: On assignment, the fault names a method the port does not have.
        """
        return self._fault

    @fault.setter
    def fault(self, fault: Fault) -> None:
        unknown = fault.methods - self._port_methods
        if unknown:
            raise ValueError(
                f"{type(self).__name__} has no method(s) {sorted(unknown)}; "
                f"choose among {sorted(self._port_methods)}"
            )
        self._fault = fault
        self._covered = 0
        self._rng = random.Random(fault.seed)  # noqa: S311 - reproducible faults, not secrets

    def _covers(self, method: str) -> bool:
        methods = self._fault.methods
        return not methods or method in methods

    def _begin(
        self,
        method: str,
        tickers: Iterable[str] = (),
        portfolio_ids: Iterable[UUID] = (),
    ) -> tuple[bool, str | None]:
        """Count a call; return whether the fault covers it and why it fails (None: it won't)."""
        self.calls += 1
        self.calls_by_method[method] += 1
        if not self._covers(method):
            return False, None
        fault = self._fault
        self._covered += 1
        if self._covered <= fault.fail_first:
            return True, f"one of the first {fault.fail_first} call(s)"
        if fault.fail_rate and self._rng.random() < fault.fail_rate:
            return True, f"random failure at rate {fault.fail_rate}"
        if fault.tickers:
            hit = sorted(set(tickers) & fault.tickers)
            if hit:
                return True, f"it asks for ticker {hit[0]!r}"
        return True, self._portfolio_reason(portfolio_ids)

    def _portfolio_reason(self, portfolio_ids: Iterable[UUID]) -> str | None:
        wanted = self._fault.portfolio_ids
        if wanted:
            for pid in portfolio_ids:
                if pid in wanted:
                    return f"it involves portfolio {pid}"
        return None

    async def _apply(self, method: str, covered: bool, reason: str | None) -> None:
        """Wait the fault's delay on a covered call, then fail it when there is a reason."""
        if covered and self._fault.delay:
            await self._sleep(self._fault.delay)
        if reason is not None:
            await self._fail(method, reason)

    async def _fail(self, method: str, reason: str) -> None:
        self.failures += 1
        if self._fault.hang:
            # A future nobody resolves: only cancellation (a timeout, a shutdown) ends it.
            await asyncio.get_running_loop().create_future()
        raise self._fault.error(
            f"injected fault in {type(self).__name__}.{method} "
            f"(call {self.calls_by_method[method]}): {reason}"
        )

    async def _enter(
        self,
        method: str,
        tickers: Iterable[str] = (),
        portfolio_ids: Iterable[UUID] = (),
    ) -> None:
        covered, reason = self._begin(method, tickers, portfolio_ids)
        await self._apply(method, covered, reason)


_P = TypeVar("_P", bound=PortfolioRepository)
_M = TypeVar("_M", bound=MarketData)
_S = TypeVar("_S", bound=SnapshotRepository)
_L = TypeVar("_L", bound=RunLedger)
_K = TypeVar("_K", bound=RunLock)


class FaultyPortfolioRepository(_Injector[_P]):
    """A `PortfolioRepository` that injects faults into the calls it delegates to `inner`.

    `iter_portfolios` counts as one call when it is called; its delay and its first-calls and
    random failures strike on the first step of the stream, and a `Fault.portfolio_ids` match
    strikes mid-stream, just before that portfolio would be yielded.

    Args:
        inner: The adapter that answers the calls that are not faulted.
        fault: What to inject; nothing (counting only) when None.
        sleep: Waits `Fault.delay`; pass a `FakeSleep` to keep tests instant.

    Attributes:
        inner: The wrapped adapter, for assertions on what reached it.
        fault: The `Fault` in force; assign another to change the script mid-test.
        calls: Calls received, faulted or not.
        calls_by_method: Calls received per method name.
        failures: Faults injected (errors raised and calls hung).
    """

    _port_methods = frozenset({"get_portfolio", "iter_portfolios"})

    def iter_portfolios(self, as_of: dt.date) -> AsyncIterator[Portfolio]:
        """Stream `inner`'s portfolios, failing as the fault says."""
        covered, reason = self._begin("iter_portfolios")
        return self._stream(as_of, covered, reason)

    async def _stream(
        self, as_of: dt.date, covered: bool, reason: str | None
    ) -> AsyncIterator[Portfolio]:
        await self._apply("iter_portfolios", covered, reason)
        source = self.inner.iter_portfolios(as_of)
        try:
            async for portfolio in source:
                if self._covers("iter_portfolios"):
                    mid_stream = self._portfolio_reason((portfolio.id,))
                    if mid_stream is not None:
                        await self._fail("iter_portfolios", mid_stream)
                yield portfolio
        finally:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                await aclose()

    async def get_portfolio(self, portfolio_id: UUID, as_of: dt.date) -> Portfolio | None:
        await self._enter("get_portfolio", portfolio_ids=(portfolio_id,))
        return await self.inner.get_portfolio(portfolio_id, as_of)


class FaultyMarketData(_Injector[_M]):
    """A `MarketData` that injects faults into the price requests it delegates to `inner`.

    Args:
        inner: The adapter that answers the requests that are not faulted.
        fault: What to inject; nothing (counting only) when None. `Fault.tickers` fails
            every request that asks for one of them.
        sleep: Waits `Fault.delay`; pass a `FakeSleep` to keep tests instant.

    Attributes:
        inner: The wrapped adapter, for assertions on what reached it.
        fault: The `Fault` in force; assign another to change the script mid-test.
        calls: Calls received, faulted or not.
        calls_by_method: Calls received per method name.
        failures: Faults injected (errors raised and calls hung).
    """

    _port_methods = frozenset({"get_prices"})

    async def get_prices(
        self, tickers: Collection[str], as_of: dt.date
    ) -> Mapping[str, PriceQuote]:
        """Return `inner`'s quotes, unless the fault strikes first."""
        await self._enter("get_prices", tickers=tickers)
        return await self.inner.get_prices(tickers, as_of)


class FaultySnapshotRepository(_Injector[_S]):
    """A `SnapshotRepository` that injects faults into the calls it delegates to `inner`.

    A faulted `upsert_many` fails before `inner` sees it, so nothing of its batch is written.

    Args:
        inner: The adapter that answers the calls that are not faulted.
        fault: What to inject; nothing (counting only) when None. `Fault.portfolio_ids`
            fails every call whose arguments name one of them (a batch holding a snapshot of
            one, a key of one, or the portfolio asked for).
        sleep: Waits `Fault.delay`; pass a `FakeSleep` to keep tests instant.

    Attributes:
        inner: The wrapped adapter, for assertions on what reached it.
        fault: The `Fault` in force; assign another to change the script mid-test.
        calls: Calls received, faulted or not.
        calls_by_method: Calls received per method name.
        failures: Faults injected (errors raised and calls hung).
    """

    _port_methods = frozenset(
        {"upsert_many", "existing_keys", "get_snapshot", "list_snapshots", "existing_dates"}
    )

    async def upsert_many(
        self, snapshots: Sequence[PortfolioSnapshot], *, fence: int | None = None
    ) -> None:
        """Pass the batch to `inner`, unless the fault strikes first."""
        await self._enter("upsert_many", portfolio_ids=(s.portfolio_id for s in snapshots))
        await self.inner.upsert_many(snapshots, fence=fence)

    async def existing_keys(
        self, keys: Collection[tuple[UUID, dt.date]]
    ) -> frozenset[tuple[UUID, dt.date]]:
        await self._enter("existing_keys", portfolio_ids=(pid for pid, _ in keys))
        return await self.inner.existing_keys(keys)

    async def get_snapshot(self, portfolio_id: UUID, day: dt.date) -> PortfolioSnapshot | None:
        await self._enter("get_snapshot", portfolio_ids=(portfolio_id,))
        return await self.inner.get_snapshot(portfolio_id, day)

    async def list_snapshots(
        self, portfolio_id: UUID, start: dt.date, end: dt.date
    ) -> Sequence[PortfolioSnapshot]:
        await self._enter("list_snapshots", portfolio_ids=(portfolio_id,))
        return await self.inner.list_snapshots(portfolio_id, start, end)

    async def existing_dates(
        self, portfolio_id: UUID, start: dt.date, end: dt.date
    ) -> frozenset[dt.date]:
        await self._enter("existing_dates", portfolio_ids=(portfolio_id,))
        return await self.inner.existing_dates(portfolio_id, start, end)


class FaultyRunLedger(_Injector[_L]):
    """A `RunLedger` that injects faults into the calls it delegates to `inner`.

    Args:
        inner: The adapter that answers the calls that are not faulted.
        fault: What to inject; nothing (counting only) when None. Tickers and portfolio ids
            never match a ledger call.
        sleep: Waits `Fault.delay`; pass a `FakeSleep` to keep tests instant.

    Attributes:
        inner: The wrapped adapter, for assertions on what reached it.
        fault: The `Fault` in force; assign another to change the script mid-test.
        calls: Calls received, faulted or not.
        calls_by_method: Calls received per method name.
        failures: Faults injected (errors raised and calls hung).
    """

    _port_methods = frozenset({"start", "finish", "get"})

    async def start(self, key: str, params_hash: str, now: dt.datetime) -> RunRecord:
        await self._enter("start")
        return await self.inner.start(key, params_hash, now)

    async def finish(
        self, key: str, state: RunState, report: Mapping[str, object], now: dt.datetime
    ) -> RunRecord:
        await self._enter("finish")
        return await self.inner.finish(key, state, report, now)

    async def get(self, key: str) -> RunRecord | None:
        await self._enter("get")
        return await self.inner.get(key)


class FaultyRunLock(_Injector[_K]):
    """A `RunLock` that injects faults into the calls it delegates to `inner`.

    Args:
        inner: The adapter that answers the calls that are not faulted.
        fault: What to inject; nothing (counting only) when None. Tickers and portfolio ids
            never match a lock call.
        sleep: Waits `Fault.delay`; pass a `FakeSleep` to keep tests instant.

    Attributes:
        inner: The wrapped adapter, for assertions on what reached it.
        fault: The `Fault` in force; assign another to change the script mid-test.
        calls: Calls received, faulted or not.
        calls_by_method: Calls received per method name.
        failures: Faults injected (errors raised and calls hung).
    """

    _port_methods = frozenset({"acquire", "renew", "release"})

    async def acquire(
        self, key: str, owner: str, ttl: dt.timedelta, now: dt.datetime
    ) -> Lease | None:
        await self._enter("acquire")
        return await self.inner.acquire(key, owner, ttl, now)

    async def renew(self, lease: Lease, ttl: dt.timedelta, now: dt.datetime) -> Lease:
        await self._enter("renew")
        return await self.inner.renew(lease, ttl, now)

    async def release(self, lease: Lease) -> None:
        """Pass the release to `inner`, unless the fault strikes first."""
        await self._enter("release")
        await self.inner.release(lease)


def _document_from_port(wrapper: type, port: type) -> None:
    """Give each forwarding method of `wrapper` the docstring of the port method it forwards."""
    for name, method in vars(wrapper).items():
        if not name.startswith("_") and callable(method) and not method.__doc__:
            method.__doc__ = getattr(port, name).__doc__


_document_from_port(FaultyPortfolioRepository, PortfolioRepository)
_document_from_port(FaultyMarketData, MarketData)
_document_from_port(FaultySnapshotRepository, SnapshotRepository)
_document_from_port(FaultyRunLedger, RunLedger)
_document_from_port(FaultyRunLock, RunLock)
