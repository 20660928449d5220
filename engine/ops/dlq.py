"""`docsync dlq`: what is on the dead-letter queue, and moving it back.

One DLQ serves both the event queue (S3 notifications) and the work queue (reconcile shard
tasks), as `docsync init` creates them. Decoding and routing are pure functions over the
messages SQS returns; `inspect` and `redrive` do the I/O through `QueueStore`.

- Peeking never consumes: messages are received with a short visibility timeout and then
  released (visibility 0), so they are back on the DLQ at once. A receive still counts as a
  receive (ApproximateReceiveCount grows), which on a DLQ without a redrive policy of its own
  changes nothing.
- Redrive prefers SQS's own message move task (each message goes back to the queue it came
  from). Where the endpoint lacks it (moto), or `--max` bounds the run, it copies: receive →
  send to the source queue → delete from the DLQ only what SQS confirmed as sent. A crash in
  between leaves a duplicate, never a loss; the listener tolerates duplicates (events are
  hints, and a shard task is idempotent).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from engine.events.parse import TestEvent, parse_body
from engine.exceptions import (
    InvalidRequestError,
    MalformedEventError,
    MoveTaskUnsupportedError,
)
from engine.settings import Settings
from engine.store.queue import QueueRef, QueueStore, queue_name

PEEK_VISIBILITY_S = 30  # long enough to collect a sample; released at once afterwards
COPY_VISIBILITY_S = 60  # a message being copied; unsent ones come back after this
PREVIEW_CHARS = 300
ERROR_ATTRIBUTE = "docsync-error"  # set by the listener when it moves a malformed message
Method = Literal["auto", "move-task", "copy"]


@dataclass(frozen=True, slots=True)
class Routes:
    """Where a DLQ message goes back to, by what it is."""

    events: str  # the S3 event queue
    tasks: str  # the reconcile work queue

    @classmethod
    def of(cls, settings: Settings) -> Routes:
        return cls(events=settings.queue, tasks=settings.work_queue)


def _preview(text: str) -> str:
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "…"


def _task(body: str) -> dict[str, Any] | None:
    """A reconcile shard task (reconciler/tasks.py), or None."""
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    if isinstance(payload, dict) and payload.get("kind") == "reconcile-shard":
        return payload
    return None


def decode(message: dict[str, Any], now: datetime) -> dict[str, Any]:
    """One DLQ message for display: what it is, how old, and why it may be there."""
    attrs = message.get("Attributes", {})
    sent_ms = int(attrs.get("SentTimestamp", 0) or 0)
    sent = datetime.fromtimestamp(sent_ms / 1000, UTC) if sent_ms else None
    reason = message.get("MessageAttributes", {}).get(ERROR_ATTRIBUTE, {}).get("StringValue")
    body = str(message.get("Body", ""))
    out: dict[str, Any] = {
        "message_id": message.get("MessageId"),
        "sent_at": sent.isoformat() if sent else None,
        "age_s": round((now - sent).total_seconds(), 1) if sent else None,
        "receive_count": int(attrs.get("ApproximateReceiveCount", 0) or 0),
        "source_queue": queue_name(attrs["DeadLetterQueueSourceArn"])
        if attrs.get("DeadLetterQueueSourceArn")
        else None,
        "reason": reason,
        "kind": "malformed",
        "events": [],
        "task": None,
        "error": None,
        "body": None,
    }
    task = _task(body)
    if task is not None:
        out["kind"] = "reconcile-task"
        out["task"] = {k: task.get(k) for k in ("run_id", "mode", "index", "of")}
        return out
    try:
        parsed = parse_body(body)
    except MalformedEventError as exc:
        out["error"] = str(exc)
        out["body"] = _preview(body)
        return out
    if isinstance(parsed, TestEvent):
        out["kind"] = "s3-test-event"
        out["events"] = [{"bucket": parsed.bucket, "key": None, "name": "s3:TestEvent"}]
        return out
    out["kind"] = "s3-event"
    out["events"] = [{"bucket": e.bucket, "key": e.key, "name": e.name} for e in parsed]
    return out


def destination(message: dict[str, Any], routes: Routes) -> str:
    """The queue a DLQ message came from: SQS's own record of it when present, else its
    shape (a shard task → the work queue; anything else → the event queue)."""
    source = message.get("Attributes", {}).get("DeadLetterQueueSourceArn")
    if source:
        return queue_name(str(source))
    return routes.tasks if _task(str(message.get("Body", ""))) else routes.events


def approximate(attributes: dict[str, str]) -> dict[str, int]:
    return {
        "visible": int(attributes.get("ApproximateNumberOfMessages", 0)),
        "in_flight": int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
        "delayed": int(attributes.get("ApproximateNumberOfMessagesDelayed", 0)),
    }


def oldest(sample: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The oldest message of the sample (a lower bound on the queue's oldest)."""
    dated = [m for m in sample if m["sent_at"] is not None]
    if not dated:
        return None
    first = min(dated, key=lambda m: str(m["sent_at"]))
    return {"sent_at": first["sent_at"], "age_s": first["age_s"], "message_id": first["message_id"]}


