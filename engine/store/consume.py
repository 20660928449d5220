"""The one loop that consumes an SQS queue: receive, hold, heartbeat, delete after success.

The S3 event listener (`events/worker.py`) and the reconcile task worker
(`reconciler/tasks.py`) both run it. A message is deleted only after its handler returned
True; one it returned False for stays on the queue (sooner, if `retry_in` says when) until
it succeeds or the redrive policy moves it to the DLQ; one whose handler raised stays too,
and the error ends the loop. While a handler works, the heartbeat extends the message's
visibility `heartbeat_s` after it was received or last extended, so a slow message is never
handed to a second consumer. No AWS call is made here: every one goes through the `Queue`
(`QueueStore` on SQS, `MemoryQueueStore` in tests).

It sits in the store package, below both capabilities, because it is the queue's
consumption contract (visibility, receipts, delete-after-success) and nothing else; the
capabilities above bring what a message means.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from loguru import logger

from engine.exceptions import QueueError
from engine.store.abc import Queue

Message = dict[str, Any]
RECEIVE_BACKOFF_S = 2.0
_TICK_S = 0.5


@dataclass(frozen=True, slots=True, kw_only=True)
class Polling:
    """How a consumer receives and holds: batch size, long poll, visibility, heartbeat."""

    batch: int = 10
    wait_s: int = 20  # the long poll; 1 s while draining
    visibility_s: int = 60
    heartbeat_s: float = 20.0  # extend a held message this long after its last extension
    attributes: tuple[str, ...] = ()  # message system attributes to receive
    drain_polls: int = 1  # empty polls in a row that end a drain
    workers: int = 1
    # a failed receive or delete is logged (the receive retried after a pause), not raised
    keep_going: bool = False
    log_op: str = "queue"


class QueueConsumer:
    """Runs `handle` on every message of one queue; `stop` ends it between batches."""

    def __init__(
        self,
        queue: Queue,
        url: str,
        handle: Callable[[Message], bool],
        polling: Polling,
        *,
        retry_in: Callable[[Message], int] | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.queue = queue
        self.url = url
        self.handle = handle
        self.polling = polling
        self.retry_in = retry_in
        self.stop = stop or threading.Event()
        self.received = 0
        self.handled = 0
        self._held: dict[str, tuple[str, float]] = {}  # messageId → (receipt, last extended)
        self._lock = threading.Lock()

    def run(self, drain: bool = False) -> int:
        """Until `stop` is set; with `drain`, until the queue has nothing left to give.
        Returns how many messages were handled."""
        done = threading.Event()
        heartbeat = threading.Thread(target=self._heartbeat, args=(done,), daemon=True)
        heartbeat.start()
        try:
            with ThreadPoolExecutor(self.polling.workers, thread_name_prefix="consume") as pool:
                empty = 0
                while not self.stop.is_set():
                    messages = self._receive(1 if drain else self.polling.wait_s)
                    if messages is None:  # the queue was unreachable: not a sign it is empty
                        continue
                    if not messages:
                        empty += 1
                        if drain and empty >= self.polling.drain_polls:
                            break
                        continue
                    empty = 0
                    futures: list[Future[None]] = [pool.submit(self._take, m) for m in messages]
                    for future in futures:  # one batch at a time keeps the pool bounded
                        future.result()
        finally:
            done.set()
            heartbeat.join(timeout=2)
        return self.handled

    def _receive(self, wait_s: int) -> list[Message] | None:
        p = self.polling
        try:
            messages = self.queue.receive(
                self.url, p.batch, p.visibility_s, wait_s, p.attributes, message_attributes=()
            )
        except QueueError as exc:
            if not p.keep_going:
                raise
            logger.bind(op=f"{p.log_op}.receive").error("receive failed: {}", exc)
            self.stop.wait(RECEIVE_BACKOFF_S)
            return None
        with self._lock:
            self.received += len(messages)
        return messages

    def _take(self, message: Message) -> None:
        message_id, receipt = message["MessageId"], message["ReceiptHandle"]
        with self._lock:
            self._held[message_id] = (receipt, time.monotonic())
        try:
            ack = self.handle(message)
        finally:
            with self._lock:
                self._held.pop(message_id, None)
                self.handled += 1
        if ack:
            self._delete(message_id, receipt)
        elif self.retry_in is not None:  # sooner than after the whole visibility timeout
            self._set_visibility(receipt, self.retry_in(message))

    def _delete(self, message_id: str, receipt: str) -> None:
        try:
            self.queue.delete(self.url, receipt)
        except QueueError as exc:
            if not self.polling.keep_going:
                raise
            # it comes back and is handled again: handlers are idempotent
            logger.bind(op=f"{self.polling.log_op}.delete", message_id=message_id).warning(
                "delete failed, the message will be redelivered: {}", exc
            )

    def _set_visibility(self, receipt: str, seconds: int) -> None:
        try:
            self.queue.change_visibility(self.url, receipt, seconds)
        except QueueError as exc:  # the message reappears after its timeout anyway
            level = "DEBUG" if "ReceiptHandleIsInvalid" in str(exc) else "WARNING"
            logger.bind(op=f"{self.polling.log_op}.visibility").log(
                level, "visibility not changed: {}", exc
            )

    def _heartbeat(self, done: threading.Event) -> None:
        """Messages still being handled get another full timeout, each on its own clock."""
        tick = min(_TICK_S, self.polling.heartbeat_s)
        while not done.wait(tick):
            now = time.monotonic()
            with self._lock:
                due = [
                    (message_id, receipt)
                    for message_id, (receipt, since) in self._held.items()
                    if now - since >= self.polling.heartbeat_s
                ]
                for message_id, receipt in due:
                    self._held[message_id] = (receipt, now)
            for _, receipt in due:
                self._set_visibility(receipt, self.polling.visibility_s)
