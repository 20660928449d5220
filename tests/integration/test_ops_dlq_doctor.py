"""DLQ redrive and doctor against moto with faults: nothing is lost, every refusal is named."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from engine.aws import AwsClients
from engine.exceptions import QueueError
from engine.ops.dlq import inspect, redrive
from engine.ops.survey import run
from engine.settings import Settings
from engine.store.queue import QueueStore
from tests.conftest import make_settings
from tests.integration.faults import Faults, SimulatedCrash


def depth(clients: AwsClients, name: str) -> int:
    """Visible plus in-flight messages of a queue: everything it still holds."""
    sqs = clients.sqs
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(a["ApproximateNumberOfMessages"]) + int(a["ApproximateNumberOfMessagesNotVisible"])


def fill_dlq(clients: AwsClients, settings: Settings, count: int) -> None:
    url = clients.sqs.get_queue_url(QueueName=settings.dlq)["QueueUrl"]
    for n in range(count):
        clients.sqs.send_message(QueueUrl=url, MessageBody=f"lost event {n}")


def test_a_failed_send_deletes_nothing_from_the_dlq(settings: Settings) -> None:
    clients = AwsClients(settings)
    fill_dlq(clients, settings, 4)
    before = depth(clients, settings.queue)  # S3's test event from init
    faults = Faults()
    faults.attach(clients.sqs)
    faults.fail("sqs", "SendMessageBatch", times=settings.aws.max_attempts)
    with pytest.raises(QueueError):
        redrive(settings, QueueStore(clients.sqs, settings.endpoint_url), method="copy")
    assert ("sqs", "SendMessageBatch", "fail") in faults.fired
    assert depth(clients, settings.dlq) == 4 and depth(clients, settings.queue) == before


def test_a_crash_between_send_and_delete_leaves_a_duplicate_never_a_loss(
    settings: Settings,
) -> None:
    clients = AwsClients(settings)
    fill_dlq(clients, settings, 3)
    before = depth(clients, settings.queue)
    faults = Faults()
    faults.attach(clients.sqs)
    faults.crash_after("sqs", "SendMessageBatch")
    with pytest.raises(SimulatedCrash):
        redrive(settings, QueueStore(clients.sqs, settings.endpoint_url), method="copy")
    assert depth(clients, settings.queue) == before + 3  # the copies were sent
    assert depth(clients, settings.dlq) == 3  # and the originals are still there


def test_a_dry_run_peek_says_messages_return_only_after_the_timeout(settings: Settings) -> None:
    fill_dlq(AwsClients(settings), settings, 2)
    dry = make_settings(str(settings.endpoint_url), dry_run=True)
    clients = AwsClients(dry)
    shown = inspect(dry, QueueStore(clients.sqs, dry.endpoint_url), 5)
    assert shown["sampled"] == 2
    assert shown["peek"]["released"] == 0 and shown["peek"]["returned_at_once"] is False


def _deny(operation: str) -> Any:
    def hook(model: Any, **_: Any) -> None:
        if model.name == operation:
            raise ClientError(
                {"Error": {"Code": "AccessDeniedException", "Message": "not allowed"}},
                operation,
            )

    return hook


def test_a_refused_permission_is_a_named_failure_with_the_grant_to_add(
    settings: Settings,
) -> None:
    clients = AwsClients(settings)
    clients.dynamodb.meta.events.register("before-call.dynamodb.UpdateItem", _deny("UpdateItem"))
    clients.s3.meta.events.register("before-call.s3.ListObjectsV2", _deny("ListObjectsV2"))
    checks = {c.check: c for c in run(settings, clients)}
    failed = {name for name, c in checks.items() if c.status == "fail"}
    assert failed == {"access.cache.write", "access.leases.write", "access.s3.list"}
    write = checks["access.cache.write"]
    assert "AccessDeniedException" in write.detail
    assert write.fix.startswith("allow dynamodb:UpdateItem on arn:aws:dynamodb:")
    assert settings.table in write.fix
    assert checks["access.s3.list"].fix.startswith("allow s3:ListBucket on arn:aws:s3:::")
    # with every permission, the probes write nothing
    clean = AwsClients(settings)
    assert {c.status for c in run(settings, clean)} == {"ok"}
    assert clean.dynamodb.scan(TableName=settings.table)["Count"] == 0
    assert clean.dynamodb.scan(TableName=settings.leases_table)["Count"] == 0
    assert clean.s3.list_objects_v2(Bucket=settings.bucket).get("KeyCount", 0) == 0


def test_an_unreachable_endpoint_is_one_finding_not_a_cascade(settings: Settings) -> None:
    nowhere = make_settings("http://127.0.0.1:9", aws={"max_attempts": 1, "connect_timeout_s": 0.5})
    [check] = run(nowhere, AwsClients(nowhere))
    assert (check.check, check.status) == ("identity", "fail")
    assert "http://127.0.0.1:9" in check.fix
