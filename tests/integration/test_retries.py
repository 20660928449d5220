"""Retries per error class (seed 003 §6.1): errors injected at `before-send`, so botocore's
retry machinery sees each attempt; the number of attempts made is the number of fired faults."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from engine.aws import AwsClients
from engine.retries import RetryTable
from engine.settings import Settings
from tests.integration.faults import Faults

FAST = {name: {"base_ms": 1} for name in ("throttling", "server_error", "unavailable",
                                          "transaction_conflict")}  # fmt: skip


def clients(settings: Settings, **update: object) -> tuple[AwsClients, Faults]:
    values = {"aws.max_attempts": 50, "retries": RetryTable.model_validate(FAST), **update}
    built = AwsClients(settings.replace(values))
    faults = Faults()
    for client in (built.dynamodb, built.s3, built.sqs):
        faults.attach(client)
    return built, faults


def attempts_of_get_item(built: AwsClients, faults: Faults, code: str, status: int) -> int:
    faults.respond("dynamodb", "GetItem", code, status, times=60)
    with pytest.raises(ClientError) as info:
        built.dynamodb.get_item(TableName=built.settings.table, Key={"pk": {"S": "x"}})
    assert info.value.response["Error"]["Code"] == code
    return len(faults.fired)


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("ProvisionedThroughputExceededException", 400, 10),
        ("ThrottlingException", 400, 10),
        ("RequestLimitExceeded", 400, 10),
        ("InternalServerError", 500, 3),
        ("ServiceUnavailable", 503, 3),
        ("TransactionConflictException", 400, 3),
        ("ConditionalCheckFailedException", 400, 1),
        ("ValidationException", 400, 1),
        ("ResourceNotFoundException", 400, 1),
    ],
)
def test_each_class_gets_its_configured_attempts(
    settings: Settings, code: str, status: int, expected: int
) -> None:
    built, faults = clients(settings)
    assert attempts_of_get_item(built, faults, code, status) == expected


def test_the_table_from_settings_decides(settings: Settings) -> None:
    table = RetryTable.model_validate({**FAST, "throttling": {"max_attempts": 4, "base_ms": 1}})
    built, faults = clients(settings, retries=table)
    assert attempts_of_get_item(built, faults, "ThrottlingException", 400) == 4
    assert table.server_error.max_attempts == 3  # a class given in part keeps its defaults


def test_max_attempts_caps_every_class(settings: Settings) -> None:
    built, faults = clients(settings, **{"aws.max_attempts": 2})
    assert attempts_of_get_item(built, faults, "ThrottlingException", 400) == 2


def test_s3_slow_down_is_throttling_and_sqs_5xx_a_server_error(settings: Settings) -> None:
    built, faults = clients(settings)
    faults.respond("s3", "HeadObject", "SlowDown", 503, times=60)
    with pytest.raises(ClientError):
        built.s3.head_object(Bucket=settings.bucket, Key="k")
    assert len(faults.fired) == 10
    faults.fired.clear()
    faults.respond("sqs", "GetQueueUrl", "InternalError", 500, times=60)
    with pytest.raises(ClientError):
        built.sqs.get_queue_url(QueueName=settings.queue)
    assert len(faults.fired) == 3


def test_a_retried_call_succeeds_when_the_error_passes(settings: Settings) -> None:
    built, faults = clients(settings)
    faults.respond("dynamodb", "GetItem", "ThrottlingException", 400, times=3)
    response = built.dynamodb.get_item(TableName=settings.table, Key={"pk": {"S": "x"}})
    assert "Item" not in response and len(faults.fired) == 3
    assert response["ResponseMetadata"]["RetryAttempts"] == 3
