"""The processing core shared by every driver (local consumer, Lambda, KCL): records in,
figures out. No I/O here; the drivers export what `process` returns and emit window rows.

What a record means, from its images:
- a committed change bumps `version` (intents, rollbacks and no-op re-puts do not): a create
  (live, not live before), an update (live → live), a delete (a tombstone over a non-tombstone);
  every one is a write by its `sync_source` (backfill = a fill after a miss) with a sync lag
  (`synced_at` − `s3_last_modified`); a pipeline commit also gives intent → commit latency;
- a REMOVE by TTL is an expiry, nothing else (it never touches S3);
- the reserved metrics items carry read-metric flushes: new − old image is one flush.

With `grace_s`, it also keeps the keys that may need a repair (engine/streams/pending.py; the
drivers run the repairs), and with `history_days` it derives one history entry per committed
change (engine/streams/history.py; the drivers store them before they checkpoint).

Idempotent per record: a record delivered again (same source and sequence number) is counted
once, as long as this process remembers it (`dedupe_capacity` most recent records).
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.readmetrics.cluster import ClusterReads, flush_delta
from engine.readmetrics.item import METRICS_PK, is_reserved, zero
from engine.readmetrics.stats import ReadStats
from engine.store.item import CacheItem
from engine.streams.analytics import Windows
from engine.streams.history import history_entry
from engine.streams.hotspots import partitions_of
from engine.streams.pending import PendingKeys
from engine.streams.records import ChangeRecord

_ZERO = zero()


@dataclass
class Derived:
    """What one batch of records says (the drivers export it: Prometheus, EMF, logs)."""

    records: int = 0
    duplicates: int = 0
    events: Counter[str] = field(default_factory=Counter)
    ignored: int = 0  # other tables, foreign items, reserved items other than metrics
    removed: int = 0  # REMOVEs not made by TTL (a rolled-back intent, a manual delete)
    ttl_expiries: Counter[tuple[str, str]] = field(default_factory=Counter)  # (type, state)
    writes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (type, sync_source)
    changes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (type, creates|…)
    transitions: Counter[tuple[str, str]] = field(default_factory=Counter)  # (type, "a→b")
    partitions: Counter[str] = field(default_factory=Counter)  # GSI writes (streams/hotspots)
    sync_lag_s: list[tuple[str, float]] = field(default_factory=list)  # (sync_source, s)
    write_commit_s: list[float] = field(default_factory=list)
    reads: ReadStats.Delta = _ZERO
    newest: datetime | None = None  # newest record time: iterator age = now − newest
    history: list[dict[str, Any]] = field(default_factory=list)  # entries to store

    def fills(self) -> Counter[str]:
        return Counter({t: n for (t, source), n in self.writes.items() if source == "backfill"})

    def merge(self, other: Derived) -> None:
        """Add another batch's figures to these."""
        self.records += other.records
        self.duplicates += other.duplicates
        self.ignored += other.ignored
        self.removed += other.removed
        self.events.update(other.events)
        self.ttl_expiries.update(other.ttl_expiries)
        self.writes.update(other.writes)
        self.changes.update(other.changes)
        self.transitions.update(other.transitions)
        self.partitions.update(other.partitions)
        self.sync_lag_s.extend(other.sync_lag_s)
        self.write_commit_s.extend(other.write_commit_s)
        self.reads = self.reads + other.reads
        self.history.extend(other.history)
        if other.newest is not None and (self.newest is None or other.newest > self.newest):
            self.newest = other.newest


