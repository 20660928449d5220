"""The write pipeline (invariant 2): DynamoDB intent, S3 put, DynamoDB commit. 3 calls, no reads.

Failure at each step:
  1 fails           → S3 untouched, nothing to undo.
  2 fails           → the intent is rolled back (only if it is still ours); cache as before.
  3 fails / crash   → an in-flight entry readers ignore; the S3 event (same ETag), the
                      reconciler after the grace period, or a retry of the same write commits it.
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from loguru import logger

from engine import keys
from engine.awsmetrics import kind_of
from engine.documents import Document, doc_type
from engine.exceptions import WriteConflictError
from engine.l1 import L1Cache
from engine.settings import Settings
from engine.store.base import ConditionFailed
from engine.store.cache import CacheStore
from engine.store.item import CacheItem, Intent, live_attributes
from engine.store.objects import ObjectStore
from engine.timing import timed


@dataclass(frozen=True, slots=True)
class WriteResult:
    id: str
    type: str
    etag: str
    version: int | None
    unchanged: bool = False
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "etag": self.etag, "version": self.version}


@dataclass(frozen=True, slots=True)
class DeleteResult:
    id: str
    type: str
    deleted: bool
    dry_run: bool = False
    already_absent: bool = False  # a retried delete: S3 no longer held it (still a success)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "deleted": self.deleted,
            "already_absent": self.already_absent,
        }


class WritePipeline:
    """Thread-safe: it holds no per-write state; every write has its own transaction id."""

    def __init__(
        self,
        settings: Settings,
        cache: CacheStore,
        objects: ObjectStore,
        inflight_wait_s: float = 5.0,
        l1: L1Cache | None = None,
    ) -> None:
        self.settings = settings
        self.cache = cache
        self.objects = objects
        self.l1 = l1
        self.inflight_wait_s = inflight_wait_s
        self._prefixes = settings.prefixes

    def _key(self, type_name: str, doc_id: str) -> str:
        doc_type(type_name)
        return keys.s3_key(self._prefixes[type_name], doc_id)

    @kind_of("write", "docsync.put", ("doc", "expected_version"))
    def put(
        self, doc: Document, expected_version: int | None = None, actor: str | None = None
    ) -> WriteResult:
        """Write through the pipeline (S3 only with `cache_enabled = false`). `actor` (default:
        the `actor` setting) goes into the committed image, for history. This process's L1
        forgets the document at once, whatever the outcome: its next read sees the write."""
        try:
            if not self.settings.cache_enabled:
                return self._put_s3_only(doc)
            return self._put(doc, expected_version, actor)
        finally:
            if self.l1 is not None:
                self.l1.invalidate(doc.type, doc.id)

    @kind_of("write", "docsync.delete", ("type_name", "doc_id"))
    def delete(
        self,
        type_name: str,
        doc_id: str,
        expected_version: int | None = None,
        actor: str | None = None,
    ) -> DeleteResult:
        """Delete from S3 and tombstone the entry; deleting what is already gone succeeds
        (`already_absent`): a retried delete is not an error."""
        try:
            if not self.settings.cache_enabled:
                return self._delete_s3_only(type_name, doc_id)
            return self._delete(type_name, doc_id, expected_version, actor)
        finally:
            if self.l1 is not None:
                self.l1.invalidate(type_name, doc_id)

    def _put_s3_only(self, doc: Document) -> WriteResult:
        key = self._key(doc.type, doc.id)
        log = logger.bind(op="put", type=doc.type, id=doc.id, etag=doc.etag, cache="off")
        if self.settings.dry_run:
            log.bind(dry_run=True).info("dry run: would write {} (S3 only)", key)
            return WriteResult(doc.id, doc.type, doc.etag, None, dry_run=True)
        with timed(log):
            info = self.objects.put(key, doc.body)
        return WriteResult(doc.id, doc.type, info.etag, None)

    def _delete_s3_only(self, type_name: str, doc_id: str) -> DeleteResult:
        key = self._key(type_name, doc_id)
        log = logger.bind(op="delete", type=type_name, id=doc_id, cache="off")
        if self.settings.dry_run:
            log.bind(dry_run=True).info("dry run: would delete {} (S3 only)", key)
            return DeleteResult(doc_id, type_name, deleted=False, dry_run=True)
        with timed(log):
            present = self.objects.head(key) is not None
            if present:
                self.objects.delete(key)
        return DeleteResult(doc_id, type_name, deleted=present, already_absent=not present)

    def _put(self, doc: Document, expected_version: int | None, actor: str | None) -> WriteResult:
        key = self._key(doc.type, doc.id)
        etag = doc.etag
        log = logger.bind(op="put", type=doc.type, id=doc.id, etag=etag)
        if self.settings.dry_run:
            log.bind(dry_run=True).info(
                "dry run: would write {} ({} bytes): DynamoDB intent, S3 put, commit",
                key,
                len(doc.body),
            )
            return WriteResult(doc.id, doc.type, etag, None, dry_run=True)
        with timed(log) as bound:
            tx = uuid.uuid4().hex
            begun = self._begin(doc.type, doc.id, tx, etag, "put", expected_version)
            if isinstance(begun, WriteResult):
                bound.update(unchanged=True, version=begun.version)
                return begun
            try:
                info = self.objects.put(key, doc.body)
            except Exception:
                self._rollback(doc.type, doc.id, tx)
                raise
            attrs = live_attributes(
                doc,
                info,
                prefix=self._prefixes[doc.type],
                source="write",
                ttl_days=self.settings.cache_ttl_days,
                month_shards=self.settings.month_shards,
            )
            who = actor or self.settings.actor
            if who:
                attrs["actor"] = who
            version, previous = self._intent(doc.type, doc.id, begun)
            try:
                self.cache.commit_live(doc.type, doc.id, tx, attrs, version, previous)
            except ConditionFailed as exc:
                version = self._superseded(CacheItem.maybe(exc.item), info.etag)
            bound.update(version=version)
            return WriteResult(doc.id, doc.type, info.etag, version)

    def _delete(
        self,
        type_name: str,
        doc_id: str,
        expected_version: int | None,
        actor: str | None,
    ) -> DeleteResult:
        key = self._key(type_name, doc_id)
        log = logger.bind(op="delete", type=type_name, id=doc_id)
        if self.settings.dry_run:
            log.bind(dry_run=True).info(
                "dry run: would delete {}: intent, S3 delete, tombstone", key
            )
            return DeleteResult(doc_id, type_name, deleted=False, dry_run=True)
        with timed(log):
            tx = uuid.uuid4().hex
            begun = self._begin(type_name, doc_id, tx, "", "delete", expected_version)
            assert not isinstance(begun, WriteResult)
            try:
                present = self.objects.head(key) is not None
                deleted_at = self.objects.delete(key) if present else datetime.now(UTC)
            except Exception:
                self._rollback(type_name, doc_id, tx)
                raise
            version, previous = self._intent(type_name, doc_id, begun)
            if not present and version <= 1:  # never committed: nothing to tombstone
                self._rollback(type_name, doc_id, tx, "already absent: intent dropped")
                return DeleteResult(doc_id, type_name, deleted=False, already_absent=True)
            try:  # a retried delete still records the tombstone (S3 no longer holds the key)
                self.cache.commit_deleted(
                    type_name,
                    doc_id,
                    tx,
                    deleted_at,
                    self.settings.tombstone_ttl_days,
                    key=key,
                    prev_customers=previous,
                    actor=actor or self.settings.actor,
                )
            except ConditionFailed:
                log.warning("delete superseded by a concurrent write after the S3 delete")
            return DeleteResult(doc_id, type_name, deleted=present, already_absent=not present)

    # -- steps --------------------------------------------------------------------------------

    def _begin(
        self,
        type_name: str,
        doc_id: str,
        tx: str,
        etag: str,
        op: str,
        expected_version: int | None,
    ) -> Intent | WriteResult | None:
        """Step 1, waiting (bounded) while another writer's fresh intent is in flight. Returns
        the intent step 1 reported (None, or partial: moto may omit what did not change)."""
        deadline = time.monotonic() + self.inflight_wait_s
        delay = 0.02
        while True:
            stale = datetime.now(UTC) - timedelta(seconds=self.settings.inflight_grace_s)
            try:
                return Intent.from_attributes(
                    self.cache.begin(
                        type_name,
                        doc_id,
                        tx=tx,
                        etag=etag,
                        op=op,
                        stale_before=stale,
                        expected_version=expected_version,
                    )
                )
            except ConditionFailed as exc:
                item = CacheItem.maybe(exc.item)
                if op == "put" and item is not None and item.live and item.etag == etag:
                    return WriteResult(doc_id, type_name, etag, item.version, unchanged=True)
                current = item.version if item is not None else None
                if expected_version is not None and self._version_mismatch(item, expected_version):
                    raise WriteConflictError(
                        f"{type_name} {doc_id!r}: expected version {expected_version},"
                        f" current is {current or 0}",
                        current,
                    ) from None
                if time.monotonic() + delay > deadline:
                    raise WriteConflictError(
                        f"{type_name} {doc_id!r}: another write is in flight", current
                    ) from None
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 0.5)

    def _intent(self, type_name: str, doc_id: str, begun: Intent | None) -> tuple[int, list[str]]:
        """The version this write commits, and the committed image's customers (whose index
        entries the commit replaces). UPDATED_NEW may omit unchanged attributes (moto does,
        when a retry takes over its own earlier intent): then read them."""
        version = begun.version if begun is not None else None
        customers = begun.customers if begun is not None else None
        if version is None or customers is None:
            item = self.cache.get(type_name, doc_id)
            stored = item.intent if item is not None else None
            if version is None:
                version = stored.version if stored and stored.version is not None else None
                if version is None:
                    version = item.version if item is not None and item.version else 0
            if customers is None:
                customers = (stored.customers if stored else None) or ()
        return version, list(customers)

    @staticmethod
    def _version_mismatch(item: CacheItem | None, expected: int) -> bool:
        live = item is not None and item.live
        if expected == 0:
            return live
        return not live or (item.version if item is not None else 0) != expected

    def _rollback(
        self,
        type_name: str,
        doc_id: str,
        tx: str,
        why: str = "S3 step failed: cache entry restored",
    ) -> None:
        try:
            self.cache.rollback(type_name, doc_id, tx)
            logger.bind(op="rollback", type=type_name, id=doc_id).warning(why)
        except ConditionFailed:
            logger.bind(op="rollback", type=type_name, id=doc_id).warning(
                "rollback skipped: the entry is no longer ours"
            )
        except Exception as exc:  # the S3 error is the one to raise; this one is logged
            logger.bind(op="rollback", type=type_name, id=doc_id).error(
                "rollback failed ({}); the in-flight entry stays invisible to readers", exc
            )

    @staticmethod
    def _superseded(item: CacheItem | None, etag: str) -> int:
        """Commit refused: another writer took over. Fine if it committed the same content."""
        if item is not None and item.live and item.etag == etag and item.version is not None:
            return item.version
        raise WriteConflictError("write superseded by a concurrent write of other content")
