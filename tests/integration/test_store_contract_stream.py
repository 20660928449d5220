"""One contract, two change streams of the cache table: DynamoDB Streams (moto over HTTP,
through `StreamStore`) and the in-memory log (`MemoryStreamStore`, fed by `MemoryDynamoDB`).

Every case writes through the same DynamoDB client calls on each side and reads the stream
through the `Stream` interface (engine/store/abc.py), so the stream core, repair and history
tested on memory rely only on what DynamoDB Streams gives: one record per committed change of
an item, in commit order, with both images; iterators that start where their kind says and
pages that continue without a gap or a repeat.

What moto cannot show runs on memory only (tests/unit/test_store_memory_stream.py): trimming
by the retention, expired iterators, closed and split shards. The real store's translation of
those errors into `Lost` runs on moto with injected faults (test_store_leases_stream.py).
Where moto departs from DynamoDB Streams, the case asserts both answers
(`side.expect(aws=..., moto=...)`): what AWS gives on the memory side, exactly what moto gives
instead on the moto side, so a moto that changes makes the suite say so.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from engine.app import Engine
from engine.infra import cache_table_spec, leases_table_spec
from engine.store.abc import Stream
from engine.store.memory import MemoryStreamStore
from engine.store.memory.cache import MemoryDynamoDB
from engine.store.stream import Lost, StreamStore
from engine.streams.core import StreamProcessor
from engine.streams.records import from_stream, sequence_int
from engine.streams.shards import parse_shards
from tests.integration.test_store_contract_cache import begin, doc, write
from tests.memory_stores import memory_cache, memory_settings

pytestmark = pytest.mark.integration


@dataclass
class Side:
    """A DynamoDB client writing the cache table, and that table's stream."""

    name: str
    ddb: Any
    stream: Stream
    table: str
    other_table: str  # a table without a stream
    request: pytest.FixtureRequest

    def expect(self, aws: Any, moto: Any) -> Any:
        """What DynamoDB Streams gives (and the twin, which follows it), or, on moto, the
        documented way moto departs from it: pinned, so a moto that changes fails here."""
        return moto if self.name == "moto" else aws

    @property
    def arn(self) -> str:
        arn = self.stream.latest_arn(self.table)
        assert arn is not None
        return arn

    def shard(self) -> str:
        return str(self.stream.shards(self.arn)[0]["ShardId"])

    def iterator(self, kind: str, sequence: str | None = None) -> str:
        got = self.stream.iterator(self.arn, self.shard(), kind, sequence)
        assert isinstance(got, str), got
        return got

    def page(self, iterator: str, limit: int = 1000) -> dict[str, Any]:
        got = self.stream.records(iterator, limit)
        assert not isinstance(got, Lost), got
        return got

    def read(self, kind: str = "TRIM_HORIZON", sequence: str | None = None) -> list[Any]:
        return list(self.walk(self.iterator(kind, sequence)))

    def walk(self, iterator: str | None, limit: int = 1000) -> Iterator[dict[str, Any]]:
        while iterator:
            page = self.page(iterator, limit)
            yield from page["Records"]
            iterator = page.get("NextShardIterator") if page["Records"] else None

    def put(self, pk: str, **attrs: str) -> None:
        item = {"pk": {"S": pk}, **{k: {"S": v} for k, v in attrs.items()}}
        self.ddb.put_item(TableName=self.table, Item=item)


@pytest.fixture(params=["moto", "memory"])
def side(request: pytest.FixtureRequest) -> Side:
    if request.param == "memory":
        settings = memory_settings()
        stream = MemoryStreamStore(region=settings.region)
        ddb = MemoryDynamoDB(
            cache_table_spec(settings), leases_table_spec(settings), streams=stream
        )
        return Side("memory", ddb, stream, settings.table, settings.leases_table, request)
    engine: Engine = request.getfixturevalue("engine")
    s = engine.settings
    ddb_moto = engine.clients.dynamodb
    return Side("moto", ddb_moto, StreamStore(engine.clients), s.table, s.leases_table, request)


def summary(records: list[dict[str, Any]]) -> list[tuple[str, str, str | None, str | None]]:
    """(event, pk, old title, new title) of each record, through the engine's decoder."""
    out: list[tuple[str, str, str | None, str | None]] = []
    for raw in records:
        rec = from_stream(raw, "contract")
        old, new = rec.old or {}, rec.new or {}
        out.append((rec.event_name, str(rec.pk), old.get("title"), new.get("title")))
    return out


def test_the_table_names_its_stream_and_a_table_without_one_has_none(side: Side) -> None:
    arn, enabled = side.stream.table_stream(side.table)
    assert enabled and arn is not None and f":table/{side.table}/stream/" in arn
    assert side.stream.table_stream(side.other_table) == (None, False)
    shards = parse_shards(side.stream.shards(arn))
    assert shards and any(not s.closed for s in shards)  # an open shard takes the writes