class StreamProcessor:
    def __init__(
        self,
        *,
        table: str | None = None,
        window_s: int = 60,
        dedupe_capacity: int = 20_000,
        grace_s: float | None = None,
        recheck_delay_s: float = 5.0,
        pending_capacity: int = 10_000,
        history_days: int | None = None,
    ) -> None:
        self.table = table
        self.windows = Windows(window_s)
        self.cluster = ClusterReads(_ZERO)
        self.totals: Counter[str] = Counter()
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._capacity = dedupe_capacity
        self._pending_args = (grace_s, recheck_delay_s, pending_capacity)
        self.pending: PendingKeys | None = (
            PendingKeys(grace_s, recheck_delay_s, pending_capacity) if grace_s is not None else None
        )
        self.history_days = history_days

    def process(self, records: Iterable[ChangeRecord]) -> Derived:
        out = Derived()
        for record in records:
            self._one(record, out)
        if not out.reads.empty():
            self.cluster = ClusterReads(self.cluster.total + out.reads)
        self._count(out)
        return out

    def fresh(self) -> StreamProcessor:
        """A processor with these settings and no memory: its rows are those of exactly the
        records it is given (what a Lambda batch stores, wherever it ran before)."""
        grace_s, recheck_delay_s, pending_capacity = self._pending_args
        return StreamProcessor(
            table=self.table,
            window_s=self.windows.window_s,
            dedupe_capacity=self._capacity,
            grace_s=grace_s,
            recheck_delay_s=recheck_delay_s,
            pending_capacity=pending_capacity,
            history_days=self.history_days,
        )

    def replay(self, records: Iterable[ChangeRecord]) -> None:
        """Records already counted before a restart (up to the saved checkpoint), read again
        only to rebuild the pending keys: no figures, no rows, no history."""
        if self.pending is None:
            return
        for record in records:
            if self._mine(record):
                self.pending.observe(record)

    def take_rows(self) -> list[dict[str, Any]]:
        return self.windows.take_rows()

    def restore_rows(self, rows: Iterable[Mapping[str, Any]]) -> None:
        self.windows.restore(rows)

    def discard_pending(self) -> None:
        """Forget what was not emitted (the lease is lost: its new holder replays it)."""
        self.windows.discard()
        self._seen.clear()
        if self.pending is not None:
            self.pending.clear()

    def _mine(self, record: ChangeRecord) -> bool:
        """A document item of our cache table (not a reserved item, not another table)."""
        if self.table and record.table and record.table != self.table:
            return False
        pk = record.pk
        return pk is not None and "#" in pk and not is_reserved(pk)

    # -- one record --------------------------------------------------------------------------

    def _first_time(self, record: ChangeRecord) -> bool:
        key = record.dedupe_key
        if key in self._seen:
            self._seen.move_to_end(key)
            return False
        if self._capacity:
            self._seen[key] = None
            if len(self._seen) > self._capacity:
                self._seen.popitem(last=False)
        return True

    def _one(self, record: ChangeRecord, out: Derived) -> None:
        if not self._first_time(record):
            out.duplicates += 1
            return
        out.records += 1
        out.events[record.event_name] += 1
        if out.newest is None or record.created_at > out.newest:
            out.newest = record.created_at
        if self.table and record.table and record.table != self.table:
            out.ignored += 1
            return
        pk = record.pk
        if is_reserved(pk):
            if pk is not None and pk.startswith(METRICS_PK) and record.event_name != "REMOVE":
                out.reads = out.reads + flush_delta(record.old, record.new)
            else:
                out.ignored += 1
            return
        type_name = pk.partition("#")[0] if pk and "#" in pk else None
        if self.pending is not None and type_name is not None:
            self.pending.observe(record)
        if self.history_days is not None and type_name is not None:
            entry = history_entry(record, self.history_days)
            if entry is not None:
                out.history.append(entry)
        if record.event_name == "REMOVE":
            if record.ttl_expiry:
                name = type_name or "unknown"
                old = record.old_item
                state = (old.state if old is not None else None) or "unknown"
                out.ttl_expiries[(name, state)] += 1
                window = self.windows.at(record.created_at, name)
                window.counts["records"] += 1
                window.counts["ttl_expiries"] += 1
            elif type_name is None:
                out.ignored += 1
            else:
                out.removed += 1
            return
        new = record.new_item
        if type_name is None or new is None or (new.state is None and new.intent is None):
            out.ignored += 1
            return
        self.windows.at(record.created_at, type_name).counts["records"] += 1
        self._change(type_name, record, record.old_item, new, out)

    def _change(
        self,
        type_name: str,
        record: ChangeRecord,
        old: CacheItem | None,
        new: CacheItem,
        out: Derived,
    ) -> None:
        state = new.state
        if state not in ("live", "deleted"):
            return  # an intent on a new entry: nothing committed yet
        if old is not None and old.version == new.version:
            return  # an intent, a rollback, or a write that changed nothing committed
        window = self.windows.at(record.created_at, type_name)
        source = new.sync_source or "unknown"
        out.writes[(type_name, source)] += 1
        window.writes[source] += 1
        if source == "backfill":
            window.counts["fills"] += 1
        old_state = old.state if old is not None else None
        old_status = old.status if old is not None else None
        kind: str | None = None
        if state == "live":
            kind = "updates" if old_state == "live" else "creates"
        elif old_state != "deleted":
            kind = "deletes"
        if kind is not None:
            image = new if state == "live" else old
            customers = list(image.customers or ()) if image is not None else []
            status = image.status if image is not None else None
            out.changes[(type_name, kind)] += 1
            window.change(kind, customers, status or None)
            touched = partitions_of(image) if image is not None else []
            out.partitions.update(touched)
            window.partitions.update(touched)
        if kind == "updates" and old_status != new.status:
            transition = f"{old_status}→{new.status}"
            out.transitions[(type_name, transition)] += 1
            window.transitions[transition] += 1
        synced, written = new.synced_at, new.s3_last_modified_ms
        if synced is not None and written is not None:
            lag = max(0.0, (synced - written) / 1000)
            out.sync_lag_s.append((source, lag))
            window.sync_lag.observe(lag)
        intent = old.intent.at if old is not None and old.intent is not None else None
        if source == "write" and synced is not None and intent is not None:
            out.write_commit_s.append(max(0.0, (synced - intent) / 1000))

    def _count(self, out: Derived) -> None:
        t = self.totals
        t["records"] += out.records
        t["duplicates"] += out.duplicates
        t["ignored"] += out.ignored
        t["removed"] += out.removed
        t["ttl_expiries"] += sum(out.ttl_expiries.values())
        t["fills"] += sum(out.fills().values())
        for (_, kind), n in out.changes.items():
            t[kind] += n
        for (_, source), n in out.writes.items():
            t[f"writes.{source}"] += n
        for event, n in out.events.items():
            t[f"events.{event}"] += n

    def summary(self) -> dict[str, Any]:
        """Totals since start, as `docsync consume` prints them."""
        t = self.totals
        return {
            "records": t["records"],
            "duplicates": t["duplicates"],
            "ignored": t["ignored"],
            "removed": t["removed"],
            "events": {
                k.split(".", 1)[1]: v for k, v in sorted(t.items()) if k.startswith("events.")
            },
            "creates": t["creates"],
            "updates": t["updates"],
            "deletes": t["deletes"],
            "ttl_expiries": t["ttl_expiries"],
            "fills": t["fills"],
            "writes": {
                k.split(".", 1)[1]: v for k, v in sorted(t.items()) if k.startswith("writes.")
            },
            "cluster": self.cluster.as_dict(),
        }
