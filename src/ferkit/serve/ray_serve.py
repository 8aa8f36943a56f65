"""The same API on Ray Serve: replicas across a cluster, autoscaled between two bounds.

    ray start --head                                  # on one node
    ray start --address HEAD:6379                     # on every other node
    ferkit serve --ray --address HEAD:6379 --min-replicas 2 --max-replicas 8 --host 0.0.0.0

Each replica builds the FastAPI app of ``create_app`` with its own models and micro-batcher, so
limits, errors, keys and metrics behave as under uvicorn. Needs ``pip install 'ferkit[ray]'``.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from ferkit.errors import ConfigError
from ferkit.serve.settings import ServeSettings

logger = logging.getLogger(__name__)
APP_NAME = "ferkit"
#: Requests a replica works on before Ray Serve starts another (autoscaling target).
TARGET_ONGOING_REQUESTS = 8


class FerkitReplica:
    """One Ray Serve replica: the FastAPI app built on the replica from the settings."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings

    def __serve_build_asgi_app__(self) -> Any:
        from ferkit.serve.app import create_app

        app = create_app(self.settings)
        app.state.pool.warm()  # ready before the replica takes traffic, whether or not lifespan runs
        return app


def build(settings: ServeSettings, min_replicas: int = 1, max_replicas: int = 1, num_cpus: float = 1.0) -> Any:
    """The bound Ray Serve application (pass it to ``serve.run``)."""
    from ray import serve

    if not 1 <= min_replicas <= max_replicas:
        raise ConfigError(f"need 1 <= min_replicas <= max_replicas, got {min_replicas} and {max_replicas}")
    ingress = serve.ingress()(FerkitReplica)
    deployment = serve.deployment(
        name=APP_NAME,
        ray_actor_options={"num_cpus": num_cpus},
        autoscaling_config={"min_replicas": min_replicas, "max_replicas": max_replicas,
                            "target_ongoing_requests": TARGET_ONGOING_REQUESTS},
        max_ongoing_requests=settings.queue_size,
        health_check_period_s=10,
    )(ingress)
    return deployment.bind(settings)


def start(settings: ServeSettings, host: str = "127.0.0.1", port: int = 8000, address: str | None = None,
          min_replicas: int = 1, max_replicas: int = 1, num_cpus: float = 1.0) -> None:
    """Connect to Ray (``address``, else $RAY_ADDRESS, else a new local Ray), start Serve's HTTP
    proxy on host:port and deploy the API; returns once the replicas are up."""
    import ray
    from ray import serve

    address = address or os.environ.get("RAY_ADDRESS")
    if not ray.is_initialized():
        ray.init(address=address, logging_level=logging.WARNING)
    serve.start(http_options={"host": host, "port": port})
    serve.run(build(settings, min_replicas, max_replicas, num_cpus), name=APP_NAME, route_prefix="/")
    logger.info("ferkit on Ray Serve at http://%s:%d (%d-%d replicas)", host, port, min_replicas, max_replicas)


def run_ray(settings: ServeSettings, host: str, port: int, address: str | None, min_replicas: int,
            max_replicas: int) -> None:
    """``ferkit serve --ray``: deploy, then keep the deployment up until interrupted."""
    from ray import serve

    start(settings, host, port, address, min_replicas, max(min_replicas, max_replicas))
    print(f"ferkit serving on Ray Serve at http://{host}:{port} (docs at /docs); Ctrl-C stops it")
    try:
        while True:
            time.sleep(3600)
    finally:
        serve.delete(APP_NAME)
