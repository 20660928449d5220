"""The SQS worker of `docsync listen`: long polling, batches of 10, a bounded thread pool.

A message is deleted only after every event in it was applied (or is one that must not be
retried: ignored, stale, invalid). Failures stay on the queue for redelivery and, after the
redrive policy's count, land in the DLQ; a malformed body is moved to the DLQ at once. Slow
messages get their visibility extended. On SIGTERM / Ctrl-C the worker stops receiving,
finishes what it holds, and returns: nothing is acknowledged that was not applied.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from engine.aws import AwsClients
from engine.events.apply import APPLIED, RETRY, EventApplier
from engine.events.parse import TestEvent, parse_body
from engine.exceptions import DocsyncError, MalformedEventError


@dataclass
class ListenSummary:
    received: int = 0
    applied: int = 0
    skipped: int = 0
    failed: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, outcome: str) -> None:
        with self._lock:
            self.outcomes[outcome] += 1
            if outcome in APPLIED:
                self.applied += 1
            elif outcome in RETRY or outcome in ("failed", "malformed"):
                self.failed += 1
            else:
                self.skipped += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "applied": self.applied,
            "skipped": self.skipped,
            "failed": self.failed,
            "outcomes": dict(self.outcomes),
        }


class SqsListener:
    def __init__(
        self,
        clients: AwsClients,
        applier: EventApplier,
        *,
        workers: int | None = None,
        wait_s: int = 20,
        visibility_s: int = 60,
    ) -> None:
        self.settings = clients.settings
        self.sqs = clients.sqs
        self.applier = applier
        self.workers = workers or self.settings.concurrency
        # a long poll must end before the client's read timeout, or botocore retries it
        self.wait_s = max(0, min(wait_s, int(self.settings.read_timeout_s) - 2))
        self.visibility_s = visibility_s
        self.stop = threading.Event()
        self.summary = ListenSummary()
        self._queue_url = ""
        self._dlq_url = ""
        self._holding: dict[str, str] = {}  # messageId → receipt handle, while being applied
        self._hold_lock = threading.Lock()

    def _urls(self) -> None:
        if not self._queue_url:
            self._queue_url = self.sqs.get_queue_url(QueueName=self.settings.queue)["QueueUrl"]
            self._dlq_url = self.sqs.get_queue_url(QueueName=self.settings.dlq)["QueueUrl"]

    def run(self, drain: bool = False) -> ListenSummary:
        """Until `stop` is set; with `drain`, until the queue has nothing left to give."""
        self._urls()
        heartbeat = threading.Thread(target=self._extend_visibility, daemon=True)
        heartbeat.start()
        with ThreadPoolExecutor(self.workers, thread_name_prefix="listen") as pool:
            empty_polls = 0
            while not self.stop.is_set():
                messages = self._receive(1 if drain else self.wait_s)
                if messages is None:  # the queue was unreachable: not a sign it is empty
                    continue
                if not messages:
                    empty_polls += 1
                    if drain and (empty_polls >= 2 and not self._holding):
                        break
                    continue
                empty_polls = 0
                futures: list[Future[None]] = [pool.submit(self._handle, m) for m in messages]
                for future in futures:  # one batch at a time keeps the pool bounded
                    future.result()
        self.stop.set()
        heartbeat.join(timeout=2)
        return self.summary

    def _receive(self, wait_s: int) -> list[dict[str, Any]] | None:
        try:
            response = self.sqs.receive_message(
                QueueUrl=self._queue_url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=wait_s,
                VisibilityTimeout=self.visibility_s,
                MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
            )
        except Exception as exc:  # the queue is unreachable: back off, keep running
            logger.bind(op="listen.receive").error("receive failed: {}", exc)
            self.stop.wait(2.0)
            return None
        messages: list[dict[str, Any]] = [dict(m) for m in response.get("Messages", [])]
        with self.summary._lock:
            self.summary.received += len(messages)
        return messages

    def _handle(self, message: dict[str, Any]) -> None:
        message_id, receipt = message["MessageId"], message["ReceiptHandle"]
        with self._hold_lock:
            self._holding[message_id] = receipt
        try:
            ack = self._process(message)
        except Exception as exc:  # a bug must not stop the worker: leave it for redelivery
            logger.bind(op="listen.message", message_id=message_id).exception(
                "unexpected error, message left for redelivery: {}", exc
            )
            self.summary.add("failed")
            ack = False
        finally:
            with self._hold_lock:
                self._holding.pop(message_id, None)
        if ack:
            try:
                self.sqs.delete_message(QueueUrl=self._queue_url, ReceiptHandle=receipt)
            except Exception as exc:  # it comes back and is applied again: harmless
                logger.bind(op="listen.delete", message_id=message_id).warning(
                    "delete failed, the message will be redelivered: {}", exc
                )
        else:  # retry soon rather than after the whole visibility timeout
            count = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
            self._set_visibility(receipt, min(5 * count, self.visibility_s))

    def _process(self, message: dict[str, Any]) -> bool:
        """True when the message may be deleted."""
        log = logger.bind(op="listen.message", message_id=message["MessageId"])
        try:
            parsed = parse_body(message.get("Body", ""))
        except MalformedEventError as exc:
            log.warning("malformed message → DLQ: {}", exc)
            self.summary.add("malformed")
            return self._to_dlq(message, str(exc))
        if isinstance(parsed, TestEvent):
            self.summary.add("test_event")
            return True
        ack = True
        for event in parsed:
            try:
                outcome: str = self.applier.apply(event)
            except DocsyncError as exc:
                log.bind(key=event.key).error("apply failed, will retry: {}", exc)
                outcome = "failed"
            self.summary.add(outcome)
            ack = ack and outcome not in RETRY and outcome != "failed"
        return ack

    def _to_dlq(self, message: dict[str, Any], reason: str) -> bool:
        try:
            self.sqs.send_message(
                QueueUrl=self._dlq_url,
                MessageBody=message.get("Body", "") or "<empty>",
                MessageAttributes={
                    "docsync-error": {"DataType": "String", "StringValue": reason[:1000]}
                },
            )
            return True
        except Exception as exc:  # leave it: the redrive policy moves it after N receives
            logger.bind(op="listen.dlq").error("could not move to the DLQ: {}", exc)
            return False

    def _set_visibility(self, receipt: str, seconds: int) -> None:
        try:
            self.sqs.change_message_visibility(
                QueueUrl=self._queue_url, ReceiptHandle=receipt, VisibilityTimeout=seconds
            )
        except Exception as exc:  # the message reappears after its timeout anyway
            level = "DEBUG" if "ReceiptHandleIsInvalid" in str(exc) else "WARNING"
            logger.bind(op="listen.visibility").log(level, "visibility not changed: {}", exc)

    def _extend_visibility(self) -> None:
        """Heartbeat: messages still being applied get another full timeout."""
        interval = max(1.0, self.visibility_s / 3)
        last = time.monotonic()
        while not self.stop.wait(0.5):
            if time.monotonic() - last < interval:
                continue
            last = time.monotonic()
            with self._hold_lock:
                held = list(self._holding.values())
            for receipt in held:
                self._set_visibility(receipt, self.visibility_s)
