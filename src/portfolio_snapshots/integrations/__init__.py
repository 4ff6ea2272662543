"""Thin integrations with the frameworks a host already runs, one module and extra each.

- `apscheduler`: the daily run at 00:00 UTC on an APScheduler 3.x ``AsyncIOScheduler``
  (extra ``apscheduler``).
- `fastapi`: admin and read endpoints as a router the host mounts (extra ``fastapi``).
- `otel`: an events hook that records OpenTelemetry spans and metrics (extra ``otel``).

Nothing here is imported by the rest of the library, and this package imports none of the
frameworks: import a module only where its extra is installed.
"""
