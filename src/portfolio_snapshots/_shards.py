"""Shards of a run: a stable partition of the portfolios by id, and merging shard reports."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import TYPE_CHECKING

from portfolio_snapshots._errors import InvalidInputError
from portfolio_snapshots._report import RunReport

if TYPE_CHECKING:
    from collections.abc import Iterable
    from uuid import UUID

    from portfolio_snapshots._report import RunStatus


def shard_number(portfolio_id: UUID) -> int:
    """Return the stable 64-bit number a portfolio's shard is taken from.

    The first 8 bytes of the BLAKE2b digest of the id's 16 bytes, big-endian: the same on
    every machine, process and Python version (unlike `hash`, which is salted per process).
    """
    return int.from_bytes(hashlib.blake2b(portfolio_id.bytes, digest_size=8).digest(), "big")


@dataclasses.dataclass(frozen=True, slots=True)
class Shard:
    """One of `count` disjoint parts of the portfolios, chosen by a stable hash of the id.

    A portfolio belongs to shard ``shard_number(id) % count`` (see `contains`), so the `count`
    shards of a run cover every portfolio exactly once, whichever worker runs which shard.

    Args:
        index: Which part, from 0 to ``count - 1``.
        count: How many parts the run is cut into (1: everything).

    Raises:
        InvalidInputError: `index` or `count` is not an int, `count` is below 1, or `index`
            is outside ``0 .. count - 1``.
    """

    index: int
    count: int

    def __post_init__(self) -> None:
        """Check the shard's numbers."""
        for name in ("index", "count"):
            value = getattr(self, name)
            if type(value) is not int:
                raise InvalidInputError(
                    f"Shard {name} must be an int, got {type(value).__name__} {value!r}"
                )
        if self.count < 1:
            raise InvalidInputError(f"Shard count must be at least 1, got {self.count}")
        if not 0 <= self.index < self.count:
            raise InvalidInputError(
                f"Shard index must be from 0 to {self.count - 1}, got {self.index}"
            )

    @classmethod
    def all(cls, count: int) -> tuple[Shard, ...]:
        """Return the `count` shards of a run, in index order.

        Raises:
            InvalidInputError: `count` is not an int of at least 1.
        """
        first = cls(0, count)
        return (first, *(cls(i, count) for i in range(1, count)))

    def contains(self, portfolio_id: UUID) -> bool:
        """Return whether the portfolio with this id belongs to this shard."""
        return self.count == 1 or shard_number(portfolio_id) % self.count == self.index

    def key(self, parent: str) -> str:
        """Return this shard's run key derived from the whole run's key.

        ``Shard(2, 4).key("daily:2026-11-27") == "daily:2026-11-27/shard-2-of-4"``.
        """
        return f"{parent}/shard-{self.index}-of-{self.count}"

    def __str__(self) -> str:
        """Return ``index/count``, as recorded in a run's parameters."""
        return f"{self.index}/{self.count}"


def merge_reports(reports: Iterable[RunReport], *, key: str | None = None) -> RunReport:
    """Merge the reports of a run's parts (its shards, or several runs) into one report.

    Counts add up, failures are concatenated in the order given, the dates and times span
    every part, and `parts` keeps the reports merged (so a reader sees which shard resumed:
    ``[p.key for p in merged.parts if p.attempt > 1]``). The status is ``already_running``
    when any part's key was held elsewhere (its work is not known to be done),
    ``already_succeeded`` when every part had succeeded before, and ``completed`` otherwise;
    the attempt is the highest of the parts'.

    Args:
        reports: The reports to merge, all of one kind (at least one).
        key: The merged report's key (the parent key of the shards, say); None by default.

    Returns:
        The merged report; its ``lease`` is None (each part says what became of its own).

    Raises:
        InvalidInputError: No report was given, one is not a `RunReport`, or they are of
            different kinds.
    """
    parts = tuple(reports)
    if not parts:
        raise InvalidInputError("merge_reports needs at least one report")
    for part in parts:
        if not isinstance(part, RunReport):
            raise InvalidInputError(
                f"merge_reports takes RunReport values, got {type(part).__name__}"
            )
    kinds = {p.kind for p in parts}
    if len(kinds) > 1:
        raise InvalidInputError(
            f"merge_reports takes reports of one kind, got {', '.join(sorted(kinds))}"
        )
    statuses = {p.status for p in parts}
    status: RunStatus = (
        "already_running"
        if "already_running" in statuses
        else "already_succeeded"
        if statuses == {"already_succeeded"}
        else "completed"
    )
    return RunReport(
        kind=parts[0].kind,
        start=min(p.start for p in parts),
        end=max(p.end for p in parts),
        started_at=min(p.started_at for p in parts),
        finished_at=max(p.finished_at for p in parts),
        processed=sum(p.processed for p in parts),
        succeeded=sum(p.succeeded for p in parts),
        failed=sum(p.failed for p in parts),
        skipped=sum(p.skipped for p in parts),
        retried=sum(p.retried for p in parts),
        failures=tuple(f for p in parts for f in p.failures),
        key=key,
        status=status,
        attempt=max(p.attempt for p in parts),
        parts=parts,
    )
