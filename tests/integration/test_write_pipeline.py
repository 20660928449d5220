"""Invariant 2 against a moto server over HTTP: intent, S3, commit; failures at every step."""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from engine import keys
from engine.app import Engine
from engine.documents import Document, parse_document
from engine.exceptions import CacheUnavailableError, ObjectStoreError, WriteConflictError
from engine.reader import Query
from engine.settings import Settings
from engine.store.base import ConditionFailed
from engine.store.item import INLINE_BODY_LIMIT, live_attributes
from engine.store.objects import ObjectInfo
from tests.conftest import make_settings, snapshot
from tests.integration.faults import Faults, SimulatedCrash

# Relative to when the suite started (fixed for the run, so the same document is the same
# bytes twice): inside the cache window and the default query range on any date.
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


def s3_body(engine: Engine, d: Document) -> bytes | None:
    info = engine.objects.head(f"changes/{d.id}.json")
    return engine.objects.get(info.key).body if info else None


def item(engine: Engine, doc_id: str) -> dict[str, Any] | None:
    return next((i for i in engine.cache.scan_all() if i["pk"] == f"change#{doc_id}"), None)


@pytest.fixture
def faulty(settings: Settings) -> tuple[Engine, Faults]:
    s = make_settings(str(settings.endpoint_url), breaker={"fail_max": 1000}, inflight_grace_s=0.5)
    engine = Engine.build(s)
    faults = Faults()
    faults.attach(engine.clients.s3)
    faults.attach(engine.clients.dynamodb)
    return engine, faults


def test_put_then_get_and_query_see_it_immediately(engine: Engine) -> None:
    d = doc(extra_field={"nested": [1, "two", None]})
    result = engine.pipeline.put(d)
    assert result.version == 1
    assert result.etag == hashlib.md5(d.body).hexdigest()
    got = engine.reader.get("change", d.id)
    assert got.cache == "hit"
    assert got.document == json.loads(d.body)
    assert got.document["extra_field"] == {"nested": [1, "two", None]}
    page = engine.reader.query(Query(types=("change",), customer="globex"))
    assert [i["id"] for i in page.items] == [d.id]


def test_three_calls_per_write_and_no_reads(engine: Engine, counter: Any) -> None:
    counter.reset()
    engine.pipeline.put(doc())
    assert counter.total() == 3
    # Intent (UpdateItem), S3 put, commit: the whole image and its customer-index entries in
    # one TransactWriteItems.
    assert counter.counts == {
        "dynamodb.UpdateItem": 1,
        "s3.PutObject": 1,
        "dynamodb.TransactWriteItems": 1,
    }


def test_same_content_twice_is_one_version(engine: Engine) -> None:
    d = doc()
    assert engine.pipeline.put(d).version == 1
    again = engine.pipeline.put(d)
    assert again.version == 1 and again.unchanged
    assert engine.pipeline.put(doc(title="changed")).version == 2


@pytest.mark.parametrize("existing", [False, True])
def test_s3_failure_rolls_back_to_exactly_the_previous_entry(
    faulty: tuple[Engine, Faults], existing: bool
) -> None:
    engine, faults = faulty
    if existing:
        engine.pipeline.put(doc())
    before = snapshot(engine)
    faults.fail("s3", "PutObject")
    with pytest.raises(ObjectStoreError):
        engine.pipeline.put(doc(title="new title"))
    assert snapshot(engine) == before


def test_dynamodb_failure_means_s3_is_not_written(faulty: tuple[Engine, Faults]) -> None:
    engine, faults = faulty
    faults.fail("dynamodb", "UpdateItem")
    with pytest.raises(CacheUnavailableError):
        engine.pipeline.put(doc())
    assert snapshot(engine) == ([], {})


@pytest.mark.parametrize("crash_after", ["dynamodb.UpdateItem", "s3.PutObject"])
@pytest.mark.parametrize("existing", [False, True])
def test_crash_between_steps_serves_only_committed_data_and_retry_completes(
    faulty: tuple[Engine, Faults], crash_after: str, existing: bool
) -> None:
    engine, faults = faulty
    old = doc(title="old")
    if existing:
        engine.pipeline.put(old)
    service, operation = crash_after.split(".")
    faults.crash_after(service, operation)
    new = doc(title="new")
    with pytest.raises(SimulatedCrash):
        engine.pipeline.put(new)
    # The intent (or the S3 object) is there, but readers only see committed data.
    page = engine.reader.query(Query(types=("change",)))
    if existing:
        assert engine.reader.get("change", old.id).document["title"] == "old"
        assert [i["title"] for i in page.items] == ["old"]
    else:
        assert page.items == []
    # Retrying the same write completes it: S3 and cache hold exactly that document.
    result = engine.pipeline.put(new)
    assert result.version == (2 if existing else 1)
    assert s3_body(engine, new) == new.body
    got = engine.reader.get("change", new.id)
    assert got.cache == "hit" and got.document["title"] == "new"
    assert "p_tx" not in (item(engine, new.id) or {})


def test_randomized_fault_schedule_converges(faulty: tuple[Engine, Faults]) -> None:
    """Seeded random faults at every step; every write is retried until it succeeds."""
    engine, faults = faulty
    rng = random.Random(20261123)
    steps = [("dynamodb", "UpdateItem"), ("s3", "PutObject"), ("dynamodb", "TransactWriteItems")]
    expected: dict[str, Document] = {}
    versions: dict[str, int] = {}
    for n in range(40):
        doc_id = f"CHG-{rng.randrange(4)}"
        d = doc(doc_id, title=f"v{n}", seq=n)
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
        entry = item(engine, doc_id)
        assert entry is not None and entry["body"] == d.body.decode()
        assert "p_tx" not in entry
        assert int(entry["version"]) == versions[doc_id]


