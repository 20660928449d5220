"""In-memory twins of the stores, with the AWS semantics the engine relies on.

For logic tests that need no server, and for the contract suites that hold each twin to its
AWS store's behaviour (`engine/store/abc.py`, `tests/integration/test_store_contract_*.py`).
Thread-safe: the engine's writers, listeners and reconcilers run in threads, and their races
are what the logic tests exercise. Each takes an injectable clock, so expiry needs no sleep.
"""

from __future__ import annotations

from engine.store.memory.history import memory_history
from engine.store.memory.leases import LeaseTable, MemoryCheckpoints, MemoryLease
from engine.store.memory.objects import MemoryObjectStore, s3_clock
from engine.store.memory.queue import MemoryQueueStore
from engine.store.memory.stream import MemoryStreamStore

__all__ = [
    "LeaseTable",
    "MemoryCheckpoints",
    "MemoryLease",
    "MemoryObjectStore",
    "MemoryQueueStore",
    "MemoryStreamStore",
    "memory_history",
    "s3_clock",
]
