"""Stream-driven repair against moto's real stream: a writer that died after its S3 put (its
S3 event lost) is repaired by the consumer, by a restarted consumer, by the Lambda handler;
a repair racing live writers never makes an entry older (checked through the stream)."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from engine.app import Engine
from engine.aws import CallCounter
from engine.documents import Document, parse_document
from engine.exceptions import WriteConflictError
from engine.lambdas import runtime as lambda_runtime
from engine.lambdas import stream as lambda_handler
from engine.settings import Settings
from engine.store.base import ConditionFailed
from engine.store.leases import Checkpoints
from engine.store.stream import StreamStore
from engine.streams.consumer import LocalConsumer
from tests.integration.test_reconcile import _stream_records
from tests.integration.test_streams_consumer import config, doc
from tests.integration.test_streams_lambda import lambda_shape, ttl_event

_de = TypeDeserializer()
WAIT_S = 60.0  # an upper bound for a slow shared machine, never a timing assertion


def with_grace(settings: Settings, grace_s: float) -> Engine:
    return Engine.build(settings.model_copy(update={"inflight_grace_s": grace_s}))


def die_after_s3_put(engine: Engine, d: Document) -> None:
    """Steps 1 and 2 of the write pipeline, then nothing: no commit, and no S3 event applied
    (this test runs no listener, so the event is as good as lost)."""
    engine.cache.begin(
        d.type,
        d.id,
        tx=uuid.uuid4().hex,
        etag=d.etag,
        op="put",
        stale_before=datetime.now(UTC) - timedelta(seconds=engine.settings.inflight_grace_s),
        expected_version=None,
    )
    engine.objects.put(f"{engine.settings.prefixes[d.type]}{d.id}.json", d.body)


def intent_record(records: list[dict[str, Any]], pk: str) -> dict[str, Any]:
    """The first record of `pk` that carries an intent (moto: the first of the two INSERTs
    of an UpdateItem that creates an item may carry the key alone)."""
    return next(
        r
        for r in records
        if r["dynamodb"]["Keys"]["pk"]["S"] == pk and "p_tx" in r["dynamodb"].get("NewImage", {})
    )


def hit_with(engine: Engine, d: Document) -> bool:
    entry = engine.cache.get(d.type, d.id)
    return entry is not None and entry.servable() and entry.etag == d.etag


def wait_for(check: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < deadline, f"not within {WAIT_S} s: {what}"
        time.sleep(0.05)


def test_the_running_consumer_commits_a_dead_writers_put(
    settings: Settings, tmp_path: Path
) -> None:
    engine = with_grace(settings, 1.0)
    old = doc("CHG-OLD", status="draft")
    engine.pipeline.put(old)
    new = doc("CHG-OLD", status="approved", n=1)
    die_after_s3_put(engine, new)
    assert not hit_with(engine, new)
    consumer = LocalConsumer(engine.settings, config(tmp_path), engine.clients, engine=engine)
    runner = threading.Thread(target=consumer.run)
    runner.start()
    try:
        wait_for(lambda: hit_with(engine, new), "the stuck intent committed")
    finally:
        consumer.stop.set()
        runner.join(30)
    result = engine.reader.get("change", "CHG-OLD")
    assert result.cache == "hit" and result.document["status"] == "approved"
    assert consumer.summary.as_dict()["repairs"] == {"committed": 1}


def test_a_consumer_killed_with_keys_pending_repairs_them_after_its_restart(
    settings: Settings, tmp_path: Path
) -> None:
    patient = with_grace(settings, 600.0)  # nothing falls due while the first consumer runs
    stuck = [doc(f"CHG-S{n}", status="approved", n=n) for n in range(3)]
    for d in stuck:
        die_after_s3_put(patient, d)
    for n in range(4):  # later records: the checkpoint moves past the stuck intents
        patient.pipeline.put(doc(f"CHG-OK{n}", n=n))
    conf = config(tmp_path)
    first = LocalConsumer(patient.settings, conf, patient.clients, engine=patient)
    summary = first.run(drain=True).as_dict()
    assert summary["pending_keys"] == 3 and summary["repairs"] == {}
    assert summary["creates"] == 4
    arn = first.summary.stream_arn
    assert arn is not None
    saved = Checkpoints(patient.clients.dynamodb, settings.leases_table, arn)
    [shard] = [s["ShardId"] for s in StreamStore(patient.clients).shards(arn)]
    (cp,) = saved.load([shard]).values()
    records = _stream_records(patient)
    first_intent = intent_record(records, "change#CHG-S0")
    assert cp.replay_at is not None
    assert cp.replay_at == first_intent["dynamodb"]["SequenceNumber"]
    assert int(cp.sequence or 0) > int(cp.replay_at)  # the analytics position moved on
    assert not any(hit_with(patient, d) for d in stuck)
    # The first consumer is gone with its memory; its successor starts once the grace is over.
    due = with_grace(settings, 0.5)
    time.sleep(0.6)
    second = LocalConsumer(due.settings, conf, due.clients, engine=due)
    after = second.run(drain=True).as_dict()
    assert after["repairs"] == {"committed": 3} and after["pending_keys"] == 0
    assert all(hit_with(due, d) for d in stuck)
    # The replayed records only rebuilt the pending keys: counted once, by the first consumer.
    assert after["creates"] == 3 and after["writes"] == {"repair": 3}


def test_repairs_racing_live_writers_never_make_an_entry_older(
    settings: Settings, tmp_path: Path
) -> None:
    """A seeded random schedule of writers (some of which die after their S3 put, then a
    later write takes over) against a consumer repairing with a short grace."""
    engine = with_grace(settings, 0.3)
    rng = random.Random(1313)
    ids = [f"CHG-R{n}" for n in range(4)]
    plan = [(rng.choice(ids), rng.random() < 0.35) for _ in range(40)]
    consumer = LocalConsumer(engine.settings, config(tmp_path), engine.clients, engine=engine)
    runner = threading.Thread(target=consumer.run)
    runner.start()
    try:

        def writer(part: list[tuple[str, bool]], seed: int) -> None:
            local = random.Random(seed)
            for n, (doc_id, dies) in enumerate(part):
                d = doc(doc_id, status=local.choice(["draft", "approved"]), n=n + seed * 100)
                try:
                    if dies:
                        die_after_s3_put(engine, d)
                    else:
                        engine.pipeline.put(d)
                except (ConditionFailed, WriteConflictError):
                    pass  # another writer's fresh intent: this write loses, as it should
                time.sleep(local.random() * 0.1)

        threads = [threading.Thread(target=writer, args=(plan[i::3], i + 1)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        def converged() -> bool:
            for doc_id in ids:
                item = engine.cache.get_item("change", doc_id)
                if item is None or item.get("p_tx"):
                    return False
                s3 = engine.objects.head(f"changes/{doc_id}.json")
                if s3 is None or s3.etag != item.get("etag"):
                    return False
            return True

        wait_for(converged, "every key repaired to what S3 holds")
    finally:
        consumer.stop.set()
        runner.join(30)
    positions: dict[str, list[int]] = defaultdict(list)
    for record in _stream_records(engine):
        new = record["dynamodb"].get("NewImage")
        if not new or "s3_last_modified" not in new:
            continue
        image = {k: _de.deserialize(v) for k, v in new.items()}
        positions[str(image["pk"])].append(int(image["s3_last_modified"]))
    assert set(positions) == {f"change#{i}" for i in ids}
    for pk, seen in positions.items():
        assert seen == sorted(seen), f"{pk} went backwards: {seen}"
    assert sum(consumer.repairs.values()) >= 1


def _lambda_runtime(
    settings: Settings, tmp_path: Path, **conf: Any
) -> lambda_runtime.StreamRuntime:
    rt = lambda_runtime.build_stream_runtime(settings, config(tmp_path, **conf), CallCounter())
    lambda_runtime.use_stream_runtime(rt)
    return rt


def test_the_stream_lambda_repairs_a_stuck_intent_within_the_invocation(
    settings: Settings, tmp_path: Path
) -> None:
    engine = with_grace(settings, 0.5)
    d = doc("CHG-L1", status="approved")
    die_after_s3_put(engine, d)
    arn = engine.clients.dynamodb.describe_table(TableName=settings.table)["Table"][
        "LatestStreamArn"
    ]
    event = {"Records": [lambda_shape(r, arn) for r in _stream_records(engine)]}
    _lambda_runtime(engine.settings, tmp_path, lambda_repair_wait_s=30)
    try:
        assert lambda_handler.stream_handler(event, None) == {"batchItemFailures": []}
    finally:
        lambda_runtime.use_stream_runtime(None)
    assert hit_with(engine, d)


def test_the_stream_lambda_retries_from_an_intent_not_yet_due(
    settings: Settings, tmp_path: Path
) -> None:
    engine = with_grace(settings, 600.0)
    engine.pipeline.put(doc("CHG-L0"))
    d = doc("CHG-L2", status="approved")
    die_after_s3_put(engine, d)
    engine.pipeline.put(doc("CHG-L3"))
    arn = engine.clients.dynamodb.describe_table(TableName=settings.table)["Table"][
        "LatestStreamArn"
    ]
    records = [lambda_shape(r, arn) for r in _stream_records(engine)]
    intent = intent_record(records, "change#CHG-L2")
    rt = _lambda_runtime(engine.settings, tmp_path, lambda_repair_wait_s=0)
    try:
        response = lambda_handler.stream_handler({"Records": records}, None)
    finally:
        lambda_runtime.use_stream_runtime(None)
    assert response == {
        "batchItemFailures": [{"itemIdentifier": intent["dynamodb"]["SequenceNumber"]}]
    }
    assert rt.core.totals["creates"] == 1  # CHG-L0 only: the rest is delivered again
    assert not hit_with(engine, d)


def test_a_ttl_removal_is_counted_and_never_touches_s3(settings: Settings, tmp_path: Path) -> None:
    counter = CallCounter()
    rt = lambda_runtime.build_stream_runtime(
        settings, config(tmp_path, lambda_repair_wait_s=0), counter
    )
    lambda_runtime.use_stream_runtime(rt)
    try:
        assert lambda_handler.stream_handler(ttl_event(), None) == {"batchItemFailures": []}
    finally:
        lambda_runtime.use_stream_runtime(None)
    assert sum(rt.core.totals[k] for k in rt.core.totals if k == "ttl_expiries") >= 1
    assert not [op for op in counter.counts if op.startswith("s3.")], counter.counts


def test_the_kcl_processor_repairs_and_records_history(settings: Settings) -> None:
    from engine.streams.effects import Effects, build_processor
    from engine.streams.kcl import DocsyncRecordProcessor
    from engine.streams.multilang import InitializeInput
    from engine.streams.sinks import MemorySink
    from tests.integration.test_streams_kcl import destination_payload
    from tests.unit.test_streams_kcl import SHARD, Checkpointer, records_input

    engine = with_grace(settings, 0.5)
    engine.pipeline.put(doc("CHG-K1", status="draft"), actor="kim")
    d = doc("CHG-K2", status="approved")
    die_after_s3_put(engine, d)
    conf = config(Path("unused"), analytics_dir=None)
    processor = DocsyncRecordProcessor(
        build_processor(engine.settings, conf),
        MemorySink(),
        effects=Effects.build(engine, conf),
    )
    processor.initialize(InitializeInput(SHARD, "TRIM_HORIZON", None))
    payloads = [destination_payload(r, settings.table) for r in _stream_records(engine)]
    time.sleep(0.6)  # the grace of the dead writer's intent is over
    processor.process_records(records_input(payloads, 100, Checkpointer()))
    assert hit_with(engine, d)
    store = Effects.build(engine, conf).history
    assert store is not None
    (entry,) = store.list("change", "CHG-K1")
    assert entry["actor"] == "kim" and entry["change"] == "create"


# -- the repair's decision table, key by key (engine/streams/repair.py) ----------------------


def begin(engine: Engine, d: Document, op: str = "put") -> str:
    tx = uuid.uuid4().hex
    engine.cache.begin(
        d.type,
        d.id,
        tx=tx,
        etag=d.etag if op == "put" else "",
        op=op,
        stale_before=datetime.now(UTC) - timedelta(seconds=engine.settings.inflight_grace_s),
        expected_version=None,
    )
    return tx


def stuck(engine: Engine, d: Document, tx: str) -> Any:
    from engine.streams.pending import PendingKey
    from engine.streams.repair import StreamRepairer

    repairer = StreamRepairer(engine.settings, engine.cache, engine.objects, engine.sync)
    return repairer.repair(PendingKey(f"{d.type}#{d.id}", "stuck_intent", 0, tx, "s", "1"))


def repairs_counted(reason: str, outcome: str) -> float:
    from engine import metrics

    value = metrics.REGISTRY.get_sample_value(
        "docsync_stream_repairs_total", {"reason": reason, "outcome": outcome}
    )
    return value or 0.0


def test_an_intent_whose_s3_put_never_happened_is_rolled_back(settings: Settings) -> None:
    engine = with_grace(settings, 0.0)
    old = doc("CHG-D1", status="draft")
    engine.pipeline.put(old)
    tx = begin(engine, doc("CHG-D1", status="approved", n=1))  # died before its S3 put
    before = repairs_counted("stuck_intent", "rolled_back")
    assert stuck(engine, old, tx) == "rolled_back"
    assert repairs_counted("stuck_intent", "rolled_back") == before + 1
    item = engine.cache.get_item("change", "CHG-D1") or {}
    assert "p_tx" not in item and item["etag"] == old.etag
    new = doc("CHG-D2")
    tx = begin(engine, new)  # a new entry, nothing in S3: the entry goes
    assert stuck(engine, new, tx) == "rolled_back"
    assert engine.cache.get_item("change", "CHG-D2") is None


def test_s3_decides_a_delete_intent_and_a_third_writers_content(settings: Settings) -> None:
    engine = with_grace(settings, 0.0)
    gone = doc("CHG-D3")
    engine.pipeline.put(gone)
    tx = begin(engine, gone, op="delete")
    engine.objects.delete("changes/CHG-D3.json")  # died after its S3 delete
    assert stuck(engine, gone, tx) == "committed"
    assert (engine.cache.get_item("change", "CHG-D3") or {}).get("state") == "deleted"
    mine, theirs = doc("CHG-D4", status="draft"), doc("CHG-D4", status="closed", n=2)
    engine.pipeline.put(mine)
    tx = begin(engine, doc("CHG-D4", status="approved", n=1))
    time.sleep(1.1)  # S3's LastModified has second precision: a later position
    engine.objects.put("changes/CHG-D4.json", theirs.body)  # someone else's direct write
    assert stuck(engine, mine, tx) == "applied"
    assert hit_with(engine, theirs)


def test_a_listener_write_over_a_stalled_writers_intent_is_checked_again(
    settings: Settings, tmp_path: Path
) -> None:
    """The listener replaces a stale intent with what S3 held; the stalled writer's S3 put
    lands afterwards and its event is lost: the re-check brings the cache to S3."""
    engine = with_grace(settings, 0.0)
    first = doc("CHG-D5", status="draft")
    engine.pipeline.put(first)
    late = doc("CHG-D5", status="approved", n=1)
    begin(engine, late)  # a writer stalls before its S3 put
    engine.objects.put("changes/CHG-D5.json", doc("CHG-D5", status="closed", n=2).body)
    item = engine.cache.get("change", "CHG-D5")
    stored = engine.objects.get("changes/CHG-D5.json")
    closed = parse_document(stored.body, "change")
    assert engine.sync.upsert(closed, stored, "event", current=item, read=True) in (
        "applied",
        "committed",
    )
    time.sleep(1.1)  # a later second
    engine.objects.put("changes/CHG-D5.json", late.body)  # the stalled put lands; no event
    conf = config(tmp_path, recheck_delay_s=0)
    summary = LocalConsumer(engine.settings, conf, engine.clients, engine=engine).run(drain=True)
    assert summary.as_dict()["repairs"] == {"applied": 1}
    assert hit_with(engine, late)
