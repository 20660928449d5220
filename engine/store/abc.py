"""Every store's interface in one module (as APScheduler keeps its `abc.py`).

Each interface has the AWS implementation beside its siblings in `engine/store/` and an
in-memory twin in `engine/store/memory.py` with the same semantics; one contract suite
(`tests/integration/test_store_contract_*.py`) runs the same cases against both, so logic
tested on memory holds on AWS.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, Protocol

from engine.store.objects import ObjectInfo, StoredObject


class Objects(Protocol):
    """S3, the source of truth, as the engine uses it: one bucket."""

    bucket: str

    def get(self, key: str) -> StoredObject:
        """The object; `NotFoundError` if there is none."""
        ...

    def get_version(self, key: str, version_id: str) -> StoredObject:
        """One version (bucket versioning on); `NotFoundError` if there is none."""
        ...

    def get_if_changed(self, key: str, etag: str) -> StoredObject | None:
        """None while the object still has `etag` (no body sent), else the object."""
        ...

    def head(self, key: str) -> ObjectInfo | None:
        """The object's metadata, or None if there is none."""
        ...

    def put(self, key: str, body: bytes) -> ObjectInfo:
        """Store `body`; returns S3's ETag (the body's MD5) and S3's clock for the write."""
        ...

    def delete(self, key: str) -> datetime:
        """Remove the object (no error if there is none); returns S3's clock for it."""
        ...

    def list(self, prefix: str, start_after: str = "") -> Iterator[ObjectInfo]:
        """Every object under `prefix` after `start_after`, in UTF-8 byte order of keys."""
        ...


class CacheTable(Protocol):
    """The DynamoDB client operations `CacheStore` calls, with boto3's keyword arguments and
    wire-format answers. Its twin is a client (`memory_cache.MemoryDynamoDB`), not a second
    CacheStore: the real store's conditions, transactions and index writes run on both."""

    def get_item(self, **kwargs: Any) -> Any: ...

    def put_item(self, **kwargs: Any) -> Any: ...

    def update_item(self, **kwargs: Any) -> Any: ...

    def delete_item(self, **kwargs: Any) -> Any: ...

    def query(self, **kwargs: Any) -> Any: ...

    def scan(self, **kwargs: Any) -> Any: ...

    def batch_get_item(self, **kwargs: Any) -> Any: ...

    def transact_write_items(self, **kwargs: Any) -> Any: ...
