"""The engine's exceptions as HTTP answers: ONE table by exception class (the most specific
class wins), beside the CLI's table of exit codes (engine/cli/output.py):

    InvalidRequestError     → 422, with `fields` naming what is wrong
    NotFoundError           → 404
    WriteConflictError      → 409 (PreconditionFailedError: 412, an If-Match that is false)
    StoreError, rate limit  → 503 with Retry-After (AWS failing: try again later)
    ConfigError             → 500 "server misconfigured", logged
    anything else           → 500, logged with its traceback, never its details to the client

Every error body is `{"error": message, "status": code}` plus `fields` when known.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from loguru import logger
from starlette.exceptions import HTTPException

from engine.exceptions import (
    ConfigError,
    DocsyncError,
    InvalidDocumentError,
    InvalidPageTokenError,
    InvalidRequestError,
    MalformedEventError,
    NotFoundError,
    PreconditionFailedError,
    QueryOutsideWindowError,
    RateLimitTimeoutError,
    StoreError,
    StreamsError,
    WriteConflictError,
)

__all__ = ["STATUSES", "PreconditionFailedError", "error_response", "for_exception", "install"]

RETRY_AFTER_S = "2"

# The one table of HTTP statuses, by exception class; the most specific class of an error that
# is in it wins (its MRO is walked). Every DocsyncError subclass must be covered by an entry for
# itself or an ancestor below the root (tests/unit/test_exceptions.py).
STATUSES: dict[type[DocsyncError], int] = {
    InvalidRequestError: 422,
    NotFoundError: 404,
    WriteConflictError: 409,
    PreconditionFailedError: 412,
    RateLimitTimeoutError: 503,
    StoreError: 503,
    ConfigError: 500,
    StreamsError: 500,
    MalformedEventError: 500,
}

# The `fields` of a 422 whose error names none: what the request got wrong.
DEFAULT_FIELDS: dict[type[DocsyncError], list[str]] = {
    InvalidDocumentError: ["<body>"],
    InvalidPageTokenError: ["page_token"],
    QueryOutsideWindowError: ["since"],
}


def _most_specific(table: Mapping[type[DocsyncError], Any], exc: DocsyncError) -> Any:
    for cls in type(exc).__mro__:
        if cls in table:
            return table[cls]
    return None


def status_of(exc: DocsyncError) -> int:
    """The HTTP status of an error: its most specific class in STATUSES (else 500)."""
    status = _most_specific(STATUSES, exc)
    return 500 if status is None else int(status)


def error_response(
    status: int,
    message: str,
    fields: list[str] | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"error": message, "status": status, **extra}
    if fields:
        body["fields"] = fields
    return JSONResponse(body, status_code=status, headers=headers)


def for_exception(exc: DocsyncError) -> JSONResponse:
    status = status_of(exc)
    if isinstance(exc, InvalidRequestError):
        return error_response(status, str(exc), exc.fields or _most_specific(DEFAULT_FIELDS, exc))
    if isinstance(exc, WriteConflictError):
        return error_response(status, str(exc), current_version=exc.current_version)
    if status == 503:
        return error_response(status, str(exc), headers={"Retry-After": RETRY_AFTER_S})
    if isinstance(exc, ConfigError):
        logger.bind(op="http.error").error("configuration error in a request: {}", exc)
        return error_response(status, "server misconfigured")
    if status >= 500:
        logger.bind(op="http.error").opt(exception=exc).error("unexpected engine error: {}", exc)
        return error_response(status, "internal error")
    return error_response(status, str(exc))


def _field(loc: tuple[int | str, ...] | list[int | str]) -> str:
    parts = [str(p) for p in loc]
    if len(parts) > 1 and parts[0] in ("path", "query", "header", "body", "cookie"):
        parts = parts[1:]
    return ".".join(parts) or "<request>"


def install(app: FastAPI) -> None:
    async def on_docsync(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DocsyncError)
        return for_exception(exc)

    async def on_validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        fields = list(dict.fromkeys(_field(e.get("loc", ())) for e in errors))
        detail = "; ".join(f"{_field(e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in errors)
        return error_response(422, f"invalid request: {detail}", fields)

    async def on_http(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return error_response(exc.status_code, str(exc.detail), headers=exc.headers)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.bind(op="http.error", path=request.url.path).opt(exception=exc).error(
            "unhandled error: {!r}", exc
        )
        return error_response(500, "internal error")

    app.add_exception_handler(DocsyncError, on_docsync)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
