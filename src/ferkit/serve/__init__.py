"""ferkit serve: the HTTP API (FastAPI + uvicorn, or Ray Serve for a cluster).

    ferkit serve --port 8000                 # http://127.0.0.1:8000/docs
    from ferkit.serve import create_app      # the ASGI app, for any ASGI server

Needs the ``serve`` extra: ``pip install ferkit[serve]``.
"""

from __future__ import annotations

from ferkit.serve.app import create_app
from ferkit.serve.settings import ServeSettings

__all__ = ["ServeSettings", "create_app"]
