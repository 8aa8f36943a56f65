"""Prometheus metrics of the service, on a registry of its own (one per app).

With ``ferkit serve --workers N`` every worker writes to $PROMETHEUS_MULTIPROC_DIR (the command
sets it) and /metrics sums over the workers, whichever worker answers the scrape.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
FACE_BUCKETS = (0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 1024)


class Metrics:
    """Requests by endpoint and status, latency, faces per request, queue depth, batch sizes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("ferkit_requests", "HTTP requests by endpoint and status",
                                ("endpoint", "status"), registry=self.registry)
        self.latency = Histogram("ferkit_request_seconds", "request latency by endpoint", ("endpoint",),
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.faces = Histogram("ferkit_faces_per_request", "faces analysed or classified per request",
                               ("endpoint",), buckets=FACE_BUCKETS, registry=self.registry)
        self.queue_depth = Gauge("ferkit_queue_depth", "requests admitted and not yet answered",
                                 registry=self.registry, multiprocess_mode="livesum")
        self.batch_faces = Histogram("ferkit_batch_faces", "faces per classifier batch (micro-batching)",
                                     buckets=FACE_BUCKETS, registry=self.registry)
        self.rejected = Counter("ferkit_rejected", "requests refused because the queue was full",
                                registry=self.registry)

    def exposition(self) -> bytes:
        """The text format of every metric (summed over worker processes in multiprocess mode)."""
        folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if folder:
            forget_dead_workers(folder)
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


def forget_dead_workers(folder: str) -> None:
    """Drop the live gauges (queue depth) of worker processes that are gone. A worker that died
    with requests admitted never counted them down, and its file would be summed in for good;
    uvicorn replaces the worker but does not tell prometheus_client. Counters and histograms of
    dead workers stay: the requests they answered did happen."""
    for file in Path(folder).glob("gauge_live*_*.db"):  # what prometheus_client's mark_process_dead removes
        pid = file.stem.rsplit("_", 1)[-1]
        if pid.isdigit() and not _running(int(pid)):
            file.unlink(missing_ok=True)  # another worker answering a scrape may have removed it first


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        pass
    return True
