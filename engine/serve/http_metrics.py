"""HTTP request counts and latency by method, route template and status, in the process's one
registry, plus one log line per request (op=http). Routes are templates (`/v1/{type}/{id}`),
never raw paths, so the label set stays bounded; unknown paths are `<unmatched>`."""

from __future__ import annotations

import time
from typing import Any

from loguru import logger
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.metrics import REGISTRY
from engine.readmetrics.buckets import HTTP_LATENCY_S

HTTP_REQUESTS = Counter(
    "docsync_http_requests",
    "HTTP requests by method, route template and status.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_SECONDS = Histogram(
    "docsync_http_request_seconds",
    "HTTP request latency by method, route template and status.",
    ["method", "route", "status"],
    buckets=HTTP_LATENCY_S,
    registry=REGISTRY,
)
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})  # probes: logged at DEBUG


def route_template(scope: Scope) -> str:
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "<unmatched>"


class HttpMetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            seconds = time.perf_counter() - started
            method, route = scope["method"], route_template(scope)
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_SECONDS.labels(method, route, str(status)).observe(seconds)
            state = scope.get("state") or {}
            log = logger.bind(
                op="http",
                method=method,
                route=route,
                status=status,
                duration_ms=round(seconds * 1000, 2),
                client_key=state.get("key_id"),
                source=state.get("source"),
            )
            level = "DEBUG" if route in QUIET_ROUTES and status < 500 else "INFO"
            log.log(level, "{} {} → {}", method, route, status)
