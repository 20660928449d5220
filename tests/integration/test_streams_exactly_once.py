"""Analytics are exactly once in effect across crashes (moto's real stream, leases table and
S3 sink): a local consumer killed at any point of its two-phase checkpoint, then succeeded by
a fresh one; Lambda batches retried after a failure or a crash, whole, bisected or after a
partial batch response. Every time, the rows read back through the sink are those of every
stream record exactly once."""

from __future__ import annotations

import random
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from engine.app import Engine
from engine.lambdas import runtime as lambda_runtime
from engine.lambdas import stream as lambda_handler
from engine.readmetrics.flush import MetricsFlusher
from engine.settings import Settings, StreamSettings
from engine.store.abc import LeaseHolder
from engine.store.leases import Checkpoint, Checkpoints, pending_key
from engine.streams import consumer as consumer_module
from engine.streams.analytics import merge_rows
from engine.streams.consumer import LocalConsumer
from engine.streams.core import StreamProcessor
from engine.streams.records import from_stream
from engine.streams.sinks import ANALYTICS, RowSink, build_sink, newest_per_identity
from tests.integration.test_streams_consumer import doc, stream_records
from tests.integration.test_streams_lambda import flaky_decode, lambda_shape

POINTS = ("before_rows", "after_rows", "after_checkpoint", "put_fails_before", "put_fails_after")


class SimulatedCrash(BaseException):
    """The process dies here: nothing may catch it, nothing after it runs."""


@dataclass
class Plan:
    """Where the next consumer dies (or fails): at its `at`-th emission, at `point`."""

    point: str = "none"
    at: int = 0
    puts: int = 0  # analytics puts attempted
    settled: int = 0  # checkpoints saved with their emission
    fired: bool = False

    def hit(self, point: str, count: int) -> bool:
        if not self.fired and self.point == point and count == self.at:
            self.fired = True
            return True
        return False


class FaultySink:
    """The real sink, with the plan's fault around its analytics put."""

    def __init__(self, inner: RowSink, plan: Plan) -> None:
        self.inner = inner
        self.plan = plan

    def put(self, kind: str, name: str, rows: Sequence[Mapping[str, Any]]) -> str:
        if kind != ANALYTICS:
            return self.inner.put(kind, name, rows)
        n, plan = self.plan.puts, self.plan
        plan.puts += 1
        if plan.hit("before_rows", n):
            raise SimulatedCrash("after the pending marker, before the rows")
        if plan.hit("put_fails_before", n):
            raise OSError("connection reset before the put")
        where = self.inner.put(kind, name, rows)
        if plan.hit("after_rows", n):
            raise SimulatedCrash("after the rows, before the checkpoint")
        if plan.hit("put_fails_after", n):
            raise OSError("read timeout after the put landed")
        return where

    def exists(self, kind: str, name: str) -> bool:
        return self.inner.exists(kind, name)

    def read(self, kind: str, since: datetime) -> Iterator[dict[str, Any]]:
        return self.inner.read(kind, since)


def crashing_checkpoints(plan: Plan) -> type[Checkpoints]:
    class Crashing(Checkpoints):
        def save(
            self, updates: Mapping[str, Checkpoint], lease: LeaseHolder, *, settle: bool = False
        ) -> None:
            super().save(updates, lease, settle=settle)
            if settle:
                n = plan.settled
                plan.settled += 1
                if plan.hit("after_checkpoint", n):
                    raise SimulatedCrash("after the checkpoint")

    return Crashing


def conf() -> StreamSettings:
    """The S3 sink; an emission every few records."""
    return StreamSettings(
        lease_ttl_s=3, idle_wait_s=0.01, checkpoint_interval_s=0.001, get_records_limit=3
    )


def run_consumer(
    settings: Settings, engine: Engine, plan: Plan, monkeypatch: pytest.MonkeyPatch
) -> bool:
    """A consumer with the plan's fault, draining; True if it 'crashed'."""
    config = conf()
    sink = FaultySink(build_sink(settings, config, engine.clients, "consumer"), plan)
    with monkeypatch.context() as patch:
        patch.setattr(consumer_module, "Checkpoints", crashing_checkpoints(plan))
        try:
            LocalConsumer(settings, config, engine.clients, sink=sink).run(drain=True)
        except SimulatedCrash:
            return True
    return False


def stored(settings: Settings, engine: Engine) -> list[dict[str, Any]]:
    sink = build_sink(settings, conf(), engine.clients, "test")
    return merge_rows(sink.read(ANALYTICS, datetime.now(UTC) - timedelta(hours=2)))


