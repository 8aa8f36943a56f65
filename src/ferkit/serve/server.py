"""Running the API: uvicorn with N worker processes on one machine, logs carrying the request id."""

from __future__ import annotations

import logging
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ferkit.serve.errors import REQUEST_ID
from ferkit.serve.gate import MAX_HEAD_BYTES
from ferkit.serve.settings import ServeSettings

LOG_FORMAT = "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"


class RequestIdFilter(logging.Filter):
    """Adds the current request's id (or "-") to every log record as ``request_id``."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


def log_config(level: str = "INFO") -> dict[str, Any]:
    """logging.dictConfig for uvicorn and ferkit: one format, the request id in every line.
    uvicorn's own access log is off: the gate logs each request with its id, status and time."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"plain": {"format": LOG_FORMAT}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["request_id"],
                                "stream": "ext://sys.stderr"}},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            "ferkit": {"handlers": ["stderr"], "level": level, "propagate": False},
        },
    }


def app_from_env() -> Any:
    """The app of one worker process, its settings from the FERKIT_* variables (uvicorn factory)."""
    from ferkit.serve.app import create_app

    return create_app(ServeSettings.from_env())


def run(settings: ServeSettings, host: str, port: int, workers: int = 1) -> None:
    """Serve until stopped. Workers are processes, each with its own models and batcher; the
    settings reach them through FERKIT_* variables."""
    import uvicorn

    os.environ.update(settings.to_env())
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="ferkit-metrics-")
    # h11, not httptools: httptools reads a request head of any size (a 200 KB header was read
    # whole); h11 answers 400 once an unfinished head passes MAX_HEAD_BYTES, so a head costs at most
    # that plus one read, and the gate refuses a complete one over the limit. Its parsing costs
    # microseconds per request beside a forward pass.
    # On SIGTERM, requests in flight finish first: each gets its answer (or its 503) within
    # timeout_s, so shutting down sooner would drop them without a response.
    uvicorn.run("ferkit.serve.server:app_from_env", factory=True, host=host, port=port, workers=workers,
                log_config=log_config(), access_log=False, timeout_graceful_shutdown=math.ceil(settings.timeout_s) + 5,
                limit_concurrency=None, server_header=False, http="h11",
                h11_max_incomplete_event_size=MAX_HEAD_BYTES)


def free_port() -> int:
    """A TCP port nobody listens on right now (127.0.0.1)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_ready(url: str, wait_s: float = 120, process: subprocess.Popen | None = None,
                     log: Path | None = None) -> None:
    """Poll ``url``/readyz until it answers 200; a clear error if ``process`` exits or time runs out."""
    deadline = time.monotonic() + wait_s
    while True:
        if process is not None and process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log else ""
            raise RuntimeError(f"the server exited with status {process.returncode}: {tail}")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=5) as answer:  # our own URL
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not become ready within {wait_s:g} s")
        time.sleep(0.3)


@contextmanager
def background(*args: str, env: dict[str, str] | None = None, log: Path | None = None,
               wait_s: float = 120) -> Iterator[str]:
    """``ferkit serve ARGS`` in a child process on a free port of 127.0.0.1, for benchmarks,
    tests and notebooks; yields its URL once ready and stops it on exit. FERKIT_* variables of
    this process are not passed on (``env`` sets the child's)."""
    port = free_port()
    command = [sys.executable, "-m", "ferkit.cli", "serve", "--port", str(port), *args]
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("FERKIT_")}
    child_env.update(env or {})
    log_path = log or Path(os.devnull)
    with log_path.open("w") as handle:
        process = subprocess.Popen(command, env=child_env, stdout=handle, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_ready(url, wait_s, process, log)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
