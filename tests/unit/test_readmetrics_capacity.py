"""engine/readmetrics/capacity.py: the capacity units a flush carries per operation kind, as
attributes of the metrics item's one UpdateItem, and their sum over items (`docsync stats`)."""

from __future__ import annotations

from typing import Any

from engine.readmetrics import capacity
from engine.readmetrics.item import flush_update
from engine.readmetrics.stats import ReadStats


def _added(update: dict[str, Any]) -> dict[str, str]:
    names, values = update["ExpressionAttributeNames"], update["ExpressionAttributeValues"]
    return {names[f"#a{i}"]: values[f":a{i}"]["N"] for i in range(len(names)) if f"#a{i}" in names}


def test_flush_update_adds_each_kind_and_side_in_the_same_update() -> None:
    units = {"reconcile": {"read": 12.5, "write": 4.0}, "read": {"read": 0.5, "write": 0.0}}
    stats = ReadStats()
    stats.record("hit", 3.0)
    update = flush_update("f1", 1_800_000_000, 60, 86400, stats.take_delta(), capacity.adds(units))
    added = _added(update)
    assert {k: v for k, v in added.items() if k.startswith("cap_")} == {
        "cap_read_read": "0.5",  # a zero side is not written
        "cap_reconcile_read": "12.5",
        "cap_reconcile_write": "4.0",
    }
    assert added["hits"] == "1" and added["flushes"] == "1"
    assert update["UpdateExpression"].startswith("ADD ")
    assert all(f"#a{i} :a{i}" in update["UpdateExpression"] for i in range(len(added)))


def test_items_add_up_per_kind_and_side() -> None:
    first = {"cap_reconcile_read": 12.5, "cap_reconcile_write": 4, "hits": 3}
    second = {"cap_reconcile_read": 1.5, "cap_read_read": 2, "cap_stream_write": 0}
    assert capacity.of_image(second) == {
        "read": {"read": 2.0, "write": 0.0},
        "reconcile": {"read": 1.5, "write": 0.0},
    }
    assert capacity.total(capacity.of_image(first), capacity.of_image(second)) == {
        "reconcile": {"read": 14.0, "write": 4.0},
        "read": {"read": 2.0, "write": 0.0},
    }
    assert capacity.of_image(None) == {} and capacity.total() == {}


def test_the_taker_hands_out_each_unit_once() -> None:
    counters: dict[str, dict[str, float]] = {"read": {"read": 1.0, "write": 0.0}}
    taker = capacity.CapacityTaker(lambda: {k: dict(v) for k, v in counters.items()})
    assert taker.take() == {"read": {"read": 1.0, "write": 0.0}}
    assert taker.take() == {}
    counters["read"]["read"] += 2.0
    counters["other"] = {"read": 0.0, "write": 0.5}
    taken = taker.take()
    assert taken == {"read": {"read": 2.0, "write": 0.0}, "other": {"read": 0.0, "write": 0.5}}
    assert capacity.worth_a_flush(taken)
    counters["other"]["write"] += 0.5  # a flush's own UpdateItem: not worth a flush of its own
    own = taker.take()
    assert own == {"other": {"read": 0.0, "write": 0.5}} and not capacity.worth_a_flush(own)
    taker.give_back(own)  # it rides along with the next flush that has something to carry
    counters["reconcile"] = {"read": 3.0, "write": 0.0}
    assert taker.take() == {
        "other": {"read": 0.0, "write": 0.5},
        "reconcile": {"read": 3.0, "write": 0.0},
    }
