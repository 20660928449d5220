"""The write pipeline's failure logic (invariant 2) on the in-memory twins: the real
CacheStore on MemoryDynamoDB, MemoryObjectStore for S3. The same cases run on moto in
tests/integration/test_write_pipeline.py; here they need no server, so the randomized
schedule can afford many more writes."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from engine import keys
from engine.documents import Document, parse_document
from engine.exceptions import CacheUnavailableError, ObjectStoreError, WriteConflictError
from engine.reader import Query
from tests.integration.faults import SimulatedCrash
from tests.memory_stores import MemoryEngine

CREATED, MODIFIED = (keys.iso(datetime.now(UTC) - timedelta(days=d)) for d in (20, 2))


def doc(doc_id: str = "CHG-1", **extra: Any) -> Document:
    body = {
        "id": doc_id,
        "object_type": "change",
        "title": "Kernel patching",
        "customer_codes": ["acme", "globex"],
        "status": "approved",
        "created_at": CREATED,
        "modified_at": MODIFIED,
    }
    body.update(extra)
    return parse_document(body)


@pytest.fixture
def engine() -> MemoryEngine:
    return MemoryEngine.build(breaker={"fail_max": 1000}, inflight_grace_s=0.5)


def entry(engine: MemoryEngine, doc_id: str) -> dict[str, Any] | None:
    return engine.cache.get_item("change", doc_id)


def s3_body(engine: MemoryEngine, d: Document) -> bytes | None:
    info = engine.objects.head(f"changes/{d.id}.json")
    return engine.objects.get(info.key).body if info else None


def test_put_then_read_and_query_see_it(engine: MemoryEngine) -> None:
    d = doc()
    assert engine.pipeline.put(d).version == 1
    got = engine.reader.get("change", d.id)
    assert got.cache == "hit" and got.document["title"] == "Kernel patching"
    page = engine.reader.query(Query(types=("change",), customer="globex"))
    assert [i["id"] for i in page.items] == [d.id]
    again = engine.pipeline.put(d)
    assert again.version == 1 and again.unchanged


@pytest.mark.parametrize("existing", [False, True])
def test_s3_failure_rolls_back_to_exactly_the_previous_entry(
    engine: MemoryEngine, existing: bool
) -> None:
    if existing:
        engine.pipeline.put(doc())
    before = engine.snapshot()
    engine.faults.fail("s3", "PutObject")
    with pytest.raises(ObjectStoreError):
        engine.pipeline.put(doc(title="new title"))
    assert engine.snapshot() == before


def test_dynamodb_failure_means_s3_is_not_written(engine: MemoryEngine) -> None:
    engine.faults.fail("dynamodb", "UpdateItem")
    with pytest.raises(CacheUnavailableError):
        engine.pipeline.put(doc())
    assert engine.snapshot() == ([], {})


@pytest.mark.parametrize("crash_after", ["dynamodb.UpdateItem", "s3.PutObject"])
@pytest.mark.parametrize("existing", [False, True])
def test_crash_between_steps_serves_only_committed_data_and_retry_completes(
    engine: MemoryEngine, crash_after: str, existing: bool
) -> None:
    old = doc(title="old")
    if existing:
        engine.pipeline.put(old)
    service, operation = crash_after.split(".")
    engine.faults.crash_after(service, operation)
    new = doc(title="new")
    with pytest.raises(SimulatedCrash):
        engine.pipeline.put(new)
    page = engine.reader.query(Query(types=("change",)))
    if existing:
        assert engine.reader.get("change", old.id).document["title"] == "old"
        assert [i["title"] for i in page.items] == ["old"]
    else:
        assert page.items == []
    result = engine.pipeline.put(new)
    assert result.version == (2 if existing else 1)
    assert s3_body(engine, new) == new.body
    got = engine.reader.get("change", new.id)
    assert got.cache == "hit" and got.document["title"] == "new"
    assert "p_tx" not in (entry(engine, new.id) or {})


@pytest.mark.parametrize("seed", [20261123, 7, 42])
def test_randomized_fault_schedule_converges(engine: MemoryEngine, seed: int) -> None:
    """Seeded random faults at every step; every write is retried until it succeeds."""
    rng = random.Random(seed)
    steps = [("dynamodb", "UpdateItem"), ("s3", "PutObject"), ("dynamodb", "TransactWriteItems")]
    faults = engine.faults
    expected: dict[str, Document] = {}
    versions: dict[str, int] = {}
    for n in range(200):
        doc_id = f"CHG-{rng.randrange(6)}"
        d = doc(doc_id, title=f"v{n}", seq=n, customer_codes=rng.sample(["a", "b", "c"], 2))
        attempts = 0
        while True:
            attempts += 1
            faults.clear()
            if attempts < 4 and rng.random() < 0.6:
                service, operation = rng.choice(steps)
                if rng.random() < 0.5:
                    faults.fail(service, operation, times=rng.randint(1, 2))
                else:
                    faults.crash_after(service, operation)
            try:
                result = engine.pipeline.put(d)
                break
            except (SimulatedCrash, ObjectStoreError, CacheUnavailableError, WriteConflictError):
                continue
        faults.clear()
        versions[doc_id] = versions.get(doc_id, 0) + 1
        assert result.version == versions[doc_id]
        expected[doc_id] = d
    for doc_id, d in expected.items():
        assert s3_body(engine, d) == d.body
        item = entry(engine, doc_id)
        assert item is not None and item["body"] == d.body.decode()
        assert "p_tx" not in item and int(item["version"]) == versions[doc_id]
    # the customer index names exactly the committed customers of each document
    for customer in "abc":
        page = engine.reader.query(Query(types=("change",), customer=customer))
        holders = {i["id"] for i in page.items}
        assert holders == {i for i, d in expected.items() if customer in d.customer_codes}


def test_concurrent_writers_with_expected_version_exactly_one_wins(engine: MemoryEngine) -> None:
    engine.pipeline.put(doc())
    barrier = threading.Barrier(8)
    wins: list[int | None] = []
    conflicts: list[WriteConflictError] = []

    def write(n: int) -> None:
        barrier.wait()
        try:
            wins.append(engine.pipeline.put(doc(title=f"w{n}"), expected_version=1).version)
        except WriteConflictError as exc:
            conflicts.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wins == [2] and len(conflicts) == 7
