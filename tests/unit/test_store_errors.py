"""engine/store/errors.py: which botocore errors mean an outage, a lost condition, a miss."""

from __future__ import annotations

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    ParamValidationError,
    ReadTimeoutError,
)

from engine.store.errors import error_code, is_conditional_failure, is_not_found, is_outage


def client_error(code: str, status: int = 400, op: str = "PutItem") -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"{code} happened"},
            "ResponseMetadata": {
                "RequestId": "r1",
                "HostId": "h1",
                "HTTPStatusCode": status,
                "HTTPHeaders": {},
                "RetryAttempts": 0,
            },
        },
        op,
    )


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ProvisionedThroughputExceededException", 400),
        ("ThrottlingException", 400),
        ("RequestLimitExceeded", 400),
        ("Throttling", 400),
        ("SlowDown", 503),
        ("ServiceUnavailable", 503),
        ("InternalServerError", 500),
        ("InternalError", 500),
        ("SomethingNew", 502),
        ("", 504),
    ],
)
def test_throttling_and_5xx_are_outages(code: str, status: int) -> None:
    exc = client_error(code, status)
    assert is_outage(exc)
    assert not is_conditional_failure(exc)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ConditionalCheckFailedException", 400),
        ("TransactionCanceledException", 400),
        ("ValidationException", 400),
        ("ResourceNotFoundException", 400),
        ("AccessDeniedException", 400),
        ("AccessDenied", 403),
        ("NoSuchKey", 404),
        ("PreconditionFailed", 412),
    ],
)
def test_client_errors_are_not_outages(code: str, status: int) -> None:
    assert not is_outage(client_error(code, status))


def test_client_error_without_metadata_is_not_an_outage() -> None:
    exc = ClientError({"Error": {"Code": "ValidationException"}}, "Query")
    assert not is_outage(exc)
    assert error_code(exc) == "ValidationException"


@pytest.mark.parametrize(
    "exc",
    [
        EndpointConnectionError(endpoint_url="http://127.0.0.1:9"),
        ConnectTimeoutError(endpoint_url="http://127.0.0.1:9"),
        ReadTimeoutError(endpoint_url="http://127.0.0.1:9"),
        HTTPClientError(error="connection reset"),
    ],
)
def test_connection_errors_are_outages(exc: Exception) -> None:
    assert is_outage(exc)
    assert not is_conditional_failure(exc)
    assert not is_not_found(exc)
    assert error_code(exc) == ""


def test_unrelated_exceptions() -> None:
    for exc in (ValueError("x"), KeyError("k"), RuntimeError()):
        assert not is_outage(exc)
        assert not is_conditional_failure(exc)
        assert not is_not_found(exc)


def test_param_validation_is_not_an_outage() -> None:
    # A malformed request is our bug: it must not open the DynamoDB circuit breaker.
    assert not is_outage(ParamValidationError(report="bad"))


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("ConditionalCheckFailedException", True),
        ("TransactionCanceledException", True),
        ("ValidationException", False),
        ("ThrottlingException", False),
        ("PreconditionFailed", False),
    ],
)
def test_is_conditional_failure(code: str, expected: bool) -> None:
    assert is_conditional_failure(client_error(code)) is expected


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("NoSuchKey", 404, True),
        ("404", 404, True),
        ("NotFound", 404, True),
        ("NoSuchBucket", 404, True),
        ("AccessDenied", 403, False),
        ("ResourceNotFoundException", 400, False),
    ],
)
def test_is_not_found(code: str, status: int, expected: bool) -> None:
    assert is_not_found(client_error(code, status, "GetObject")) is expected
