"""What DynamoDB Streams does and moto does not, on the memory twin: the 24-hour retention
(trimmed positions, deleted shards), 15-minute iterators, shards that close and split, TTL
deletions, sequence numbers that are neither consecutive nor of one length. The cases both
backends share are the contract suite (tests/integration/test_store_contract_stream.py)."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest

from engine.exceptions import StoreError
from engine.store.memory import MemoryStreamStore
from engine.store.memory.cache import MemoryDynamoDB
from engine.store.memory.stream import ITERATOR_TTL_S, RETENTION_S
from engine.store.stream import Lost
from engine.streams.records import from_stream, sequence_int
from engine.streams.shards import parse_shards, ready
from tests.memory_stores import Clock

TABLE = "cache"
SPEC: dict[str, Any] = {
    "TableName": TABLE,
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
    "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
}


class Table:
    def __init__(self) -> None:
        self.clock = Clock()
        self.stream = MemoryStreamStore(self.clock)
        self.ddb = MemoryDynamoDB(SPEC, streams=self.stream)
        arn = self.stream.latest_arn(TABLE)
        assert arn is not None
        self.arn = arn

    def put(self, pk: str, n: int = 0, **extra: Any) -> None:
        item = {"pk": {"S": pk}, "n": {"N": str(n)}, **extra}
        self.ddb.put_item(TableName=TABLE, Item=item)

    def shard_ids(self) -> list[str]:
        return [s["ShardId"] for s in self.stream.shards(self.arn)]

    def iterator(self, shard: str, kind: str = "TRIM_HORIZON", seq: str | None = None) -> Any:
        return self.stream.iterator(self.arn, shard, kind, seq)

    def read_shard(self, shard: str) -> tuple[list[dict[str, Any]], bool]:
        """Every record of the shard, and whether it ended (no NextShardIterator)."""
        iterator = self.iterator(shard)
        out: list[dict[str, Any]] = []
        while isinstance(iterator, str):
            page = self.stream.records(iterator, 2)
            assert isinstance(page, dict)
            out.extend(page["Records"])
            iterator = page.get("NextShardIterator")
            if not page["Records"] and iterator:
                return out, False
        return out, True


@pytest.fixture
def table() -> Table:
    return Table()


def test_sequence_numbers_grow_by_value_not_by_one_nor_by_text(table: Table) -> None:
    for n in range(60):
        table.put(f"change#{n}", n)
    records, ended = table.read_shard(table.shard_ids()[0])
    seqs = [r["dynamodb"]["SequenceNumber"] for r in records]
    assert not ended and len(seqs) == 60
    numbers = [sequence_int(s) for s in seqs]
    assert numbers == sorted(numbers) and all(b - a > 1 for a, b in pairwise(numbers))
    assert {len(s) for s in seqs} == {21, 22}  # text order would put the 22-digit ones first
    assert seqs != sorted(seqs)


def test_records_past_the_retention_are_trimmed(table: Table) -> None:
    table.put("change#old")
    shard = table.shard_ids()[0]
    (old,) = table.read_shard(shard)[0]
    early = table.iterator(shard)
    table.clock.advance(RETENTION_S - 60)
    table.put("change#new")
    table.clock.advance(120)  # the first record is now older than the retention
    seq = old["dynamodb"]["SequenceNumber"]
    assert table.iterator(shard, "AT_SEQUENCE_NUMBER", seq) is Lost.TRIMMED
    after = table.iterator(shard, "AFTER_SEQUENCE_NUMBER", seq)  # its successor is kept
    assert isinstance(after, str)
    page = table.stream.records(after, 10)
    assert isinstance(page, dict) and [from_stream(r).pk for r in page["Records"]] == ["change#new"]
    records, _ = table.read_shard(shard)  # TRIM_HORIZON: the oldest record kept
    assert [from_stream(r).pk for r in records] == ["change#new"]
    assert table.stream.records(early, 10) in (Lost.TRIMMED, Lost.EXPIRED)


def test_an_iterator_expires_after_15_minutes_and_a_fresh_one_goes_on(table: Table) -> None:
    table.put("change#a")
    shard = table.shard_ids()[0]
    iterator = table.iterator(shard)
    table.clock.advance(ITERATOR_TTL_S - 1)
    page = table.stream.records(iterator, 10)
    assert isinstance(page, dict) and len(page["Records"]) == 1
    table.clock.advance(ITERATOR_TTL_S + 1)
    assert table.stream.records(page["NextShardIterator"], 10) is Lost.EXPIRED
    last = page["Records"][-1]["dynamodb"]["SequenceNumber"]
    assert isinstance(table.iterator(shard, "AFTER_SEQUENCE_NUMBER", last), str)


def test_a_closed_shard_ends_and_its_children_take_each_key_in_order(table: Table) -> None:
    for n in range(3):
        table.put(f"change#{n}", n)
    parent = table.shard_ids()[0]
    children = table.stream.rotate(TABLE, children=2)
    for n in range(3):
        table.put(f"change#{n}", n + 10)
    shards = parse_shards(table.stream.shards(table.arn))
    by_id = {s.shard_id: s for s in shards}
    assert by_id[parent].closed and all(by_id[c].parent_id == parent for c in children)
    assert [s.shard_id for s in ready(shards, set())] == [parent]  # children wait for it
    records, ended = table.read_shard(parent)
    assert ended and len(records) == 3  # read to its end: no NextShardIterator
    assert {s.shard_id for s in ready(shards, {parent})} == set(children)
    later: dict[str, list[int]] = {}
    for child in children:
        got, ended = table.read_shard(child)
        assert not ended  # open: more may come
        for raw in got:
            rec = from_stream(raw)
            later.setdefault(str(rec.pk), []).append(int((rec.new or {})["n"]))
    assert later == {f"change#{n}": [n + 10] for n in range(3)}
    ranges = {s["ShardId"]: s["SequenceNumberRange"] for s in table.stream.shards(table.arn)}
    end = int(ranges[parent]["EndingSequenceNumber"])
    assert all(int(ranges[c]["StartingSequenceNumber"]) > end for c in children)


def test_a_shard_closed_for_longer_than_the_retention_is_gone(table: Table) -> None:
    table.put("change#a")
    parent = table.shard_ids()[0]
    table.stream.rotate(TABLE)
    table.clock.advance(RETENTION_S + 1)
    assert parent not in table.shard_ids()
    assert table.iterator(parent) is Lost.SHARD_GONE
    assert table.iterator("shardId-00000000000000000000-00000000") is Lost.SHARD_GONE


def test_a_sequence_outside_the_shard_and_a_garbage_iterator_are_store_errors(
    table: Table,
) -> None:
    table.put("change#a")
    shard = table.shard_ids()[0]
    with pytest.raises(StoreError):
        table.iterator(shard, "AT_SEQUENCE_NUMBER", "1" * 21)
    with pytest.raises(StoreError):
        table.iterator(shard, "AT_SEQUENCE_NUMBER")  # no sequence
    with pytest.raises(StoreError):
        table.stream.records("garbage", 10)


def test_a_ttl_deletion_carries_the_service_identity(table: Table) -> None:
    now = table.clock()
    table.put("change#gone", expires_at={"N": str(int(now) - 1)})
    table.put("change#kept", expires_at={"N": str(int(now) + 3600)})
    assert table.ddb.expire(TABLE, "expires_at", now) == 1
    records, _ = table.read_shard(table.shard_ids()[0])
    removed = from_stream(records[-1])
    assert (removed.event_name, removed.pk, removed.ttl_expiry) == ("REMOVE", "change#gone", True)
    assert table.ddb.get_item(TableName=TABLE, Key={"pk": {"S": "change#gone"}}) == {}
    assert not any(from_stream(r).ttl_expiry for r in records[:-1])


def test_other_view_types_keep_only_their_images() -> None:
    stream = MemoryStreamStore()
    for view in ("KEYS_ONLY", "NEW_IMAGE", "OLD_IMAGE"):
        spec = {**SPEC, "TableName": view, "StreamSpecification": {**SPEC["StreamSpecification"]}}
        spec["StreamSpecification"]["StreamViewType"] = view
        ddb = MemoryDynamoDB(spec, streams=stream)
        ddb.put_item(TableName=view, Item={"pk": {"S": "k"}, "n": {"N": "1"}})
        ddb.put_item(TableName=view, Item={"pk": {"S": "k"}, "n": {"N": "2"}})
        arn = stream.latest_arn(view)
        assert arn is not None
        iterator = stream.iterator(arn, stream.shards(arn)[0]["ShardId"], "TRIM_HORIZON")
        assert isinstance(iterator, str)
        page = stream.records(iterator, 10)
        assert isinstance(page, dict)
        held = [sorted(k for k in r["dynamodb"] if k.endswith("Image")) for r in page["Records"]]
        expected = {"KEYS_ONLY": [], "NEW_IMAGE": ["NewImage"], "OLD_IMAGE": ["OldImage"]}[view]
        assert held[1] == expected
