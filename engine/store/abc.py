"""Every store's interface in one module (as APScheduler keeps its `abc.py`).

Each interface has the AWS implementation beside its siblings in `engine/store/` and an
in-memory twin in `engine/store/memory/` with the same semantics; one contract suite
(`tests/integration/test_store_contract_*.py`) runs the same cases against both, so logic
tested on memory holds on AWS.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from engine.store.leases import Checkpoint, PendingEmission
from engine.store.objects import ObjectInfo, StoredObject
from engine.store.queue import QueueRef
from engine.store.stream import Lost


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


class LeaseHolder(Protocol):
    """One holder at a time of `key` until its expiry (the stream consumer, a reconcile lock):
    `engine/store/leases.py` `Lease`, `engine/store/memory/leases.py` `MemoryLease`."""

    key: str
    owner: str
    ttl_s: float

    def try_acquire(self, status: Mapping[str, Any] | None = None) -> bool:
        """Take or renew: True when free, expired or already ours; else False (no error)."""
        ...

    def release(self, status: Mapping[str, Any] | None = None) -> None:
        """Free it at once, only if still ours (a non-owner's release does nothing)."""
        ...

    def fence(self) -> dict[str, Any]:
        """The condition a checkpoint write carries: `owner` still holds `key`."""
        ...


class CheckpointStore(Protocol):
    """A stream consumer's checkpoints and pending emission; every write is fenced by the
    lease (`LeaseLostError` once another owner holds it)."""

    stream_arn: str

    def load(self, shard_ids: list[str]) -> dict[str, Checkpoint]:
        """The saved checkpoints among `shard_ids` (a shard never saved is absent)."""
        ...

    def load_pending(self) -> PendingEmission | None:
        """The emission begun and not finished, None if there is none."""
        ...

    def begin(self, pending: PendingEmission, lease: LeaseHolder) -> None:
        """Record an emission before its rows are written (replacing any other)."""
        ...

    def drop_pending(self, lease: LeaseHolder) -> None:
        """Forget a begun emission whose rows were never stored."""
        ...

    def save(
        self, updates: Mapping[str, Checkpoint], lease: LeaseHolder, *, settle: bool = False
    ) -> None:
        """Store checkpoints; with `settle`, also remove the pending emission."""
        ...


class Queue(Protocol):
    """An SQS queue as the consume loop (`engine/store/consume.py`) and the senders use it:
    `engine/store/queue.py` `QueueStore`, `engine/store/memory/queue.py` `MemoryQueueStore`.
    A received message stays hidden for its visibility timeout (or until it is changed); each
    receive gives a new receipt handle; delete only after success."""

    def url(self, name: str) -> str:
        """The queue's URL; `NotFoundError` if there is no such queue."""
        ...

    def lookup(self, name: str) -> QueueRef: ...

    def attributes(self, url: str, name: str = "") -> dict[str, str]:
        """Including QueueArn, ApproximateNumberOfMessages(NotVisible)."""
        ...

    def receive(
        self,
        url: str,
        count: int,
        visibility_s: int | None,
        wait_s: int = 1,
        system_attributes: Sequence[str] = ("All",),
        message_attributes: Sequence[str] = ("All",),
    ) -> list[dict[str, Any]]:
        """Up to `count` visible messages, hidden for `visibility_s` from now."""
        ...

    def change_visibility(self, url: str, receipt: str, seconds: int) -> None:
        """Hide a received message `seconds` from now (0: visible at once)."""
        ...

    def delete(self, url: str, receipt: str) -> None: ...

    def send(self, url: str, body: str, attributes: dict[str, Any] | None = None) -> None: ...

    def release(self, url: str, receipts: list[str]) -> int:
        """Make received messages visible at once; how many were."""
        ...

    def send_batch(self, url: str, entries: list[dict[str, Any]]) -> set[str]:
        """The `Id`s sent."""
        ...

    def delete_batch(self, url: str, receipts: dict[str, str]) -> set[str]:
        """The ids (id → receipt handle) deleted."""
        ...


class CacheTable(Protocol):
    """The DynamoDB client operations `CacheStore` calls, with boto3's keyword arguments and
    wire-format answers. Its twin is a client (`memory/cache.py` `MemoryDynamoDB`), not a second
    CacheStore: the real store's conditions, transactions and index writes run on both."""

    def get_item(self, **kwargs: Any) -> Any: ...

    def put_item(self, **kwargs: Any) -> Any: ...

    def update_item(self, **kwargs: Any) -> Any: ...

    def delete_item(self, **kwargs: Any) -> Any: ...

    def query(self, **kwargs: Any) -> Any: ...

    def scan(self, **kwargs: Any) -> Any: ...

    def batch_get_item(self, **kwargs: Any) -> Any: ...

    def transact_write_items(self, **kwargs: Any) -> Any: ...


class Stream(Protocol):
    """The cache table's change stream as the consumers read it: `engine/store/stream.py`
    `StreamStore` (DynamoDB Streams), `engine/store/memory/stream.py` `MemoryStreamStore`.
    Each shard is an ordered log; what the retention took comes back as a `Lost`, not raised."""

    def table_stream(self, table: str) -> tuple[str | None, bool]:
        """The table's latest stream ARN (None: it never had one) and whether it is enabled."""
        ...

    def latest_arn(self, table: str) -> str | None: ...

    def shards(self, arn: str) -> list[dict[str, Any]]:
        """Every shard as DescribeStream gives it: ShardId, ParentShardId, and a
        SequenceNumberRange whose EndingSequenceNumber says the shard is closed."""
        ...

    def iterator(
        self, arn: str, shard_id: str, kind: str, sequence: str | None = None
    ) -> str | Lost:
        """TRIM_HORIZON, LATEST, AT_ or AFTER_SEQUENCE_NUMBER; `Lost.TRIMMED` when the
        position is past the retention, `Lost.SHARD_GONE` when the shard is."""
        ...

    def records(self, iterator: str, limit: int) -> dict[str, Any] | Lost:
        """GetRecords: `Records` in sequence order and `NextShardIterator` (absent once a
        closed shard is read to its end); `Lost.EXPIRED` or `Lost.TRIMMED`."""
        ...


class History(Protocol):
    """The history table (`engine/store/history.py` `HistoryStore`; its twin is the same
    store on `MemoryDynamoDB`): entries keyed by (`pk` = type#id, `version`)."""

    table: str

    def put_many(self, entries: Iterable[dict[str, Any]]) -> int:
        """Store entries, overwriting any with the same key (the last one of a repeated key
        wins); returns how many were stored."""
        ...

    def list(self, type_name: str, doc_id: str, limit: int | None = None) -> list[dict[str, Any]]:
        """A document's entries, newest version first."""
        ...

    def get(self, type_name: str, doc_id: str, version: int) -> dict[str, Any] | None: ...

    def scan(self) -> Iterator[dict[str, Any]]:
        """Every entry, in no particular order."""
        ...
