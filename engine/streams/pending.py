"""Keys the stream says may need a repair, with their deadlines. Pure: no I/O, no clock.

What each cache record means for its key, from its images alone (so a consumer that replays
the same records rebuilds the same set):

- an intent (`p_tx` in the new image, a different one, or none, in the old): pending as
  `stuck_intent` until `p_at` + `inflight_grace_s` (the writer's own clock, from the image);
- the same key without that intent (a commit, a rollback, an event or repair that dropped a
  stale intent, a REMOVE): resolved;
- a committed change by a listener, a backfill or a repair (not the pipeline) that replaced an
  entry carrying another write's intent for other content (`p_etag` ≠ the new `etag`): that
  intent's S3 put may land after the listener read S3 (a stalled writer, whose commit is then
  refused), so the entry is checked once more (`recheck`) at `synced_at` + `recheck_delay_s`.
  The repair's own write over an intent raises one recheck; a recheck that finds the cache
  equal to S3 writes nothing, so this never loops;
- a TTL REMOVE: the key is dropped; S3 is never touched for it.

Bounded: past `capacity`, a new key is refused and counted (`dropped`); the scheduled
reconcile is the safety net for those.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from engine.store.item import CacheItem
from engine.streams.records import ChangeRecord, sequence_int

Reason = Literal["stuck_intent", "recheck"]
_REWRITERS = frozenset({"event", "backfill", "repair"})


@dataclass(frozen=True, slots=True)
class PendingKey:
    pk: str  # the cache key, "type#id"
    reason: Reason
    due_ms: int  # epoch milliseconds
    tx: str | None  # the intent's transaction (stuck_intent)
    source: str  # where the record that raised it came from (a shard) ...
    sequence: str  # ... and its sequence number there (a restart replays from it)

    @property
    def type_and_id(self) -> tuple[str, str]:
        type_name, _, doc_id = self.pk.partition("#")
        return type_name, doc_id


class PendingKeys:
    def __init__(
        self, grace_s: float, recheck_delay_s: float = 5.0, capacity: int = 10_000
    ) -> None:
        self.grace_ms = int(grace_s * 1000)
        self.recheck_ms = int(recheck_delay_s * 1000)
        self.capacity = capacity
        self.dropped = 0
        self._keys: dict[str, PendingKey] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, pk: object) -> bool:
        return pk in self._keys

    def get(self, pk: str) -> PendingKey | None:
        return self._keys.get(pk)

    def entries(self) -> list[PendingKey]:
        return list(self._keys.values())

    def observe(self, record: ChangeRecord) -> None:
        """Take one record of a document item of the cache table into account."""
        pk = record.pk
        if pk is None:
            return
        if record.event_name == "REMOVE":
            self._keys.pop(pk, None)  # a rolled-back new entry, a delete, a TTL expiry
            return
        old, new = record.old_item, record.new_item
        intent = new.intent if new is not None else None
        if intent is not None:
            held = self._keys.get(pk)
            if held is None or held.tx != intent.tx:
                due = (intent.at or 0) + self.grace_ms
                self._add(PendingKey(pk, "stuck_intent", due, intent.tx, *_where(record)))
            return
        held = self._keys.get(pk)
        if held is not None and held.reason == "stuck_intent":
            del self._keys[pk]
        if new is not None and _rewrote_intent(old, new):
            due = (new.synced_at or 0) + self.recheck_ms
            self._add(PendingKey(pk, "recheck", due, None, *_where(record)))

    def _add(self, key: PendingKey) -> None:
        if key.pk not in self._keys and len(self._keys) >= self.capacity:
            self.dropped += 1
            return
        self._keys[key.pk] = key

    def due(self, now_ms: int) -> list[PendingKey]:
        """Keys past their deadline, earliest first."""
        return sorted((k for k in self._keys.values() if k.due_ms <= now_ms), key=_order)

    def next_due_ms(self) -> int | None:
        return min((k.due_ms for k in self._keys.values()), default=None)

    def done(self, key: PendingKey) -> None:
        """Forget `key` (repaired, or nothing to do), unless a newer record replaced it."""
        if self._keys.get(key.pk) == key:
            del self._keys[key.pk]

    def defer(self, key: PendingKey, due_ms: int) -> None:
        """Try `key` again later (its intent was still fresh by the store's clock)."""
        if self._keys.get(key.pk) == key:
            self._keys[key.pk] = PendingKey(
                key.pk, key.reason, due_ms, key.tx, key.source, key.sequence
            )

    def oldest(self) -> dict[str, str]:
        """Per source, the sequence of its oldest pending record: where a restart must read
        again from so that no pending key is forgotten."""
        low: dict[str, str] = {}
        for key in self._keys.values():
            held = low.get(key.source)
            if held is None or sequence_int(key.sequence) < sequence_int(held):
                low[key.source] = key.sequence
        return low

    def clear(self) -> None:
        self._keys.clear()


def _rewrote_intent(old: CacheItem | None, new: CacheItem) -> bool:
    if old is None or old.intent is None:
        return False
    return (
        new.sync_source in _REWRITERS
        and new.version != old.version
        and old.intent.op == "put"
        and old.intent.etag != new.etag
    )


def _where(record: ChangeRecord) -> tuple[str, str]:
    return record.source, record.sequence


def _order(key: PendingKey) -> tuple[int, str]:
    return key.due_ms, key.pk
