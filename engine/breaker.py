"""A circuit breaker (seed 003 §6.3): after `fail_max` consecutive outage errors, calls fail
fast for `reset_s`; then trial calls, one at a time, and `success_threshold` of them in a row
close it again (a failed trial opens it for another `reset_s`). In front of DynamoDB (the
cache store) and, at the client seam, S3 and SQS (engine/aws.py).

Hand-written because pybreaker holds its lock for the whole protected call (1.2's
`CircuitBreaker.call`: `with self._lock: return self.state.call(func, ...)`), which
serialized every DynamoDB call of a process (measured: 1 call in flight with 16 threads).
Here the lock only guards the counters; the call itself runs outside it. Its state is the
gauge `docsync_circuit_breaker_state` and appears in `/readyz` (`Engine.breaker_states`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

from loguru import logger

from engine import cloudwatch, metrics

State = Literal["closed", "open", "half_open"]
STATES: tuple[State, ...] = ("closed", "open", "half_open")


class CircuitOpenError(Exception):
    """The breaker is open: the call was not made."""


class CircuitBreaker:
    def __init__(
        self,
        fail_max: int,
        reset_s: float,
        is_failure: Callable[[BaseException], bool],
        clock: Callable[[], float] = time.monotonic,
        name: str = "dynamodb",
        success_threshold: int = 1,
    ) -> None:
        self.fail_max, self.reset_s, self.name = fail_max, reset_s, name
        self._is_failure, self._clock = is_failure, clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at = 0.0
        self._state: State = "closed"
        self._trial_running = False
        cloudwatch.watch(self)  # reported open at every metrics flush while it is
        self.success_threshold = success_threshold
        self._trial_successes = 0
        _gauge(name, "closed")

    @property
    def state(self) -> State:
        with self._lock:
            return self._state

    def _set(self, state: State) -> None:
        if state != self._state:
            logger.bind(op="breaker", breaker=self.name, state=state).warning(
                "circuit breaker {}: {} → {}", self.name, self._state, state
            )
            self._state = state
            if state == "open":
                cloudwatch.record("CircuitBreakerOpen", 1)
            self._trial_successes = 0
            _gauge(self.name, state)

    def before_call(self) -> None:
        """Raise CircuitOpenError, or let the call go ahead (maybe as the half-open trial)."""
        with self._lock:
            if self._state == "closed":
                return
            if self._state == "open" and self._clock() - self._opened_at >= self.reset_s:
                self._set("half_open")
            if self._state == "half_open" and not self._trial_running:
                self._trial_running = True
                return
            raise CircuitOpenError(f"circuit breaker {self.name} is open")

    def on_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._trial_running = False
            if self._state == "half_open":
                self._trial_successes += 1
                if self._trial_successes < self.success_threshold:
                    return
            self._set("closed")

    def on_error(self, exc: BaseException) -> None:
        with self._lock:
            self._trial_running = False
            if not self._is_failure(exc):  # the service answered: a success for the breaker
                if self._state == "half_open":
                    self._trial_successes += 1
                    if self._trial_successes >= self.success_threshold:
                        self._set("closed")
                return
            self._failures += 1
            if self._state == "half_open" or self._failures >= self.fail_max:
                self._opened_at = self._clock()
                self._set("open")


def _gauge(name: str, state: State) -> None:
    for each in STATES:
        metrics.BREAKER_STATE.labels(name, each).set(1 if each == state else 0)
