"""The leases table's twin: one `Lease` item per key, checkpoints and a pending emission.

Same conditions as `engine/store/leases.py`: a lease is taken when free, expired (`expires`
strictly before now) or already ours; released only by its owner; and a checkpoint write is
fenced by the lease's *owner*, not its expiry, as DynamoDB's ConditionCheck is (an expired
lease nobody took yet still fences; a released lock-lease, whose item is gone, does not).
One lock for the whole table stands in for DynamoDB's conditional writes and transactions.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from engine.exceptions import LeaseLostError
from engine.store.abc import LeaseHolder
from engine.store.leases import Checkpoint, PendingEmission, default_owner


class LeaseTable:
    """The items of one leases table; share it between leases and checkpoints."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: dict[str, dict[str, Any]] = {}
        self.checkpoints: dict[tuple[str, str], Checkpoint] = {}
        self.pending: dict[str, PendingEmission] = {}

    def item(self, key: str) -> dict[str, Any] | None:
        """A copy of the lease item (as `read_lease` gives it), None if there is none."""
        with self.lock:
            found = self.items.get(key)
            return dict(found) if found else None

    def fenced(self, key: str, owner: str) -> None:
        """Raise unless `owner` holds `key` (call with `lock` held)."""
        item = self.items.get(key)
        if item is None or item["owner"] != owner:
            raise LeaseLostError(f"{key} is held by another consumer")


class MemoryLease:
    """One holder at a time of `key` in `table`, until `expires` (epoch seconds)."""

    def __init__(
        self,
        table: LeaseTable,
        key: str,
        ttl_s: float,
        owner: str | None = None,
        clock: Callable[[], float] = time.time,
        *,
        keep: bool = True,
    ) -> None:
        self._table = table
        self.key = key
        self.ttl_s = ttl_s
        self.owner = owner or default_owner()
        self.keep = keep
        self._clock = clock

    def try_acquire(self, status: Mapping[str, Any] | None = None) -> bool:
        clock = self._clock()
        now = _ms(clock)  # DynamoDB gets both sides to the millisecond
        with self._table.lock:
            item = self._table.items.get(self.key)
            if item and not (item["expires"] < now or item["owner"] == self.owner):
                return False
            expires = _ms(clock + self.ttl_s)
            fresh = {"lease_key": self.key, "owner": self.owner, "expires": expires}
            if self.keep:  # UpdateItem: the item's other attributes stay
                fresh.update(renewed_at=now, status=dict(status or {}))
                self._table.items[self.key] = {**(item or {}), **fresh}
            else:  # PutItem: the whole item
                self._table.items[self.key] = fresh
        return True

    def release(self, status: Mapping[str, Any] | None = None) -> None:
        with self._table.lock:
            item = self._table.items.get(self.key)
            if item is None or item["owner"] != self.owner:
                return
            if self.keep:
                item.update(expires=0, status=dict(status or {}))
            else:
                del self._table.items[self.key]

    def fence(self) -> dict[str, Any]:
        """The condition a checkpoint write carries (MemoryCheckpoints checks key and owner)."""
        return {"ConditionCheck": {"Key": self.key, "Owner": self.owner}}


def _ms(epoch_s: float) -> float:
    return float(f"{epoch_s:.3f}")


def _normal(cp: Checkpoint) -> Checkpoint:
    """As DynamoDB gives it back: an empty sequence or replay point is no attribute at all."""
    return Checkpoint(cp.sequence or None, cp.finished, cp.replay_at or None)


class MemoryCheckpoints:
    """A stream's checkpoints and pending emission, each write fenced by the lease."""

    def __init__(self, table: LeaseTable, stream_arn: str) -> None:
        self._table = table
        self.stream_arn = stream_arn

    def load(self, shard_ids: list[str]) -> dict[str, Checkpoint]:
        with self._table.lock:
            saved = {s: self._table.checkpoints.get((self.stream_arn, s)) for s in shard_ids}
        return {shard: cp for shard, cp in saved.items() if cp is not None}

    def load_pending(self) -> PendingEmission | None:
        with self._table.lock:
            return self._table.pending.get(self.stream_arn)

    def begin(self, pending: PendingEmission, lease: LeaseHolder) -> None:
        positions = {shard: _normal(cp) for shard, cp in pending.positions.items()}
        with self._table.lock:
            self._table.fenced(lease.key, lease.owner)
            self._table.pending[self.stream_arn] = PendingEmission(pending.name, positions)

    def drop_pending(self, lease: LeaseHolder) -> None:
        with self._table.lock:
            self._table.fenced(lease.key, lease.owner)
            self._table.pending.pop(self.stream_arn, None)

    def save(
        self, updates: Mapping[str, Checkpoint], lease: LeaseHolder, *, settle: bool = False
    ) -> None:
        """All at once (DynamoDB writes 98 shards a transaction, each fenced on its own)."""
        if not updates and not settle:
            return  # no transaction is sent, so nothing is checked
        with self._table.lock:
            self._table.fenced(lease.key, lease.owner)
            for shard, cp in updates.items():
                self._table.checkpoints[(self.stream_arn, shard)] = _normal(cp)
            if settle:
                self._table.pending.pop(self.stream_arn, None)
