"""The engine's core on the in-memory twins: the real CacheStore on `MemoryDynamoDB` (whose
committed changes feed a `MemoryStreamStore`), `MemoryObjectStore` for S3, and the real
HistoryStore on its own memory table, for logic tests that need no moto server.

`Faults` here is the memory counterpart of `tests/integration/faults.py`: a call `fail`s
before it reaches the store (DynamoDB: a connection error the seam translates; S3: the
ObjectStoreError the S3 store raises) or `crash`es after the store applied it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from botocore.exceptions import EndpointConnectionError

from engine.breaker import CircuitBreaker
from engine.exceptions import ObjectStoreError
from engine.infra import cache_table_spec, leases_table_spec
from engine.pipeline import WritePipeline
from engine.ratelimit import TokenBucket
from engine.reader import Reader
from engine.settings import Settings
from engine.store.abc import History
from engine.store.cache import CacheStore
from engine.store.errors import is_outage
from engine.store.history import table_definition as history_table
from engine.store.memory import MemoryObjectStore, MemoryStreamStore, memory_history, s3_clock
from engine.store.memory.cache import MemoryDynamoDB
from engine.store.stream import Lost
from engine.sync import CacheSync
from tests.conftest import make_settings
from tests.integration.faults import SimulatedCrash

DDB_OPS = {
    "get_item": "GetItem",
    "put_item": "PutItem",
    "update_item": "UpdateItem",
    "delete_item": "DeleteItem",
    "query": "Query",
    "scan": "Scan",
    "batch_get_item": "BatchGetItem",
    "transact_write_items": "TransactWriteItems",
}
S3_OPS = {"put": "PutObject", "get": "GetObject", "head": "HeadObject", "delete": "DeleteObject"}


_LOADED: dict[str, Settings] = {}


def memory_settings(**overrides: Any) -> Settings:
    """Settings for the twins (frozen: loaded once per set of overrides, as a property test
    builds an engine per example)."""
    key = repr(sorted(overrides.items()))
    if key not in _LOADED:
        _LOADED[key] = make_settings("http://memory.invalid", **overrides)
    return _LOADED[key]


def memory_cache(settings: Settings, client: Any = None) -> CacheStore:
    """The real CacheStore on the in-memory client, with the table `docsync init` creates."""
    breaker = CircuitBreaker(settings.breaker.fail_max, settings.breaker.reset_s, is_outage)
    limiter = TokenBucket(10_000, 10_000, 1.0)
    client = client if client is not None else MemoryDynamoDB(cache_table_spec(settings))
    return CacheStore(client, settings.table, limiter, breaker)


class Faults:
    def __init__(self) -> None:
        self.plan: dict[tuple[str, str], list[str]] = {}

    def fail(self, service: str, operation: str, times: int = 1) -> None:
        self.plan.setdefault((service, operation), []).extend(["fail"] * times)

    def crash_after(self, service: str, operation: str) -> None:
        self.plan.setdefault((service, operation), []).append("crash")

    def clear(self) -> None:
        self.plan.clear()

    def wrap(self, service: str, target: Any, ops: dict[str, str]) -> Any:
        for method, operation in ops.items():
            setattr(target, method, self._guarded(service, operation, getattr(target, method)))
        return target

    def _guarded(self, service: str, operation: str, fn: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            planned = self.plan.get((service, operation))
            step = planned.pop(0) if planned else None
            if step == "fail":
                if service == "s3":
                    raise ObjectStoreError(f"S3 {operation} failed: injected")
                raise EndpointConnectionError(endpoint_url="memory://dynamodb")
            result = fn(*args, **kwargs)
            if step == "crash":
                raise SimulatedCrash(f"{service}.{operation}")
            return result

        return call


class Clock:
    """The wall clock, moved on by `advance` (the stream's retention and iterator expiry)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class S3Clock:
    """S3's clock for the memory bucket: now, or `at` when a test dates objects back."""

    def __init__(self) -> None:
        self.at: datetime | None = None

    def __call__(self) -> datetime:
        return self.at if self.at is not None else s3_clock()


@dataclass
class MemoryEngine:
    """What `Engine.build` wires, on the twins (no clients, no L1)."""

    settings: Settings
    ddb: MemoryDynamoDB  # the cache table (with its stream), the leases and history tables
    clients: Any  # `.dynamodb`: what the stream drivers take from `AwsClients`
    cache: CacheStore
    objects: MemoryObjectStore
    pipeline: WritePipeline
    reader: Reader
    sync: CacheSync
    faults: Faults
    s3_clock: S3Clock
    stream: MemoryStreamStore
    history: History
    clock: Clock

    @classmethod
    def build(cls, **overrides: Any) -> MemoryEngine:
        settings = memory_settings(**overrides)
        faults = Faults()
        clock = Clock()
        stream = MemoryStreamStore(clock, settings.region)
        ddb = MemoryDynamoDB(
            cache_table_spec(settings),
            leases_table_spec(settings),
            history_table(settings.history_table),
            streams=stream,
        )
        client = faults.wrap("dynamodb", ddb, DDB_OPS)
        cache = memory_cache(settings, client)
        s3 = S3Clock()
        objects: Any = faults.wrap("s3", MemoryObjectStore(settings.bucket, clock=s3), S3_OPS)
        sync = CacheSync(settings, cache, objects)
        reader = Reader(settings, cache, objects, None, sync=sync)
        pipeline = WritePipeline(settings, cache, objects)
        history = memory_history(settings.history_table, ddb)
        clients = SimpleNamespace(dynamodb=ddb)
        return cls(
            settings,
            ddb,
            clients,
            cache,
            objects,
            pipeline,
            reader,
            sync,
            faults,
            s3,
            stream,
            history,
            clock,
        )

    def snapshot(self) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
        items = sorted(self.cache.scan_all(), key=lambda i: str(i["pk"]))
        bodies = {i.key: self.objects.get(i.key).body for i in self.objects.list("")}
        return items, bodies


def stream_records(engine: MemoryEngine) -> list[dict[str, Any]]:
    """Every record on the memory stream, shard by shard, from its trim horizon."""
    arn = engine.stream.latest_arn(engine.settings.table)
    assert arn is not None
    out: list[dict[str, Any]] = []
    for shard in engine.stream.shards(arn):
        iterator: str | Lost | None = engine.stream.iterator(arn, shard["ShardId"], "TRIM_HORIZON")
        while isinstance(iterator, str):
            page = engine.stream.records(iterator, 1000)
            assert isinstance(page, dict)
            out.extend(page["Records"])
            iterator = page.get("NextShardIterator") if page["Records"] else None
    return out
