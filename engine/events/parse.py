"""S3 notifications in every wrapping → frozen `ObjectEvent`s. Pure functions over dicts.

Shapes: S3 records delivered through SQS, through SNS → SQS (the SNS envelope as the body),
through EventBridge ("Object Created" / "Object Deleted"), and as a direct Lambda invocation;
plus the `s3:TestEvent` S3 sends when notifications are configured. Keys are form-encoded
(`+` is a space) in S3 records and decoded here, record by record. EventBridge keys are not
encoded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import unquote_plus

from engine.events.sequencer import normalize_sequencer
from engine.exceptions import MalformedEventError

Kind = Literal["created", "removed"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectEvent:
    bucket: str
    key: str
    kind: Kind
    name: str  # e.g. ObjectCreated:Put, LifecycleExpiration:Delete, Object Deleted
    event_time: datetime | None
    sequencer: str | None  # normalized: upper-case, right-padded to a fixed width
    etag: str | None
    size: int | None
    version_id: str | None


@dataclass(frozen=True, slots=True)
class TestEvent:
    """The `s3:TestEvent` S3 sends when notifications are configured."""

    __test__ = False  # not a pytest class, despite the name
    bucket: str


ParsedBody = list[ObjectEvent] | TestEvent


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


def _size(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise MalformedEventError(f"object size is not an integer: {value!r}") from None


def _kind(name: str) -> Kind | None:
    if name.startswith("ObjectCreated:") or name == "Object Created":
        return "created"
    if name.startswith(("ObjectRemoved:", "LifecycleExpiration:")) or name == "Object Deleted":
        return "removed"
    return None


def _s3_record(record: dict[str, Any]) -> ObjectEvent | None:
    """One entry of `Records`; None for event types we do not subscribe to (ignored)."""
    try:
        name = str(record["eventName"])
        s3 = record["s3"]
        obj = s3["object"]
        bucket = str(s3["bucket"]["name"])
        raw_key = str(obj["key"])
    except (KeyError, TypeError) as exc:
        raise MalformedEventError(f"S3 record without {exc}") from exc
    kind = _kind(name)
    if kind is None:
        return None
    etag = obj.get("eTag") or obj.get("etag")
    size = obj.get("size")
    return ObjectEvent(
        bucket=bucket,
        key=unquote_plus(raw_key),
        kind=kind,
        name=name,
        event_time=_time(record.get("eventTime")),
        sequencer=normalize_sequencer(obj.get("sequencer")),
        etag=str(etag).strip('"') if etag else None,
        size=_size(size) if kind == "created" else None,
        version_id=obj.get("versionId"),
    )


def _eventbridge(event: dict[str, Any]) -> ObjectEvent | None:
    detail = event.get("detail") or {}
    try:
        bucket = str(detail["bucket"]["name"])
        obj = detail["object"]
        key = str(obj["key"])
    except (KeyError, TypeError) as exc:
        raise MalformedEventError(f"EventBridge S3 event without {exc}") from exc
    name = str(event.get("detail-type", ""))
    kind = _kind(name)
    if kind is None:
        return None
    size = obj.get("size")
    return ObjectEvent(
        bucket=bucket,
        key=key,
        kind=kind,
        name=name,
        event_time=_time(event.get("time")),
        sequencer=normalize_sequencer(obj.get("sequencer")),
        etag=obj.get("etag"),
        size=_size(size),
        version_id=obj.get("version-id"),
    )


def parse_notification(payload: dict[str, Any]) -> ParsedBody:
    """An S3 notification document, in any of the shapes above (already JSON-decoded)."""
    if payload.get("Event") == "s3:TestEvent":
        return TestEvent(str(payload.get("Bucket", "")))
    if payload.get("Type") == "Notification" and "Message" in payload:  # SNS envelope
        return parse_body(str(payload["Message"]))
    if payload.get("source") == "aws.s3" and "detail" in payload:  # EventBridge
        event = _eventbridge(payload)
        return [event] if event else []
    records = payload.get("Records")
    if isinstance(records, list):
        events = []
        for record in records:
            if not isinstance(record, dict):
                raise MalformedEventError("a record is not an object")
            if record.get("eventSource") == "aws:sqs" and "body" in record:
                parsed = parse_body(str(record["body"]))  # a Lambda SQS event, flattened
                if isinstance(parsed, list):
                    events.extend(parsed)
                continue
            event = _s3_record(record)
            if event is not None:
                events.append(event)
        return events
    raise MalformedEventError("not an S3 notification (no Records, Event, detail or Message)")


def parse_body(body: str) -> ParsedBody:
    """An SQS message body."""
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise MalformedEventError(f"message body is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise MalformedEventError("message body is not a JSON object")
    return parse_notification(payload)