def expected(settings: Settings, engine: Engine) -> list[dict[str, Any]]:
    """Every record of the stream, processed once."""
    core = StreamProcessor(table=settings.table, window_s=conf().window_s)
    core.process(from_stream(r, "stream") for r in stream_records(engine))
    return merge_rows(core.take_rows())


def changes(engine: Engine, round_: int, n: int = 3) -> dict[str, int]:
    """n creates, an update of each, a delete of the last: 2n + 1 committed changes."""
    for k in range(n):
        engine.pipeline.put(doc(f"X{round_}-{k}", n=k))
    for k in range(n):
        engine.pipeline.put(doc(f"X{round_}-{k}", status="approved", n=k + 1))
    engine.pipeline.delete("change", f"X{round_}-{n - 1}")
    return {"creates": n, "updates": n, "deletes": 1}


def totals(rows: list[dict[str, Any]]) -> dict[str, int]:
    return {k: sum(r[k] for r in rows) for k in ("creates", "updates", "deletes")}


def pending(settings: Settings, engine: Engine) -> bool:
    arn = engine.clients.dynamodb.describe_table(TableName=settings.table)["Table"][
        "LatestStreamArn"
    ]
    item = engine.clients.dynamodb.get_item(
        TableName=settings.leases_table, Key={"lease_key": {"S": pending_key(arn)}}
    )
    return "Item" in item


# -- the local consumer -----------------------------------------------------------------------


