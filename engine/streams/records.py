"""Stream records, decoded once into frozen typed values, whatever carried them.

The same DynamoDB change reaches us three ways: GetRecords on DynamoDB Streams (boto3 parses
the creation time into a datetime and binary values into bytes), a Lambda DynamoDB stream event
(epoch seconds; binary values as base64 text), and the table's Kinesis Data Streams destination
(base64 JSON with `tableName`; epoch milliseconds, or microseconds). A REMOVE made by TTL carries
`userIdentity` {type Service, principal dynamodb.amazonaws.com}.
"""

from __future__ import annotations

import base64
import binascii
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Literal, cast

from boto3.dynamodb.types import TypeDeserializer

from engine.store.item import PK, CacheItem
from engine.store.values import plain
from engine.streams.exceptions import MalformedRecordError

EventName = Literal["INSERT", "MODIFY", "REMOVE"]
EVENT_NAMES: tuple[EventName, ...] = ("INSERT", "MODIFY", "REMOVE")
TTL_PRINCIPAL = "dynamodb.amazonaws.com"
_de = TypeDeserializer()


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeRecord:
    """One change of one item, as the stream reports it."""

    event_name: EventName
    sequence: str  # orders records within `source`: DynamoDB or Kinesis sequence number
    source: str  # where `sequence` is unique: stream ARN (and shard), or Kinesis stream/shard
    created_at: datetime  # ApproximateCreationDateTime (UTC; seconds on Streams, ms on Kinesis)
    keys: Mapping[str, Any]
    old: Mapping[str, Any] | None
    new: Mapping[str, Any] | None
    ttl_expiry: bool  # a REMOVE made by DynamoDB's TTL: never a reason to touch S3
    table: str | None = None
    event_id: str | None = None
    size_bytes: int | None = None
    _items: dict[str, CacheItem | None] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def pk(self) -> str | None:
        value = self.keys.get(PK)
        return value if isinstance(value, str) else None

    @property
    def old_item(self) -> CacheItem | None:
        """The old image as a cache item (None: there is none); read once, however many
        parts of the core ask."""
        return self._item("old", self.old)

    @property
    def new_item(self) -> CacheItem | None:
        return self._item("new", self.new)

    def _item(self, which: str, image: Mapping[str, Any] | None) -> CacheItem | None:
        if which not in self._items:
            self._items[which] = CacheItem.from_image(image, self.pk)
        return self._items[which]

    @property
    def dedupe_key(self) -> tuple[str, str]:
        return (self.source, self.sequence)

    @property
    def image(self) -> Mapping[str, Any]:
        """The newest image there is (the old one for a REMOVE)."""
        return self.new if self.new is not None else (self.old or {})


def sequence_int(sequence: str) -> int:
    """Sequence numbers are decimal strings of varying length: compare them as numbers."""
    head = sequence.split(":", 1)[0]
    return int(head) if head.isdigit() else -1


def _binary_from_json(value: Any) -> Any:
    """Lambda and Kinesis JSON carry B / BS as base64 text; boto3 expects bytes."""
    if not isinstance(value, dict) or len(value) != 1:
        return value
    ((tag, inner),) = value.items()
    if tag == "B" and isinstance(inner, str):
        return {"B": base64.b64decode(inner, validate=True)}
    if tag == "BS" and isinstance(inner, list):
        return {
            "BS": [base64.b64decode(v, validate=True) if isinstance(v, str) else v for v in inner]
        }
    if tag == "M" and isinstance(inner, dict):
        return {"M": {k: _binary_from_json(v) for k, v in inner.items()}}
    if tag == "L" and isinstance(inner, list):
        return {"L": [_binary_from_json(v) for v in inner]}
    return value


