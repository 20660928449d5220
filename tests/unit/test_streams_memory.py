"""The stream core and its effects on the in-memory twins: random workloads through the real
pipeline (writers that die after their S3 put or before it, shards that split) feed the
memory stream; records go in (read through the `Stream` interface), figures, history entries
and repairs come out. The moto twins of these cases are tests/integration/test_stream_repair.py
and test_history.py.

Two delivery models. History and figures are derived from each record's images alone, so
any order and any duplicates give the same result (`shuffled`). Repair follows each key's
intents through its records, which relies on what DynamoDB Streams and Kinesis guarantee:
one item's records arrive in order (keys interleave freely), and a redelivery replays from a
checkpoint (`replayed`). An older record of a key delivered after a newer one would clear
the newer intent's pending repair (the scheduled reconcile would then be its safety net).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from engine.exceptions import DocsyncError
from engine.store.abc import History
from engine.store.item import now_ms
from engine.store.memory import memory_history
from engine.store.stream import Lost
from engine.streams.core import StreamProcessor
from engine.streams.effects import Effects
from engine.streams.history import public
from engine.streams.records import ChangeRecord, from_stream
from engine.streams.repair import StreamRepairer
from engine.streams.shards import lineage_order, parse_shards
from tests.integration.faults import SimulatedCrash
from tests.integration.test_history import LIFE, life
from tests.memory_stores import MemoryEngine
from tests.unit._hyp import FAST
from tests.unit.test_pipeline_memory import doc

IDS = ("A", "B", "C")
ACTIONS = ("put", "put", "status", "delete", "die_after_s3", "die_before_s3", "split")
OPS = st.lists(st.tuples(st.sampled_from(IDS), st.sampled_from(ACTIONS)), max_size=14)
DDB_BEGIN = ("dynamodb", "UpdateItem")  # the pipeline's step 1
LATER_MS = 10**7  # past every deadline: grace and recheck delays are zero here


def build() -> MemoryEngine:
    """Intents are stale at once (a dead writer's is taken over or repaired, no waiting)."""
    return MemoryEngine.build(inflight_grace_s=0, breaker={"fail_max": 1000})


def run(engine: MemoryEngine, ops: list[tuple[str, str]]) -> None:
    for n, (doc_id, action) in enumerate(ops):
        d = doc(doc_id, title=f"title {n}", status="draft" if action == "status" else "approved")
        try:
            if action == "split":
                engine.stream.rotate(engine.settings.table, children=2)
            elif action == "delete":
                engine.pipeline.delete("change", doc_id)
            elif action.startswith("die"):
                after_s3 = action == "die_after_s3"
                engine.faults.crash_after(*(("s3", "PutObject") if after_s3 else DDB_BEGIN))
                engine.pipeline.put(d)
            else:
                engine.pipeline.put(d)
        except SimulatedCrash:
            engine.faults.clear()
            time.sleep(0.002)  # the next writer must find this intent stale: grace 0 compares
            # whole milliseconds, and a fresh one would be waited on (and the crash not planted)
        except DocsyncError:
            pass  # a delete of a document never written


@dataclass
class Tail:
    """Reads what is new on every shard, parents before children, through `Stream`."""

    engine: MemoryEngine
    positions: dict[str, str] = field(default_factory=dict)

    def new_records(self) -> list[ChangeRecord]:
        stream = self.engine.stream
        arn = stream.latest_arn(self.engine.settings.table)
        assert arn is not None
        out: list[ChangeRecord] = []
        for shard in lineage_order(parse_shards(stream.shards(arn))):
            seen = self.positions.get(shard.shard_id)
            kind = "AFTER_SEQUENCE_NUMBER" if seen else "TRIM_HORIZON"
            iterator: str | Lost | None = stream.iterator(arn, shard.shard_id, kind, seen)
            while isinstance(iterator, str):
                page = stream.records(iterator, 4)
                assert not isinstance(page, Lost)
                for raw in page["Records"]:
                    out.append(from_stream(raw, f"{arn}/{shard.shard_id}"))
                    self.positions[shard.shard_id] = raw["dynamodb"]["SequenceNumber"]
                iterator = page.get("NextShardIterator") if page["Records"] else None
        return out


def consumer(engine: MemoryEngine) -> tuple[StreamProcessor, Effects]:
    core = StreamProcessor(
        table=engine.settings.table, grace_s=0, recheck_delay_s=0, history_days=400
    )
    # StreamRepairer and Effects annotate the S3 and history stores' concrete classes where
    # they use only the `Objects` and `History` protocols the twins implement.
    repairer = StreamRepairer(engine.settings, engine.cache, engine.objects, engine.sync)
    return core, Effects(engine.history, repairer)


def batches(records: list[ChangeRecord], rng: random.Random) -> list[list[ChangeRecord]]:
    cuts = sorted(rng.sample(range(1, len(records)), min(3, len(records) - 1))) if records else []
    return [records[lo:hi] for lo, hi in zip([0, *cuts], [*cuts, len(records)], strict=True)]


def shuffled(records: list[ChangeRecord], rng: random.Random) -> list[list[ChangeRecord]]:
    """Each record at least once, half of them twice, in any order, in batches."""
    copies = records + rng.sample(records, len(records) // 2)
    rng.shuffle(copies)
    return batches(copies, rng)


def replayed(records: list[ChangeRecord], rng: random.Random) -> list[list[ChangeRecord]]:
    """Keys interleaved at random, each key's records in order; then, twice, everything from
    a random point on again (a driver that restarted from its last checkpoint)."""
    queues: dict[str, list[ChangeRecord]] = {}
    for record in records:
        queues.setdefault(str(record.pk), []).append(record)
    order: list[ChangeRecord] = []
    while queues:
        pk = rng.choice(sorted(queues))
        order.append(queues[pk].pop(0))
        if not queues[pk]:
            del queues[pk]
    for _ in range(2):
        order += order[rng.randrange(len(order) + 1) :] if order else []
    return batches(order, rng)


def cache_equals_s3(engine: MemoryEngine) -> None:
    for doc_id in IDS:
        held = engine.objects.head(f"changes/{doc_id}.json")
        item = engine.cache.get_item("change", doc_id)
        assert item is None or "p_tx" not in item, (doc_id, item)
        if held is None:
            assert item is None or item["state"] == "deleted", (doc_id, item)
        else:
            assert item is not None and item["state"] == "live" and item["etag"] == held.etag


def history_of(history: History) -> list[dict[str, Any]]:
    return sorted(history.scan(), key=lambda e: (e["pk"], e["version"]))


@settings(FAST, max_examples=50)
@given(OPS, st.randoms(use_true_random=False))
@example([("A", "die_after_s3"), ("B", "die_before_s3"), ("A", "split"), ("A", "put")], None)
@example([("A", "put"), ("A", "die_after_s3")], None)
def test_replayed_deliveries_repair_every_dead_writer_and_the_cache_equals_s3(
    ops: list[tuple[str, str]], rng: random.Random | None
) -> None:
    rng = rng or random.Random(0)
    engine = build()
    run(engine, ops)
    tail = Tail(engine)
    core, effects = consumer(engine)
    for _ in range(6):  # a repair's own write is a record of the next round
        records = tail.new_records()
        if not records and not (core.pending and len(core.pending)):
            break
        for batch in replayed(records, rng):
            effects.record(core.process(batch))
        effects.repair(core, now_ms() + LATER_MS)
    else:
        raise AssertionError("the stream did not settle")
    cache_equals_s3(engine)
    assert core.pending is not None and len(core.pending) == 0
    for doc_id in IDS:  # the newest history entry is the cache's committed version
        item = engine.cache.get_item("change", doc_id)
        entries = engine.history.list("change", doc_id, limit=1)
        if item is not None and item.get("state") == "live":
            assert entries and entries[0]["version"] == item["version"]
            assert entries[0]["change"] in ("create", "update")


@settings(FAST, max_examples=50)
@given(OPS, st.randoms(use_true_random=False))
def test_shuffled_and_duplicated_records_give_one_pass_history_and_figures(
    ops: list[tuple[str, str]], rng: random.Random
) -> None:
    engine = build()
    run(engine, ops)
    records = Tail(engine).new_records()
    straight = StreamProcessor(table=engine.settings.table, history_days=400)
    one_pass = memory_history()
    one_pass.put_many(straight.process(records).history)
    shuffled_core = StreamProcessor(table=engine.settings.table, history_days=400)
    for batch in shuffled(records, rng):
        engine.history.put_many(shuffled_core.process(batch).history)
        fresh = shuffled_core.fresh()  # a Lambda worker that never saw the others
        engine.history.put_many(fresh.process(batch).history)
    assert history_of(engine.history) == history_of(one_pass)
    assert shuffled_core.totals["duplicates"] == len(records) // 2
    assert {k: v for k, v in shuffled_core.totals.items() if k != "duplicates" and v} == {
        k: v for k, v in straight.totals.items() if k != "duplicates" and v
    }


def test_a_writer_dead_after_its_s3_put_is_committed_and_one_dead_before_it_rolled_back() -> None:
    engine = build()
    engine.pipeline.put(doc("B", title="kept"))
    run(engine, [("A", "die_after_s3"), ("B", "die_before_s3")])
    core, effects = consumer(engine)
    derived = core.process(Tail(engine).new_records())
    assert core.pending is not None and {k.pk for k in core.pending.entries()} == {
        "change#A",
        "change#B",
    }
    effects.record(derived)
    assert effects.repair(core, now_ms() + LATER_MS) == {"committed": 1, "rolled_back": 1}
    cache_equals_s3(engine)
    assert engine.objects.get("changes/B.json").body == doc("B", title="kept").body
    effects.record(core.process(Tail(engine).new_records()))  # the repairs' own records
    assert len(core.pending) == 0
    (entry,) = engine.history.list("change", "A")
    assert public(entry)["change"] == "create" and entry["sync_source"] == "repair"


def test_a_scripted_life_gives_exactly_these_entries() -> None:
    """The memory twin of tests/integration/test_history.py's straight pass."""
    engine = build()
    engine.pipeline.put(doc("L", status="draft"), actor="alice")
    engine.pipeline.put(doc("L", status="approved", title="n1"), actor="bob")
    engine.pipeline.put(doc("L", status="approved", title="n2", customer_codes=["initech"]))
    engine.pipeline.delete("change", "L", actor="carol")
    engine.pipeline.put(doc("L", status="draft", title="n3"), actor="alice")
    core, effects = consumer(engine)
    effects.record(core.process(Tail(engine).new_records()))
    assert life(engine.history.list("change", "L")) == LIFE  # as on moto (test_history.py)
    assert Counter(e["change"] for e in engine.history.scan()) == {
        "create": 2,
        "update": 2,
        "delete": 1,
    }
