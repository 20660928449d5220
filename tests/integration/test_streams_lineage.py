"""The local consumer on a multi-shard stream. moto's streams have one shard that never
closes, so the stream here is a small recorded fake (describe_stream pages, closed shards,
expiring iterators, trimmed data); checkpoints and the lease are real, in moto's leases table.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from engine.app import Engine
from engine.settings import Settings, StreamSettings
from engine.store.leases import Checkpoint, Checkpoints, checkpoint_key, consumer_lease
from engine.streams.consumer import LocalConsumer
from engine.streams.sinks import ANALYTICS, MemorySink
from tests.unit.test_streams_core import live, raw


def error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, "GetRecords")


class FakeStreams:
    """P (closed) → C1 (closed) → G (open); P → C2 (open). Records are cache creates."""

    def __init__(self) -> None:
        self.shards: dict[str, dict[str, Any]] = {}
        self.reads: list[tuple[str, list[str]]] = []  # (shard, sequence numbers returned)
        self.expire_once: set[str] = set()
        self.trimmed_before: dict[str, int] = {}  # shard → records before index are gone
        self._seq = 5000
        for shard, parent, closed, count in (
            ("shard-P", None, True, 3),
            ("shard-C1", "shard-P", True, 2),
            ("shard-C2", "shard-P", False, 1),
            ("shard-G", "shard-C1", False, 2),
        ):
            self.shards[shard] = {"parent": parent, "closed": closed, "records": []}
            self.add(shard, count)

    def add(self, shard: str, count: int) -> None:
        for _ in range(count):
            self._seq += 1
            record = raw("INSERT", None, live(f"change#{shard}-{self._seq}", 1), seq=self._seq)
            record.pop("eventSourceARN")  # GetRecords records do not carry it
            self.shards[shard]["records"].append(record)

    def sequences(self, shard: str) -> list[str]:
        return [r["dynamodb"]["SequenceNumber"] for r in self.shards[shard]["records"]]

    def describe_stream(self, StreamArn: str, ExclusiveStartShardId: str | None = None) -> Any:
        ids = sorted(self.shards)
        start = ids.index(ExclusiveStartShardId) + 1 if ExclusiveStartShardId else 0
        page = ids[start : start + 2]  # two shards per page: pagination is exercised
        shards = []
        for sid in page:
            s = self.shards[sid]
            seqs = self.sequences(sid)
            rng = {"StartingSequenceNumber": seqs[0]}
            if s["closed"]:
                rng["EndingSequenceNumber"] = seqs[-1]
            shards.append(
                {"ShardId": sid, "SequenceNumberRange": rng}
                | ({"ParentShardId": s["parent"]} if s["parent"] else {})
            )
        description: dict[str, Any] = {"StreamArn": StreamArn, "Shards": shards}
        if start + 2 < len(ids):
            description["LastEvaluatedShardId"] = page[-1]
        return {"StreamDescription": description}

    def get_shard_iterator(
        self,
        StreamArn: str,
        ShardId: str,
        ShardIteratorType: str,
        SequenceNumber: str | None = None,
    ) -> Any:
        seqs = self.sequences(ShardId)
        if ShardIteratorType == "TRIM_HORIZON":
            index = self.trimmed_before.get(ShardId, 0)
        else:
            assert ShardIteratorType == "AFTER_SEQUENCE_NUMBER"
            index = seqs.index(str(SequenceNumber)) + 1
            if index <= self.trimmed_before.get(ShardId, 0):
                raise error("TrimmedDataAccessException")
        return {"ShardIterator": f"{ShardId}|{index}"}

    def get_records(self, ShardIterator: str, Limit: int) -> Any:
        shard, index_text = ShardIterator.split("|")
        if shard in self.expire_once:
            self.expire_once.discard(shard)
            raise error("ExpiredIteratorException")
        index = int(index_text)
        records = self.shards[shard]["records"][index : index + min(Limit, 1)]  # one per call
        self.reads.append((shard, [r["dynamodb"]["SequenceNumber"] for r in records]))
        end = index + len(records)
        response: dict[str, Any] = {"Records": records}
        if not (self.shards[shard]["closed"] and end >= len(self.shards[shard]["records"])):
            response["NextShardIterator"] = f"{shard}|{end}"
        return response


def consumer(
    settings: Settings, engine: Engine, fake: FakeStreams, sink: MemorySink
) -> LocalConsumer:
    config = StreamSettings(lease_ttl_s=5, idle_wait_s=0.01, checkpoint_interval_s=0.01)
    return LocalConsumer(settings, config, engine.clients, streams_client=fake, sink=sink)


def order_of(fake: FakeStreams) -> list[str]:
    return [seq for _, seqs in fake.reads for seq in seqs]


def test_parents_before_children_and_closed_shards_finished(
    settings: Settings, engine: Engine
) -> None:
    fake, sink = FakeStreams(), MemorySink()
    summary = consumer(settings, engine, fake, sink).run(drain=True)
    seen = order_of(fake)
    assert sorted(seen) == sorted(s for sid in fake.shards for s in fake.sequences(sid))
    assert len(seen) == len(set(seen)) == 8  # each record read once
    p, c1, c2, g = (fake.sequences(s) for s in ("shard-P", "shard-C1", "shard-C2", "shard-G"))
    assert max(seen.index(s) for s in p) < min(seen.index(s) for s in c1 + c2)
    assert max(seen.index(s) for s in c1) < min(seen.index(s) for s in g)
    assert summary.core["records"] == 8 and summary.core["creates"] == 8
    assert summary.shards == 4 and summary.trimmed == 0
    assert sum(r["creates"] for r in sink.rows[ANALYTICS]) == 8
    arn = summary.stream_arn
    assert arn is not None
    saved = Checkpoints(engine.clients.dynamodb, settings.leases_table, arn).load(
        sorted(fake.shards)
    )
    assert saved["shard-P"].finished and saved["shard-C1"].finished
    assert saved["shard-C2"] == Checkpoint(c2[-1], False)
    assert saved["shard-G"] == Checkpoint(g[-1], False)


def test_restart_resumes_from_checkpoints_with_nothing_twice(
    settings: Settings, engine: Engine
) -> None:
    fake = FakeStreams()
    consumer(settings, engine, fake, MemorySink()).run(drain=True)
    fake.reads.clear()
    fake.add("shard-G", 2)
    fake.add("shard-C2", 1)
    sink = MemorySink()
    summary = consumer(settings, engine, fake, sink).run(drain=True)
    assert summary.core["records"] == 3 and summary.core["duplicates"] == 0
    assert sorted(order_of(fake)) == sorted(
        fake.sequences("shard-G")[-2:] + fake.sequences("shard-C2")[-1:]
    )
    assert {shard for shard, _ in fake.reads} == {"shard-G", "shard-C2"}  # finished: not read
    assert sum(r["creates"] for r in sink.rows[ANALYTICS]) == 3


def test_expired_iterator_resumes_after_the_last_record(settings: Settings, engine: Engine) -> None:
    fake = FakeStreams()
    fake.expire_once.add("shard-P")
    summary = consumer(settings, engine, fake, MemorySink()).run(drain=True)
    assert summary.expired_iterators == 1
    assert summary.core["records"] == 8 and len(order_of(fake)) == 8


def test_trimmed_records_are_counted_and_reported(settings: Settings, engine: Engine) -> None:
    fake = FakeStreams()
    first = consumer(settings, engine, fake, MemorySink()).run(drain=True)
    assert first.trimmed == 0
    fake.add("shard-G", 3)
    fake.trimmed_before["shard-G"] = 3  # the 24 h retention took G's records up to index 3
    summary = consumer(settings, engine, fake, MemorySink()).run(drain=True)
    assert summary.trimmed == 1
    assert "reconcile" in summary.as_dict()["action"]
    assert summary.core["records"] == 2  # from the trim horizon on: what is left


def test_a_vanished_unfinished_parent_is_reported(settings: Settings, engine: Engine) -> None:
    fake = FakeStreams()
    arn = LocalConsumer(
        settings, StreamSettings(), engine.clients, streams_client=fake
    ).stream_arn()
    lease = consumer_lease(engine.clients.dynamodb, settings.leases_table, arn, 5)
    assert lease.try_acquire()
    Checkpoints(engine.clients.dynamodb, settings.leases_table, arn).save(
        {"shard-A": Checkpoint("1", False)}, lease
    )
    lease.release()
    fake.shards["shard-P"]["parent"] = "shard-A"  # P's parent A is gone, half read
    summary = consumer(settings, engine, fake, MemorySink()).run(drain=True)
    assert summary.trimmed == 1 and summary.core["records"] == 8


def test_checkpoints_are_fenced_by_the_lease(settings: Settings, engine: Engine) -> None:
    from engine.exceptions import LeaseLostError

    ddb, table = engine.clients.dynamodb, settings.leases_table
    holder = consumer_lease(ddb, table, "arn:stream", 30, owner="holder")
    other = consumer_lease(ddb, table, "arn:stream", 30, owner="other")
    assert holder.try_acquire() and not other.try_acquire()
    checkpoints = Checkpoints(ddb, table, "arn:stream")
    checkpoints.save({"s": Checkpoint("10", False)}, holder)
    with pytest.raises(LeaseLostError):
        checkpoints.save({"s": Checkpoint("99", True)}, other)
    assert checkpoints.load(["s"]) == {"s": Checkpoint("10", False)}
    item = ddb.get_item(
        TableName=table, Key={"lease_key": {"S": checkpoint_key("arn:stream", "s")}}
    )
    assert item["Item"]["owner"]["S"] == "holder"
    holder.release()
    assert other.try_acquire()  # released: taken at once, no need to wait for expiry


def test_a_consumer_away_longer_than_the_retention_reports_it(
    settings: Settings, engine: Engine
) -> None:
    import time

    fake = FakeStreams()
    arn = LocalConsumer(
        settings, StreamSettings(), engine.clients, streams_client=fake
    ).stream_arn()
    old = consumer_lease(engine.clients.dynamodb, settings.leases_table, arn, 5, owner="old")
    status = {"checkpointed_at": time.time() - 25 * 3600}
    assert old.try_acquire(status)
    old.release(status)
    summary = consumer(settings, engine, fake, MemorySink()).run(drain=True)
    assert summary.trimmed == 1 and summary.core["records"] == 8
    again = consumer(settings, engine, fake, MemorySink()).run(drain=True)
    assert again.trimmed == 0  # it checkpointed just now
