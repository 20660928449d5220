"""The local consumer's loop (`docsync consume`) entirely on the twins: the memory pipeline's
writes on the memory stream, the real `Lease` and `Checkpoints` on the memory leases table,
repair and history as the consumer runs them. What moto's one never-closing shard cannot
show: a split read parents first, a checkpoint the retention overtook (counted, and read on
from the trim horizon), an iterator that expired mid-run (nothing lost, nothing twice); and a
writer that died after its S3 put, committed by the running loop's repair.
tests/integration/test_streams_lineage.py runs the same loop on a scripted fake client with
leases in moto."""

from __future__ import annotations

import pytest

from engine.settings import StreamSettings
from engine.store.memory.stream import ITERATOR_TTL_S, RETENTION_S
from engine.streams.consumer import LocalConsumer
from engine.streams.records import ChangeRecord
from engine.streams.sinks import ANALYTICS, MemorySink
from tests.integration.faults import SimulatedCrash
from tests.memory_stores import MemoryEngine
from tests.unit.test_pipeline_memory import doc


def consumer(engine: MemoryEngine, seen: list[ChangeRecord] | None = None) -> LocalConsumer:
    config = StreamSettings(
        lease_ttl_s=5, idle_wait_s=0.01, checkpoint_interval_s=0.01, get_records_limit=3
    )
    made = LocalConsumer(
        engine.settings,
        config,
        engine.clients,
        stream=engine.stream,
        sink=MemorySink(),
        engine=engine,  # type: ignore[arg-type]
        on_records=seen.extend if seen is not None else None,
    )
    return made


def put(engine: MemoryEngine, *ids: str) -> None:
    for doc_id in ids:
        engine.pipeline.put(doc(doc_id))


def test_a_split_stream_is_read_parents_first_with_history_and_rows() -> None:
    engine = MemoryEngine.build()
    put(engine, *"ABCDEFGHIJKLMN")  # past 50 records: sequence numbers grow a digit
    children = engine.stream.rotate(engine.settings.table, children=2)
    put(engine, *"OPQRST")
    seen: list[ChangeRecord] = []
    made = consumer(engine, seen)
    summary = made.run(drain=True)
    assert summary.shards == 3 and summary.trimmed == 0 and summary.core["creates"] == 20
    assert {len(r.sequence) for r in seen} == {21, 22}
    shards = [r.source.rsplit("/", 1)[1] for r in seen]
    first_child = min(shards.index(c) for c in children if c in shards)
    assert all(s not in children for s in shards[:first_child])  # the parent, to its end
    assert len({(r.source, r.sequence) for r in seen}) == len(seen)  # nothing read twice
    assert sorted(e["id"] for e in engine.history.scan()) == list("ABCDEFGHIJKLMNOPQRST")
    assert sum(r["creates"] for r in made.sink.rows[ANALYTICS]) == 20  # type: ignore[attr-defined]


def test_a_checkpoint_the_retention_overtook_is_counted_and_reading_goes_on() -> None:
    engine = MemoryEngine.build()
    put(engine, "A", "B")
    assert consumer(engine).run(drain=True).core["creates"] == 2
    put(engine, "C", "D")  # never read: the consumer is down for a day
    engine.clock.advance(RETENTION_S + 3600)
    put(engine, "E")
    summary = consumer(engine).run(drain=True)
    assert summary.trimmed == 1
    assert summary.core["creates"] == 1  # E, from the trim horizon
    assert "reconcile" in summary.as_dict()["action"]
    assert sorted(e["id"] for e in engine.history.scan()) == ["A", "B", "E"]


def test_an_iterator_that_expires_mid_run_loses_nothing_and_repeats_nothing() -> None:
    engine = MemoryEngine.build()
    put(engine, "A", "B", "C")
    seen: list[ChangeRecord] = []
    made = consumer(engine, seen)
    ticks = iter([ITERATOR_TTL_S + 1])

    def late(records: list[ChangeRecord]) -> None:
        seen.extend(records)
        engine.clock.advance(next(ticks, 0))  # the first batch took 15 minutes

    made.on_records = late
    summary = made.run(drain=True)
    assert summary.expired_iterators == 1
    assert summary.core["creates"] == 3 and summary.core["duplicates"] == 0
    assert len({(r.source, r.sequence) for r in seen}) == len(seen)


def test_a_dead_writer_is_repaired_by_the_running_consumer() -> None:
    engine = MemoryEngine.build(inflight_grace_s=0)
    engine.faults.crash_after("s3", "PutObject")
    with pytest.raises(SimulatedCrash):  # the writer died after its S3 put
        engine.pipeline.put(doc("A"))
    summary = consumer(engine).run(drain=True)
    assert summary.repairs == {"committed": 1}
    item = engine.cache.get_item("change", "A")
    assert item is not None and item["state"] == "live" and "p_tx" not in item
    assert [e["sync_source"] for e in engine.history.list("change", "A")] == ["repair"]


def test_a_restart_goes_on_after_its_checkpoint_across_a_longer_sequence_number() -> None:
    engine = MemoryEngine.build()
    put(engine, *"ABCDEFGHIJKL")  # 48 records: the checkpoint has 21 digits
    assert consumer(engine).run(drain=True).core["creates"] == 12
    put(engine, *"XYZ")  # their sequence numbers have 22
    seen: list[ChangeRecord] = []
    again = consumer(engine, seen).run(drain=True)
    assert again.core["creates"] == 3 and again.core["records"] == 12
    assert {len(r.sequence) for r in seen} == {22}
