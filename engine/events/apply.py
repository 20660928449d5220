"""Apply one S3 event, level-triggered (invariant 3): the event only says "key K changed";
S3 is read now and the cache made equal to it through the shared convergence rules.

Cost: GetItem, then GetObject — conditional (If-None-Match) when the cache holds a committed
copy, so a duplicate is 2 calls and no download — then one conditional write: 3 calls for a
change, a new key or a delete.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Literal

from loguru import logger

from engine import keys, metrics
from engine.awsmetrics import kind_of
from engine.documents import parse_document
from engine.events.parse import ObjectEvent
from engine.exceptions import InvalidDocumentError, NotFoundError
from engine.l1 import L1Cache
from engine.settings import Settings
from engine.store.cache import CacheStore
from engine.store.objects import ObjectStore
from engine.sync import CacheSync

Outcome = Literal[
    "applied",  # upserted or tombstoned
    "committed",  # a crashed pipeline write's intent, committed (same ETag in S3)
    "duplicate",  # the cache already equals S3
    "stale",  # a newer observation is already cached
    "ignored",  # another bucket, the reserved prefix, or not a document key
    "out_of_window",  # older than the cache window: not cached
    "invalid",  # the object is not a valid document: not cached, not retried
    "in_flight",  # a fresh pipeline write is in progress: retry later
]
APPLIED = {"applied", "committed"}
RETRY = {"in_flight"}


class EventApplier:
    def __init__(
        self, settings: Settings, cache: CacheStore, objects: ObjectStore, sync: CacheSync
    ) -> None:
        self.settings = settings
        self.cache = cache
        self.objects = objects
        self.sync = sync
        self._prefixes = settings.prefixes()
        self.l1: L1Cache | None = None  # forgets a document this process just applied

    def target(self, event: ObjectEvent) -> tuple[str, str] | None:
        if event.bucket != self.settings.bucket or event.key.startswith(
            self.settings.reserved_prefix
        ):
            return None
        return keys.key_to_doc(event.key, self._prefixes)

    @kind_of("listener", "docsync.apply", ("event",))
    def apply(self, event: ObjectEvent) -> Outcome:
        started = time.perf_counter()
        log = logger.bind(op="event.apply", key=event.key, event=event.name)
        outcome = self._apply(event)
        if self.l1 is not None and outcome in APPLIED:
            target = self.target(event)
            if target is not None:
                self.l1.invalidate(*target)
        seconds = time.perf_counter() - started
        metrics.EVENTS.labels(outcome).inc()
        metrics.EVENT_APPLY_SECONDS.observe(seconds)
        fields: dict[str, object] = {
            "outcome": outcome,
            "duration_ms": round(seconds * 1000, 2),
            "dry_run": self.settings.dry_run,
        }
        if event.event_time is not None and outcome in APPLIED:
            lag = (datetime.now(UTC) - event.event_time).total_seconds()
            metrics.SYNC_LAG_SECONDS.observe(max(lag, 0.0))
            fields["lag_s"] = round(lag, 3)
        log.bind(**fields).info("{}", outcome)
        return outcome

    def _apply(self, event: ObjectEvent) -> Outcome:
        target = self.target(event)
        if target is None:
            return "ignored"
        type_name, doc_id = target
        item = self.cache.get_item(type_name, doc_id)
        cached_etag = (
            item.get("etag")
            if item is not None and item.get("state") == "live" and not item.get("p_tx")
            else None
        )
        try:
            if cached_etag:  # a conditional GET: a duplicate costs no download
                stored = self.objects.get_if_changed(event.key, str(cached_etag))
                if stored is None:
                    return "duplicate"
            else:
                stored = self.objects.get(event.key)
        except NotFoundError:
            return self._absent(type_name, doc_id, event, item)
        if not keys.in_window(stored.info.last_modified, self.settings.cache_ttl_days):
            return "out_of_window"
        try:
            doc = parse_document(stored.body, type_name)
            if doc.id != doc_id:
                raise InvalidDocumentError(f"id {doc.id!r} does not match the key", ["id"])
        except InvalidDocumentError as exc:
            logger.bind(op="event.invalid", key=event.key).warning("not a valid document: {}", exc)
            if item is not None and item.get("state") == "live":
                # S3 no longer holds the cached document: readers must not be served it.
                self.sync.tombstone(type_name, doc_id, stored.info.last_modified, "event")
            return "invalid"
        sequencer = event.sequencer if event.etag == stored.info.etag else None
        return self.sync.upsert(doc, stored, "event", sequencer, current=item, read=True)

    def _absent(
        self, type_name: str, doc_id: str, event: ObjectEvent, item: dict[str, object] | None
    ) -> Outcome:
        if item is not None and item.get("state") == "deleted" and not item.get("p_tx"):
            return "duplicate"
        deleted_at = datetime.now(UTC)
        if event.kind == "removed" and event.event_time is not None:
            deleted_at = event.event_time
        sequencer = event.sequencer if event.kind == "removed" else None
        return self.sync.tombstone(
            type_name, doc_id, deleted_at, "event", sequencer, current=item, read=True
        )
