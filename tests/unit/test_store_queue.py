"""SQS's message move task, which moto lacks: the calls checked against botocore's own API
model (Stubber validates every parameter), and the fallback decision."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from engine.exceptions import MoveTaskUnsupportedError, QueueError
from engine.ops.dlq import redrive
from engine.settings import load_settings
from engine.store.queue import QueueStore

DLQ_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/docsync-events-dlq"
DLQ_ARN = "arn:aws:sqs:us-east-1:123456789012:docsync-events-dlq"


@pytest.fixture
def sqs() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    ).client("sqs")
    with Stubber(client) as stubber:
        yield client, stubber
    stubber.assert_no_pending_responses()


def expect_lookup(stubber: Stubber, visible: int) -> None:
    stubber.add_response(
        "get_queue_url", {"QueueUrl": DLQ_URL}, {"QueueName": "docsync-events-dlq"}
    )
    attributes = {"QueueArn": DLQ_ARN, "ApproximateNumberOfMessages": str(visible)}
    for _ in range(2):  # lookup (its ARN), then the counts
        stubber.add_response(
            "get_queue_attributes",
            {"Attributes": attributes},
            {"QueueUrl": DLQ_URL, "AttributeNames": ["All"]},
        )


def test_redrive_on_aws_starts_a_move_task_back_to_each_source(sqs: Any) -> None:
    client, stubber = sqs
    expect_lookup(stubber, 12)
    stubber.add_response(
        "start_message_move_task", {"TaskHandle": "handle-1"}, {"SourceArn": DLQ_ARN}
    )  # no DestinationArn: SQS sends each message back to its own source queue
    result = redrive(load_settings(None), QueueStore(client))
    assert (result["method"], result["task_handle"]) == ("move-task", "handle-1")
    assert result["moved"] == 0 and result["fallback_reason"] is None


def test_only_a_missing_operation_means_unsupported(sqs: Any) -> None:
    client, stubber = sqs
    store = QueueStore(client)
    stubber.add_client_error(
        "start_message_move_task", "UnsupportedOperation", http_status_code=400
    )
    with pytest.raises(MoveTaskUnsupportedError):
        store.start_move_task(DLQ_ARN)
    stubber.add_client_error(
        "start_message_move_task", "InternalError", http_status_code=500
    )  # on AWS (no endpoint set) a 500 is an outage, not a missing feature
    with pytest.raises(QueueError) as caught:
        store.start_move_task(DLQ_ARN)
    assert not isinstance(caught.value, MoveTaskUnsupportedError)
    stubber.add_client_error("list_message_move_tasks", "500", http_status_code=500)
    with pytest.raises(MoveTaskUnsupportedError):  # a local endpoint's 500: moto's answer
        QueueStore(client, "http://127.0.0.1:5000").list_move_tasks(DLQ_ARN)


def test_move_tasks_are_listed_as_sqs_reports_them(sqs: Any) -> None:
    client, stubber = sqs
    task = {"TaskHandle": "h", "Status": "RUNNING", "ApproximateNumberOfMessagesMoved": 3}
    stubber.add_response(
        "list_message_move_tasks", {"Results": [task]}, {"SourceArn": DLQ_ARN, "MaxResults": 10}
    )
    assert QueueStore(client).list_move_tasks(DLQ_ARN) == [task]
