"""The FastAPI application: /v1 behind an API key and a per-key rate limit; /healthz and
/readyz open; /metrics (the process's one registry) behind the key; OpenAPI at /docs.

Middleware, outermost first: HTTP metrics and the access log, CORS (from settings), the body
size limit. /docs and /openapi.json are open: they describe the API and serve no data, and
Swagger UI cannot send a key when it loads the schema.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

from fastapi import Depends, FastAPI, Request, Security
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException

from engine import tracing
from engine.app import Engine
from engine.metrics import REGISTRY
from engine.serve import errors
from engine.serve.apikeys import ApiKeys
from engine.serve.health import Readiness
from engine.serve.http_metrics import HttpMetricsMiddleware
from engine.serve.limits import BodyLimitMiddleware, KeyedRateLimiter, retry_after
from engine.serve.routes import CACHE_HEADER, SOURCE_HEADER, document_router

API_KEY_HEADER = "x-api-key"
_api_key = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    description="An API key from DOCSYNC_SERVE_API_KEYS or DOCSYNC_SERVE_API_KEYS_FILE",
)


def _version() -> str:
    try:
        return version("docsync")
    except PackageNotFoundError:
        return "0"


def key_guard(
    keys: ApiKeys, per_key: KeyedRateLimiter, failures: KeyedRateLimiter
) -> Callable[..., Awaitable[str]]:
    """The dependency every protected route has: a known key, within its rate."""

    async def require_key(
        request: Request, key: Annotated[str | None, Security(_api_key)] = None
    ) -> str:
        key_id = keys.identify(key)
        if key_id is None:
            client = request.client.host if request.client else "unknown"
            wait = failures.check(f"client:{client}")
            if wait > 0:
                raise HTTPException(
                    429,
                    "too many requests without a valid API key",
                    headers={"Retry-After": retry_after(wait)},
                )
            raise HTTPException(
                401,
                f"invalid API key (header {API_KEY_HEADER})"
                if key
                else f"missing API key (header {API_KEY_HEADER})",
                headers={"WWW-Authenticate": "ApiKey"},
            )
        request.state.key_id = key_id
        wait = per_key.check(key_id)
        if wait > 0:
            raise HTTPException(
                429,
                f"rate limit of {per_key.per_minute} requests per minute for this key",
                headers={"Retry-After": retry_after(wait)},
            )
        return key_id

    return require_key


def create_app(
    engine: Engine, readiness: Readiness | None = None, keys: ApiKeys | None = None
) -> FastAPI:
    """`keys` default to the settings' (ConfigError when there are none: the API never runs
    open); `readiness` defaults to an AWS probe with no parts."""
    settings = engine.settings
    keys = keys or ApiKeys.from_settings(settings)
    readiness = readiness or Readiness(settings, parts=dict, breakers=engine.breaker_states)
    guard = key_guard(
        keys,
        KeyedRateLimiter(settings.serve.rate_limit_per_minute, settings.serve.rate_limit_burst),
        KeyedRateLimiter(settings.serve.rate_limit_per_minute, settings.serve.rate_limit_burst),
    )
    app = FastAPI(
        title="docsync",
        version=_version(),
        summary="Documents in S3 (the truth) with a DynamoDB cache in step.",
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    errors.install(app)
    tracing.instrument_app(app)  # a span per request when OTEL_* asks (engine/tracing.py)
    app.include_router(document_router(engine), dependencies=[Depends(guard)])

    @app.get("/healthz", tags=["ops"], summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["ops"],
        summary="Readiness: parts running, AWS reachable",
        responses={503: {"description": "not ready (or stopping)"}},
    )
    def readyz() -> JSONResponse:
        ready, body = readiness.check()
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get(
        "/metrics",
        tags=["ops"],
        summary="Prometheus metrics of every part",
        dependencies=[Depends(guard)],
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}, 401: {}, 429: {}},
    )
    def prometheus() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(BodyLimitMiddleware, limit=settings.serve.max_body_bytes)
    if settings.serve.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.serve.cors_origins,
            allow_methods=["GET", "PUT", "DELETE", "POST"],
            allow_headers=[API_KEY_HEADER, "content-type", "if-match", "if-none-match"],
            expose_headers=["ETag", "Retry-After", SOURCE_HEADER, CACHE_HEADER],
            max_age=600,
        )
    app.add_middleware(HttpMetricsMiddleware)
    app.state.engine = engine
    app.state.readiness = readiness
    return app