def _image(raw: Any) -> Mapping[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise MalformedRecordError(f"an image must be an object, not {type(raw).__name__}")
    return MappingProxyType(
        {k: plain(_de.deserialize(_binary_from_json(v))) for k, v in raw.items()}
    )


def _is_ttl(identity: Any) -> bool:
    return (
        isinstance(identity, dict)
        and identity.get("type") == "Service"
        and identity.get("principalId") == TTL_PRINCIPAL
    )


def _table_of(stream_arn: str) -> str | None:
    """arn:aws:dynamodb:<region>:<account>:table/<name>/stream/<label> → name."""
    _, _, rest = stream_arn.partition(":table/")
    name = rest.split("/", 1)[0]
    return name or None


def _epoch(value: Any, unit: Literal["s", "ms", "us"]) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise MalformedRecordError(f"ApproximateCreationDateTime is not a time: {value!r}")
    divisor = {"s": 1, "ms": 1_000, "us": 1_000_000}[unit]
    return datetime.fromtimestamp(float(value) / divisor, UTC)


def _decode(
    raw: Mapping[str, Any],
    *,
    sequence: str,
    source: str,
    unit: Literal["s", "ms", "us"],
    table: str | None,
) -> ChangeRecord:
    name = raw.get("eventName")
    if name not in EVENT_NAMES:
        raise MalformedRecordError(f"unknown eventName {name!r}")
    body = raw.get("dynamodb")
    if not isinstance(body, dict):
        raise MalformedRecordError("no 'dynamodb' object")
    if "ApproximateCreationDateTime" not in body:
        raise MalformedRecordError("no ApproximateCreationDateTime")
    try:
        keys = _image(body.get("Keys") or {})
        old, new = _image(body.get("OldImage")), _image(body.get("NewImage"))
        created = _epoch(body["ApproximateCreationDateTime"], unit)
        size = int(body["SizeBytes"]) if body.get("SizeBytes") is not None else None
    except MalformedRecordError:
        raise
    except (TypeError, ValueError, KeyError, OverflowError, binascii.Error) as exc:
        raise MalformedRecordError(f"undecodable record: {exc}") from exc
    return ChangeRecord(
        event_name=cast(EventName, name),
        sequence=sequence,
        source=sys.intern(source),  # one string per source, however many records remember it
        created_at=created,
        keys=keys or MappingProxyType({}),
        old=old,
        new=new,
        ttl_expiry=name == "REMOVE" and _is_ttl(raw.get("userIdentity")),
        table=table,
        event_id=raw.get("eventID") if isinstance(raw.get("eventID"), str) else None,
        size_bytes=size,
    )


def from_stream(raw: Mapping[str, Any], source: str | None = None) -> ChangeRecord:
    """A DynamoDB Streams record: from GetRecords (pass `source`, e.g. ARN/shard) or from a
    Lambda event (its `eventSourceARN` is the source)."""
    if not isinstance(raw, Mapping):
        raise MalformedRecordError(f"a record must be an object, not {type(raw).__name__}")
    body = raw.get("dynamodb")
    sequence = body.get("SequenceNumber") if isinstance(body, dict) else None
    if not isinstance(sequence, str) or not sequence.isdigit():
        raise MalformedRecordError(f"no valid SequenceNumber: {sequence!r}")
    arn = raw.get("eventSourceARN")
    where = source or (arn if isinstance(arn, str) else "") or "dynamodb"
    table = _table_of(arn) if isinstance(arn, str) else _table_of(where)
    return _decode(raw, sequence=sequence, source=where, unit="s", table=table)


def from_kinesis(
    data: bytes | str, *, sequence: str, source: str, sub_sequence: int | None = None
) -> ChangeRecord:
    """The payload Kinesis Data Streams for DynamoDB writes (bytes, or the base64 text of a
    Lambda Kinesis record). `sequence` is the Kinesis one; the payload has none of its own."""
    try:
        blob = base64.b64decode(data, validate=True) if isinstance(data, str) else data
        payload = json.loads(blob)
    except (ValueError, binascii.Error) as exc:
        raise MalformedRecordError(f"not a JSON payload: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("eventSource") != "aws:dynamodb":
        raise MalformedRecordError("not a DynamoDB change (eventSource is not aws:dynamodb)")
    body = payload.get("dynamodb")
    unit: Literal["ms", "us"] = "ms"
    if isinstance(body, dict):
        stamp = body.get("ApproximateCreationDateTime")
        precise = body.get("ApproximateCreationDateTimePrecision") == "MICROSECOND"
        if precise or (isinstance(stamp, int | float) and stamp > 1e14):
            unit = "us"
    seq = f"{sequence}:{sub_sequence}" if sub_sequence else sequence
    table = payload.get("tableName")
    return _decode(
        payload,
        sequence=seq,
        source=source,
        unit=unit,
        table=table if isinstance(table, str) else None,
    )


def from_kinesis_lambda(raw: Mapping[str, Any]) -> ChangeRecord:
    """One record of a Lambda Kinesis event (eventID = `shardId-…:sequence`)."""
    kinesis = raw.get("kinesis")
    if not isinstance(kinesis, dict) or not isinstance(kinesis.get("sequenceNumber"), str):
        raise MalformedRecordError("no kinesis.sequenceNumber")
    shard = str(raw.get("eventID", "")).split(":", 1)[0]
    return from_kinesis(
        str(kinesis.get("data", "")),
        sequence=kinesis["sequenceNumber"],
        source=f"{raw.get('eventSourceARN', 'kinesis')}/{shard}",
    )
