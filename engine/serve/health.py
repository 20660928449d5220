"""/readyz: are the parts running, and is AWS reachable?

Ready (200) when every enabled part is running and S3 (the truth) answers, and the events
queue too when the listener runs. A DynamoDB outage makes the answer `degraded` but still
200: reads are then served from S3, and taking every replica out of a load balancer would
turn a cache outage into a full one. The probe has its own clients (one attempt, short
timeouts: a probe must answer fast and must not count against the engine's circuit breaker
or rate limiter) and caches its result for a couple of seconds, so frequent probes from
several balancers cost AWS little. The engine's circuit breakers are listed by name
(`breakers`); one that is not closed makes a ready answer `degraded`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from engine.aws import AwsClients
from engine.exceptions import DocsyncError
from engine.settings import Settings
from engine.store.control import ControlStore

PROBE_TTL_S = 2.0


def _cause(exc: Exception) -> str:
    """The name of what AWS (or botocore) raised, not of the store's translation of it:
    `ResourceNotFoundException`, `EndpointConnectionError`, …"""
    cause = exc.__cause__ if isinstance(exc, DocsyncError) else None
    return type(cause or exc).__name__


class Readiness:
    def __init__(
        self,
        settings: Settings,
        parts: Callable[[], dict[str, dict[str, Any]]],
        stopping: Callable[[], bool] = lambda: False,
        clients: AwsClients | None = None,
        ttl_s: float = PROBE_TTL_S,
        breakers: Callable[[], dict[str, str]] = dict,
    ) -> None:
        self.settings = settings
        self._parts = parts
        self._stopping = stopping
        self._clients = clients or AwsClients(
            settings.replace(
                {
                    "aws.max_attempts": 1,
                    "aws.connect_timeout_s": min(settings.aws.connect_timeout_s, 1.0),
                    "aws.read_timeout_s": min(settings.aws.read_timeout_s, 2.0),
                    "dry_run": False,  # read-only calls only
                    "aws.breakers": False,  # the probe asks AWS itself, breakers or not
                }
            )
        )
        self._control = ControlStore(self._clients)
        self._ttl_s = ttl_s
        self._breakers = breakers
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, str]] | None = None

    def _probe(self) -> dict[str, str]:
        s, control = self.settings, self._control
        checks: dict[str, Callable[[], object]] = {
            "s3": lambda: control.head_bucket(s.bucket),
            "dynamodb": lambda: control.describe_table(s.table),
        }
        if s.serve.listener:
            checks["sqs"] = lambda: control.queue_url(s.queue)
        out = {}
        for name, call in checks.items():
            try:
                call()
                out[name] = "ok"
            except Exception as exc:  # any failure means "not reachable"; say which
                out[name] = f"unreachable: {_cause(exc)}"
        return out

    def aws(self) -> dict[str, str]:
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] > self._ttl_s:
                self._cached = (now, self._probe())
            return self._cached[1]

    def check(self) -> tuple[bool, dict[str, Any]]:
        if self._stopping():
            return False, {"status": "stopping", "parts": self._parts()}
        parts = self._parts()
        aws = self.aws()
        required = [n for n in aws if n != "dynamodb"]
        ready = all(p["healthy"] for p in parts.values()) and all(aws[n] == "ok" for n in required)
        status = "not_ready" if not ready else "ready" if aws["dynamodb"] == "ok" else "degraded"
        breakers = self._breakers()
        if status == "ready" and any(state != "closed" for state in breakers.values()):
            status = "degraded"  # the engine is failing fast somewhere, though AWS answers now
        return ready, {"status": status, "parts": parts, "aws": aws, "breakers": breakers}
