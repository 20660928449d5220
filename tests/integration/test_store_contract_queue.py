"""One contract, two queues: SQS (moto over HTTP) and the in-memory twin.

Every case runs against both, so the consume loop tested on `MemoryQueueStore` relies only
on behaviour SQS has (engine/store/abc.py `Queue`). Where AWS is stricter than moto (stale
receipt handles, a message no longer in flight), the twin follows AWS; those cases run on
memory only and say so.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from engine.app import Engine
from engine.exceptions import NotFoundError, QueueError
from engine.store.abc import Queue
from engine.store.memory import MemoryQueueStore
from engine.store.queue import QueueStore

pytestmark = pytest.mark.integration


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@dataclass
class Q:
    store: Queue
    url: str
    dlq: str  # where `url`'s redrive policy moves a message after 5 receives
    later: Callable[[float], None]  # let `seconds` pass on the queue's clock

    def counts(self) -> tuple[int, int]:
        attributes = self.store.attributes(self.url)
        return (
            int(attributes["ApproximateNumberOfMessages"]),
            int(attributes["ApproximateNumberOfMessagesNotVisible"]),
        )

    def take(self, visibility_s: int | None = 30, count: int = 10) -> list[dict[str, object]]:
        return self.store.receive(self.url, count, visibility_s, wait_s=0)


def memory_queue() -> Q:
    clock = FakeClock()
    store = MemoryQueueStore(clock)

    def later(seconds: float) -> None:
        clock.now += seconds

    dlq = store.create("docsync-dlq")
    url = store.create("docsync-work", 60, redrive_to=store.lookup("docsync-dlq").arn)
    return Q(store, url, dlq, later)


@pytest.fixture(params=["sqs", "memory"])
def q(request: pytest.FixtureRequest) -> Q:
    if request.param == "memory":
        return memory_queue()
    engine: Engine = request.getfixturevalue("engine")
    store = QueueStore(engine.clients.sqs, engine.settings.endpoint_url)
    url, dlq = store.url(engine.settings.work_queue), store.url(engine.settings.dlq)
    # moto keeps the wall clock: waiting out a 1 s visibility is the only way there
    return Q(store, url, dlq, lambda s: time.sleep(s + 0.2))


def receive_count(message: dict[str, object]) -> int:
    attributes = message["Attributes"]
    assert isinstance(attributes, dict)
    return int(attributes["ApproximateReceiveCount"])


def test_a_received_message_is_hidden_until_its_timeout(q: Q) -> None:
    q.store.send(q.url, "one")
    assert q.counts() == (1, 0)
    [message] = q.take(visibility_s=1)
    assert message["Body"] == "one" and receive_count(message) == 1
    assert q.take() == []  # hidden from a second consumer
    assert q.counts() == (0, 1)
    q.later(1)
    [again] = q.take()
    assert again["MessageId"] == message["MessageId"] and receive_count(again) == 2
    assert again["ReceiptHandle"] != message["ReceiptHandle"]  # a new handle each receive


def test_change_visibility_hides_longer_or_releases_at_once(q: Q) -> None:
    q.store.send(q.url, "one")
    [message] = q.take(visibility_s=1)
    q.store.change_visibility(q.url, str(message["ReceiptHandle"]), 30)  # a heartbeat
    q.later(1)
    assert q.take() == []
    q.store.change_visibility(q.url, str(message["ReceiptHandle"]), 0)  # a quick retry
    [again] = q.take()
    assert again["MessageId"] == message["MessageId"] and receive_count(again) == 2


def test_the_queue_default_visibility_applies_without_one(q: Q) -> None:
    assert q.store.attributes(q.url)["VisibilityTimeout"] == "60"
    q.store.send(q.url, "one")
    assert len(q.take(visibility_s=None)) == 1
    assert q.take() == [] and q.counts() == (0, 1)


def test_delete_by_the_latest_receipt_handle(q: Q) -> None:
    q.store.send(q.url, "one")
    [first] = q.take()
    q.store.change_visibility(q.url, str(first["ReceiptHandle"]), 0)
    [second] = q.take()
    q.store.delete(q.url, str(first["ReceiptHandle"]))  # stale: never an error
    q.store.delete(q.url, str(second["ReceiptHandle"]))
    assert q.counts() == (0, 0)
    q.store.delete(q.url, str(second["ReceiptHandle"]))  # deleting twice is fine


def test_an_unknown_receipt_handle_is_a_queue_error(q: Q) -> None:
    with pytest.raises(QueueError, match="ReceiptHandleIsInvalid"):
        q.store.delete(q.url, "no-such-receipt")
    with pytest.raises(QueueError, match="ReceiptHandleIsInvalid"):
        q.store.change_visibility(q.url, "no-such-receipt", 0)


def test_batches_and_attributes(q: Q) -> None:
    attributes = {"kind": {"DataType": "String", "StringValue": "task"}}
    entries = [
        {"Id": f"e{n}", "MessageBody": f"body-{n}", "MessageAttributes": attributes}
        for n in range(12)
    ]
    assert q.store.send_batch(q.url, entries) == {f"e{n}" for n in range(12)}
    first = q.take(count=25)  # at most 10 a receive
    assert 1 <= len(first) <= 10
    assert first[0]["MessageAttributes"] == attributes
    bare = q.store.receive(q.url, 10, 30, 0, system_attributes=(), message_attributes=())
    assert all("Attributes" not in m and "MessageAttributes" not in m for m in bare)
    received = first + bare
    while len(received) < 12:
        more = q.take()
        assert more, "a message went missing"
        received += more
    assert sorted(str(m["Body"]) for m in received) == sorted(f"body-{n}" for n in range(12))
    handles = [str(m["ReceiptHandle"]) for m in received]
    assert q.store.release(q.url, handles[:3]) == 3
    receipts = {f"d{n}": h for n, h in enumerate(handles[3:])}
    assert q.store.delete_batch(q.url, receipts) == set(receipts)
    assert q.counts() == (3, 0)


def test_the_redrive_policy_moves_a_message_after_five_receives(q: Q) -> None:
    q.store.send(q.url, "poison")
    for n in range(1, 6):
        [message] = q.take(visibility_s=0)  # failed at once, visible again
        assert receive_count(message) == n
    assert q.take() == []  # a sixth receive moves it instead
    assert q.counts() == (0, 0)
    [dead] = q.store.receive(q.dlq, 10, 30, wait_s=0)
    assert dead["MessageId"] == message["MessageId"] and dead["Body"] == "poison"


def test_concurrent_receivers_get_every_message_and_memory_each_once(q: Q) -> None:
    q.store.send_batch(q.url, [{"Id": str(n), "MessageBody": str(n)} for n in range(20)])
    sent = {str(n) for n in range(20)}
    seen: list[str] = []
    lock = threading.Lock()

    def drain() -> None:
        while batch := q.store.receive(q.url, 3, 30, wait_s=0):
            with lock:
                seen.extend(str(m["Body"]) for m in batch)

    threads = [threading.Thread(target=drain) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(seen) == set(sent)  # every message reaches a receiver
    if isinstance(q.store, MemoryQueueStore):
        assert len(seen) == 20  # the twin never duplicates (no receiver shares a hidden one)
    # SQS itself (and moto under load: a receive retried after a client timeout) delivers at
    # least once, so only the memory twin is held to exactly once.


def test_a_missing_queue_is_not_found(q: Q) -> None:
    with pytest.raises(NotFoundError, match="no such queue"):
        q.store.url("no-such-queue")


# -- AWS's stricter semantics: memory only (moto accepts a stale handle as a current one) --


def test_a_stale_receipt_handle_neither_deletes_nor_changes_visibility() -> None:
    q = memory_queue()
    q.store.send(q.url, "one")
    [first] = q.take(visibility_s=1)
    q.later(1)
    [second] = q.take(visibility_s=30)  # redelivered: the first handle is stale
    q.store.delete(q.url, str(first["ReceiptHandle"]))  # succeeds, deletes nothing
    assert q.counts() == (0, 1)
    with pytest.raises(QueueError, match="expired"):
        q.store.change_visibility(q.url, str(first["ReceiptHandle"]), 0)
    q.store.delete(q.url, str(second["ReceiptHandle"]))
    assert q.counts() == (0, 0)


def test_a_message_visible_again_is_not_in_flight() -> None:
    q = memory_queue()
    q.store.send(q.url, "one")
    [message] = q.take(visibility_s=1)
    q.later(1)
    with pytest.raises(QueueError, match="MessageNotInflight"):
        q.store.change_visibility(q.url, str(message["ReceiptHandle"]), 30)
    q.store.delete(q.url, str(message["ReceiptHandle"]))  # still its latest handle
    assert q.counts() == (0, 0)
