"""Wiring: one place that builds clients, stores, the convergence rules, pipeline and reader
from settings."""

from __future__ import annotations

from dataclasses import dataclass

from engine import tracing
from engine.aws import AwsClients, CallCounter
from engine.breaker import CircuitBreaker
from engine.l1 import L1Cache
from engine.pipeline import WritePipeline
from engine.ratelimit import TokenBucket
from engine.reader import Reader
from engine.settings import Settings
from engine.store.cache import CacheStore
from engine.store.errors import is_outage
from engine.store.objects import ObjectStore
from engine.sync import CacheSync


@dataclass
class Engine:
    settings: Settings
    clients: AwsClients
    cache: CacheStore
    objects: ObjectStore
    pipeline: WritePipeline
    reader: Reader
    sync: CacheSync  # the convergence rules: listener, reconciler, repair and backfills
    l1: L1Cache | None = None

    @classmethod
    def build(
        cls, settings: Settings, counter: CallCounter | None = None, l1: bool | None = None
    ) -> Engine:
        """`l1`: an in-process L1 for reads (None: as `settings.l1.mode` says, "auto" = off here;
        `docsync serve` passes True unless it is "off")."""
        tracing.configure()  # off unless OTEL_* asks (engine/tracing.py)
        clients = AwsClients(settings, counter)
        limiter = TokenBucket(
            settings.dynamodb.rps, settings.dynamodb.burst, settings.dynamodb.rate_limit_timeout_s
        )
        breaker = CircuitBreaker(
            settings.breaker.fail_max,
            settings.breaker.reset_s,
            is_outage,
            success_threshold=settings.breaker.success_threshold,
        )
        cache = CacheStore(clients.dynamodb, settings.table, limiter, breaker)
        objects = ObjectStore(clients.s3, settings.bucket)
        wanted = settings.l1.mode == "on" if l1 is None else l1
        cache_l1 = (
            L1Cache(settings.l1.max_bytes, settings.l1.max_staleness_s)
            if wanted and settings.cache_enabled
            else None
        )
        sync = CacheSync(settings, cache, objects)
        return cls(
            settings=settings,
            clients=clients,
            cache=cache,
            objects=objects,
            pipeline=WritePipeline(settings, cache, objects, l1=cache_l1),
            reader=Reader(settings, cache, objects, cache_l1, sync=sync),
            sync=sync,
            l1=cache_l1,
        )

    def breaker_states(self) -> dict[str, str]:
        """The circuit breakers of this engine by name: DynamoDB's, then S3's and SQS's."""
        breakers = {"dynamodb": self.cache.breaker, **self.clients.breakers}
        return {name: breaker.state for name, breaker in breakers.items()}
