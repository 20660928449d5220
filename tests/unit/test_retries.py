"""engine/retries.py: the error → class decision table and the backoff per class."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError
from botocore.retries.standard import RetryContext
from pydantic import ValidationError

from engine.retries import ClassRetryPolicy, RetryTable, classify


class Http:
    def __init__(self, status: int) -> None:
        self.status_code = status


def context(code: str | None = None, status: int = 400, **extra: Any) -> RetryContext:
    parsed = {"Error": {"Code": code}, **extra} if code else None
    return RetryContext(
        attempt_number=1,
        parsed_response=parsed,
        http_response=Http(status) if code else None,
        caught_exception=None,
        request_context={},
    )


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("ProvisionedThroughputExceededException", 400, "throttling"),
        ("ThrottlingException", 400, "throttling"),
        ("SlowDown", 503, "throttling"),
        ("InternalServerError", 500, "server_error"),
        ("InternalError", 500, "server_error"),
        ("ServiceUnavailable", 503, "unavailable"),
        ("TransactionConflictException", 400, "transaction_conflict"),
        ("ConditionalCheckFailedException", 400, None),
        ("ValidationException", 400, None),
        ("AccessDeniedException", 400, None),
    ],
)
def test_classify(code: str, status: int, expected: str | None) -> None:
    assert classify(context(code, status)) == expected


def test_a_cancelled_transaction_is_retried_only_when_every_reason_is_a_conflict() -> None:
    conflict = [{"Code": "None"}, {"Code": "TransactionConflict"}]
    conditional = [{"Code": "TransactionConflict"}, {"Code": "ConditionalCheckFailed"}]
    code = "TransactionCanceledException"
    assert classify(context(code, CancellationReasons=conflict)) == "transaction_conflict"
    assert classify(context(code, CancellationReasons=conditional)) is None
    assert classify(context(code, CancellationReasons=[{"Code": "None"}])) is None


def test_connection_errors_and_timeouts_are_server_errors() -> None:
    for exc in (EndpointConnectionError(endpoint_url="x"), ConnectTimeoutError(endpoint_url="x")):
        ctx = RetryContext(attempt_number=1, caught_exception=exc, request_context={})
        assert classify(ctx) == "server_error"


def test_backoff_is_exponential_from_each_class_base_and_capped() -> None:
    table = RetryTable.model_validate({"max_backoff_ms": 1000})
    policy = ClassRetryPolicy(table, cap_attempts=50, rand=lambda: 1.0)
    assert [policy.delay_ceiling_s("throttling", n) for n in (1, 2, 3)] == [0.05, 0.1, 0.2]
    assert policy.delay_ceiling_s("unavailable", 1) == 0.5
    assert policy.delay_ceiling_s("server_error", 1) == 0.1
    assert policy.delay_ceiling_s("throttling", 9) == 1.0  # capped
    ctx = context("ThrottlingException")
    assert policy.should_retry(ctx)
    assert policy.compute_retry_delay(ctx) == 0.05
    half = ClassRetryPolicy(table, cap_attempts=50, rand=lambda: 0.5)
    assert half.compute_retry_delay(ctx) == 0.025  # full jitter: uniform below the ceiling


def test_defaults_follow_the_seed_and_bad_values_are_refused() -> None:
    table = RetryTable()
    got = {n: (table.rule(n).max_attempts, table.rule(n).base_ms) for n in
           ("throttling", "server_error", "unavailable", "transaction_conflict")}  # fmt: skip
    assert got == {
        "throttling": (10, 50),
        "server_error": (3, 100),
        "unavailable": (3, 500),
        "transaction_conflict": (3, 100),
    }
    with pytest.raises(ValidationError):
        RetryTable.model_validate({"throttling": {"max_attempts": 0}})
    with pytest.raises(ValidationError):
        RetryTable.model_validate({"conditional": {"max_attempts": 3}})


def test_the_retries_table_of_the_settings_file(tmp_path: Any) -> None:
    from engine.exceptions import ConfigError
    from engine.settings import load_settings

    path = tmp_path / "docsync.toml"
    path.write_text("[retries.throttling]\nmax_attempts = 4\n")
    rule = load_settings(path).retries.throttling
    assert (rule.max_attempts, rule.base_ms) == (4, 50)
    path.write_text("[retries.unavailable]\nbase_ms = -1\n")
    with pytest.raises(ConfigError, match=r"retries\.unavailable\.base_ms"):
        load_settings(path)
