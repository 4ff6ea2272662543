"""Benchmark: the run's id set (`IdSet`) against a Python `set` of ints, side by side.

To run:
    python benchmarks/idset.py [--sizes 100000,1000000] [--rounds 3]

For each size, seeded random 128-bit ids (UUID v4's ints) are added one by one, as the
portfolio stream does (`add` tells whether the id is new; for the set, ``in`` then ``add``),
alternately into an `IdSet` and into a `set`, several rounds each. It prints the best time
per id of each, and the bytes per id each holds (measured with `tracemalloc`, in a separate
pass, since tracing slows the adds; the ids are made as they are added, so the ints a `set`
keeps alive count, as they do in a run). Then, for the `IdSet`, the share of new ids its filter
sent to a search of the packed ids (false positives: each costs a `bytearray.find`).
"""

from __future__ import annotations

import argparse
import gc
import random
import time
import tracemalloc
from typing import TYPE_CHECKING

from portfolio_snapshots._idset import IdSet

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable


def fill_idset(numbers: Iterable[int]) -> object:
    """Add every number to a new `IdSet`; return it."""
    ids = IdSet()
    add = ids.add
    for n in numbers:
        if not add(n):
            raise SystemExit("a new id was taken for a repeat")
    return ids


def fill_set(numbers: Iterable[int]) -> object:
    """Add every number to a new `set`, the way the job did before `IdSet`; return it."""
    ids: set[int] = set()
    for n in numbers:
        if n in ids:
            raise SystemExit("a new id was taken for a repeat")
        ids.add(n)
    return ids


def best_seconds(fill: Callable[[Iterable[int]], object], numbers: list[int]) -> float:
    """Time one fill (the result is dropped before the next)."""
    gc.collect()
    start = time.perf_counter()
    fill(numbers)
    return time.perf_counter() - start


def traced_bytes(fill: Callable[[Iterable[int]], object], size: int, seed: int) -> int:
    """The bytes the filled structure holds.

    The ids are made as they are added and held by nothing else, as in a run (where each is
    a portfolio's ``UUID.int``): the ints a `set` keeps alive count, the ones an `IdSet`
    packs are freed.
    """
    rng = random.Random(seed)
    gc.collect()
    tracemalloc.start()
    kept = fill(rng.getrandbits(128) for _ in range(size))
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del kept
    return held


def searched_share(numbers: list[int], probes: int, seed: int) -> float:
    """The share of ids not in a filled `IdSet` that its filter sends to a search."""
    ids = IdSet()
    for n in numbers:
        ids.add(n)
    searches = 0
    original = IdSet._is_packed  # noqa: SLF001 - counting the calls of a private method

    def counted(self: IdSet, key: bytes, h: int) -> bool:
        nonlocal searches
        searches += 1
        return original(self, key, h)

    IdSet._is_packed = counted  # type: ignore[method-assign] # noqa: SLF001
    try:
        rng = random.Random(seed)
        for _ in range(probes):
            _ = rng.getrandbits(128) in ids
    finally:
        IdSet._is_packed = original  # type: ignore[method-assign] # noqa: SLF001
    return searches / probes


def main() -> None:
    """Parse arguments; for each size print time and bytes per id of both."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    for size in [int(s) for s in args.sizes.split(",")]:
        rng = random.Random(args.seed)
        numbers = [rng.getrandbits(128) for _ in range(size)]
        times: dict[str, list[float]] = {"IdSet": [], "set": []}
        for _ in range(args.rounds):
            times["IdSet"].append(best_seconds(fill_idset, numbers))
            times["set"].append(best_seconds(fill_set, numbers))
        compact = traced_bytes(fill_idset, size, args.seed)
        plain = traced_bytes(fill_set, size, args.seed)
        idset_ns, set_ns = (min(times[k]) / size * 1e9 for k in ("IdSet", "set"))
        print(f"{size:>9,} ids: IdSet {compact / size:5.1f} B/id {idset_ns:6.0f} ns/add | ", end="")
        print(f"set {plain / size:5.1f} B/id {set_ns:6.0f} ns/add | ", end="")
        print(f"bytes {compact / plain:.2f}x, time {idset_ns / set_ns:.2f}x, ", end="")
        print(f"searched {searched_share(numbers, 100_000, args.seed + 1):.1%} of absent ids")


if __name__ == "__main__":
    main()
