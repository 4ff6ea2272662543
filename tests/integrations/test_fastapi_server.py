"""The example host app served by a real uvicorn on loopback, answering real HTTP requests."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parents[2]
ALICE = uuid.UUID("00000000-0000-0000-0000-00000000a11c")
ADMIN = {"Authorization": "Bearer admin-secret"}
READER = {"Authorization": "Bearer reader-secret"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@contextlib.contextmanager
def served(tmp_path: Path) -> Iterator[str]:
    """Run uvicorn with examples/fastapi_app.py in a subprocess; stop it, also on failure."""
    port = free_port()
    env = {
        **os.environ,
        "SNAPSHOTS_ADMIN_TOKEN": "admin-secret",
        "SNAPSHOTS_READ_TOKEN": "reader-secret",
        "SNAPSHOTS_DB": str(tmp_path / "app.db"),
    }
    server = subprocess.Popen(  # noqa: S603 - our own example under uvicorn
        [sys.executable, "-m", "uvicorn", "fastapi_app:app", "--app-dir", str(ROOT / "examples"),
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/openapi.json", timeout=1)
                break
            except httpx.TransportError:
                if server.poll() is not None or time.monotonic() > deadline:
                    output = server.stdout.read().decode() if server.stdout else ""
                    raise AssertionError(f"uvicorn did not start:\n{output}") from None
                time.sleep(0.2)
        yield base
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        if server.stdout:
            server.stdout.close()


def test_the_example_app_answers_real_http_requests(tmp_path: Path) -> None:
    """Over a socket: 401 without a token, 403 for a reader; 202 and the run's status for admins."""
    with served(tmp_path) as base, httpx.Client(base_url=base, timeout=30) as http:
        daily = "/admin/portfolios/snapshots/daily"
        assert http.post(daily).status_code == 401
        assert http.post(daily, headers=READER).status_code == 403
        accepted = http.post(f"/admin/portfolios/{ALICE}/snapshots", headers=ADMIN)
        assert accepted.status_code == 202, accepted.text
        status_url = accepted.headers["Location"]
        deadline = time.monotonic() + 30
        while (state := http.get(status_url, headers=ADMIN).json())["state"] in {
            "pending",
            "running",
        }:
            assert time.monotonic() < deadline, state
            time.sleep(0.1)
        assert state["state"] == "succeeded", state
        today = dt.datetime.now(dt.UTC).date()
        week = {"start": str(today - dt.timedelta(days=7)), "end": str(today)}
        series = http.get(f"/admin/portfolios/{ALICE}/snapshots", params=week, headers=READER)
        assert series.status_code == 200
        by_day = {row["snapshot_date"]: row for row in series.json()}
        triggered = state["key"].rsplit(":", 1)[-1]  # backfill:<portfolio>:<day>:<day>
        assert triggered in by_day
        assert isinstance(by_day[triggered]["total_value"], str)  # Decimals travel as text
