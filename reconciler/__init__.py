"""The reconciler: S3 listings ⋈ cache key index → drift reports and repair.

Built on the engine's key layout (`engine.keys.key_shard`: a shard is the type prefix plus the
id's first character, which is both a key-index partition and an S3 listing prefix) and on the
fill that never goes backwards (`engine.store.cache.CacheStore.put_if_newer`).
"""

from __future__ import annotations
