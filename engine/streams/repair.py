"""Targeted repair of one key the stream flagged (engine/streams/pending.py), through
`CacheSync.converge` (engine/sync.py), S3 first: no listing, a handful of calls.

For a stuck intent (the writer died after, or during, its S3 put, and the S3 event may be
lost), S3 decides:
  S3 holds the intent's ETag (or, for a delete, nothing)  → the intent is committed;
  S3 still holds the committed image (or nothing, for a new entry) → the intent is rolled
      back (conditional on its `p_tx`: a writer that takes it over meanwhile wins);
  S3 holds something else                                → the entry converges to it.
For a re-check, the entry converges to S3 (a conditional GET: nothing to do costs 2 calls).
Every write is conditional, so a repair racing a live writer or listener never makes the
entry older. Each repair is logged and counted (docsync_stream_repairs_total{reason,outcome}).
"""

from __future__ import annotations

import time
from typing import Literal

from loguru import logger

from engine import keys, metrics
from engine.exceptions import DocsyncError
from engine.settings import Settings
from engine.store.abc import Objects
from engine.store.base import ConditionFailed
from engine.store.cache import CacheStore
from engine.store.item import CacheItem, now_ms
from engine.store.objects import StoredObject
from engine.streams.pending import PendingKey, PendingKeys
from engine.sync import CacheSync

Outcome = Literal[
    "applied",  # the entry now equals S3
    "committed",  # the stuck intent was committed (S3 holds its content)
    "rolled_back",  # the stuck intent was dropped (its S3 step never happened)
    "in_sync",  # nothing to do: the cache already equals S3, or the key is gone
    "in_flight",  # the intent is still fresh by the writer's clock: later
    "stale",  # a newer write got there first
    "invalid",  # S3 holds no valid document for the key
    "out_of_window",  # older than the cache window: left to expire
    "dry_run",  # nothing written
    "failed",  # an AWS error: tried again at the next pass
]
RETRY = frozenset({"in_flight", "failed"})


class StreamRepairer:
    def __init__(
        self, settings: Settings, cache: CacheStore, objects: Objects, sync: CacheSync
    ) -> None:
        self.settings = settings
        self.cache = cache
        self.objects = objects
        self.sync = sync
        self._prefixes = settings.prefixes
        self.retry_s = max(1.0, settings.inflight_grace_s / 4)

    def run_due(self, pending: PendingKeys, now: int | None = None) -> dict[str, int]:
        """Repair every key past its deadline; keys to retry get a later deadline."""
        counts: dict[str, int] = {}
        at = now_ms() if now is None else now
        for key in pending.due(at):
            outcome = self.repair(key)
            counts[outcome] = counts.get(outcome, 0) + 1
            if outcome in RETRY:
                pending.defer(key, at + int(self.retry_s * 1000))
            else:
                pending.done(key)
        metrics.STREAM_PENDING_KEYS.set(len(pending))
        return counts

    def resolved(self, key: PendingKey) -> bool:
        """Has a stuck-intent key's intent already gone from the table (committed or rolled
        back)? One GetItem: what a stateless driver asks before it waits for a deadline."""
        if key.reason != "stuck_intent":
            return False
        type_name, doc_id = key.type_and_id
        try:
            item = self.cache.get(type_name, doc_id)
        except DocsyncError:
            return False
        return item is None or item.pending_tx != key.tx

    def repair(self, key: PendingKey) -> Outcome:
        type_name, doc_id = key.type_and_id
        log = logger.bind(op="stream.repair", type=type_name, id=doc_id, reason=key.reason)
        started = time.perf_counter()
        try:
            outcome = self._repair(key, type_name, doc_id)
        except DocsyncError as exc:
            log.error("repair failed, will retry: {}", exc)
            outcome = "failed"
        metrics.STREAM_REPAIRS.labels(key.reason, outcome).inc()
        late_s = round(max(0, now_ms() - key.due_ms) / 1000, 3)
        log.bind(
            outcome=outcome,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
            late_s=late_s,
            dry_run=self.settings.dry_run,
        ).info("{}", outcome)
        return outcome

    def _repair(self, key: PendingKey, type_name: str, doc_id: str) -> Outcome:
        if type_name not in self._prefixes:
            return "in_sync"
        current = self.cache.get(type_name, doc_id)
        if current is None:
            return "in_sync"  # rolled back, or expired: nothing cached, nothing to repair
        tx = current.pending_tx
        if key.reason == "stuck_intent" and tx != key.tx:
            return "in_sync"  # that intent was committed or dropped; a new one is its own key
        intent = current.intent
        if (
            intent is not None
            and (intent.at or 0) > now_ms() - self.settings.inflight_grace_s * 1000
        ):
            return "in_flight"
        if self.settings.dry_run:
            s3_key = keys.s3_key(self._prefixes[type_name], doc_id)
            logger.bind(op="stream.repair", key=s3_key, dry_run=True).info(
                "dry run: would converge {} to S3", s3_key
            )
            return "dry_run"
        look = self.sync.look(type_name, doc_id, current.committed_etag)
        if tx and _matches_committed(current, look.stored):
            return self._rollback(type_name, doc_id, tx)
        done = self.sync.converge(type_name, doc_id, "repair", current=current, look=look)
        return "in_sync" if done.outcome == "unchanged" else done.outcome  # 304, or gone

    def _rollback(self, type_name: str, doc_id: str, tx: str) -> Outcome:
        """S3 holds exactly what is committed: the intent's S3 step never happened."""
        try:
            self.cache.rollback(type_name, doc_id, tx)
        except ConditionFailed:
            return "stale"
        return "rolled_back"


def _matches_committed(current: CacheItem, stored: StoredObject | None) -> bool:
    """Does S3 hold the committed image, so the intent's own write never landed?"""
    intent = current.intent
    if stored is None:
        return intent is not None and intent.op == "put" and current.state in (None, "deleted")
    pending_etag = intent.etag if intent is not None else None
    return current.live and current.etag == stored.info.etag != pending_etag
