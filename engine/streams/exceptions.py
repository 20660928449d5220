"""Errors of the stream consumers, under the project's root (engine/exceptions.py).

DocsyncError
└── StreamsError                 a stream consumer cannot go on as it is
    ├── MalformedRecordError     a record that cannot be decoded: dead-lettered, never retried
    └── StreamNotFoundError      the table has no stream (enable it with `docsync init`)
(The lease lost to another holder is engine/store/leases.py's LeaseLostError, a StoreError.)
"""

from __future__ import annotations

from engine.exceptions import DocsyncError


class StreamsError(DocsyncError):
    exit_code = 1


class MalformedRecordError(StreamsError):
    pass


class StreamNotFoundError(StreamsError):
    exit_code = 3
