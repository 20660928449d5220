"""The one SQS loop (engine/store/consume.py) against moto over HTTP and against the in-memory
queue: a slow message is kept invisible by the heartbeat, a failed one stays for redelivery, a
message is deleted only after its handler succeeded; and (on moto, through botocore's hooks)
SQS faults surface as the project's QueueError."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from engine.aws import AwsClients
from engine.exceptions import NotFoundError, QueueError
from engine.settings import Settings
from engine.store.abc import Queue
from engine.store.consume import Polling, QueueConsumer
from engine.store.memory import MemoryQueueStore
from engine.store.queue import QueueStore
from tests.integration.faults import Faults

WAIT_S = 30.0  # a bound on waiting for something that should happen at once: never reached


class Calls:
    """Every SQS operation the client sends, in order (an after-call hook, or `record`)."""

    def __init__(self, client: Any = None) -> None:
        self.ops: list[str] = []
        self.lock = threading.Lock()
        self.visibility = threading.Semaphore(0)
        if client is not None:
            client.meta.events.register("after-call.sqs.*", self._after)

    def _after(self, model: Any, **_: Any) -> None:
        self.record(model.name)

    def record(self, op: str) -> None:
        with self.lock:
            self.ops.append(op)
        if op == "ChangeMessageVisibility":
            self.visibility.release()

    def note(self, event: str) -> None:
        with self.lock:
            self.ops.append(event)


def work_queue(settings: Settings, *bodies: str) -> tuple[AwsClients, QueueStore, str, Calls]:
    clients = AwsClients(settings)
    store = QueueStore(clients.sqs, settings.endpoint_url)
    url = store.url(settings.work_queue)
    for body in bodies:
        store.send(url, body)
    return clients, store, url, Calls(clients.sqs)


Work = Callable[..., tuple[Queue, str, Calls]]


class RecordedMemoryQueue(MemoryQueueStore):
    """The in-memory queue, noting the SQS operation each call stands for."""

    def __init__(self, calls: Calls) -> None:
        super().__init__()
        self.calls = calls

    def receive(self, url: str, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        self.calls.record("ReceiveMessage")
        return super().receive(url, *args, **kwargs)

    def change_visibility(self, url: str, receipt: str, seconds: int) -> None:
        super().change_visibility(url, receipt, seconds)
        self.calls.record("ChangeMessageVisibility")

    def delete(self, url: str, receipt: str) -> None:
        super().delete(url, receipt)
        self.calls.record("DeleteMessage")


@pytest.fixture(params=["sqs", "memory"])
def work(request: pytest.FixtureRequest) -> Work:
    """Builds a work queue holding `bodies`: the store, its URL and the calls it makes."""

    def build(*bodies: str) -> tuple[Queue, str, Calls]:
        if request.param == "sqs":
            _, store, url, calls = work_queue(request.getfixturevalue("settings"), *bodies)
            return store, url, calls
        memory = RecordedMemoryQueue(Calls())
        url = memory.create("docsync-work", visibility_s=60)
        for body in bodies:
            memory.send(url, body)
        return memory, url, memory.calls

    return build


def counts(store: Queue, url: str) -> tuple[int, int]:
    """(visible, in flight) as SQS reports them."""
    attributes = store.attributes(url)
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


def test_the_heartbeat_keeps_a_slow_message_from_a_second_consumer(work: Work) -> None:
    store, url, calls = work("slow")
    polling = Polling(batch=1, wait_s=1, visibility_s=2, heartbeat_s=0.5)
    seen_by_other: list[dict[str, Any]] = []

    def slow(message: dict[str, Any]) -> bool:
        # five extensions, each hiding the message 2 s from then: well past its first 2 s
        for _ in range(5):
            assert calls.visibility.acquire(timeout=WAIT_S), "no heartbeat"
        seen_by_other.extend(store.receive(url, 10, 30, wait_s=0))
        return True

    assert QueueConsumer(store, url, slow, polling).run(drain=True) == 1
    assert seen_by_other == []  # a second consumer got nothing while it was being handled
    assert calls.ops.count("ChangeMessageVisibility") >= 5
    assert counts(store, url) == (0, 0)  # and then it was deleted


def test_a_failed_message_stays_on_the_queue_for_redelivery(work: Work) -> None:
    store, url, calls = work("fails")
    stop = threading.Event()
    deliveries: list[str] = []

    def failing(message: dict[str, Any]) -> bool:
        deliveries.append(message["MessageId"])
        if len(deliveries) == 2:
            stop.set()
        return False

    polling = Polling(batch=1, wait_s=1, visibility_s=30, heartbeat_s=10)
    consumer = QueueConsumer(store, url, failing, polling, retry_in=lambda _: 0, stop=stop)
    consumer.run()
    assert len(deliveries) == 2 and deliveries[0] == deliveries[1]  # redelivered, not lost
    assert "DeleteMessage" not in calls.ops
    assert calls.ops.count("ChangeMessageVisibility") == 2  # the retry_in, once per failure
    assert sum(counts(store, url)) == 1


def test_a_handler_that_raises_ends_the_loop_and_leaves_the_message(work: Work) -> None:
    store, url, calls = work("boom")

    def broken(message: dict[str, Any]) -> bool:
        raise RuntimeError("worker bug")

    polling = Polling(batch=1, wait_s=1, visibility_s=30, heartbeat_s=10)
    with pytest.raises(RuntimeError, match="worker bug"):
        QueueConsumer(store, url, broken, polling).run(drain=True)
    assert "DeleteMessage" not in calls.ops
    assert counts(store, url) == (0, 1)  # in flight: back after its visibility timeout


def test_a_message_is_deleted_only_after_its_handler_succeeded(work: Work) -> None:
    store, url, calls = work("a", "b", "c")
    handled: list[str] = []

    def ok(message: dict[str, Any]) -> bool:
        calls.note(f"handled {message['Body']}")
        handled.append(message["Body"])
        return True

    polling = Polling(batch=10, wait_s=1, visibility_s=30, heartbeat_s=10, workers=1)
    assert QueueConsumer(store, url, ok, polling).run(drain=True) == 3
    assert sorted(handled) == ["a", "b", "c"]
    steps = [op for op in calls.ops if op != "ReceiveMessage"]
    assert steps == [
        step for body in handled for step in (f"handled {body}", "DeleteMessage")
    ]  # each delete right after its own handler returned, never before
    assert counts(store, url) == (0, 0)


def test_a_failed_receive_is_retried_or_raised_as_a_queue_error(settings: Settings) -> None:
    clients, store, url, _ = work_queue(settings, "later")
    faults = Faults()
    faults.attach(clients.sqs)
    faults.fail("sqs", "ReceiveMessage", times=settings.aws.max_attempts)
    polling = Polling(batch=1, wait_s=1, visibility_s=30, heartbeat_s=10)
    with pytest.raises(QueueError) as raised:
        QueueConsumer(store, url, lambda _: True, polling).run(drain=True)
    assert "SQS ReceiveMessage" in str(raised.value)

    faults.fail("sqs", "ReceiveMessage", times=settings.aws.max_attempts)
    handled: list[str] = []

    def take(message: dict[str, Any]) -> bool:
        handled.append(message["Body"])
        return True

    keep_going = Polling(batch=1, wait_s=1, visibility_s=30, heartbeat_s=10, keep_going=True)
    QueueConsumer(store, url, take, keep_going).run(drain=True)  # backs off, then receives
    assert handled == ["later"]
    assert ("sqs", "ReceiveMessage", "fail") in faults.fired


def test_sqs_errors_are_the_projects_own(settings: Settings) -> None:
    clients, store, url, _ = work_queue(settings)
    with pytest.raises(NotFoundError, match="no such queue"):
        store.url("no-such-queue")
    faults = Faults()
    faults.attach(clients.sqs)
    faults.respond("sqs", "DeleteMessage", "AccessDenied", 403)
    with pytest.raises(QueueError, match="SQS DeleteMessage failed") as raised:
        store.delete(url, "receipt")
    assert raised.value.__cause__ is not None
