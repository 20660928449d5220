"""The leases store's error translation and the stream store's trimmed/expired handling,
against the session's moto server; faults come through botocore's own hooks
(tests/integration/faults.py), so they take the production path. The lease and checkpoint
contract (DynamoDB and memory) is in test_store_contract_leases.py."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from engine.app import Engine
from engine.documents import parse_document
from engine.exceptions import DocsyncError, StoreError
from engine.sample import sample_documents
from engine.settings import Settings
from engine.store.stream import Lost, StreamStore
from reconciler.lock import LeaseLock
from tests.integration.faults import Faults
from tests.integration.test_retries import clients

pytestmark = pytest.mark.integration


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


def test_records_without_a_fault_are_a_response(
    stream: tuple[StreamStore, Faults, str, str],
) -> None:
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


def test_other_stream_errors_are_store_errors(
    stream: tuple[StreamStore, Faults, str, str],
) -> None:
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
