"""SQS: every call of the listener, the reconcile tasks, the demo and the operator commands.

Queue lookups, attributes, receive (long polling), visibility changes (a heartbeat, a quick
retry, or a peek's release at once), send and delete, one by one or batched, and SQS's own
message move tasks. Errors go through the store seam: `NotFoundError` (no such queue) or
`QueueError`; an endpoint that does not implement move tasks (moto answers HTTP 500) raises
`MoveTaskUnsupportedError`, so callers can fall back to copying. The loop that consumes a
queue is `consume.py`, above these calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from engine.exceptions import MoveTaskUnsupportedError, QueueError
from engine.store.base import ErrorMap, StoreCall
from engine.store.errors import error_code

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

NO_QUEUE = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})
UNSUPPORTED = {"UnsupportedOperation", "InvalidAction", "NotImplemented"}
MOVE_TASKS = ("StartMessageMoveTask", "ListMessageMoveTasks")
BATCH_MAX = 10
BATCH_BYTES = 256 * 1024  # SendMessageBatch's limit on the sum of the bodies


@dataclass(frozen=True, slots=True)
class QueueRef:
    name: str
    url: str
    arn: str


def queue_name(arn: str) -> str:
    """`arn:aws:sqs:region:account:name` → `name`."""
    return arn.rsplit(":", 1)[-1]


def size_batches(entries: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Send entries in batches of at most 10 and 256 KB of bodies (one entry may be alone)."""
    batch: list[dict[str, Any]] = []
    size = 0
    for entry in entries:
        body = len(str(entry["MessageBody"]).encode())
        if batch and (len(batch) == BATCH_MAX or size + body > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(entry)
        size += body
    if batch:
        yield batch


class QueueStore:
    def __init__(self, client: SQSClient, endpoint_url: str | None = None) -> None:
        self._sqs = client
        self._endpoint_url = endpoint_url
        self.errors = ErrorMap(
            "SQS",
            QueueError,
            not_found=NO_QUEUE,
            missing="{what}: no such queue ({exc.__class__.__name__})",  # botocore names it
            special=self._move_task_unsupported,
        )
        self._call = StoreCall(self.errors)

    def url(self, name: str) -> str:
        return self._call("GetQueueUrl", self._sqs.get_queue_url, target=name, QueueName=name)[
            "QueueUrl"
        ]

    def lookup(self, name: str) -> QueueRef:
        url = self.url(name)
        return QueueRef(name, url, self.attributes(url, name)["QueueArn"])

    def attributes(self, url: str, name: str = "") -> dict[str, str]:
        response = self._call(
            "GetQueueAttributes", self._sqs.get_queue_attributes, target=name or url,
            QueueUrl=url, AttributeNames=["All"],
        )  # fmt: skip
        attributes: dict[str, str] = {str(k): v for k, v in response.get("Attributes", {}).items()}
        return attributes

    def receive(
        self,
        url: str,
        count: int,
        visibility_s: int | None,
        wait_s: int = 1,
        system_attributes: Sequence[str] = ("All",),
        message_attributes: Sequence[str] = ("All",),
    ) -> list[dict[str, Any]]:
        """Up to `count` (1-10) messages, hidden for `visibility_s` (None: the queue's
        default); a long poll of `wait_s`. Empty attribute lists are not asked for at all."""
        kwargs: dict[str, Any] = {
            "QueueUrl": url,
            "MaxNumberOfMessages": max(1, min(BATCH_MAX, count)),
            "WaitTimeSeconds": wait_s,
        }
        if visibility_s is not None:
            kwargs["VisibilityTimeout"] = visibility_s
        if system_attributes:
            kwargs["MessageSystemAttributeNames"] = list(system_attributes)
        if message_attributes:
            kwargs["MessageAttributeNames"] = list(message_attributes)
        response = self._call("ReceiveMessage", self._sqs.receive_message, **kwargs)
        return [dict(m) for m in response.get("Messages", [])]

    def change_visibility(self, url: str, receipt: str, seconds: int) -> None:
        """Hide a received message for `seconds` from now (a heartbeat, or a sooner retry)."""
        self._call(
            "ChangeMessageVisibility", self._sqs.change_message_visibility,
            QueueUrl=url, ReceiptHandle=receipt, VisibilityTimeout=seconds,
        )  # fmt: skip

    def delete(self, url: str, receipt: str) -> None:
        self._call("DeleteMessage", self._sqs.delete_message, QueueUrl=url, ReceiptHandle=receipt)

    def send(self, url: str, body: str, attributes: dict[str, Any] | None = None) -> None:
        kwargs: dict[str, Any] = {"QueueUrl": url, "MessageBody": body}
        if attributes:
            kwargs["MessageAttributes"] = attributes
        self._call("SendMessage", self._sqs.send_message, **kwargs)

    def release(self, url: str, receipts: list[str]) -> int:
        """Make received messages visible again at once; returns how many SQS confirmed
        (0 in a dry run, where the call is not sent: they return after their timeout)."""
        released = 0
        for start in range(0, len(receipts), BATCH_MAX):
            chunk = receipts[start : start + BATCH_MAX]
            response = self._call(
                "ChangeMessageVisibilityBatch",
                self._sqs.change_message_visibility_batch,
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": r, "VisibilityTimeout": 0}
                    for i, r in enumerate(chunk)
                ],
            )
            released += len(response.get("Successful", []))
        return released

    def send_batch(self, url: str, entries: list[dict[str, Any]]) -> set[str]:
        """SendMessageBatch entries (`Id`, `MessageBody`, optional `MessageAttributes`);
        returns the ids SQS accepted."""
        sent: set[str] = set()
        for batch in size_batches(entries):
            response = self._call(
                "SendMessageBatch", self._sqs.send_message_batch, QueueUrl=url, Entries=batch
            )
            sent.update(str(s["Id"]) for s in response.get("Successful", []))
        return sent

    def delete_batch(self, url: str, receipts: dict[str, str]) -> set[str]:
        """Delete by id → receipt handle; returns the ids SQS deleted."""
        deleted: set[str] = set()
        items = list(receipts.items())
        for start in range(0, len(items), BATCH_MAX):
            response = self._call(
                "DeleteMessageBatch",
                self._sqs.delete_message_batch,
                QueueUrl=url,
                Entries=[
                    {"Id": i, "ReceiptHandle": r} for i, r in items[start : start + BATCH_MAX]
                ],
            )
            deleted.update(str(s["Id"]) for s in response.get("Successful", []))
        return deleted

    def _move_task_unsupported(self, op: str, exc: ClientError) -> Exception | None:
        if op not in MOVE_TASKS:
            return None
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        if error_code(exc) in UNSUPPORTED or (bool(self._endpoint_url) and status >= 500):
            return MoveTaskUnsupportedError(f"{op} is not implemented")
        return None

    def start_move_task(self, source_arn: str, destination_arn: str | None = None) -> str:
        """SQS's own redrive; without a destination, each message goes back to its source."""
        kwargs: dict[str, Any] = {"SourceArn": source_arn}
        if destination_arn:
            kwargs["DestinationArn"] = destination_arn
        response = self._call("StartMessageMoveTask", self._sqs.start_message_move_task, **kwargs)
        return str(response.get("TaskHandle", ""))

    def list_move_tasks(self, source_arn: str) -> list[dict[str, Any]]:
        response = self._call(
            "ListMessageMoveTasks", self._sqs.list_message_move_tasks,
            SourceArn=source_arn, MaxResults=10,
        )  # fmt: skip
        return [dict(r) for r in response.get("Results", [])]
