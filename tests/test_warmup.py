"""Warm start of a command's flow run (labelgate/warmup.py): the early ephemeral server is Prefect's own, the flow's
clients use it, it stops with the process; a configured API starts none. Real processes, a fresh PREFECT_HOME."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.flow, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]

_PROBE = """
import json, sys
from labelgate.warmup import warm_start
result = warm_start(model="all-MiniLM-L6-v2", runner="dask", db_path=sys.argv[1])
from prefect.client.orchestration import get_client
from prefect.server.api.server import SubprocessASGIServer
server = SubprocessASGIServer()
with get_client(sync_client=True) as client:
    health = client.api_healthcheck()
    url = str(client.api_url).rstrip("/")
print("RESULT " + json.dumps({
    "server": result.server, "errors": result.errors, "warmed": list(result.warmed), "skipped": result.skipped,
    "server_seconds": result.server_seconds, "health": repr(health), "url": url, "port": server.port,
    "pid": server.server_process.pid if server.server_process else None,
}))
"""


def _probe(tmp_path: Path, **env: str) -> dict:
    db = tmp_path / "existing.duckdb"
    db.touch()  # an existing database: the model is not loaded ahead (and runner dask never loads it here)
    full = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home"), "PYTHONPATH": str(ROOT), **env}
    for key in ("PREFECT_API_URL", "LABELGATE_WARM_START"):
        if key not in env:
            full.pop(key, None)
    full["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "180"
    res = subprocess.run(
        [sys.executable, "-c", _PROBE, str(db)], env=full, capture_output=True, text=True, timeout=400, cwd=tmp_path
    )
    lines = [line for line in res.stdout.splitlines() if line.startswith("RESULT ")]
    assert res.returncode == 0 and lines, res.stdout[-2000:] + res.stderr[-3000:]
    return json.loads(lines[0].removeprefix("RESULT "))


def _gone(pid: int, within_s: float = 10.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists():
            return True
        time.sleep(0.2)
    return False


def test_the_early_server_is_the_ephemeral_api_prefect_uses_and_stops_at_exit(tmp_path: Path) -> None:
    found = _probe(tmp_path)
    assert found["server"] is True and not found["errors"], found
    assert found["url"] == f"http://127.0.0.1:{found['port']}/api"  # the client connected to the early server
    assert found["health"] == "None"  # healthy: api_healthcheck returns no exception
    assert found["warmed"][:2] == ["flow modules", "prefect client"]
    assert "embedding model" in found["skipped"]
    assert found["server_seconds"] > 0
    assert _gone(found["pid"])  # stopped with the process, as a server Prefect started itself


def test_a_configured_api_url_starts_no_early_server(tmp_path: Path) -> None:
    # an API nobody listens on: warm start must not start one (the probe's health check then reports an error)
    found = _probe(tmp_path, PREFECT_API_URL="http://127.0.0.1:9/api")
    assert found["server"] is False and found["pid"] is None
    assert found["warmed"] == ["flow modules"]  # imported, then nothing else ahead
    assert found["url"] == "http://127.0.0.1:9/api"