def test_every_committed_change_once_in_commit_order_with_both_images(side: Side) -> None:
    side.put("change#A", title="a1")
    side.put("change#B", title="b1")
    side.ddb.update_item(
        TableName=side.table,
        Key={"pk": {"S": "change#A"}},
        UpdateExpression="SET title = :t",
        ExpressionAttributeValues={":t": {"S": "a2"}},
    )
    with pytest.raises(Exception, match="ConditionalCheckFailed"):  # refused: no record
        side.ddb.put_item(
            TableName=side.table,
            Item={"pk": {"S": "change#A"}, "title": {"S": "never"}},
            ConditionExpression="attribute_not_exists(pk)",
        )
    side.ddb.delete_item(TableName=side.table, Key={"pk": {"S": "change#B"}})
    side.ddb.delete_item(TableName=side.table, Key={"pk": {"S": "change#none"}})  # no item
    created = {"pk": {"S": "change#C"}, "title": {"S": "c1"}}
    side.ddb.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": side.table, "Item": created}},
            {"Delete": {"TableName": side.table, "Key": {"pk": {"S": "change#A"}}}},
        ]
    )
    records = side.read()
    assert summary(records) == [
        ("INSERT", "change#A", None, "a1"),
        ("INSERT", "change#B", None, "b1"),
        ("MODIFY", "change#A", "a1", "a2"),
        ("REMOVE", "change#B", "b1", None),
        ("INSERT", "change#C", None, "c1"),
        ("REMOVE", "change#A", "a2", None),
    ]
    numbers = [sequence_int(r["dynamodb"]["SequenceNumber"]) for r in records]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    first = records[0]
    assert first["eventSource"] == "aws:dynamodb"
    assert first["dynamodb"]["Keys"] == {"pk": {"S": "change#A"}}
    assert first["dynamodb"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert "OldImage" not in first["dynamodb"] and "NewImage" not in records[3]["dynamodb"]


def test_iterator_kinds_start_where_they_say(side: Side) -> None:
    for n in range(4):
        side.put(f"change#K{n}", title=str(n))
    latest = side.iterator("LATEST")
    records = side.read()
    seqs = [r["dynamodb"]["SequenceNumber"] for r in records]
    assert len(seqs) == 4
    assert [r["dynamodb"]["SequenceNumber"] for r in side.read("AT_SEQUENCE_NUMBER", seqs[1])] == (
        seqs[1:]
    )
    assert [
        r["dynamodb"]["SequenceNumber"] for r in side.read("AFTER_SEQUENCE_NUMBER", seqs[1])
    ] == seqs[2:]
    assert side.read("AFTER_SEQUENCE_NUMBER", seqs[-1]) == []
    tip = side.page(latest)
    assert tip["Records"] == [] and tip.get("NextShardIterator")  # an open shard: wait there
    side.put("change#K4", title="4")
    after = side.page(tip["NextShardIterator"])
    assert summary(after["Records"]) == [("INSERT", "change#K4", None, "4")]


def test_pages_of_a_limit_continue_without_a_gap_or_a_repeat(side: Side) -> None:
    for n in range(7):
        side.put(f"change#P{n}", title=str(n))
    whole = [r["dynamodb"]["SequenceNumber"] for r in side.read()]
    iterator: str | None = side.iterator("TRIM_HORIZON")
    pages = []
    while iterator:
        page = side.page(iterator, 3)
        if not page["Records"]:
            break
        pages.append([r["dynamodb"]["SequenceNumber"] for r in page["Records"]])
        iterator = page.get("NextShardIterator")
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [s for p in pages for s in p] == whole


def test_an_update_that_creates_an_item_is_one_insert_with_its_image(side: Side) -> None:
    side.ddb.update_item(
        TableName=side.table,
        Key={"pk": {"S": "change#U"}},
        UpdateExpression="SET title = :t",
        ExpressionAttributeValues={":t": {"S": "u1"}},
    )
    insert = ("INSERT", "change#U", None, "u1")
    key_alone = ("INSERT", "change#U", None, None)  # moto: the key first, then the item
    assert summary(side.read()) == side.expect(aws=[insert], moto=[key_alone, insert])


def test_a_write_that_changes_nothing_records_nothing(side: Side) -> None:
    side.put("change#N", title="same")
    side.put("change#N", title="same")
    insert = ("INSERT", "change#N", None, "same")
    equal_images = ("MODIFY", "change#N", "same", "same")  # moto records a no-op write
    assert summary(side.read()) == side.expect(aws=[insert], moto=[insert, equal_images])


def test_records_carry_the_shape_of_aws_not_of_moto(side: Side) -> None:
    side.put("change#S", title="s")
    (record,) = side.read()
    assert record["eventVersion"] == side.expect(aws="1.1", moto="1.0")
    whole_seconds = record["dynamodb"]["ApproximateCreationDateTime"].microsecond == 0
    assert whole_seconds or side.name == "moto"  # moto: milliseconds (or whole, by chance)


def test_the_cache_stores_writes_reach_the_stream_core_alike(side: Side) -> None:
    """The engine's own writes (intent, commit with its index entries, a second version, a
    rollback) read back and processed: the same figures and history on both."""
    if side.name == "memory":
        cache = memory_cache(memory_settings(), side.ddb)
    else:
        cache = side.request.getfixturevalue("engine").cache
    write(cache, doc("CHG-1"))
    write(cache, doc("CHG-1", title="v2", status="closed"))
    tx, _ = begin(cache, doc("CHG-1", title="v3"))
    cache.rollback("change", "CHG-1", tx)
    core = StreamProcessor(table=side.table, history_days=400)
    derived = core.process(from_stream(r, "contract") for r in side.read())
    assert (core.totals["creates"], core.totals["updates"]) == (1, 1)
    assert dict(derived.transitions) == {("change", "approved→closed"): 1}
    assert [(e["version"], e["change"]) for e in derived.history] == [(1, "create"), (2, "update")]
