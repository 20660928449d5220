"""The SQS worker of `docsync listen`: long polling, batches of 10, a bounded thread pool.

A message is deleted only after every event in it was applied (or is one that must not be
retried: ignored, stale, invalid). Failures stay on the queue for redelivery and, after the
redrive policy's count, land in the DLQ; a malformed body is moved to the DLQ at once. Slow
messages get their visibility extended. On SIGTERM / Ctrl-C the worker stops receiving,
finishes what it holds, and returns: nothing is acknowledged that was not applied. The
receive/heartbeat/delete loop is the store's (`engine.store.consume`); this module decides
what a message means.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loguru import logger

from engine.aws import AwsClients
from engine.events.apply import APPLIED, RETRY, EventApplier
from engine.events.parse import TestEvent, parse_body
from engine.exceptions import DocsyncError, MalformedEventError, QueueError
from engine.store.consume import Polling, QueueConsumer
from engine.store.queue import QueueStore

if TYPE_CHECKING:
    from engine.app import Engine


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
        self.queue = QueueStore(clients.sqs, self.settings.endpoint_url)
        self.applier = applier
        self.workers = workers or self.settings.concurrency
        # a long poll must end before the client's read timeout, or botocore retries it
        self.wait_s = max(0, min(wait_s, int(self.settings.aws.read_timeout_s) - 2))
        self.visibility_s = visibility_s
        self.stop = threading.Event()
        self.summary = ListenSummary()
        self._queue_url = ""
        self._dlq_url = ""

    @classmethod
    def for_engine(
        cls, engine: Engine, *, workers: int | None = None, wait_s: int = 20, visibility_s: int = 60
    ) -> SqsListener:
        """The listener of `docsync listen`, `serve` and the demo: the engine's clients and an
        applier built from the engine (`EventApplier.for_engine`)."""
        return cls(
            engine.clients,
            EventApplier.for_engine(engine),
            workers=workers,
            wait_s=wait_s,
            visibility_s=visibility_s,
        )

    def _urls(self) -> None:
        if not self._queue_url:
            self._queue_url = self.queue.url(self.settings.queue)
            self._dlq_url = self.queue.url(self.settings.dlq)

    def run(self, drain: bool = False) -> ListenSummary:
        """Until `stop` is set; with `drain`, until the queue has nothing left to give."""
        self._urls()
        polling = Polling(
            batch=10,
            wait_s=self.wait_s,
            visibility_s=self.visibility_s,
            heartbeat_s=max(1.0, self.visibility_s / 3),
            attributes=("ApproximateReceiveCount", "SentTimestamp"),
            drain_polls=2,
            workers=self.workers,
            keep_going=True,  # the queue unreachable: back off, keep running
            log_op="listen",
        )
        consumer = QueueConsumer(
            self.queue, self._queue_url, self._handle, polling,
            retry_in=self._retry_in, stop=self.stop,
        )  # fmt: skip
        try:
            consumer.run(drain)
        finally:
            self.stop.set()
        return self.summary

    def _retry_in(self, message: dict[str, Any]) -> int:
        """A failed message comes back soon, later on each receive, at most after a timeout."""
        count = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        return min(5 * count, self.visibility_s)

    def _handle(self, message: dict[str, Any]) -> bool:
        """True when the message may be deleted; never raises (a bug must not stop the worker)."""
        with self.summary._lock:
            self.summary.received += 1
        try:
            return self._process(message)
        except Exception as exc:  # leave it for redelivery
            logger.bind(op="listen.message", message_id=message["MessageId"]).exception(
                "unexpected error, message left for redelivery: {}", exc
            )
            self.summary.add("failed")
            return False

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
            self.queue.send(
                self._dlq_url,
                message.get("Body", "") or "<empty>",
                {"docsync-error": {"DataType": "String", "StringValue": reason[:1000]}},
            )
            return True
        except QueueError as exc:  # leave it: the redrive policy moves it after N receives
            logger.bind(op="listen.dlq").error("could not move to the DLQ: {}", exc)
            return False
