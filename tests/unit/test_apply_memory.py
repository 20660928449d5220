"""The listener's apply step (`EventApplier` over `CacheSync.converge`) on the in-memory twins:
S3 events delivered at least once, in any order, some of them through a failing S3 or DynamoDB
call, always leave the cache equal to S3 (invariant 3, level-triggered apply). The moto twin of
this file, with real SQS deliveries and racing workers, is
tests/integration/test_listener_convergence.py; memory runs many more schedules."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from engine.events.apply import EventApplier, Outcome
from engine.events.parse import Kind, ObjectEvent
from engine.exceptions import DocsyncError
from tests.integration.test_listener_convergence import body
from tests.memory_stores import MemoryEngine
from tests.unit._hyp import FAST

IDS = ("CHG-a", "CHG-b", "CHG-c")
FAULTS = (
    ("s3", "GetObject"),
    ("s3", "HeadObject"),
    ("dynamodb", "GetItem"),
    ("dynamodb", "PutItem"),
    ("dynamodb", "UpdateItem"),
    ("dynamodb", "TransactWriteItems"),  # an entry with its customer-index entries
)


@dataclass(frozen=True)
class Step:
    doc: int  # which of IDS
    put: bool  # a new revision, or a delete
    fault: int  # -1: none; else which of FAULTS fails once while this event is applied


steps = st.lists(
    st.builds(
        Step,
        doc=st.integers(0, len(IDS) - 1),
        put=st.booleans().map(lambda b: b),
        fault=st.integers(-1, len(FAULTS) - 1),
    ),
    min_size=1,
    max_size=14,
)


def key(doc_id: str) -> str:
    return f"changes/{doc_id}.json"


def write_s3(engine: MemoryEngine, step: Step, n: int) -> ObjectEvent:
    """What another writer does to S3, and the notification S3 sends for it."""
    doc_id = IDS[step.doc]
    now = datetime.now(UTC)
    sequencer = f"{n:020X}"
    if step.put:
        info = engine.objects.put(key(doc_id), body(doc_id, n))
        return event(engine, doc_id, "created", now, sequencer, info.etag, info.size)
    engine.objects.delete(key(doc_id))
    return event(engine, doc_id, "removed", now, sequencer, None, None)


def event(
    engine: MemoryEngine,
    doc_id: str,
    kind: Kind,
    at: datetime,
    sequencer: str,
    etag: str | None,
    size: int | None,
) -> ObjectEvent:
    name = "ObjectCreated:Put" if kind == "created" else "ObjectRemoved:Delete"
    return ObjectEvent(
        bucket=engine.settings.bucket,
        key=key(doc_id),
        kind=kind,
        name=name,
        event_time=at,
        sequencer=sequencer,
        etag=etag,
        size=size,
        version_id=None,
    )


def deliver(engine: MemoryEngine, applier: EventApplier, message: ObjectEvent, fault: int) -> bool:
    """One SQS delivery: True when the message would be deleted, False when it is retried."""
    if fault >= 0:
        engine.faults.fail(*FAULTS[fault])
    try:
        outcome: Outcome = applier.apply(message)
    except DocsyncError:
        return False  # the message stays in the queue and comes back
    finally:
        engine.faults.clear()
    assert outcome not in ("invalid", "out_of_window", "ignored"), outcome
    return outcome != "in_flight"


def assert_cache_equals_s3(engine: MemoryEngine) -> None:
    for doc_id in IDS:
        stored = engine.objects.head(key(doc_id))
        entry = engine.cache.get("change", doc_id)
        if stored is None:
            assert entry is None or not entry.live, (doc_id, entry)
        else:
            assert entry is not None and entry.live and entry.etag == stored.etag, doc_id


@FAST
@given(
    plan=steps,
    order=st.randoms(use_true_random=False),
    duplicates=st.lists(st.integers(0, 100), max_size=8),
)
def test_events_in_any_order_duplicated_and_through_failures_converge(
    plan: list[Step], order: object, duplicates: list[int]
) -> None:
    engine = MemoryEngine.build()
    applier = EventApplier(engine.settings, engine.sync)
    events = [(write_s3(engine, step, n), step.fault) for n, step in enumerate(plan, start=1)]
    queue = events + [(events[i % len(events)][0], -1) for i in duplicates]
    order.shuffle(queue)  # type: ignore[attr-defined]
    rounds = 0
    while queue:
        rounds += 1
        assert rounds < 10 * len(events) + 50, "a delivery never succeeds"
        message, fault = queue.pop(0)
        if not deliver(engine, applier, message, fault):
            queue.append((message, -1))  # redelivered after its visibility timeout
    assert_cache_equals_s3(engine)

    # Any event seen again later (SQS redelivers, S3 sends late) changes nothing.
    before = engine.snapshot()
    for message, _ in events:
        assert applier.apply(message) in ("duplicate", "stale")
    assert engine.snapshot() == before


def test_a_late_create_after_the_delete_does_not_resurrect() -> None:
    """S3 sends the create after the delete (no order across events): the tombstone wins."""
    engine = MemoryEngine.build()
    applier = EventApplier(engine.settings, engine.sync)
    created = write_s3(engine, Step(0, put=True, fault=-1), 1)
    removed = write_s3(engine, Step(0, put=False, fault=-1), 2)
    assert applier.apply(removed) == "applied"
    assert applier.apply(created) in ("duplicate", "stale")
    entry = engine.cache.get("change", IDS[0])
    assert entry is not None and not entry.live
    assert_cache_equals_s3(engine)


def test_a_failed_write_leaves_the_cache_as_it_was_and_the_retry_applies() -> None:
    engine = MemoryEngine.build()
    applier = EventApplier(engine.settings, engine.sync)
    event = write_s3(engine, Step(1, put=True, fault=-1), 1)
    fault = FAULTS.index(("dynamodb", "TransactWriteItems"))
    assert deliver(engine, applier, event, fault) is False
    assert engine.cache.get("change", IDS[1]) is None  # nothing half-written
    assert deliver(engine, applier, event, -1) is True
    assert_cache_equals_s3(engine)
