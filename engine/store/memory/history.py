"""The history table's twin: the real `HistoryStore` on `MemoryDynamoDB`, as the cache's is
(its batches, its order by version and its value round trip are then the real ones)."""

from __future__ import annotations

from typing import Any, cast

from engine.store.abc import History
from engine.store.history import HistoryStore, table_definition
from engine.store.memory.cache import MemoryDynamoDB


def memory_history(table: str = "docsync-history", client: MemoryDynamoDB | None = None) -> History:
    """A history store on `client` (a new in-memory table of that name if none is given)."""
    if client is None:
        client = MemoryDynamoDB(table_definition(table))
    return HistoryStore(cast(Any, client), table)
