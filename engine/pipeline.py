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
from engine.exceptions import NotFoundError, WriteConflictError
from engine.settings import Settings
from engine.store.cache import CacheStore, ConditionFailed, live_attributes
from engine.store.objects import ObjectStore
from engine.sync import INLINE_BODY_LIMIT
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

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "deleted": self.deleted}


class WritePipeline:
    """Thread-safe: it holds no per-write state; every write has its own transaction id."""

    def __init__(
        self,
        settings: Settings,
        cache: CacheStore,
        objects: ObjectStore,
        inflight_wait_s: float = 5.0,
    ) -> None:
        self.settings = settings
        self.cache = cache
        self.objects = objects
        self.inflight_wait_s = inflight_wait_s
        self._prefixes = settings.prefixes()

    def _key(self, type_name: str, doc_id: str) -> str:
        doc_type(type_name)
        return keys.s3_key(self._prefixes[type_name], doc_id)

    @kind_of("write", "docsync.put", ("doc", "expected_version"))
    def put(self, doc: Document, expected_version: int | None = None) -> WriteResult:
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
                inline_limit=INLINE_BODY_LIMIT,
            )
            version = self._intent_version(doc.type, doc.id, begun)
            try:
                self.cache.commit_live(doc.type, doc.id, tx, attrs, version)
            except ConditionFailed as exc:
                version = self._superseded(exc.item, info.etag)
            bound.update(version=version)
            return WriteResult(doc.id, doc.type, info.etag, version)

    @kind_of("write", "docsync.delete", ("type_name", "doc_id"))
    def delete(
        self, type_name: str, doc_id: str, expected_version: int | None = None
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
                if self.objects.head(key) is None:
                    raise NotFoundError(f"{type_name} {doc_id!r} does not exist")
                deleted_at = self.objects.delete(key)
            except NotFoundError:
                self._rollback(type_name, doc_id, tx, "nothing to delete: intent dropped")
                raise
            except Exception:
                self._rollback(type_name, doc_id, tx)
                raise
            try:
                self.cache.commit_deleted(
                    type_name, doc_id, tx, deleted_at, self.settings.tombstone_ttl_days, key=key
                )
            except ConditionFailed:
                log.warning("delete superseded by a concurrent write after the S3 delete")
            return DeleteResult(doc_id, type_name, deleted=True)

    # -- steps --------------------------------------------------------------------------------

    def _begin(
        self,
        type_name: str,
        doc_id: str,
        tx: str,
        etag: str,
        op: str,
        expected_version: int | None,
    ) -> dict[str, Any] | WriteResult:
        """Step 1, waiting (bounded) while another writer's fresh intent is in flight."""
        deadline = time.monotonic() + self.inflight_wait_s
        delay = 0.02
        while True:
            stale = datetime.now(UTC) - timedelta(seconds=self.settings.inflight_grace_s)
            try:
                return self.cache.begin(
                    type_name,
                    doc_id,
                    tx=tx,
                    etag=etag,
                    op=op,
                    stale_before=stale,
                    expected_version=expected_version,
                )
            except ConditionFailed as exc:
                item = exc.item or {}
                if op == "put" and item.get("state") == "live" and item.get("etag") == etag:
                    return WriteResult(
                        doc_id, type_name, etag, int(item["version"]), unchanged=True
                    )
                current = int(item["version"]) if "version" in item else None
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

    def _intent_version(self, type_name: str, doc_id: str, begun: dict[str, Any]) -> int:
        """The version this write commits. UPDATED_NEW may omit an unchanged `p_version`
        (moto does, when a retry takes over its own earlier intent): then read it."""
        if "p_version" in begun:
            return int(begun["p_version"])
        item = self.cache.get_item(type_name, doc_id) or {}
        return int(item.get("p_version", item.get("version", 0)))

    @staticmethod
    def _version_mismatch(item: dict[str, Any], expected: int) -> bool:
        if expected == 0:
            return item.get("state") == "live"
        return item.get("state") != "live" or int(item.get("version", 0)) != expected

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
    def _superseded(item: dict[str, Any] | None, etag: str) -> int:
        """Commit refused: another writer took over. Fine if it committed the same content."""
        if item and item.get("state") == "live" and item.get("etag") == etag:
            return int(item["version"])
        raise WriteConflictError("write superseded by a concurrent write of other content")