def test_crash_after_the_rows_are_stored_is_not_counted_twice(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = changes(engine, 0)
    assert run_consumer(settings, engine, Plan("after_rows", at=1), monkeypatch)
    assert pending(settings, engine)  # the crash left the marker behind
    assert not run_consumer(settings, engine, Plan(), monkeypatch)  # a fresh one drains
    assert not pending(settings, engine)
    rows = stored(settings, engine)
    assert totals(rows) == made
    assert rows == expected(settings, engine)


def test_crash_after_the_marker_before_the_rows_loses_nothing(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = changes(engine, 0)
    assert run_consumer(settings, engine, Plan("before_rows", at=1), monkeypatch)
    assert pending(settings, engine)
    assert not run_consumer(settings, engine, Plan(), monkeypatch)
    assert not pending(settings, engine)
    rows = stored(settings, engine)
    assert totals(rows) == made
    assert rows == expected(settings, engine)


def test_a_failed_put_is_settled_by_the_same_consumer(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A put that failed (after landing, or not at all) is settled at the next checkpoint."""
    made = dict.fromkeys(("creates", "updates", "deletes"), 0)
    for round_, point in enumerate(("put_fails_after", "put_fails_before")):
        for k, v in changes(engine, round_).items():
            made[k] += v
        plan = Plan(point, at=0)
        assert not run_consumer(settings, engine, plan, monkeypatch)
        assert plan.fired and not pending(settings, engine)
    rows = stored(settings, engine)
    assert totals(rows) == made
    assert rows == expected(settings, engine)


def test_crashes_at_random_points_over_several_rounds(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(20261123)
    made = dict.fromkeys(("creates", "updates", "deletes"), 0)
    fired: list[str] = []
    for round_ in range(10):
        for k, v in changes(engine, round_, n=rng.randint(1, 3)).items():
            made[k] += v
        for _ in range(rng.randint(1, 2)):  # sometimes a consumer dies, and its successor too
            plan = Plan(rng.choice(POINTS), at=rng.randint(0, 2))
            run_consumer(settings, engine, plan, monkeypatch)
            fired += [plan.point] if plan.fired else []
    assert set(fired) == set(POINTS)  # the seed reaches every point
    assert not run_consumer(settings, engine, Plan(), monkeypatch)
    rows = stored(settings, engine)
    assert totals(rows) == made
    assert rows == expected(settings, engine)


# -- Lambda -----------------------------------------------------------------------------------


@pytest.fixture
def batch(settings: Settings, engine: Engine) -> list[dict[str, Any]]:
    changes(engine, 0)
    arn = engine.clients.dynamodb.describe_table(TableName=settings.table)["Table"][
        "LatestStreamArn"
    ]
    return [lambda_shape(r, arn) for r in stream_records(engine)]


def container(settings: Settings) -> lambda_runtime.StreamRuntime:
    """A new Lambda execution environment (nothing remembered), with the S3 sink."""
    rt = lambda_runtime.build_stream_runtime(settings, StreamSettings())
    lambda_runtime.use_stream_runtime(rt)
    return rt


@pytest.fixture(autouse=True)
def _no_runtime_left() -> Iterator[None]:
    yield
    lambda_runtime.use_stream_runtime(None)


def objects(settings: Settings, engine: Engine) -> list[str]:
    """The emissions a reader sees: one per identity, however often it was stored."""
    return newest_per_identity(
        info.key for info in engine.objects.list(f"{settings.reserved_prefix}streams/{ANALYTICS}/")
    )


def fail_after_storing(
    rt: lambda_runtime.StreamRuntime, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    real = rt.sink.put

    def put(kind: str, name: str, rows: Sequence[Mapping[str, Any]]) -> str:
        real(kind, name, rows)
        monkeypatch.setattr(rt.sink, "put", real)
        raise error

    monkeypatch.setattr(rt.sink, "put", put)


def crash(event: dict[str, Any]) -> None:
    """The handler dies mid-invocation (its metrics, never added, warn as they are flushed)."""
    with warnings.catch_warnings(), pytest.raises(SimulatedCrash):
        warnings.simplefilter("ignore", UserWarning)
        lambda_handler.stream_handler(event, None)


@pytest.mark.parametrize("same_container", [True, False])
def test_a_batch_retried_after_a_failure_after_storing_is_stored_once(
    settings: Settings,
    engine: Engine,
    batch: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    same_container: bool,
) -> None:
    rt = container(settings)
    fail_after_storing(rt, monkeypatch, OSError("read timeout after the put landed"))
    first = batch[0]["dynamodb"]["SequenceNumber"]
    response = lambda_handler.stream_handler({"Records": batch}, None)
    assert response == {"batchItemFailures": [{"itemIdentifier": first}]}
    assert len(objects(settings, engine)) == 1  # stored, though the handler could not know
    if not same_container:
        container(settings)
    assert lambda_handler.stream_handler({"Records": batch}, None) == {"batchItemFailures": []}
    assert len(objects(settings, engine)) == 1
    assert stored(settings, engine) == expected(settings, engine)


@pytest.mark.parametrize("bisected", [False, True])
def test_a_batch_redelivered_after_a_crash_is_stored_once(
    settings: Settings,
    engine: Engine,
    batch: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    bisected: bool,
) -> None:
    rt = container(settings)
    fail_after_storing(rt, monkeypatch, SimulatedCrash("timed out"))
    crash({"Records": batch})
    half = len(batch) // 2
    retries = [batch[:half], batch[half:]] if bisected else [batch]
    for retry in retries:  # Lambda retries the batch (or its halves) in a new environment
        container(settings)
        assert lambda_handler.stream_handler({"Records": retry}, None) == {"batchItemFailures": []}
    assert len(objects(settings, engine)) == len(retries)
    assert stored(settings, engine) == expected(settings, engine)


def test_a_bisected_half_with_no_rows_empties_the_whole_batch_object(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.reader.stats.record("hit", 1.0)
    MetricsFlusher(engine.cache, engine.reader.stats).flush()
    changes(engine, 0)
    arn = engine.clients.dynamodb.describe_table(TableName=settings.table)["Table"][
        "LatestStreamArn"
    ]
    batch = [lambda_shape(r, arn) for r in stream_records(engine)]
    assert str(batch[0]["dynamodb"]["Keys"]["pk"]["S"]).startswith("_docsync#")  # no rows
    rt = container(settings)
    fail_after_storing(rt, monkeypatch, SimulatedCrash("timed out"))
    crash({"Records": batch})
    for retry in (batch[:1], batch[1:]):
        container(settings)
        assert lambda_handler.stream_handler({"Records": retry}, None) == {"batchItemFailures": []}
    assert stored(settings, engine) == expected(settings, engine)


def test_partial_failure_then_its_retry_store_every_record_once(
    settings: Settings,
    engine: Engine,
    batch: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bad = 5
    failed = batch[bad]["dynamodb"]["SequenceNumber"]
    container(settings)
    with monkeypatch.context() as patch:
        flaky_decode(patch, {failed})
        response = lambda_handler.stream_handler({"Records": batch}, None)
    assert response == {"batchItemFailures": [{"itemIdentifier": failed}]}
    before = stored(settings, engine)
    straight = StreamProcessor(table=settings.table)
    straight.process(from_stream(r) for r in batch[:bad])
    assert before == merge_rows(straight.take_rows())  # only the records before the failure
    rt = container(settings)  # Lambda resumes at the failed record; it crashes once more
    fail_after_storing(rt, monkeypatch, SimulatedCrash("timed out"))
    crash({"Records": batch[bad:]})
    container(settings)
    assert lambda_handler.stream_handler({"Records": batch[bad:]}, None) == {
        "batchItemFailures": []
    }
    assert len(objects(settings, engine)) == 2
    rows = stored(settings, engine)
    assert totals(rows) == {"creates": 3, "updates": 3, "deletes": 1}
    assert rows == expected(settings, engine)
