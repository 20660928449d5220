"""The cache item: DynamoDB item ↔ CacheItem ↔ DynamoDB JSON ↔ stream image, and its builders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from engine.documents import parse_document
from engine.store.item import (
    INLINE_BODY_LIMIT,
    NUMBER_ATTRIBUTES,
    TEXT_ATTRIBUTES,
    CacheItem,
    Intent,
    from_ms,
    live_attributes,
    serialize,
    to_ms,
    tombstone_attributes,
)
from engine.store.objects import ObjectInfo
from engine.streams.records import from_stream
from tests.unit._hyp import FAST

TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
NUMBER = st.integers(0, 2**53)


@st.composite
def items(draw: st.DrawFn) -> dict[str, Any]:
    """Plain items as GetItem returns them: any subset of the attributes, an intent or not,
    and attributes this version does not know (kept as they are)."""
    doc_id = draw(st.from_regex(r"[A-Za-z0-9._-]{1,20}", fullmatch=True))
    item: dict[str, Any] = {"pk": f"{draw(st.sampled_from(['change', 'announcement']))}#{doc_id}"}
    for name in TEXT_ATTRIBUTES:
        if draw(st.booleans()):
            item[name] = draw(TEXT)
    for name in NUMBER_ATTRIBUTES:
        if draw(st.booleans()):
            item[name] = draw(NUMBER)
    if draw(st.booleans()):
        item["body"] = draw(st.text(st.characters(exclude_categories=["Cs"]), max_size=40))
    if draw(st.booleans()):
        item["body_in_s3"] = draw(st.booleans())
    if draw(st.booleans()):
        item["customers"] = draw(st.lists(TEXT, max_size=4))
    if draw(st.booleans()):
        item["p_tx"] = draw(st.text("0123456789abcdef", min_size=1, max_size=32))
        for name, values in (
            ("p_op", st.sampled_from(["put", "delete"])),
            ("p_etag", TEXT),
            ("p_at", NUMBER),
            ("p_version", NUMBER),
            ("p_cust", st.lists(TEXT, max_size=3)),
        ):
            if draw(st.booleans()):
                item[name] = draw(values)
    if draw(st.booleans()):
        item["x_future"] = draw(st.one_of(TEXT, NUMBER))
    return item


def stream_image(item: dict[str, Any]) -> dict[str, Any]:
    """The item as a DynamoDB stream record (a Lambda event's) carries it, decoded."""
    record = from_stream(
        {
            "eventName": "MODIFY",
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:1:table/docsync-cache/stream/x",
            "dynamodb": {
                "SequenceNumber": "100",
                "ApproximateCreationDateTime": 1_700_000_000,
                "Keys": {"pk": {"S": item["pk"]}},
                "NewImage": serialize(item),
            },
        }
    )
    assert record.new is not None
    return dict(record.new)


@FAST
@given(items())
def test_an_item_round_trips_through_cache_item_wire_and_stream_image(
    item: dict[str, Any],
) -> None:
    cached = CacheItem.from_item(item)
    assert cached.as_item() == item
    assert CacheItem.from_wire(serialize(item)) == cached
    assert cached.as_wire() == serialize(item)
    assert CacheItem.from_item(stream_image(item)) == cached
    assert (cached.intent is not None) == ("p_tx" in item)


@FAST
@given(st.integers(0, 253_402_300_799_999))  # up to the end of year 9999
def test_milliseconds_round_trip(ms: int) -> None:
    assert to_ms(from_ms(ms)) == ms


def test_to_ms_of_a_time() -> None:
    t = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert to_ms(t) == int(datetime(2026, 1, 1, 12, tzinfo=UTC).timestamp()) * 1000 + 123
    assert from_ms(to_ms(t)) == t.replace(microsecond=123000)


def test_an_intent_reads_the_p_attributes() -> None:
    item = CacheItem.from_item(
        {"pk": "change#A", "state": "live", "etag": "e1", "version": 2}
        | {"p_tx": "t1", "p_op": "put", "p_etag": "e2", "p_at": 5, "p_version": 3, "p_cust": []}
    )
    assert item.intent == Intent(tx="t1", op="put", etag="e2", at=5, version=3, customers=())
    assert item.pending_tx == "t1" and item.pending_at == from_ms(5)
    assert item.committed_etag is None  # a write is in flight: never a conditional read
    assert item.intent.fresh(5) and not item.intent.fresh(6)


def doc(customers: list[str], body_extra: str = "") -> Any:
    return parse_document(
        {
            "id": "CHG-1",
            "object_type": "change",
            "title": "t",
            "customer_codes": customers,
            "status": "approved",
            "created_at": "2026-01-01T00:00:00Z",
            "modified_at": "2026-01-02T00:00:00Z",
            "pad": body_extra,
        }
    )


def test_a_live_image_reads_back_as_what_it_was_built_from() -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    d = doc(["acme", "beta", "acme"])
    info = ObjectInfo("changes/CHG-1.json", "e1", len(d.body), now)
    attrs = live_attributes(d, info, prefix="changes/", source="event", ttl_days=90)
    item = CacheItem.from_item({"pk": "change#CHG-1", **attrs, "version": 1})
    assert (item.type, item.id, item.state, item.etag) == ("change", "CHG-1", "live", "e1")
    assert item.s3_last_modified == now and item.body == d.body and not item.body_in_s3
    assert item.stored_customers == ["acme", "beta", "acme"]
    assert item.index_customers == ["acme", "beta"]
    assert item.committed_etag == "e1" and item.servable()
    assert not item.servable(now + timedelta(days=91))


def test_above_the_inline_limit_the_body_stays_in_s3() -> None:
    d = doc([], "x" * INLINE_BODY_LIMIT)
    info = ObjectInfo("changes/CHG-1.json", "e1", len(d.body), datetime.now(UTC))
    attrs = live_attributes(d, info, prefix="changes/", source="write", ttl_days=90)
    item = CacheItem.from_item({"pk": "change#CHG-1", **attrs})
    assert item.body is None and item.body_in_s3 is True


def test_a_tombstone_is_out_of_every_index_at_a_whole_second() -> None:
    at = datetime.now(UTC)
    attrs = tombstone_attributes("changes/CHG-1.json", at, source="event", ttl_days=7)
    item = CacheItem.from_item({"pk": "change#CHG-1", **attrs})
    assert item.state == "deleted" and not item.servable()
    assert (item.tpk, item.tsk, item.spk, item.kpk, item.customers) == (None,) * 5
    assert item.s3_last_modified == at.replace(microsecond=0)
    assert item.index_customers == [] and item.committed_etag is None
