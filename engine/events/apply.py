"""Apply one S3 event, level-triggered (invariant 3): the event only says "key K changed";
S3 is read now and the cache made equal to it by `CacheSync.converge` (engine/sync.py).

Cost: GetItem, then GetObject — conditional (If-None-Match) when the cache holds a committed
copy, so a duplicate is 2 calls and no download — then one conditional write: 3 calls for a
change, a new key or a delete.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from loguru import logger

from engine import keys, metrics
from engine.awsmetrics import kind_of
from engine.events.parse import ObjectEvent
from engine.l1 import L1Cache
from engine.settings import Settings
from engine.sync import CacheSync, Hint

if TYPE_CHECKING:
    from engine.app import Engine

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
    """The listener's one step: `sync.converge` does the reads and the write; this maps an
    S3 event to a key and a hint, and counts, logs and forgets (L1) what it applied."""

    def __init__(self, settings: Settings, sync: CacheSync, l1: L1Cache | None = None) -> None:
        self.settings = settings
        self.sync = sync
        self._prefixes = settings.prefixes
        self.l1 = l1  # forgets a document this process just applied

    @classmethod
    def for_engine(cls, engine: Engine) -> EventApplier:
        """The listener's applier on the engine's converge rules and L1. Built by the
        listener's adapters, not by Engine: the core does not import the capabilities."""
        return cls(engine.settings, engine.sync, engine.l1)

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
        hint = Hint(
            etag=event.etag,
            sequencer=event.sequencer,
            removed=event.kind == "removed",
            at=event.event_time,
        )
        done = self.sync.converge(*target, "event", hint=hint)
        if done.outcome == "invalid":
            logger.bind(op="event.invalid", key=event.key).warning(
                "not a valid document: {}", done.look.problem
            )
        return "duplicate" if done.outcome == "unchanged" else done.outcome