def forward_attributes(message: dict[str, Any]) -> dict[str, Any]:
    """The message's own attributes, without the reason the listener added."""
    return {
        name: {k: v for k, v in value.items() if k in ("DataType", "StringValue", "BinaryValue")}
        for name, value in message.get("MessageAttributes", {}).items()
        if name != ERROR_ATTRIBUTE
    }


# -- I/O ----------------------------------------------------------------------------------------


def peek(store: QueueStore, dlq: QueueRef, count: int) -> tuple[list[dict[str, Any]], int, int]:
    """Up to `count` distinct messages, released again at once.

    Returns (messages, receipts held, receipts released)."""
    seen: dict[str, dict[str, Any]] = {}
    receipts: list[str] = []
    try:
        while len(seen) < count:
            batch = store.receive(dlq.url, count - len(seen), PEEK_VISIBILITY_S)
            if not batch:
                break
            for message in batch:
                receipts.append(str(message["ReceiptHandle"]))
                seen.setdefault(str(message["MessageId"]), message)
    finally:
        released = store.release(dlq.url, receipts) if receipts else 0
    return list(seen.values()), len(receipts), released


def inspect(settings: Settings, store: QueueStore, sample: int) -> dict[str, Any]:
    dlq = store.lookup(settings.dlq)
    counts = approximate(store.attributes(dlq.url, dlq.name))
    messages, held, released = peek(store, dlq, sample) if sample else ([], 0, 0)
    now = datetime.now(UTC)
    decoded = sorted((decode(m, now) for m in messages), key=lambda m: str(m["sent_at"]))
    try:
        tasks: list[dict[str, Any]] | None = store.list_move_tasks(dlq.arn)
    except MoveTaskUnsupportedError:
        tasks = None
    return {
        "dlq": dlq.name,
        "url": dlq.url,
        "approximate": counts,
        "oldest": oldest(decoded),
        "oldest_basis": "sample (SentTimestamp)",
        "sampled": len(decoded),
        "sample": decoded,
        "peek": {
            "visibility_s": PEEK_VISIBILITY_S,
            "released": released,
            "returned_at_once": released == held,
        },
        "move_tasks": tasks,
    }


def redrive(
    settings: Settings,
    store: QueueStore,
    *,
    max_messages: int | None = None,
    method: Method = "auto",
) -> dict[str, Any]:
    if max_messages is not None and method == "move-task":
        raise InvalidRequestError(
            "max_messages cannot bound a move task (SQS moves the whole queue): use copy",
            ["max_messages"],
        )
    dlq = store.lookup(settings.dlq)
    visible = approximate(store.attributes(dlq.url, dlq.name))["visible"]
    budget = visible if max_messages is None else max_messages
    result: dict[str, Any] = {
        "dlq": dlq.name,
        "dry_run": settings.dry_run,
        "method": "copy" if max_messages is not None else method,
        "max": max_messages,
        "approximate_before": visible,
        "would_move": None,
        "moved": 0,
        "failed": 0,
        "not_deleted": 0,
        "by_destination": {},
        "task_handle": None,
        "fallback_reason": None,
    }
    if settings.dry_run:  # receive nothing: even a receive hides messages for a while
        result["would_move"] = min(budget, visible)
        return result
    if budget == 0:
        return result
    if result["method"] in ("auto", "move-task"):
        try:
            result["task_handle"] = store.start_move_task(dlq.arn)
            result["method"] = "move-task"
            return result
        except MoveTaskUnsupportedError as exc:
            if method == "move-task":
                raise
            result["fallback_reason"] = str(exc)
    result["method"] = "copy"
    _copy(store, dlq, Routes.of(settings), budget, result)
    return result


def _copy(
    store: QueueStore, dlq: QueueRef, routes: Routes, budget: int, result: dict[str, Any]
) -> None:
    """Receive → send to the source queue → delete what was sent; at most `budget` messages
    are taken, so messages that bounce straight back cannot keep it running."""
    urls: dict[str, str] = {}
    by_destination: dict[str, int] = result["by_destination"]
    taken = 0
    while taken < budget:
        batch = store.receive(dlq.url, budget - taken, COPY_VISIBILITY_S)
        if not batch:
            break
        taken += len(batch)
        groups: dict[str, list[dict[str, Any]]] = {}
        for message in batch:
            groups.setdefault(destination(message, routes), []).append(message)
        for name, messages in groups.items():
            if name not in urls:
                urls[name] = store.lookup(name).url
            entries = []
            for i, m in enumerate(messages):
                entry: dict[str, Any] = {"Id": str(i), "MessageBody": m["Body"]}
                attributes = forward_attributes(m)
                if attributes:
                    entry["MessageAttributes"] = attributes
                entries.append(entry)
            sent = store.send_batch(urls[name], entries)
            receipts = {str(i): str(m["ReceiptHandle"]) for i, m in enumerate(messages)}
            deleted = store.delete_batch(dlq.url, {i: r for i, r in receipts.items() if i in sent})
            result["not_deleted"] += len(sent - deleted)  # a duplicate, never a loss
            by_destination[name] = by_destination.get(name, 0) + len(sent)
            result["moved"] += len(sent)
            result["failed"] += len(messages) - len(sent)
