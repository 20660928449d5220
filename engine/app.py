"""Wiring: one place that builds clients, stores, pipeline and reader from settings."""

from __future__ import annotations

from dataclasses import dataclass

import pybreaker
from loguru import logger

from engine.aws import AwsClients, CallCounter
from engine.events.apply import EventApplier
from engine.pipeline import WritePipeline
from engine.ratelimit import TokenBucket
from engine.reader import Reader
from engine.settings import Settings
from engine.store.cache import CacheStore
from engine.store.errors import is_outage
from engine.store.objects import ObjectStore


class _BreakerLog(pybreaker.CircuitBreakerListener):
    def state_change(self, cb: pybreaker.CircuitBreaker, old: object, new: object) -> None:
        logger.bind(op="breaker", state=str(getattr(new, "name", new))).warning(
            "DynamoDB circuit breaker: {} → {}",
            getattr(old, "name", old),
            getattr(new, "name", new),
        )


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
        clients = AwsClients(settings, counter)
        limiter = TokenBucket(
            settings.dynamodb_rps, settings.dynamodb_burst, settings.rate_limit_timeout_s
        )
        breaker = pybreaker.CircuitBreaker(
            fail_max=settings.breaker_fail_max,
            reset_timeout=settings.breaker_reset_s,
            exclude=[lambda exc: not is_outage(exc)],
            listeners=[_BreakerLog()],
            throw_new_error_on_trip=False,
            name="dynamodb",
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
