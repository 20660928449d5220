"""The queue's twin: SQS standard queues in memory, with what the consume loop relies on.

A received message is hidden for its visibility timeout (the call's, else the queue's) or
until `change_visibility` moves it; every receive gives a new receipt handle and counts
`ApproximateReceiveCount`. Where AWS is stricter than moto, the twin follows AWS, so logic
that holds here holds on both: a *stale* handle (one from before a redelivery) deletes
nothing, without an error, and cannot change the visibility (`QueueError`); a message that
is visible again cannot have its visibility changed (MessageNotInflight). A handle never
issued is `ReceiptHandleIsInvalid`. A redrive policy moves a message received
`max_receives` times to its dead-letter queue when it would be received once more.
Times come from an injectable clock (epoch seconds).
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.exceptions import NotFoundError, QueueError
from engine.store.queue import BATCH_MAX, QueueRef, size_batches

REGION, ACCOUNT = "us-east-1", "123456789012"
_POLL_S = 0.02  # how often a long poll looks again (real time)


@dataclass(slots=True)
class _Message:
    message_id: str
    body: str
    attributes: dict[str, Any]
    sent_at: float
    visible_at: float = 0.0
    receipt: str | None = None  # the latest handle; the ones before it are stale
    receive_count: int = 0
    first_received_at: float | None = None


@dataclass(slots=True)
class _Queue:
    ref: QueueRef
    visibility_s: int
    dead_letter: str | None  # the DLQ's URL (a redrive policy), with its maxReceiveCount
    max_receives: int
    messages: dict[str, _Message] = field(default_factory=dict)  # in send order
    stale: dict[str, str] = field(default_factory=dict)  # old receipt → message id
    deleted: set[str] = field(default_factory=set)  # receipts of deleted messages


class MemoryQueueStore:
    """Queues by name; `create` stands in for `docsync init`."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._queues: dict[str, _Queue] = {}  # by URL
        self._serial = itertools.count(1)

    def create(
        self,
        name: str,
        visibility_s: int = 60,
        redrive_to: str | None = None,
        max_receives: int = 5,
    ) -> str:
        """A queue as `docsync init` makes it; `redrive_to` names its DLQ by ARN."""
        url = f"https://sqs.{REGION}.memory/{ACCOUNT}/{name}"
        arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"
        with self._cond:
            dlq = next((u for u, q in self._queues.items() if q.ref.arn == redrive_to), None)
            if redrive_to and dlq is None:
                raise NotFoundError(f"SQS CreateQueue {name}: no dead-letter queue {redrive_to}")
            queue = _Queue(QueueRef(name, url, arn), visibility_s, dlq, max_receives)
            self._queues.setdefault(url, queue)
        return url

    def url(self, name: str) -> str:
        with self._cond:
            for url, queue in self._queues.items():
                if queue.ref.name == name:
                    return url
        raise NotFoundError(f"SQS GetQueueUrl {name}: no such queue")

    def lookup(self, name: str) -> QueueRef:
        return self._queue(self.url(name), "GetQueueUrl").ref

    def attributes(self, url: str, name: str = "") -> dict[str, str]:
        now = self._clock()
        with self._cond:
            queue = self._queue(url, "GetQueueAttributes")
            hidden = sum(1 for m in queue.messages.values() if m.visible_at > now)
            return {
                "QueueArn": queue.ref.arn,
                "VisibilityTimeout": str(queue.visibility_s),
                "ApproximateNumberOfMessages": str(len(queue.messages) - hidden),
                "ApproximateNumberOfMessagesNotVisible": str(hidden),
            }

    def receive(
        self,
        url: str,
        count: int,
        visibility_s: int | None,
        wait_s: int = 1,
        system_attributes: Sequence[str] = ("All",),
        message_attributes: Sequence[str] = ("All",),
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + wait_s
        with self._cond:
            queue = self._queue(url, "ReceiveMessage")
            while True:
                taken = self._take(queue, max(1, min(BATCH_MAX, count)), visibility_s)
                remaining = deadline - time.monotonic()
                if taken or remaining <= 0:
                    break
                self._cond.wait(min(_POLL_S, remaining))  # expiry moves with the clock only
            return [self._shape(m, system_attributes, message_attributes) for m in taken]

    def _take(self, queue: _Queue, count: int, visibility_s: int | None) -> list[_Message]:
        now = self._clock()
        hide_s = queue.visibility_s if visibility_s is None else visibility_s
        taken: list[_Message] = []
        for message in [m for m in queue.messages.values() if m.visible_at <= now]:
            if len(taken) == count:
                break
            if queue.dead_letter and message.receive_count >= queue.max_receives:
                self._redrive(queue, message)
            else:
                taken.append(message)
        for message in taken:
            if message.receipt:
                queue.stale[message.receipt] = message.message_id
            message.receipt = f"{message.message_id}#{next(self._serial)}"
            message.receive_count += 1
            message.first_received_at = message.first_received_at or now
            message.visible_at = now + hide_s
        return taken

    def _redrive(self, queue: _Queue, message: _Message) -> None:
        """To the dead-letter queue, as it is (its id, body and receive count)."""
        assert queue.dead_letter is not None
        del queue.messages[message.message_id]
        if message.receipt:
            queue.stale[message.receipt] = message.message_id
        message.visible_at = 0.0
        self._queues[queue.dead_letter].messages[message.message_id] = message

    @staticmethod
    def _shape(m: _Message, system: Sequence[str], user: Sequence[str]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "MessageId": m.message_id,
            "ReceiptHandle": m.receipt,
            "MD5OfBody": hashlib.md5(m.body.encode(), usedforsecurity=False).hexdigest(),
            "Body": m.body,
        }
        if system:
            every = {
                "SentTimestamp": str(int(m.sent_at * 1000)),
                "ApproximateReceiveCount": str(m.receive_count),
                "ApproximateFirstReceiveTimestamp": str(int((m.first_received_at or 0) * 1000)),
            }
            out["Attributes"] = {k: v for k, v in every.items() if "All" in system or k in system}
        if user and m.attributes:
            out["MessageAttributes"] = {
                k: v for k, v in m.attributes.items() if "All" in user or k in user
            }
        return out

    def change_visibility(self, url: str, receipt: str, seconds: int) -> None:
        now = self._clock()
        with self._cond:
            queue = self._queue(url, "ChangeMessageVisibility")
            message = self._current(queue, receipt, "ChangeMessageVisibility")
            if message is None:
                raise QueueError(
                    "SQS ChangeMessageVisibility failed: InvalidParameterValue: the receipt "
                    "handle has expired (the message was received again since)"
                )
            if message.visible_at <= now:
                raise QueueError("SQS ChangeMessageVisibility failed: MessageNotInflight")
            message.visible_at = now + seconds
            self._cond.notify_all()

    def delete(self, url: str, receipt: str) -> None:
        with self._cond:
            queue = self._queue(url, "DeleteMessage")
            message = self._current(queue, receipt, "DeleteMessage")
            if message is not None:
                del queue.messages[message.message_id]
                queue.deleted.add(receipt)

    def send(self, url: str, body: str, attributes: dict[str, Any] | None = None) -> None:
        with self._cond:
            queue = self._queue(url, "SendMessage")
            message_id = str(uuid.uuid4())
            queue.messages[message_id] = _Message(
                message_id, body, dict(attributes or {}), self._clock()
            )
            self._cond.notify_all()

    def release(self, url: str, receipts: list[str]) -> int:
        released = 0
        for receipt in receipts:
            try:
                self.change_visibility(url, receipt, 0)
                released += 1
            except QueueError:  # a failed entry of ChangeMessageVisibilityBatch
                continue
        return released

    def send_batch(self, url: str, entries: list[dict[str, Any]]) -> set[str]:
        sent: set[str] = set()
        for batch in size_batches(entries):
            for entry in batch:
                self.send(url, str(entry["MessageBody"]), entry.get("MessageAttributes"))
                sent.add(str(entry["Id"]))
        return sent

    def delete_batch(self, url: str, receipts: dict[str, str]) -> set[str]:
        deleted: set[str] = set()
        for entry_id, receipt in receipts.items():
            try:
                self.delete(url, receipt)
                deleted.add(entry_id)
            except QueueError:  # a failed entry of DeleteMessageBatch
                continue
        return deleted

    def _queue(self, url: str, op: str) -> _Queue:
        queue = self._queues.get(url)
        if queue is None:
            raise NotFoundError(f"SQS {op} {url}: no such queue")
        return queue

    @staticmethod
    def _current(queue: _Queue, receipt: str, op: str) -> _Message | None:
        """The message `receipt` is the latest handle of; None for a stale or spent one."""
        for message in queue.messages.values():
            if message.receipt == receipt:
                return message
        if receipt in queue.stale or receipt in queue.deleted:
            return None
        raise QueueError(f"SQS {op} failed: ReceiptHandleIsInvalid: {receipt!r}")
