"""Scale-out: uvicorn worker processes, and the Ray Serve deployment on a local Ray (slow)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from serve_helpers import running_server

from ferkit.serve.server import free_port, wait_until_ready
from ferkit.serve.settings import ServeSettings

DATA = Path(__file__).parent / "data"
pytestmark = pytest.mark.slow


def _analyze(url: str) -> httpx.Response:
    return httpx.post(url + "/v1/analyze", files={"file": ("amy1.png", (DATA / "amy1.png").read_bytes(), "image/png")},
                      timeout=120)


def test_two_workers_answer_and_metrics_sum_over_them():
    with running_server("--workers", "2") as server:
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: _analyze(server.url), range(16)))
        assert all(a.status_code == 200 and a.json()["faces"][0]["emotion"] == "happiness" for a in answers)
        metrics = httpx.get(server.url + "/metrics").text
        line = next(x for x in metrics.splitlines()
                    if x.startswith('ferkit_requests_total{endpoint="/v1/analyze",status="200"}'))
        assert float(line.split()[-1]) == 16  # both workers' requests, whichever answered the scrape


def test_ray_serve_deployment_answers_a_photo():
    ray = pytest.importorskip("ray", reason="the Ray Serve deployment needs the ray extra: pip install 'ferkit[ray]'")
    from ray import serve

    from ferkit.serve.ray_serve import start

    port = free_port()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        start(ServeSettings(), host="127.0.0.1", port=port, min_replicas=1, max_replicas=2)
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(url, 60)
        answer = _analyze(url)
        assert answer.status_code == 200 and answer.json()["faces"][0]["emotion"] == "happiness"
        refused = httpx.post(url + "/v1/analyze", files={"file": ("x.txt", b"x", "text/plain")}, timeout=60)
        assert refused.status_code == 415 and refused.json()["error"]["code"] == "unsupported_type"
    finally:
        serve.shutdown()
        ray.shutdown()
