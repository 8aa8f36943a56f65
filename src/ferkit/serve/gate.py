"""The door every request passes: request id, API key, upload size, admission, timeout, metrics, log.

Written as plain ASGI middleware so that a refused request is answered before its body is read:
a client without a key, with a body over the limit, or arriving when the queue is full costs
the server nothing.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
import uuid

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ferkit.serve.errors import REQUEST_ID, BodyTooLarge, error_response, overloaded
from ferkit.serve.metrics import Metrics
from ferkit.serve.settings import ServeSettings

logger = logging.getLogger("ferkit.serve.access")
WORK_PATHS = frozenset({"/v1/analyze", "/v1/analyze/batch", "/v1/classify"})
ENDPOINTS = WORK_PATHS | {"/v1/models", "/healthz", "/readyz", "/metrics"}
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class Gate:
    """ASGI middleware in front of the API (see the module docstring)."""

    def __init__(self, app: ASGIApp, settings: ServeSettings, metrics: Metrics) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.in_flight = 0  # only touched on the event loop: no lock needed
        self._keys = [key.encode() for key in settings.api_keys]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        given = headers.get("x-request-id", "")
        token = REQUEST_ID.set(given if _CLIENT_ID.match(given) else uuid.uuid4().hex)
        started = time.perf_counter()
        status = [500]
        response_started = [False]

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_started[0] = True
                status[0] = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                message["headers"] = [*headers, (b"x-request-id", REQUEST_ID.get().encode())]
            await send(message)

        try:
            refusal = self._refusal(scope, headers)
            if refusal is not None:
                await refusal(scope, receive, send_with_id)
                return
            admitted = scope["path"] in WORK_PATHS
            if admitted:
                self.in_flight += 1
                self.metrics.queue_depth.inc()
            try:
                await asyncio.wait_for(self.app(scope, self._limited(receive), send_with_id),
                                       self.settings.timeout_s)
            except TimeoutError:
                if not response_started[0]:
                    await overloaded(f"no answer within {self.settings.timeout_s:g} s; try again")(
                        scope, receive, send_with_id)
            except BodyTooLarge:
                if not response_started[0]:
                    await self._too_large()(scope, receive, send_with_id)
            finally:
                if admitted:
                    self.in_flight -= 1
                    self.metrics.queue_depth.dec()
        finally:
            endpoint = scope["path"] if scope["path"] in ENDPOINTS else "other"
            elapsed = time.perf_counter() - started
            self.metrics.requests.labels(endpoint, str(status[0])).inc()
            self.metrics.latency.labels(endpoint).observe(elapsed)
            logger.info("%s %s %d %.1f ms", scope["method"], scope["path"], status[0], elapsed * 1000)
            REQUEST_ID.reset(token)

    def _refusal(self, scope: Scope, headers: Headers):  # noqa: ANN202 - a Response or None
        path = scope["path"]
        if self._keys and path.startswith("/v1/") and scope["method"] != "OPTIONS" and not self._authorized(headers):
            return error_response(401, "unauthorized", "this server needs an API key: send 'Authorization: Bearer KEY'",
                                  {"WWW-Authenticate": "Bearer"})
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.settings.max_upload_bytes):
            return self._too_large()
        if path in WORK_PATHS and scope["method"] == "POST" and not headers.get("content-type", "").startswith(
                "multipart/form-data"):
            return error_response(415, "unsupported_type", "send the files as multipart/form-data (curl -F file=@photo.jpg)")
        if path in WORK_PATHS and self.in_flight >= self.settings.queue_size:
            self.metrics.rejected.inc()
            return overloaded(f"the server is busy ({self.settings.queue_size} requests in progress); retry shortly")
        return None

    def _authorized(self, headers: Headers) -> bool:
        scheme, _, key = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key:
            return False
        given = key.strip().encode()
        return any(hmac.compare_digest(given, known) for known in self._keys)  # constant time per key

    def _too_large(self):  # noqa: ANN202
        return error_response(413, "too_large", f"the request is over the {self.settings.max_upload_mb:g} MB upload limit")

    def _limited(self, receive: Receive) -> Receive:
        remaining = [self.settings.max_upload_bytes]

        async def limited() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                remaining[0] -= len(message.get("body", b""))
                if remaining[0] < 0:
                    raise BodyTooLarge
            return message

        return limited
