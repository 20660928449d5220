"""botocore errors → the project's exceptions, decided in one place."""

from __future__ import annotations

from botocore.exceptions import (
    ClientError,
    ConnectionError,
    HTTPClientError,
    ReadTimeoutError,
)

THROTTLING = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "Throttling",
    "SlowDown",
    "ServiceUnavailable",
    "InternalServerError",
    "InternalError",
}


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def is_outage(exc: BaseException) -> bool:
    """Errors that mean the service is unavailable (after botocore's own retries)."""
    if isinstance(exc, ConnectionError | HTTPClientError | ReadTimeoutError):
        return True
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error_code(exc) in THROTTLING or int(status) >= 500
    return False  # e.g. ParamValidationError: our bug, not DynamoDB's outage


def is_conditional_failure(exc: BaseException) -> bool:
    return error_code(exc) in {"ConditionalCheckFailedException", "TransactionCanceledException"}


NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound", "NoSuchBucket"})  # S3's


def is_not_found(exc: BaseException) -> bool:
    return error_code(exc) in NOT_FOUND
