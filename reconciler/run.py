"""One reconcile run: shards in a bounded pool, each a sorted merge of S3 and the cache,
drift verified against S3, and (in repair mode) fixed through the shared convergence rules.

The S3 side is a listing, or an S3 Inventory report (`reconciler.inventory`) for buckets too
large to list; the report is a day-old snapshot, which the verification against S3 absorbs.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from loguru import logger

from engine import cloudwatch, keys
from engine.app import Engine
from engine.awsmetrics import kind_of
from engine.exceptions import DocsyncError
from engine.store.base import ConditionFailed
from engine.store.objects import ObjectInfo
from engine.sync import Look
from reconciler.diff import CLASSES, Rules, Verdict, merge
from reconciler.inventory import InventorySource
from reconciler.shards import Shard, plan
from reconciler.sources import cache_rows, check_month_shards, s3_rows

Mode = Literal["report", "repair"]
# What a run reports to CloudWatch (engine/cloudwatch.py): a whole run its drift and itself
# (ReconcileRuns); one shard task of an enqueued run only its drift (`collect` counts the run);
# a backfill nothing (filling the cache is its job, not drift found by a repair).
Emit = Literal["run", "shard", "off"]
DRIFT = ("missing", "stale", "orphaned", "invalid")
REPAIRABLE = ("missing", "stale", "orphaned")  # invalid objects are reported, never repaired


@dataclass(frozen=True, slots=True)
class Filters:
    """Narrow a run (backfill is a repair of `missing` with these)."""

    classes: frozenset[str] = frozenset(DRIFT)  # what a repair may fix
    since: datetime | None = None  # S3 LastModified at or after
    customer: str | None = None
    source: str = "repair"  # recorded as the entries' sync_source


@dataclass
class ReconcileResult:
    mode: Mode
    dry_run: bool
    cap: int
    started_at: datetime
    counts: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    repaired: Counter[str] = field(default_factory=Counter)
    would_repair: Counter[str] = field(default_factory=Counter)  # in a dry run
    items: list[dict[str, Any]] = field(default_factory=list)
    shards: int = 0
    compared: int = 0
    duration_s: float = 0.0
    s3_source: str = "list"  # or "inventory:<manifest URI>"
    inventory_created_at: datetime | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def drift(self) -> int:
        return sum(self.counts[c] for c in DRIFT)

    def remaining(self) -> int:
        """Repairable drift left after the run (all of it in report mode)."""
        return sum(self.counts[c] - self.repaired[c] for c in REPAIRABLE)

    def merge(self, other: ReconcileResult) -> None:
        """Fold a partial result (one shard task) into this one."""
        self.counts.update(other.counts)
        self.skipped.update(other.skipped)
        self.repaired.update(other.repaired)
        self.would_repair.update(other.would_repair)
        self.items.extend(other.items[: max(0, self.cap - len(self.items))])
        self.shards += other.shards
        self.compared += other.compared
        self.duration_s = max(self.duration_s, other.duration_s)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReconcileResult:
        result = cls(
            data["mode"], data["dry_run"], data["items_cap"], keys.parse_iso(data["started_at"])
        )
        result.counts.update(data["counts"])
        result.skipped.update(data["skipped"])
        result.repaired.update(data["repaired"])
        result.would_repair.update(data.get("would_repair", {}))
        result.items = list(data["items"])
        result.shards, result.compared = data["shards"], data["compared"]
        result.duration_s = data["duration_s"]
        result.s3_source = data.get("s3_source", "list")
        if data.get("inventory_created_at"):
            result.inventory_created_at = keys.parse_iso(data["inventory_created_at"])
        return result

    def as_dict(self) -> dict[str, Any]:
        source: dict[str, Any] = {"s3_source": self.s3_source}
        if self.inventory_created_at is not None:
            source["inventory_created_at"] = keys.iso(self.inventory_created_at)
        return {
            "mode": self.mode,
            "dry_run": self.dry_run,
            "started_at": keys.iso(self.started_at),
            "duration_s": round(self.duration_s, 3),
            **source,
            "shards": self.shards,
            "compared": self.compared,
            "counts": {c: self.counts[c] for c in CLASSES},
            "skipped": dict(self.skipped),
            "repaired": {c: self.repaired[c] for c in DRIFT},
            "would_repair": {c: self.would_repair[c] for c in REPAIRABLE},
            "remaining": self.remaining(),
            "items": self.items,
            "items_cap": self.cap,
            "items_truncated": self.drift > len(self.items),
        }


def _side(row: Any) -> dict[str, Any] | None:
    if row is None or not getattr(row, "live", True):  # only index entries left: no entry
        return None
    lm = row.last_modified
    return {"etag": row.etag, "size": row.size, "last_modified": keys.iso(lm) if lm else None}


class Reconciler:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.settings = engine.settings
        self.sync = engine.sync
        self._prefixes = self.settings.prefixes

    @kind_of("reconcile", "docsync.reconcile")
    def run(
        self,
        mode: Mode = "report",
        types: Iterable[str] | None = None,
        filters: Filters | None = None,
        on_shard_done: Callable[[Shard], None] | None = None,
        now: datetime | None = None,
        shards: list[Shard] | None = None,
        inventory: InventorySource | None = None,
        emit: Emit = "run",
    ) -> ReconcileResult:
        """`now` decides the window, expiry and grace (a parameter so tests can move time);
        `shards` runs only those (a task taken from the work queue), else every shard;
        `inventory` reads the S3 side from that report instead of listing the bucket;
        `emit` what this run counts for the alarms (`Emit`)."""
        filters = filters or Filters()
        if shards is None:
            shards = self.plan(types)
        now = now or datetime.now(UTC)
        rules = Rules(
            now=now,
            window_start=keys.window_start(self.settings.cache_ttl_days, now),
            grace_start=now - timedelta(seconds=self.settings.inflight_grace_s),
            is_document_key=lambda key: keys.key_to_doc(key, self._prefixes) is not None,
        )
        result = ReconcileResult(
            mode, self.settings.dry_run, self.settings.reconcile.report_cap, now
        )
        result.shards = len(shards)
        started = time.perf_counter()
        with contextlib.ExitStack() as stack:
            s3_side: Callable[[Shard], Iterator[ObjectInfo]]
            if inventory is None:
                s3_side = lambda shard: s3_rows(self.engine.objects, shard)  # noqa: E731
            else:
                result.s3_source = inventory.label
                result.inventory_created_at = inventory.created_at
                s3_side = stack.enter_context(inventory.sort(shards)).rows
            snapshot = inventory is not None

            def one(shard: Shard) -> None:
                self._shard(shard, s3_side(shard), rules, mode, filters, result, snapshot)
                if on_shard_done:
                    on_shard_done(shard)

            with ThreadPoolExecutor(self.settings.reconcile.workers, "reconcile") as pool:
                parent = contextvars.copy_context()  # shards' spans under the run's
                list(pool.map(lambda shard: parent.copy().run(one, shard), shards))
        result.duration_s = time.perf_counter() - started
        result.items.sort(key=lambda item: str(item["key"]).encode())
        logger.bind(
            op="reconcile",
            mode=mode,
            s3_source=result.s3_source,
            dry_run=self.settings.dry_run,
            duration_ms=round(result.duration_s * 1000, 1),
            compared=result.compared,
            **{f"drift_{c}": result.counts[c] for c in DRIFT},
            **{f"repaired_{c}": result.repaired[c] for c in DRIFT},
        ).info("reconcile {}: {} drifted, {} remaining", mode, result.drift, result.remaining())
        if emit != "off":
            cloudwatch.record("DriftFound", result.drift)
            if mode == "repair":
                cloudwatch.record("DriftRepaired", sum(result.repaired.values()))
            if emit == "run":
                cloudwatch.record("ReconcileRuns", 1)
        return result

    def plan(self, types: Iterable[str] | None = None) -> list[Shard]:
        """The shards of a run (or of the tasks `--enqueue` sends), once the table's month
        buckets are known to be the ones `month_shards` reads (else MonthShardsChangedError)."""
        chosen = {t: p for t, p in self._prefixes.items() if types is None or t in set(types)}
        now = datetime.now(UTC)
        check_month_shards(
            self.engine.cache,
            sorted(chosen),
            keys.window_start(self.settings.cache_ttl_days, now),
            now,
            self.settings.month_shards,
        )
        return plan(chosen, self.settings.reconcile.shards_per_type)

    @kind_of("reconcile", "docsync.reconcile.shard", ("shard",))
    def _shard(
        self,
        shard: Shard,
        s3: Iterable[ObjectInfo],
        rules: Rules,
        mode: Mode,
        filters: Filters,
        result: ReconcileResult,
        snapshot: bool = False,
    ) -> None:
        cache = cache_rows(self.engine.cache, shard)
        for verdict in merge(s3, cache, rules):
            if filters.since and verdict.s3 and verdict.s3.last_modified < filters.since:
                outcome, repaired = "filtered", False
            else:
                outcome, repaired = self._settle(verdict, mode, filters, result, snapshot)
            with result._lock:
                result.compared += 1
                if outcome in CLASSES:
                    result.counts[outcome] += 1
                else:
                    result.skipped[outcome] += 1
                if repaired:
                    result.repaired[outcome] += 1
                if outcome in DRIFT and len(result.items) < result.cap:
                    item = {
                        "key": verdict.key,
                        "class": outcome,
                        "repaired": repaired,
                        "s3": _side(verdict.s3),
                        "cache": _side(verdict.cache),
                    }
                    if verdict.index:
                        item["index"] = {k: list(v) for k, v in verdict.index.items()}
                    result.items.append(item)

    def _settle(
        self,
        verdict: Verdict,
        mode: Mode,
        filters: Filters,
        result: ReconcileResult,
        snapshot: bool = False,
    ) -> tuple[str, bool]:
        """Verify a drift against S3 now, and repair it if asked. Returns (class, repaired).

        The S3 side is older than the cache (a listing by moments, an inventory by up to a
        day): an entry whose ETag S3 holds now is in sync, whatever that side said.
        """
        outcome: str = verdict.outcome
        if verdict.index_only:
            return self._settle_index(verdict, mode, filters, result)
        if outcome == "invalid" and snapshot:
            return self._still_there(verdict.key), False
        if outcome not in ("missing", "stale", "orphaned"):
            return outcome, False
        target = keys.key_to_doc(verdict.key, self._prefixes)
        assert target is not None
        type_name, doc_id = target
        cached = verdict.cache.etag if verdict.cache is not None else None
        try:
            look = self.sync.look(type_name, doc_id, cached)
        except DocsyncError as exc:
            logger.bind(op="reconcile.verify", key=verdict.key).error("S3 read failed: {}", exc)
            return outcome, False
        if look.seen == "same":
            return "in_sync", False  # S3 answered 304: it holds the cached ETag
        doc = look.doc
        if look.seen == "absent":
            if outcome != "orphaned":
                return "vanished", False  # deleted since the listing; its event will say so
        elif look.seen == "invalid":
            outcome = "invalid"
        elif outcome == "orphaned":
            outcome = "stale"  # re-created since the listing, not as cached
        if (
            filters.customer is not None
            and outcome != "invalid"
            and (doc is None or filters.customer not in doc.customer_codes)
        ):
            return "filtered", False
        if mode != "repair" or outcome not in filters.classes:
            return outcome, False
        if self.settings.dry_run:  # nothing repaired: `would_repair` says what would be
            logger.bind(
                op="reconcile.repair",
                key=verdict.key,
                type=type_name,
                id=doc_id,
                drift=outcome,
                dry_run=True,
            ).info("dry run: would repair {}", outcome)
            if outcome != "invalid":
                with result._lock:
                    result.would_repair[outcome] += 1
            return outcome, False
        repaired = self._repair(outcome, type_name, doc_id, look, filters.source)
        if repaired and verdict.index:
            repaired = self._reindex(verdict)  # entries the document's repair did not know of
        return outcome, repaired

    def _settle_index(
        self, verdict: Verdict, mode: Mode, filters: Filters, result: ReconcileResult
    ) -> tuple[str, bool]:
        """Only the document's customer-index entries drift: no S3 read is needed (the entry
        is in sync with S3, or gone); the repair rewrites them from the entry."""
        outcome: str = verdict.outcome
        involved = {c for names in (verdict.index or {}).values() for c in names}
        if filters.customer is not None and filters.customer not in involved:
            return "filtered", False
        if mode != "repair" or outcome not in filters.classes:
            return outcome, False
        if self.settings.dry_run:
            logger.bind(
                op="reconcile.repair", key=verdict.key, drift=outcome, index=verdict.index
            ).bind(dry_run=True).info("dry run: would repair the customer index")
            with result._lock:
                result.would_repair[outcome] += 1
            return outcome, False
        return outcome, self._reindex(verdict)

    def _reindex(self, verdict: Verdict) -> bool:
        target = keys.key_to_doc(verdict.key, self._prefixes)
        if target is None or verdict.cache is None:
            return False
        found = [customer for customer, _, _ in verdict.cache.index]
        log = logger.bind(op="reconcile.reindex", key=verdict.key, index=verdict.index)
        try:
            written = self.engine.cache.reindex(*target, found)
        except ConditionFailed:
            log.info("the entry changed meanwhile: its own write rewrote the index")
            return False
        except DocsyncError as exc:
            log.error("index repair failed: {}", exc)
            return False
        log.bind(entries=written).info("customer index repaired")
        return True

    def _still_there(self, key: str) -> str:
        """An invalid object seen in a snapshot is reported only if S3 still holds it."""
        try:
            info = self.engine.objects.head(key)
        except DocsyncError as exc:
            logger.bind(op="reconcile.verify", key=key).error("S3 read failed: {}", exc)
            return "invalid"
        return "invalid" if info is not None else "vanished"

    def _repair(self, outcome: str, type_name: str, doc_id: str, look: Look, source: str) -> bool:
        log = logger.bind(op="reconcile.repair", type=type_name, id=doc_id, drift=outcome)
        try:
            done = self.sync.converge(type_name, doc_id, source, look=look, check_window=False)
        except DocsyncError as exc:
            log.error("repair failed: {}", exc)
            return False
        if done.written is None:
            return False  # nothing to write: an invalid object never cached, or already gone
        log.bind(result=done.written).info("{}", done.written)
        return done.written in ("applied", "committed")
