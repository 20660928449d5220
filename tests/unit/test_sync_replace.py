"""When may an apply replace the whole entry in one Put instead of the general update?

Through `CacheSync.converge` on the in-memory twins, watching the kind of each cache write:
a Put only where the entry was read and found absent, or plainly older and with no intent.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.infra import cache_table_spec
from engine.store.memory import MemoryObjectStore
from engine.store.memory.cache import MemoryDynamoDB
from engine.sync import CacheSync
from tests.integration.test_listener_convergence import body
from tests.memory_stores import S3Clock, memory_cache, memory_settings

KEY = "changes/CHG-1.json"


class Writes:
    """CacheSync on the twins, with the kind of every cache write it makes: Put or Update
    (a plain PutItem/UpdateItem, or the document's part of a transaction)."""

    def __init__(self) -> None:
        settings = memory_settings()
        client = MemoryDynamoDB(cache_table_spec(settings))
        self.kinds: list[str] = []
        for method, kind in (("put_item", "Put"), ("update_item", "Update")):
            setattr(client, method, self._seen(kind, getattr(client, method)))
        transact = client.transact_write_items
        client.transact_write_items = lambda **kw: self._transact(transact, **kw)  # type: ignore[method-assign]
        self.clock = S3Clock()
        self.cache = memory_cache(settings, client)
        self.objects = MemoryObjectStore(settings.bucket, clock=self.clock)
        # CacheSync annotates `ObjectStore` where it uses only the `Objects` protocol.
        self.sync = CacheSync(settings, self.cache, self.objects)

    def _seen(self, kind: str, fn: Any) -> Any:
        def call(**kwargs: Any) -> Any:
            self.kinds.append(kind)
            return fn(**kwargs)

        return call

    def _transact(self, fn: Any, **kwargs: Any) -> Any:
        self.kinds.append(next(iter(kwargs["TransactItems"][0])))  # the document's write
        return fn(**kwargs)

    def s3(self, n: int, at: datetime) -> None:
        self.clock.at = at
        self.objects.put(KEY, body("CHG-1", n))

    def intent(self) -> None:
        """A writer's step 1 for other content (fresh: its commit or rollback is to come)."""
        self.cache.begin(
            "change",
            "CHG-1",
            tx=uuid.uuid4().hex,
            etag="other",
            op="put",
            stale_before=NOW - timedelta(minutes=5),
            expected_version=None,
        )

    def converge(self) -> list[str]:
        self.kinds.clear()
        self.sync.converge("change", "CHG-1", "event")
        return list(self.kinds)


NOW = datetime.now(UTC).replace(microsecond=0)


def test_an_absent_entry_is_put_if_still_absent() -> None:
    w = Writes()
    w.s3(1, NOW)
    assert w.converge() == ["Put"]
    assert w.cache.get("change", "CHG-1") is not None


def test_a_plainly_older_entry_is_put_if_still_at_its_version() -> None:
    w = Writes()
    w.s3(1, NOW - timedelta(minutes=1))
    w.converge()
    w.s3(2, NOW)
    assert w.converge() == ["Put"]
    item = w.cache.get("change", "CHG-1")
    assert item is not None and item.version == 2


def test_the_same_position_takes_the_general_update() -> None:
    """Two writes in one second: only the S3 re-check path can decide (no Put)."""
    w = Writes()
    w.s3(1, NOW)
    w.converge()
    w.s3(2, NOW)
    kinds = w.converge()
    assert kinds and "Put" not in kinds


def test_an_entry_newer_than_s3_takes_the_general_update() -> None:
    w = Writes()
    w.s3(1, NOW)
    w.converge()
    w.s3(2, NOW - timedelta(minutes=1))  # S3's position went back (a restored object)
    kinds = w.converge()
    assert kinds and "Put" not in kinds


def test_an_entry_with_an_intent_is_never_replaced() -> None:
    w = Writes()
    w.s3(1, NOW - timedelta(minutes=1))
    w.converge()
    w.intent()
    w.s3(2, NOW)
    assert "Put" not in w.converge()


def test_an_intent_on_a_new_entry_is_never_replaced() -> None:
    w = Writes()
    w.intent()
    w.s3(1, NOW)
    assert "Put" not in w.converge()
