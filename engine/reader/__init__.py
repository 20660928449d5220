"""The read path (invariant 4): gets (`gets.py`) and queries (`queries.py`) of one Reader.

Hit: served from the cache. Miss: S3, and a backfill that never goes backwards. While
DynamoDB fails (its circuit breaker open), gets and queries are answered from S3 and say so.
The in-process read counters (`ReadStats`) live in engine/readmetrics/.
"""

from __future__ import annotations

from engine.l1 import L1Cache
from engine.reader.gets import Gets, ReadResult, Source
from engine.reader.queries import Queries, Query, QueryPage
from engine.readmetrics.stats import ReadStats
from engine.settings import Settings
from engine.store.cache import CacheStore
from engine.store.objects import ObjectStore
from engine.sync import CacheSync

__all__ = ["Query", "QueryPage", "ReadResult", "ReadStats", "Reader", "Source"]


class Reader(Gets, Queries):
    """Gets and queries over one cache table and bucket, with their counters and the
    convergence rules (`sync`) their backfills use."""

    def __init__(
        self,
        settings: Settings,
        cache: CacheStore,
        objects: ObjectStore,
        l1: L1Cache | None = None,
        *,
        sync: CacheSync,
    ) -> None:
        self.settings = settings
        self.cache = cache
        self.objects = objects
        self.l1 = l1
        self.stats = ReadStats()
        self.sync = sync  # the engine's: backfills go through the convergence rules
        self._prefixes = settings.prefixes
        self._secret = settings.page_token_secret.get_secret_value().encode()
