"""SQS for the operator commands (`docsync dlq`, `docsync doctor`): every call, one translation.

Queue lookups, attributes, receive/release (a peek returns messages at once by setting their
visibility back to 0), batched send and delete, and SQS's own message move tasks. botocore
errors become `NotFoundError` (no such queue) or `QueueError`; an endpoint that does not
implement move tasks (moto answers HTTP 500) raises `MoveTaskUnsupportedError`, so callers
can fall back to copying.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from engine.exceptions import MoveTaskUnsupportedError, NotFoundError, QueueError
from engine.store.errors import error_code

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

T = TypeVar("T")
NO_QUEUE = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}
UNSUPPORTED = {"UnsupportedOperation", "InvalidAction", "NotImplemented"}
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

    def _call(self, what: str, fn: Callable[..., T], **kwargs: Any) -> T:
        try:
            return fn(**kwargs)
        except ClientError as exc:
            if error_code(exc) in NO_QUEUE:
                raise NotFoundError(f"{what}: no such queue") from exc
            raise QueueError(f"{what}: {error_code(exc) or exc}") from exc
        except BotoCoreError as exc:
            raise QueueError(f"{what}: {exc}") from exc

    def lookup(self, name: str) -> QueueRef:
        url = self._call(f"queue {name}", self._sqs.get_queue_url, QueueName=name)["QueueUrl"]
        return QueueRef(name, url, self.attributes(url, name)["QueueArn"])

    def attributes(self, url: str, name: str = "") -> dict[str, str]:
        response = self._call(
            f"queue {name or url}", self._sqs.get_queue_attributes, QueueUrl=url,
            AttributeNames=["All"],
        )  # fmt: skip
        attributes: dict[str, str] = {str(k): v for k, v in response.get("Attributes", {}).items()}
        return attributes

    def receive(
        self, url: str, count: int, visibility_s: int, wait_s: int = 1
    ) -> list[dict[str, Any]]:
        response = self._call(
            "receive",
            self._sqs.receive_message,
            QueueUrl=url,
            MaxNumberOfMessages=max(1, min(BATCH_MAX, count)),
            VisibilityTimeout=visibility_s,
            WaitTimeSeconds=wait_s,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return [dict(m) for m in response.get("Messages", [])]

    def release(self, url: str, receipts: list[str]) -> int:
        """Make received messages visible again at once; returns how many SQS confirmed
        (0 in a dry run, where the call is not sent: they return after their timeout)."""
        released = 0
        for start in range(0, len(receipts), BATCH_MAX):
            chunk = receipts[start : start + BATCH_MAX]
            response = self._call(
                "release",
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
            response = self._call("send", self._sqs.send_message_batch, QueueUrl=url, Entries=batch)
            sent.update(str(s["Id"]) for s in response.get("Successful", []))
        return sent

    def delete_batch(self, url: str, receipts: dict[str, str]) -> set[str]:
        """Delete by id → receipt handle; returns the ids SQS deleted."""
        deleted: set[str] = set()
        items = list(receipts.items())
        for start in range(0, len(items), BATCH_MAX):
            response = self._call(
                "delete",
                self._sqs.delete_message_batch,
                QueueUrl=url,
                Entries=[
                    {"Id": i, "ReceiptHandle": r} for i, r in items[start : start + BATCH_MAX]
                ],
            )
            deleted.update(str(s["Id"]) for s in response.get("Successful", []))
        return deleted

    def _unsupported(self, exc: ClientError) -> bool:
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        return error_code(exc) in UNSUPPORTED or (bool(self._endpoint_url) and status >= 500)

    def start_move_task(self, source_arn: str, destination_arn: str | None = None) -> str:
        """SQS's own redrive; without a destination, each message goes back to its source."""
        kwargs: dict[str, Any] = {"SourceArn": source_arn}
        if destination_arn:
            kwargs["DestinationArn"] = destination_arn
        try:
            response = self._sqs.start_message_move_task(**kwargs)
        except ClientError as exc:
            if self._unsupported(exc):
                raise MoveTaskUnsupportedError("StartMessageMoveTask is not implemented") from exc
            raise QueueError(f"start move task: {error_code(exc) or exc}") from exc
        except BotoCoreError as exc:
            raise QueueError(f"start move task: {exc}") from exc
        return str(response.get("TaskHandle", ""))

    def list_move_tasks(self, source_arn: str) -> list[dict[str, Any]]:
        try:
            response = self._sqs.list_message_move_tasks(SourceArn=source_arn, MaxResults=10)
        except ClientError as exc:
            if self._unsupported(exc):
                raise MoveTaskUnsupportedError("ListMessageMoveTasks is not implemented") from exc
            raise QueueError(f"list move tasks: {error_code(exc) or exc}") from exc
        except BotoCoreError as exc:
            raise QueueError(f"list move tasks: {exc}") from exc
        return [dict(r) for r in response.get("Results", [])]
