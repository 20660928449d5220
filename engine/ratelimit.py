"""A token bucket shared by every thread of a process, with a bounded wait.

Hand-written (30 lines) because the PyPI limiters either do not block with a deadline or changed
their blocking API between majors; this is the whole contract we need.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from engine.exceptions import RateLimitTimeoutError


class TokenBucket:
    def __init__(
        self,
        rate: float,
        burst: int,
        timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate, self.burst, self.timeout_s = rate, burst, timeout_s
        self._clock, self._sleep = clock, sleep
        self._tokens = float(burst)
        self._updated = clock()
        self._lock = threading.Lock()

    def _reserve(self) -> float:
        """Take a token now, or return how long to wait for one."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            if self._tokens >= 1:
                self._tokens -= 1
                return 0.0
            return (1 - self._tokens) / self.rate

    def acquire(self) -> None:
        deadline = self._clock() + self.timeout_s
        while (wait := self._reserve()) > 0:
            if self._clock() + wait > deadline:
                raise RateLimitTimeoutError(
                    f"DynamoDB rate limit ({self.rate:g}/s): no capacity within {self.timeout_s:g}s"
                )
            self._sleep(wait)
