"""The DynamoDB circuit breaker: states, what counts, and that calls are not serialized."""

from __future__ import annotations

import threading

import pytest

from engine.breaker import CircuitBreaker, CircuitOpenError


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def outage(exc: BaseException) -> bool:
    return isinstance(exc, ConnectionError)


def test_opens_after_fail_max_then_one_trial_closes_it() -> None:
    clock = Clock()
    breaker = CircuitBreaker(3, 10.0, outage, clock)
    for _ in range(3):
        breaker.before_call()
        breaker.on_error(ConnectionError())
    assert breaker.state == "open"
    with pytest.raises(CircuitOpenError):
        breaker.before_call()
    clock.now = 10.0
    breaker.before_call()  # the half-open trial goes ahead ...
    assert breaker.state == "half_open"  # type: ignore[comparison-overlap]  # mypy keeps the property narrowed across calls
    with pytest.raises(CircuitOpenError):
        breaker.before_call()  # ... alone
    breaker.on_success()
    assert breaker.state == "closed"
    breaker.before_call()


def test_a_failed_trial_opens_it_again() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 5.0, outage, clock)
    breaker.on_error(ConnectionError())
    clock.now = 5.0
    breaker.before_call()
    breaker.on_error(ConnectionError())
    assert breaker.state == "open"
    clock.now = 9.0
    with pytest.raises(CircuitOpenError):
        breaker.before_call()


def test_business_errors_and_successes_reset_the_count() -> None:
    breaker = CircuitBreaker(2, 5.0, outage, Clock())
    breaker.on_error(ConnectionError())
    breaker.on_error(ValueError("conditional check failed"))  # not an outage
    breaker.on_success()
    breaker.on_error(ConnectionError())
    assert breaker.state == "closed"


def test_calls_run_concurrently_not_under_the_breaker_lock() -> None:
    breaker = CircuitBreaker(5, 5.0, outage)
    inside = threading.Barrier(8, timeout=5)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            breaker.before_call()
            inside.wait()  # every thread must be inside its call at once
            breaker.on_success()
        except BaseException as exc:  # a broken barrier means calls were serialized
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_half_open_needs_success_threshold_trials_in_a_row() -> None:
    clock = Clock()
    breaker = CircuitBreaker(2, 10.0, outage, clock, name="unit", success_threshold=2)
    for _ in range(2):
        breaker.on_error(ConnectionError())
    assert breaker.state == "open"
    clock.now += 10
    breaker.before_call()
    breaker.on_success()
    assert breaker.state == "half_open"  # type: ignore[comparison-overlap]  # mypy keeps the property narrowed across calls
    breaker.before_call()  # the next trial, once the first finished
    with pytest.raises(CircuitOpenError):
        breaker.before_call()  # still one at a time
    breaker.on_error(ValueError("a 404: the service answered"))
    assert breaker.state == "closed"
