"""Stream consumers see the customer-index entries change with their documents (same
transaction), and must not count them as documents: they sit under the reserved pk prefix."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from boto3.dynamodb.types import TypeSerializer

from engine import keys
from engine.documents import parse_document
from engine.store.item import index_entries, live_attributes
from engine.store.objects import ObjectInfo
from engine.streams.core import StreamProcessor
from engine.streams.records import from_stream

ARN = "arn:aws:dynamodb:us-east-1:000000000000:table/docsync-cache/stream/x"
_ser = TypeSerializer()


def record(seq: int, old: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, Any]:
    image = new if new is not None else old
    assert image is not None
    body: dict[str, Any] = {
        "ApproximateCreationDateTime": int(datetime.now(UTC).timestamp()),
        "Keys": {"pk": {"S": image["pk"]}},
        "SequenceNumber": str(1000 + seq),
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    for name, value in (("OldImage", old), ("NewImage", new)):
        if value is not None:
            body[name] = {k: _ser.serialize(v) for k, v in value.items() if v is not None}
    return {
        "eventID": str(seq),
        "eventName": "INSERT" if old is None else ("REMOVE" if new is None else "MODIFY"),
        "eventSource": "aws:dynamodb",
        "dynamodb": body,
        "eventSourceARN": ARN,
    }


def test_index_entries_are_ignored_and_documents_counted_once() -> None:
    now = datetime.now(UTC)
    doc = parse_document(
        {
            "id": "CHG-1",
            "object_type": "change",
            "title": "t",
            "customer_codes": ["acme", "globex"],
            "status": "draft",
            "created_at": keys.iso(now - timedelta(days=1)),
            "modified_at": keys.iso(now),
        }
    )
    info = ObjectInfo("changes/CHG-1.json", doc.etag, len(doc.body), now)
    attrs = live_attributes(
        doc, info, prefix="changes/", source="write", ttl_days=90, inline_limit=350_000
    )
    image = {"pk": "change#CHG-1", **attrs, "version": 1}
    entries = index_entries("change", "CHG-1", attrs)
    assert len(entries) == 2 and all(e["pk"].startswith(keys.INDEX_PK) for e in entries)
    raws = [record(0, None, image)] + [record(n + 1, None, e) for n, e in enumerate(entries)]
    raws += [record(9, entries[0], None)]  # an entry deleted by a later update
    core = StreamProcessor(table="docsync-cache", window_s=60)
    derived = core.process([from_stream(r) for r in raws])
    assert derived.records == 4
    assert derived.ignored == 3
    assert derived.removed == 0
    assert dict(derived.writes) == {("change", "write"): 1}
    assert dict(derived.changes) == {("change", "creates"): 1}
