"""engine/aws.py: endpoints per service, mutating-call classification, the dry-run guard."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from botocore.exceptions import EndpointConnectionError

from engine.aws import AwsClients, CallCounter, is_mutating
from engine.settings import load_settings

CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens there


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(("DOCSYNC_", "AWS_ENDPOINT_URL")):
            monkeypatch.delenv(name)
    yield


def offline_clients(dry_run: bool, counter: CallCounter | None = None) -> AwsClients:
    settings = load_settings(
        None,
        dry_run=dry_run,
        endpoint_url=CLOSED,
        aws={"max_attempts": 1, "connect_timeout_s": 0.5, "read_timeout_s": 0.5},
    )
    return AwsClients(settings, counter)


# -- endpoints --------------------------------------------------------------------------------


def test_endpoint_for_uses_docsync_endpoint_for_every_service() -> None:
    clients = offline_clients(dry_run=False)
    for service in ("s3", "dynamodb", "sqs"):
        assert clients.endpoint_for(service) == CLOSED
    assert clients.s3.meta.endpoint_url == CLOSED
    assert clients.dynamodb.meta.endpoint_url == CLOSED


def test_aws_endpoint_url_s3_wins_for_s3_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:4566")
    clients = offline_clients(dry_run=False)
    assert clients.endpoint_for("s3") is None  # boto3 reads it itself
    assert clients.endpoint_for("dynamodb") == CLOSED
    assert clients.endpoint_for("sqs") == CLOSED
    assert clients.s3.meta.endpoint_url == "http://127.0.0.1:4566"
    assert clients.dynamodb.meta.endpoint_url == CLOSED


def test_no_endpoint_means_real_aws() -> None:
    clients = AwsClients(load_settings(None, region="eu-west-1"))
    assert clients.endpoint_for("dynamodb") is None
    assert "amazonaws.com" in clients.dynamodb.meta.endpoint_url
    assert clients.dynamodb.meta.region_name == "eu-west-1"


def test_clients_are_built_once() -> None:
    clients = offline_clients(dry_run=False)
    assert clients.s3 is clients.s3
    assert clients.client("dynamodb") is clients.dynamodb


# -- classification ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "operation",
    [
        "GetObject",
        "HeadObject",
        "HeadBucket",
        "ListObjectsV2",
        "ListBuckets",
        "GetItem",
        "BatchGetItem",
        "Query",
        "Scan",
        "DescribeTable",
        "DescribeStream",
        "GetRecords",
        "GetShardIterator",
        "ListStreams",
        "ReceiveMessage",
        "GetQueueUrl",
        "GetQueueAttributes",
        "SelectObjectContent",
        "GetBucketNotificationConfiguration",
        "DescribeTimeToLive",
    ],
)
def test_read_only_operations(operation: str) -> None:
    assert not is_mutating(operation)


@pytest.mark.parametrize(
    "operation",
    [
        "PutObject",
        "DeleteObject",
        "DeleteObjects",
        "CopyObject",
        "CreateBucket",
        "PutBucketNotificationConfiguration",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "BatchWriteItem",
        "TransactWriteItems",
        "CreateTable",
        "UpdateTable",
        "UpdateTimeToLive",
        "SendMessage",
        "SendMessageBatch",
        "DeleteMessage",
        "ChangeMessageVisibility",
        "CreateQueue",
        "SetQueueAttributes",
        "PurgeQueue",
        "TagResource",
        "CompleteMultipartUpload",
    ],
)
def test_mutating_operations(operation: str) -> None:
    assert is_mutating(operation)


# -- dry run ----------------------------------------------------------------------------------


def test_dry_run_put_object_is_not_sent_but_counted() -> None:
    counter = CallCounter()
    clients = AwsClients(
        load_settings(
            None,
            dry_run=True,
            endpoint_url=CLOSED,
            aws={"max_attempts": 1, "connect_timeout_s": 0.5},
        ),
        counter,
    )
    response = clients.s3.put_object(Bucket="bucket1", Key="k", Body=b"x")
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert response["ResponseMetadata"].get("DryRun") is True
    assert counter.counts["s3.PutObject"] == 1
    assert counter.total() == 1


def test_dry_run_dynamodb_and_sqs_writes_are_not_sent() -> None:
    counter = CallCounter()
    clients = offline_clients(dry_run=True, counter=counter)
    clients.dynamodb.put_item(TableName="t", Item={"pk": {"S": "a"}})
    clients.dynamodb.delete_item(TableName="t", Key={"pk": {"S": "a"}})
    clients.dynamodb.transact_write_items(
        TransactItems=[{"Delete": {"TableName": "t", "Key": {"pk": {"S": "a"}}}}]
    )
    clients.s3.delete_object(Bucket="bucket1", Key="k")
    clients.sqs.send_message(QueueUrl=f"{CLOSED}/123456789012/q", MessageBody="m")
    assert counter.counts == {
        "dynamodb.PutItem": 1,
        "dynamodb.DeleteItem": 1,
        "dynamodb.TransactWriteItems": 1,
        "s3.DeleteObject": 1,
        "sqs.SendMessage": 1,
    }


def test_dry_run_read_still_goes_to_the_network() -> None:
    counter = CallCounter()
    clients = offline_clients(dry_run=True, counter=counter)
    with pytest.raises(EndpointConnectionError):
        clients.s3.get_object(Bucket="bucket1", Key="k")
    with pytest.raises(EndpointConnectionError):
        clients.dynamodb.get_item(TableName="t", Key={"pk": {"S": "a"}})
    assert counter.counts["s3.GetObject"] == 1
    assert counter.counts["dynamodb.GetItem"] == 1


def test_without_dry_run_a_write_goes_to_the_network() -> None:
    clients = offline_clients(dry_run=False)
    with pytest.raises(EndpointConnectionError):
        clients.s3.put_object(Bucket="bucket1", Key="k", Body=b"x")


def test_call_counter_reset() -> None:
    counter = CallCounter()
    clients = offline_clients(dry_run=True, counter=counter)
    clients.s3.put_object(Bucket="bucket1", Key="k", Body=b"x")
    counter.reset()
    assert counter.total() == 0
    assert not counter.counts
