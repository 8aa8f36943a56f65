"""Every error the API returns: ``{"error": {"code", "message", "request_id"}}`` with its status.

No traceback, exception text of unknown errors, or server path ever reaches a client: unknown
errors are logged with the request id and answered with a generic 500.
"""

from __future__ import annotations

import contextvars
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

logger = logging.getLogger(__name__)
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("ferkit_request_id", default="-")
RETRY_AFTER_S = 1


class ApiError(Exception):
    """An error answered to the client as it is.

    Args:
        status: HTTP status.
        code: a short machine-readable name (bad_image, too_large, unsupported_type, ...).
        message: what went wrong and what to do, for people; never a server path or traceback.
    """

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


class Refused(Exception):
    """A request the gate stops while its body is being read (raised from ``receive``, so that it
    also reaches the app's handlers wrapped in the form parser's HTTPException)."""

    status, code = 400, "bad_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def response(self) -> JSONResponse:
        headers = {"Retry-After": str(RETRY_AFTER_S)} if self.status == 503 else None
        return error_response(self.status, self.code, self.message, headers)


class BodyTooLarge(Refused):
    """The request body passed the upload limit while it was being read."""

    status, code = 413, "too_large"


class BodyTimeout(Refused):
    """The request body did not arrive in time."""

    status, code = 408, "request_timeout"


class QueueFull(Refused):
    """The body arrived, and every place for a request at work is taken."""

    status, code = 503, "overloaded"


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    request_id = REQUEST_ID.get()
    body = {"error": {"code": code, "message": message, "request_id": request_id}}
    return JSONResponse(body, status_code=status, headers=headers)  # the gate adds X-Request-ID


def overloaded(message: str) -> JSONResponse:
    return error_response(503, "overloaded", message, {"Retry-After": str(RETRY_AFTER_S)})


HTTP_CODES = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed",
              408: "request_timeout", 413: "too_large", 415: "unsupported_type", 422: "invalid_parameter"}


def install_error_handlers(app: FastAPI) -> None:
    """Answer every exception as a JSON error."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if isinstance(exc.__cause__, Refused):  # raised by the gate while FastAPI parsed the form
            return exc.__cause__.response()
        if exc.status_code == 400:
            return error_response(400, "bad_request", "the request body is not a valid multipart form")
        return error_response(exc.status_code, HTTP_CODES.get(exc.status_code, "error"), str(exc.detail),
                              dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error.get("loc", ()) if part not in ("body", "query"))
            problems.append(f"{where}: {error.get('msg', 'invalid')}")
        return error_response(422, "invalid_parameter", "; ".join(problems) or "invalid request")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal", "the server failed on this request; it is logged under the request id")