def test_a_late_commit_after_another_writer_took_over_is_refused(
    faulty: tuple[Engine, Faults],
) -> None:
    """Writer A stalls after its S3 put; its intent goes stale and writer B takes over and
    commits. A's commit (a whole-image put) must then be refused: the entry is no longer A's."""
    engine, faults = faulty
    a, b = doc(title="writer A"), doc(title="writer B")
    faults.crash_after("s3", "PutObject")
    with pytest.raises(SimulatedCrash):
        engine.pipeline.put(a)
    faults.clear()
    stalled = item(engine, a.id)
    assert stalled is not None and stalled["p_etag"] == a.etag
    time.sleep(engine.settings.inflight_grace_s + 0.1)
    assert engine.pipeline.put(b).version == 1
    info = ObjectInfo("changes/CHG-1.json", a.etag, len(a.body), datetime.now(UTC))
    attrs = live_attributes(
        a, info, prefix="changes/", source="write", ttl_days=90, inline_limit=INLINE_BODY_LIMIT
    )
    with pytest.raises(ConditionFailed):
        engine.cache.commit_live(
            a.type, a.id, str(stalled["p_tx"]), attrs, int(stalled["p_version"]), []
        )
    entry = item(engine, b.id)
    assert entry is not None and json.loads(entry["body"])["title"] == "writer B"
    assert int(entry["version"]) == 1 and "p_tx" not in entry
    assert s3_body(engine, b) == b.body


def test_concurrent_writers_with_expected_version_exactly_one_wins(engine: Engine) -> None:
    engine.pipeline.put(doc())
    barrier = threading.Barrier(8)
    wins: list[int] = []
    conflicts: list[WriteConflictError] = []

    def write(n: int) -> None:
        barrier.wait()
        try:
            wins.append(
                engine.pipeline.put(doc(title=f"writer {n}"), expected_version=1).version or 0
            )
        except WriteConflictError as exc:
            conflicts.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wins == [2]
    assert len(conflicts) == 7
    entry = item(engine, "CHG-1")
    assert entry is not None and int(entry["version"]) == 2
    assert s3_body(engine, doc()) == str(entry["body"]).encode()


def test_expected_version_conflict_is_clear(engine: Engine) -> None:
    engine.pipeline.put(doc())
    with pytest.raises(WriteConflictError, match="expected version 5, current is 1"):
        engine.pipeline.put(doc(title="x"), expected_version=5)
    with pytest.raises(WriteConflictError):
        engine.pipeline.put(doc(title="x"), expected_version=0)
    assert engine.pipeline.put(doc("CHG-2"), expected_version=0).version == 1


def test_oversized_document_is_stored_in_s3_with_a_metadata_only_entry(engine: Engine) -> None:
    big = doc(payload="x" * 500_000)
    engine.pipeline.put(big)
    entry = item(engine, big.id)
    assert entry is not None and "body" not in entry and entry["body_in_s3"] is True
    assert s3_body(engine, big) == big.body
    got = engine.reader.get("change", big.id)
    assert got.cache == "hit" and len(got.document["payload"]) == 500_000
    page = engine.reader.query(Query(types=("change",)))
    assert page.items[0]["payload"] == "x" * 500_000


def test_delete_leaves_a_tombstone_and_reads_say_not_found(engine: Engine) -> None:
    from engine.exceptions import NotFoundError

    engine.pipeline.put(doc())
    assert engine.pipeline.delete("change", "CHG-1").deleted
    entry = item(engine, "CHG-1")
    assert entry is not None and entry["state"] == "deleted" and "tpk" not in entry
    with pytest.raises(NotFoundError):
        engine.reader.get("change", "CHG-1")
    assert engine.reader.query(Query()).items == []
    assert engine.reader.query(Query(customer="globex")).items == []
    assert not any(str(i["pk"]).startswith(keys.INDEX_PK) for i in engine.cache.scan_all())


def test_delete_is_idempotent(engine: Engine, counter: Any) -> None:
    """A retried delete succeeds: already absent, nothing written for a key never cached."""
    engine.pipeline.put(doc())
    first = engine.pipeline.delete("change", "CHG-1")
    again = engine.pipeline.delete("change", "CHG-1")
    assert (first.deleted, first.already_absent) == (True, False)
    assert again.as_dict() == {
        "id": "CHG-1",
        "type": "change",
        "deleted": False,
        "already_absent": True,
    }
    assert item(engine, "CHG-1")["state"] == "deleted"  # type: ignore[index]
    never = engine.pipeline.delete("change", "nope")
    assert (never.deleted, never.already_absent) == (False, True)
    assert item(engine, "nope") is None  # the intent was dropped, no tombstone left


def test_dry_run_changes_nothing(settings: Settings) -> None:
    engine = Engine.build(settings)
    engine.pipeline.put(doc("CHG-keep"))
    before = snapshot(engine)
    dry = Engine.build(make_settings(str(settings.endpoint_url), dry_run=True))
    assert dry.pipeline.put(doc("CHG-new")).dry_run
    assert dry.pipeline.delete("change", "CHG-keep").dry_run
    # even a direct mutating call through a dry-run client is dropped by the guard
    dry.objects.put("changes/CHG-raw.json", b"{}")
    assert snapshot(engine) == before
