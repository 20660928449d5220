"""The project's exceptions, under one root.

DocsyncError
├── ConfigError                 a setting has a wrong value (exit 2)
│   └── MonthShardsChangedError the table's month buckets were written with another count
├── InvalidDocumentError        a document fails validation; names the field (exit 2)
├── InvalidPageTokenError       a forged, corrupted or mismatched page token (exit 2)
├── QueryOutsideWindowError     a range older than the cache window, refused (exit 2)
├── NotFoundError               no such document (exit 3)
├── WriteConflictError          expected_version mismatch or a concurrent write (exit 1)
├── RateLimitTimeoutError       no token within the wait bound (exit 1)
└── StoreError                  S3 or DynamoDB failed after botocore's retries (exit 1)
    ├── CacheUnavailableError   DynamoDB is failing (or its circuit breaker is open)
    ├── ObjectStoreError        S3 is failing
    └── QueueError              SQS is failing
"""

from __future__ import annotations


class DocsyncError(Exception):
    """Root of every error the engine raises on purpose."""

    exit_code = 1


class ConfigError(DocsyncError):
    exit_code = 2


class MonthShardsChangedError(ConfigError):
    """`month_shards` differs from the count the table's entries were written with."""


class InvalidDocumentError(DocsyncError):
    exit_code = 2

    def __init__(self, message: str, fields: list[str] | None = None) -> None:
        super().__init__(message)
        self.fields = fields or []


class InvalidPageTokenError(DocsyncError):
    exit_code = 2


class QueryOutsideWindowError(DocsyncError):
    exit_code = 2


class NotFoundError(DocsyncError):
    exit_code = 3


class WriteConflictError(DocsyncError):
    exit_code = 1

    def __init__(self, message: str, current_version: int | None = None) -> None:
        super().__init__(message)
        self.current_version = current_version


class RateLimitTimeoutError(DocsyncError):
    exit_code = 1


class StoreError(DocsyncError):
    exit_code = 1


class CacheUnavailableError(StoreError):
    pass


class ObjectStoreError(StoreError):
    pass


class QueueError(StoreError):
    pass
