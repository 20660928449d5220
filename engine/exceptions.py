"""The project's exceptions, under one root. Each adapter maps them to its own answer in one
table keyed by class (the most specific class wins): exit codes in engine/cli/output.py, HTTP
statuses in engine/serve/errors.py. No flag name, exit code or status lives here.

DocsyncError
├── ConfigError                     a setting has a wrong value
│   └── MonthShardsChangedError     the table's month buckets were written with another count
├── InvalidRequestError             the caller asked for something invalid; `fields` names what
│   ├── InvalidDocumentError        a document fails validation
│   ├── InvalidPageTokenError       a forged, corrupted or mismatched page token
│   ├── QueryOutsideWindowError     a range older than the cache window, refused
│   ├── InvalidTimeError            a time that does not parse, or a range that is not one
│   └── InventoryError              an S3 Inventory that cannot be used as given (reconciler)
├── NotFoundError                   no such document (or run, or stream)
├── WriteConflictError              expected_version mismatch or a concurrent write
│   └── PreconditionFailedError     If-Match / If-None-Match does not hold (HTTP)
├── RateLimitTimeoutError           no token within the wait bound
├── MalformedEventError             a queue message that is not an S3 notification (also a
│                                   ValueError, as it was before it joined the tree)
├── StoreError                      S3, DynamoDB or SQS failed after botocore's retries
│   ├── CacheUnavailableError       DynamoDB is failing (or its circuit breaker is open)
│   ├── ObjectStoreError            S3 is failing
│   └── QueueError                  SQS is failing
│       └── MoveTaskUnsupportedError   the endpoint has no SQS message move tasks
└── StreamsError                    a stream consumer cannot go on as it is
    ├── MalformedRecordError        a record that cannot be decoded: dead-lettered, never retried
    ├── LeaseLostError              another consumer holds the stream's lease now
    └── StreamNotFoundError         the table has no stream (enable it with `docsync init`)
"""

from __future__ import annotations


class DocsyncError(Exception):
    """Root of every error the engine raises on purpose."""


class ConfigError(DocsyncError):
    pass


class MonthShardsChangedError(ConfigError):
    """`month_shards` differs from the count the table's entries were written with."""


class InvalidRequestError(DocsyncError):
    """Invalid input from whoever called; `fields` names what is wrong, in the library's terms
    (an adapter may show them as its own flags or parameters)."""

    def __init__(self, message: str, fields: list[str] | None = None) -> None:
        super().__init__(message)
        self.fields = fields or []


class InvalidDocumentError(InvalidRequestError):
    pass


class InvalidPageTokenError(InvalidRequestError):
    pass


class QueryOutsideWindowError(InvalidRequestError):
    pass


class InvalidTimeError(InvalidRequestError):
    pass


class InventoryError(InvalidRequestError):
    """The inventory cannot be used as given (bad URI, no manifest, wrong format, a checksum
    that does not match)."""


class NotFoundError(DocsyncError):
    pass


class WriteConflictError(DocsyncError):
    def __init__(self, message: str, current_version: int | None = None) -> None:
        super().__init__(message)
        self.current_version = current_version


class PreconditionFailedError(WriteConflictError):
    """If-Match / If-None-Match does not hold for the current document."""


class RateLimitTimeoutError(DocsyncError):
    pass


class MalformedEventError(DocsyncError, ValueError):
    """A message that is not JSON or not an S3 notification: it goes to the dead-letter path."""


class StoreError(DocsyncError):
    pass


class CacheUnavailableError(StoreError):
    pass


class ObjectStoreError(StoreError):
    pass


class QueueError(StoreError):
    pass


class MoveTaskUnsupportedError(QueueError):
    """The endpoint has no StartMessageMoveTask / ListMessageMoveTasks (moto 5.2)."""


class StreamsError(DocsyncError):
    pass


class MalformedRecordError(StreamsError):
    pass


class LeaseLostError(StreamsError):
    pass


class StreamNotFoundError(StreamsError):
    pass
