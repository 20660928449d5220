"""Shard lineage (pure): parents before children, children only once their parent is done."""

from __future__ import annotations

from engine.streams.shards import Shard, lineage_order, parse_shards, ready


def shards() -> list[Shard]:
    # P → C1 → G, P → C2; X has a parent trimmed away; Z is unrelated.
    return [
        Shard("shard-G", "shard-C1", False),
        Shard("shard-C2", "shard-P", False),
        Shard("shard-C1", "shard-P", True),
        Shard("shard-X", "shard-gone", False),
        Shard("shard-P", None, True),
        Shard("shard-Z", None, False),
    ]


def test_parents_come_before_children() -> None:
    order = [s.shard_id for s in lineage_order(shards())]
    assert sorted(order) == sorted(s.shard_id for s in shards())
    for child, parent in (
        ("shard-C1", "shard-P"),
        ("shard-C2", "shard-P"),
        ("shard-G", "shard-C1"),
    ):
        assert order.index(parent) < order.index(child)


def test_ready_waits_for_the_parent_to_finish() -> None:
    def ids(found: list[Shard]) -> list[str]:
        return [s.shard_id for s in found]

    assert ids(ready(shards(), set())) == ["shard-P", "shard-X", "shard-Z"]
    assert ids(ready(shards(), {"shard-P"})) == ["shard-C1", "shard-C2", "shard-X", "shard-Z"]
    assert ids(ready(shards(), {"shard-P", "shard-C1", "shard-Z"})) == [
        "shard-C2",
        "shard-G",
        "shard-X",
    ]


def test_cycles_do_not_hang() -> None:
    loop = [Shard("a", "b", False), Shard("b", "a", False)]
    assert sorted(s.shard_id for s in lineage_order(loop)) == ["a", "b"]


def test_parse_describe_stream_shards() -> None:
    parsed = parse_shards(
        [
            {
                "ShardId": "p",
                "SequenceNumberRange": {"StartingSequenceNumber": "1", "EndingSequenceNumber": "9"},
            },
            {
                "ShardId": "c",
                "ParentShardId": "p",
                "SequenceNumberRange": {"StartingSequenceNumber": "10"},
            },
        ]
    )
    assert parsed == [Shard("p", None, True), Shard("c", "p", False)]
