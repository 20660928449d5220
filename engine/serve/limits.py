"""Request limits of the HTTP API: a token bucket per API key (429 + Retry-After), and a
request body size limit (413) enforced while the body streams in.

Rate limit: engine.ratelimit.TokenBucket, one per key, asked without waiting. A token bucket
rather than a sliding window because it gives the exact Retry-After (the time until the next
token), allows a burst after a quiet spell, keeps O(1) state per key, and is the bucket the
project already tests. Buckets exist only for configured keys (a request is authenticated
first), plus a bounded set for failed attempts by client address, so that guessing keys is
throttled too.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.ratelimit import TokenBucket


class _Bucket(TokenBucket):
    def try_acquire(self) -> float:
        """Take a token now (0.0), or return the seconds until one is available."""
        return self._reserve()


class KeyedRateLimiter:
    """`per_minute` sustained and `burst` at once, per key; `per_minute=0` turns it off."""

    def __init__(
        self,
        per_minute: int,
        burst: int,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_minute = per_minute
        self.burst = burst
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, key: str) -> float:
        """0.0 when the request may go ahead, else the Retry-After in seconds."""
        if self.per_minute <= 0:
            return 0.0
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = _Bucket(self.per_minute / 60.0, self.burst, 0.0, clock=self._clock)
                self._buckets[key] = bucket
                if len(self._buckets) > self.max_keys:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(key)
        return bucket.try_acquire()


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


class BodyTooLargeError(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")


class BodyLimitMiddleware:
    """413 for a body over `limit` bytes: at once from Content-Length, or as soon as a
    streamed (chunked) body passes the limit."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _reject(send, 400, "invalid Content-Length")
                    return
                if declared > self.limit:
                    await _reject(send, 413, f"request body larger than {self.limit} bytes")
                    return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLargeError(self.limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLargeError as exc:
            if started:
                raise
            await _reject(send, 413, str(exc.detail))


async def _reject(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message, "status": status}).encode()
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    start: dict[str, Any] = {"type": "http.response.start", "status": status, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": body})
