"""Contract tests of the leases store (one `Lease` for the consumer and the reconcile lock) and
of the stream store's trimmed/expired handling, against the session's moto server; faults come
through botocore's own hooks (tests/integration/faults.py), so they take the production path."""

from __future__ import annotations

import threading
import time

import pytest
from botocore.exceptions import ClientError

from engine.app import Engine
from engine.documents import parse_document
from engine.exceptions import DocsyncError, StoreError
from engine.sample import sample_documents
from engine.settings import Settings
from engine.store.leases import Lease
from engine.store.stream import Lost, StreamStore
from reconciler.lock import LeaseLock
from tests.integration.faults import Faults
from tests.integration.test_retries import clients

pytestmark = pytest.mark.integration

KINDS = pytest.mark.parametrize("keep", [True, False], ids=["consumer-lease", "lock-lease"])


def lease(engine: Engine, owner: str, keep: bool, at: float | None = None) -> Lease:
    clock = (lambda: at) if at is not None else time.time
    table = engine.settings.leases_table
    return Lease(engine.clients.dynamodb, table, "contract#lease", 30, owner, clock, keep=keep)


def holder_of(engine: Engine) -> str | None:
    item = engine.clients.dynamodb.get_item(
        TableName=engine.settings.leases_table,
        Key={"lease_key": {"S": "contract#lease"}},
        ConsistentRead=True,
    ).get("Item")
    return item["owner"]["S"] if item and float(item["expires"]["N"]) > time.time() else None


@KINDS
def test_two_owners_racing_exactly_one_wins(engine: Engine, keep: bool) -> None:
    racers = [lease(engine, f"owner-{n}", keep) for n in range(2)]
    start = threading.Barrier(len(racers))
    won: dict[str, bool] = {}

    def race(racer: Lease) -> None:
        start.wait()
        won[racer.owner] = racer.try_acquire()

    threads = [threading.Thread(target=race, args=(r,)) for r in racers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [owner for owner, ok in won.items() if ok]
    assert len(winners) == 1
    assert holder_of(engine) == winners[0]
    loser = next(r for r in racers if r.owner != winners[0])
    assert loser.try_acquire() is False  # still held: the loser stays out


@KINDS
def test_expiry_hands_the_lease_over(engine: Engine, keep: bool) -> None:
    now = time.time()
    first = lease(engine, "first", keep, at=now)
    assert first.try_acquire()
    assert lease(engine, "second", keep, at=now + 29).try_acquire() is False
    second = lease(engine, "second", keep, at=now + 31)  # past the first's 30 s
    assert second.try_acquire()
    assert first.try_acquire() is False  # the old holder's renewal is refused


@KINDS
def test_release_by_a_non_owner_is_refused(engine: Engine, keep: bool) -> None:
    owner, other = lease(engine, "owner", keep), lease(engine, "other", keep)
    assert owner.try_acquire()
    other.release()  # refused without an error: not its lease
    assert holder_of(engine) == "owner"
    assert other.try_acquire() is False
    owner.release()
    assert holder_of(engine) is None
    assert other.try_acquire()


def test_a_lock_failure_is_a_docsync_error_never_a_client_error(settings: Settings) -> None:
    built, faults = clients(settings)
    lock = LeaseLock(built.dynamodb, settings.leases_table, "contract#lock", 30)
    faults.respond("dynamodb", "PutItem", "AccessDeniedException")
    with pytest.raises(StoreError) as acquiring:
        lock.try_acquire()
    assert lock.try_acquire()  # the fault is spent: the table works
    faults.respond("dynamodb", "DeleteItem", "AccessDeniedException")
    with pytest.raises(StoreError) as releasing:
        lock.release()
    for info in (acquiring, releasing):
        assert isinstance(info.value, DocsyncError)
        assert not isinstance(info.value, ClientError)
        assert isinstance(info.value.__cause__, ClientError)  # kept for the log, not raised


@pytest.fixture
def stream(engine: Engine, settings: Settings) -> tuple[StreamStore, Faults, str, str]:
    """A stream store whose streams client takes faults, the stream's ARN and one shard."""
    engine.pipeline.put(parse_document(next(iter(sample_documents(1, seed=5)))))
    built, faults = clients(settings)
    streams = built.client("dynamodbstreams")
    faults.attach(streams)
    store = StreamStore(built, streams)
    arn, enabled = store.table_stream(settings.table)
    assert arn and enabled
    shard = store.shards(arn)[0]["ShardId"]
    return store, faults, arn, shard


def test_records_without_a_fault_are_a_response(stream: tuple[StreamStore, Faults, str, str]):
    store, _, arn, shard = stream
    iterator = store.iterator(arn, shard, "TRIM_HORIZON")
    assert isinstance(iterator, str)
    response = store.records(iterator, 100)
    assert not isinstance(response, Lost) and response["Records"]


@pytest.mark.parametrize(
    ("code", "lost"),
    [("ExpiredIteratorException", Lost.EXPIRED), ("TrimmedDataAccessException", Lost.TRIMMED)],
)
def test_get_records_expired_or_trimmed_is_a_typed_result(
    stream: tuple[StreamStore, Faults, str, str], code: str, lost: Lost
) -> None:
    store, faults, arn, shard = stream
    iterator = store.iterator(arn, shard, "TRIM_HORIZON")
    assert isinstance(iterator, str)
    faults.respond("dynamodb-streams", "GetRecords", code)
    assert store.records(iterator, 100) is lost


@pytest.mark.parametrize(
    ("code", "lost"),
    [("TrimmedDataAccessException", Lost.TRIMMED), ("ResourceNotFoundException", Lost.SHARD_GONE)],
)
def test_an_iterator_past_the_retention_is_a_typed_result(
    stream: tuple[StreamStore, Faults, str, str], code: str, lost: Lost
) -> None:
    store, faults, arn, shard = stream
    faults.respond("dynamodb-streams", "GetShardIterator", code)
    assert store.iterator(arn, shard, "AFTER_SEQUENCE_NUMBER", "1" * 21) is lost


def test_other_stream_errors_are_store_errors(stream: tuple[StreamStore, Faults, str, str]):
    store, faults, arn, shard = stream
    faults.respond("dynamodb-streams", "GetShardIterator", "AccessDeniedException")
    with pytest.raises(StoreError):
        store.iterator(arn, shard, "TRIM_HORIZON")
    iterator = store.iterator(arn, shard, "TRIM_HORIZON")
    assert isinstance(iterator, str)
    faults.respond("dynamodb-streams", "GetRecords", "ExpiredIteratorException")
    faults.respond("dynamodb-streams", "GetRecords", "AccessDeniedException")
    assert store.records(iterator, 100) is Lost.EXPIRED
    with pytest.raises(StoreError):
        store.records(iterator, 100)
