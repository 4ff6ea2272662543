"""Thin integrations with other tools, each imported only by hosts that installed its extra.

- `cli`: the ``portfolio-snapshots`` command line (extra ``cli``): run, backfill, recompute,
  show, chart and list runs of a host's `SnapshotJob`, and a self-contained demo.
- `plot`: charts of a stored series with matplotlib (extra ``plot``).
- `dask`: a daily run, a backfill or many backfills fanned out over a Dask cluster, one task
  per shard (extra ``dask``).

Nothing in the core imports these modules.
"""
