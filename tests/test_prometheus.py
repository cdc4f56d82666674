"""A real Prometheus (Debian's ``prometheus`` package, which ``nox`` installs when it runs as root) scrapes core
serving from two worker processes: its query API counts exactly the requests sent."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from faults import config as object_config

from core.testing import free_port

PROMETHEUS = shutil.which("prometheus")
SERVE = [sys.executable, "-m", "core", "serve", "--host", "127.0.0.1", "--port", "{port}"]
REQUESTS = 60
#: Seconds Prometheus gets to start and scrape (it scrapes every second).
DEADLINE = 90.0

pytestmark = pytest.mark.skipif(
    PROMETHEUS is None,
    reason="needs Debian's prometheus package (apt-get install prometheus; nox installs it when run as root)",
)


def query(url: str, expression: str) -> list[dict[str, Any]]:
    """The result of an instant query of Prometheus' HTTP API."""
    response = httpx.get(f"{url}/api/v1/query", params={"query": expression})
    response.raise_for_status()
    body = response.json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def send(url: str, count: int) -> None:
    """``count`` predictions from 4 clients at once, each on a new connection (so that both
    workers answer some)."""
    left = list(range(count))
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(limits=httpx.Limits(max_keepalive_connections=0), timeout=60) as http:
            while True:
                with lock:
                    if not left:
                        return
                    left.pop()
                response = http.post(f"{url}/predict", json={"X": [[1.0]], "seconds": 0.01})
                assert response.status_code == 200, response.text

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)


def test_prometheus_counts_every_request_across_two_workers(serve, tmp_path: Path):
    server = serve(object_config("faults:crashing_model"), command=[*SERVE, "--workers", "2"])
    send(server.url, REQUESTS)
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: core\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{server.port}']}}]\n"
    )
    assert PROMETHEUS is not None
    log = (tmp_path / "prometheus.log").open("wb")
    prometheus = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        result: list[dict[str, Any]] = []
        deadline = time.monotonic() + DEADLINE
        while not result and time.monotonic() < deadline:
            assert prometheus.poll() is None, (tmp_path / "prometheus.log").read_text()
            with contextlib.suppress(httpx.HTTPError):  # not listening yet
                result = query(url, "sum(core_requests_total)")
            time.sleep(0.2)
        assert result, f"Prometheus scraped nothing:\n{(tmp_path / 'prometheus.log').read_text()}"
        assert float(result[0]["value"][1]) == REQUESTS
        [up] = query(url, 'up{job="core"}')
        assert up["value"][1] == "1"
        by_status = query(url, 'sum by (route, status) (core_requests_total{job="core"})')
        assert [(r["metric"], r["value"][1]) for r in by_status] == \
            [({"route": "/predict", "status": "200"}, str(REQUESTS))]
    finally:
        prometheus.terminate()
        prometheus.wait(30)
        log.close()
