"""ferkit serve: the HTTP API (FastAPI + uvicorn, or Ray Serve for a cluster).

    ferkit serve --port 8000                 # http://127.0.0.1:8000/docs
    from ferkit.serve import create_app      # the ASGI app, for any ASGI server

Needs the ``serve`` extra: ``pip install ferkit[serve]``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ferkit.serve.settings import ServeSettings

if TYPE_CHECKING:
    from ferkit.serve.app import create_app

__all__ = ["ServeSettings", "create_app"]


def __getattr__(name: str) -> Any:
    # Imported when first asked for: the settings need no FastAPI, so `ferkit --help` shows their
    # defaults on an install without the serve extra.
    if name == "create_app":
        from ferkit.serve.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
