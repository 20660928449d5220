"""Gets (invariant 4): a cache hit, or S3 plus a backfill that never goes backwards.

While DynamoDB fails (its circuit breaker open), a get is answered from S3 and says so; with
the cache switched off (`cache_enabled = false`) it reads S3 only. The L1, when there is one,
answers a hit it holds without any AWS call.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from loguru import logger

from engine import cloudwatch, keys, metrics
from engine.awsmetrics import kind_of
from engine.documents import Document, doc_type, parse_document
from engine.exceptions import CacheUnavailableError, DocsyncError, InvalidDocumentError
from engine.l1 import L1Cache
from engine.settings import Settings
from engine.store.cache import CacheEntry, CacheStore
from engine.store.objects import ObjectStore, StoredObject
from engine.sync import CacheSync
from engine.timing import timed

if TYPE_CHECKING:
    from engine.reader import ReadStats

Source = Literal["cache", "s3"]


@dataclass(frozen=True, slots=True)
class ReadResult:
    document: dict[str, Any]
    source: Source
    cache: str  # hit | miss | bypass
    version: int | None = None  # the cached entry's version (hits only): an HTTP ETag


class Gets:
    """The Reader's gets (engine/reader/__init__.py builds the state they share)."""

    settings: Settings
    cache: CacheStore
    objects: ObjectStore
    l1: L1Cache | None
    stats: ReadStats
    sync: CacheSync
    _prefixes: dict[str, str]

    @kind_of("read", "docsync.get", ("type_name", "doc_id"))
    def get(self, type_name: str, doc_id: str) -> ReadResult:
        doc_type(type_name)
        key = keys.s3_key(self._prefixes[type_name], doc_id)
        log = logger.bind(op="get", type=type_name, id=doc_id)
        started = time.perf_counter()

        def record(outcome: str, backfilled: bool = False) -> None:
            seconds = time.perf_counter() - started
            self.stats.record("hit" if outcome == "l1" else outcome, seconds * 1000, backfilled)
            cloudwatch.record("QueryLatency", seconds * 1000)
            metrics.READS.labels(outcome).inc()
            metrics.READ_SECONDS.labels(outcome).observe(seconds)

        with timed(log) as fields:
            if not self.settings.cache_enabled:  # rollout/rollback mode: S3 only
                fields.update(cache="off", source="s3")
                stored = self.objects.get(key)
                record("bypass")
                return ReadResult(parse_body(stored.body, key), "s3", "off")
            l1_key = ("get", type_name, doc_id)
            if self.l1 is not None:
                held = self.l1.get(l1_key)
                if held is not None:
                    body, version = held
                    fields.update(cache="l1", source="cache", version=version)
                    record("l1")
                    return ReadResult(parse_body(body, key), "cache", "l1", version)
                ticket = self.l1.ticket()
            try:
                entry = self.cache.get(type_name, doc_id)
            except CacheUnavailableError as exc:
                fields.update(cache="bypass", source="s3", reason=str(exc))
                stored = self.objects.get(key)
                record("bypass")
                return ReadResult(parse_body(stored.body, key), "s3", "bypass")
            if entry is not None and entry.servable():
                document = self._entry_body(entry, key)
                if document is not None:
                    fields.update(cache="hit", source="cache", version=entry.version)
                    if self.l1 is not None and entry.body is not None:
                        self.l1.put(
                            l1_key,
                            (entry.body, entry.version),
                            len(entry.body) + 200,
                            ticket,
                            float(entry.expires_at or 0),
                        )
                    record("hit")
                    return ReadResult(document, "cache", "hit", entry.version)
            fields.update(cache="miss", source="s3")
            stored = self.objects.get(key)
            document = parse_body(stored.body, key)
            fields["backfilled"] = self._backfill(type_name, stored, absent=entry is None)
            record("miss", fields["backfilled"])
            return ReadResult(document, "s3", "miss")

    def _entry_body(self, entry: CacheEntry, key: str) -> dict[str, Any] | None:
        if entry.body is not None:
            return parse_body(entry.body, key)
        if entry.body_in_s3:  # oversized document: metadata-only entry, body from S3
            stored = self.objects.get(key)
            if stored.info.etag == entry.etag:
                return parse_body(stored.body, key)
        return None

    def _backfill(self, type_name: str, stored: StoredObject, absent: bool) -> bool:
        """Fill the cache after a miss, unless out of window, invalid, dry run or not newer.
        `absent`: the get found no entry at all, so the fill may be one put-if-absent."""
        if self.settings.dry_run or not keys.in_window(
            stored.info.last_modified, self.settings.cache_ttl_days
        ):
            return False
        try:
            doc = parse_document(stored.body, type_name)
        except InvalidDocumentError:
            return False
        try:
            filled = self.fill(doc, stored, source="backfill", absent=absent)
        except DocsyncError as exc:  # the read succeeded; a failed fill only costs a miss
            logger.bind(op="get.backfill", type=type_name, id=doc.id).warning("not filled: {}", exc)
            return False
        return filled

    def fill(self, doc: Document, stored: StoredObject, source: str, absent: bool = False) -> bool:
        """Cache what S3 returned, unless the entry is newer or being written."""
        return self.sync.upsert(doc, stored, source, current=None, read=absent) == "applied"


def parse_body(body: bytes, key: str) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise InvalidDocumentError(
            f"{key} is not a valid JSON document: {exc}", ["<body>"]
        ) from exc
    if not isinstance(value, dict):
        raise InvalidDocumentError(f"{key} is not a JSON object", ["<body>"])
    return value
