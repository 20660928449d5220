"""Wiring: one place that builds clients, stores, pipeline and reader from settings."""

from __future__ import annotations

from dataclasses import dataclass

from engine import tracing
from engine.aws import AwsClients, CallCounter
from engine.breaker import CircuitBreaker
from engine.events.apply import EventApplier
from engine.pipeline import WritePipeline
from engine.ratelimit import TokenBucket
from engine.reader import Reader
from engine.settings import Settings
from engine.store.cache import CacheStore
from engine.store.errors import is_outage
from engine.store.objects import ObjectStore


@dataclass
class Engine:
    settings: Settings
    clients: AwsClients
    cache: CacheStore
    objects: ObjectStore
    pipeline: WritePipeline
    reader: Reader
    applier: EventApplier

    @classmethod
    def build(cls, settings: Settings, counter: CallCounter | None = None) -> Engine:
        tracing.configure()  # off unless OTEL_* asks (engine/tracing.py)
        clients = AwsClients(settings, counter)
        limiter = TokenBucket(
            settings.dynamodb_rps, settings.dynamodb_burst, settings.rate_limit_timeout_s
        )
        breaker = CircuitBreaker(
            settings.breaker_fail_max,
            settings.breaker_reset_s,
            is_outage,
            success_threshold=settings.breaker_success_threshold,
        )
        cache = CacheStore(clients.dynamodb, settings.table, limiter, breaker)
        objects = ObjectStore(clients.s3, settings.bucket)
        reader = Reader(settings, cache, objects)
        return cls(
            settings=settings,
            clients=clients,
            cache=cache,
            objects=objects,
            pipeline=WritePipeline(settings, cache, objects),
            reader=reader,
            applier=EventApplier(settings, cache, objects, reader.sync),
        )

    def breaker_states(self) -> dict[str, str]:
        """The circuit breakers of this engine by name: DynamoDB's, then S3's and SQS's."""
        breakers = {"dynamodb": self.cache.breaker, **self.clients.breakers}
        return {name: breaker.state for name, breaker in breakers.items()}
