"""The engine's exceptions as HTTP answers, beside the CLI's exit codes:

    exit 2 (invalid input)  → 422, with `fields` naming what is wrong
    exit 3 (not found)      → 404
    WriteConflictError      → 409 (412 when an If-Match precondition is false: see routes)
    StoreError, rate limit  → 503 with Retry-After (AWS failing: try again later)
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
    NotFoundError,
    QueryOutsideWindowError,
    RateLimitTimeoutError,
    StoreError,
    WriteConflictError,
)

RETRY_AFTER_S = "2"


class PreconditionFailedError(WriteConflictError):
    """If-Match / If-None-Match does not hold for the current document (412)."""


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
    if isinstance(exc, InvalidDocumentError):
        return error_response(422, str(exc), exc.fields or ["<body>"])
    if isinstance(exc, InvalidPageTokenError):
        return error_response(422, str(exc), ["page_token"])
    if isinstance(exc, QueryOutsideWindowError):
        return error_response(422, str(exc), ["since"])
    if isinstance(exc, NotFoundError):
        return error_response(404, str(exc))
    if isinstance(exc, PreconditionFailedError):
        return error_response(412, str(exc), current_version=exc.current_version)
    if isinstance(exc, WriteConflictError):
        return error_response(409, str(exc), current_version=exc.current_version)
    if isinstance(exc, RateLimitTimeoutError | StoreError):
        return error_response(503, str(exc), headers={"Retry-After": RETRY_AFTER_S})
    if isinstance(exc, ConfigError):
        logger.bind(op="http.error").error("configuration error in a request: {}", exc)
        return error_response(500, "server misconfigured")
    logger.bind(op="http.error").opt(exception=exc).error("unexpected engine error: {}", exc)
    return error_response(500, "internal error")


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
