"""Thin integrations with the tools a host already runs, one module and extra each.

- `apscheduler`: the daily run at 00:00 UTC on an APScheduler 3.x ``AsyncIOScheduler``
  (extra ``apscheduler``).
- `fastapi`: admin and read endpoints as a router the host mounts (extra ``fastapi``).
- `otel`: an events hook that records OpenTelemetry spans and metrics (extra ``otel``).
- `cli`: the ``portfolio-snapshots`` command line (extra ``cli``): run, backfill, recompute,
  show, chart and list runs of a host's `SnapshotJob`, and a self-contained demo.
- `plot`: charts of a stored series with matplotlib (extra ``plot``).
- `dask`: a daily run, a backfill or many backfills fanned out over a Dask cluster, one task
  per shard (extra ``dask``).

Nothing here is imported by the rest of the library, and this package imports none of the
frameworks: import a module only where its extra is installed.
"""
