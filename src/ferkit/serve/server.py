"""Running the API: uvicorn with N worker processes on one machine, logs carrying the request id."""

from __future__ import annotations

import logging
import os
import tempfile
from typing import Any

from ferkit.serve.errors import REQUEST_ID
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
    uvicorn.run("ferkit.serve.server:app_from_env", factory=True, host=host, port=port, workers=workers,
                log_config=log_config(), access_log=False, timeout_graceful_shutdown=10,
                limit_concurrency=None, server_header=False)
