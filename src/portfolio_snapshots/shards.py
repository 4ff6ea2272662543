"""Splitting a run across workers: shards of the portfolios, and merging their reports.

- `Shard(index, count)`: one of `count` disjoint parts of the portfolios, chosen by a stable
  hash of each id, for ``SnapshotJob.run_daily(on, shard=...)`` and
  ``SnapshotJob.backfill_all(..., shard=...)``. Each shard's run has its own run key, derived
  from the whole run's (``daily:2026-11-27/shard-2-of-4``).
- `ShardedPortfolios`: the optional repository capability of streaming one shard only,
  filtering in its own query; without it the job filters the stream.
- `merge_reports`: one `RunReport` from the shards' reports.
- `shard_number`: the stable number a portfolio's shard is taken from, for repositories that
  push the filter down.

See ``docs/scale-out.md`` for shards on Dask, Celery and Kubernetes.
"""

from __future__ import annotations

from portfolio_snapshots._ports import ShardedPortfolios
from portfolio_snapshots._public import publish as _publish
from portfolio_snapshots._shards import Shard, merge_reports, shard_number

__all__ = ["Shard", "ShardedPortfolios", "merge_reports", "shard_number"]

_publish(__name__, globals(), __all__)
