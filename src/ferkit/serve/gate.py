"""The door every request passes: request id, API key, upload size, admission, deadlines, metrics, log.

Written as plain ASGI middleware so that a refused request is answered before its body is read:
a client without a key, with a body over the limit, or arriving when the queue is full costs
the server nothing. A work request waits for its body outside the queue (up to ``body_timeout_s``,
then 408): clients that send slowly cannot take the places of requests ready to run. Only once
its body has arrived does it take one of the ``queue_size`` places (503 when none is free). Every
answer carries the request id, a 500 included.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ferkit.serve.errors import REQUEST_ID, BodyTimeout, BodyTooLarge, QueueFull, Refused, error_response, overloaded
from ferkit.serve.metrics import Metrics
from ferkit.serve.settings import ServeSettings

logger = logging.getLogger("ferkit.serve.access")
WORK_PATHS = frozenset({"/v1/analyze", "/v1/analyze/batch", "/v1/classify"})
ENDPOINTS = WORK_PATHS | {"/v1/models", "/healthz", "/readyz", "/metrics"}
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
#: Requests that may be receiving their body at once, per place in the queue.
RECEIVING_PER_PLACE = 4
#: Largest request line and headers together, in bytes (431 beyond; see server.run for the parser's share).
MAX_HEAD_BYTES = 16 * 1024
#: The scope key of a request's threading.Event, set once nobody waits for its answer (its 503 has
#: gone out, or it was cancelled): the endpoint stops at its next step (see ``abandoned``).
ABANDONED = "ferkit.abandoned"


def abandoned(scope: Scope) -> bool:
    """Whether the gate gave up on this request: work done for it now would be thrown away."""
    event = scope.get(ABANDONED)
    return event is not None and event.is_set()


@dataclass
class _Admission:
    """Where one work request stands: receiving its body, then admitted to the queue."""

    receiving: bool = False
    admitted: bool = False


class Gate:
    """ASGI middleware in front of the API (see the module docstring)."""

    def __init__(self, app: ASGIApp, settings: ServeSettings, metrics: Metrics) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.in_flight = 0  # work requests whose body has arrived; only touched on the event loop
        self.receiving = 0  # work requests still receiving their body
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
        answered_s: list[float] = []
        gate_answered = [False]  # the gate answered for the app (timeout): the app's own answer is dropped

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_started[0] = True
                status[0] = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                message["headers"] = [*headers, (b"x-request-id", REQUEST_ID.get().encode())]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                answered_s.append(time.perf_counter() - started)
            await send(message)

        async def app_send(message: Message) -> None:
            if not gate_answered[0]:
                await send_with_id(message)

        given_up = threading.Event()  # read by the endpoint's thread
        scope = {**scope, ABANDONED: given_up}

        try:
            refusal = self._refusal(scope, headers)
            if refusal is not None:
                await refusal(scope, receive, send_with_id)
                return
            state = _Admission(receiving=scope["path"] in WORK_PATHS)
            self.receiving += state.receiving
            work = asyncio.ensure_future(self.app(scope, self._guarded(receive, state), app_send))
            try:
                try:
                    await asyncio.wait_for(asyncio.shield(work), self.settings.timeout_s)
                except asyncio.CancelledError:
                    given_up.set()
                    work.cancel()
                    raise
            except asyncio.TimeoutError:  # not TimeoutError before Python 3.11
                given_up.set()
                if state.receiving:  # still waiting for its body: nothing runs for it yet
                    work.cancel()
                if not response_started[0]:
                    gate_answered[0] = True
                    answer = (BodyTimeout(self._slow_body()).response() if state.receiving else
                              overloaded(f"no answer within {self.settings.timeout_s:g} s; try again"))
                    await answer(scope, receive, send_with_id)
                # An admitted request keeps its place until its work ends: the endpoint's thread cannot
                # be stopped, only told to stop at its next step, and freeing the place at the 503 let
                # new work pile up on the running one.
                for outcome in await asyncio.gather(work, return_exceptions=True):
                    if isinstance(outcome, Exception) and not isinstance(outcome, Refused):
                        logger.error("error after the timeout answer on %s %s: %r", scope["method"], scope["path"],
                                     outcome)
            except Refused as exc:
                if not response_started[0]:
                    await exc.response()(scope, receive, send_with_id)
            except Exception:  # answered as a 500 with the request id, and logged
                logger.exception("unexpected error on %s %s", scope["method"], scope["path"])
                if not response_started[0]:
                    await error_response(500, "internal", "the server failed on this request; it is logged "
                                                          "under the request id")(scope, receive, send_with_id)
            finally:
                self.receiving -= state.receiving
                if state.admitted:
                    self.in_flight -= 1
                    self.metrics.queue_depth.dec()
        finally:
            endpoint = scope["path"] if scope["path"] in ENDPOINTS else "other"
            elapsed = answered_s[0] if answered_s else time.perf_counter() - started
            self.metrics.requests.labels(endpoint, str(status[0])).inc()
            self.metrics.latency.labels(endpoint).observe(elapsed)
            logger.info("%s %s %d %.1f ms", scope["method"], scope["path"], status[0], elapsed * 1000)
            REQUEST_ID.reset(token)

    def _refusal(self, scope: Scope, headers: Headers) -> JSONResponse | None:
        path = scope["path"]
        head = (len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
                + sum(len(name) + len(value) + 4 for name, value in scope["headers"]))
        if head > MAX_HEAD_BYTES:
            return error_response(431, "headers_too_large",
                                  f"the request's headers are over {MAX_HEAD_BYTES // 1024} KB; send fewer or shorter ones")
        if "transfer-encoding" in headers and "content-length" in headers:
            # The shape of request smuggling (RFC 9112 6.1): refused, and the connection closed.
            return error_response(400, "bad_request", "send Transfer-Encoding or Content-Length, not both",
                                  {"Connection": "close"})
        if self._keys and path.startswith("/v1/") and scope["method"] != "OPTIONS" and not self._authorized(headers):
            return error_response(401, "unauthorized", "this server needs an API key: send 'Authorization: Bearer KEY'",
                                  {"WWW-Authenticate": "Bearer"})
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.settings.max_upload_bytes):
            return self._too_large()
        if path in WORK_PATHS and scope["method"] == "POST" and not headers.get("content-type", "").lower().startswith(
                "multipart/form-data"):
            return error_response(415, "unsupported_type", "send the files as multipart/form-data (curl -F file=@photo.jpg)")
        if path in WORK_PATHS and self.in_flight >= self.settings.queue_size:
            self.metrics.rejected.inc()
            return overloaded(self._busy())
        if path in WORK_PATHS and self.receiving >= RECEIVING_PER_PLACE * self.settings.queue_size:
            self.metrics.rejected.inc()
            return overloaded(f"too many uploads are arriving at once ({self.receiving}); retry shortly")
        return None

    def _busy(self) -> str:
        return f"the server is busy ({self.settings.queue_size} requests in progress); retry shortly"

    def _admit(self, state: _Admission) -> None:
        """The body has arrived: take a place in the queue, or QueueFull."""
        self.receiving -= 1
        state.receiving = False
        if self.in_flight >= self.settings.queue_size:
            self.metrics.rejected.inc()
            raise QueueFull(self._busy())
        self.in_flight += 1
        self.metrics.queue_depth.inc()
        state.admitted = True

    def _authorized(self, headers: Headers) -> bool:
        scheme, _, key = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key:
            return False
        given = key.strip().encode()
        return any(hmac.compare_digest(given, known) for known in self._keys)  # constant time per key

    def _too_large(self) -> JSONResponse:
        return BodyTooLarge(self._too_large_message()).response()

    def _too_large_message(self) -> str:
        return f"the request is over the {self.settings.max_upload_mb:g} MB upload limit"

    def _slow_body(self) -> str:
        return f"the request body did not arrive within {self.settings.body_timeout_s:g} s; send it at once"

    def _guarded(self, receive: Receive, state: _Admission) -> Receive:
        """``receive`` with the upload limit and the body deadline; a work request is admitted to
        the queue when its last body message arrives."""
        remaining = [self.settings.max_upload_bytes]
        deadline = time.monotonic() + self.settings.body_timeout_s
        done = [False]

        async def guarded() -> Message:
            if done[0]:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:  # not TimeoutError before Python 3.11
                raise BodyTimeout(self._slow_body()) from None
            if message["type"] == "http.request":
                remaining[0] -= len(message.get("body", b""))
                if remaining[0] < 0:
                    raise BodyTooLarge(self._too_large_message())
                if not message.get("more_body", False):
                    done[0] = True
                    if state.receiving:
                        self._admit(state)
            return message

        return guarded
