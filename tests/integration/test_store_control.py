"""Contract of the control-plane stores (describe/create, permission probes, PutMetricData)
against moto over HTTP, and of their errors: faults injected through botocore's hooks come
out as the project's exceptions, worded for an operator, with botocore's error as the cause."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from botocore.exceptions import EndpointConnectionError

from engine.aws import AwsClients, CallCounter
from engine.exceptions import NotFoundError, StoreError
from engine.infra import cache_table_spec, leases_table_spec
from engine.local_moto import EmbeddedMoto
from engine.settings import Settings
from engine.store.control import ControlStore, UnsupportedError
from engine.store.metrics import PUT_DATA_MAX, MetricsStore
from engine.store.probes import AccessProbes
from tests.conftest import make_settings
from tests.integration.faults import Faults

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch.type_defs import MetricDatumTypeDef

pytestmark = pytest.mark.integration


@pytest.fixture
def empty(moto_server: EmbeddedMoto) -> Iterator[Settings]:
    """A fresh moto with nothing created (max one attempt: a fault is not retried away)."""
    moto_server.reset()
    yield make_settings(moto_server.endpoint, aws={"max_attempts": 1})


def test_bucket_missing_created_versioned(empty: Settings) -> None:
    control = ControlStore(AwsClients(empty), empty.endpoint_url)
    with pytest.raises(NotFoundError, match=f"bucket {empty.bucket}: not found"):
        control.head_bucket(empty.bucket)
    control.create_bucket(empty.bucket, empty.region, {"app": "docsync"})
    control.head_bucket(empty.bucket)
    assert control.versioning(empty.bucket) is None
    rule = {
        "ID": "r",
        "Status": "Enabled",
        "Filter": {"Prefix": ""},
        "NoncurrentVersionExpiration": {"NoncurrentDays": 3},
    }
    control.enable_versioning(empty.bucket, [rule])
    assert control.versioning(empty.bucket) == "Enabled"
    assert control.notifications(empty.bucket).get("QueueConfigurations", []) == []


def test_tables_ttl_and_index(empty: Settings) -> None:
    control = ControlStore(AwsClients(empty), empty.endpoint_url)
    with pytest.raises(NotFoundError, match=f"table {empty.table}: not found"):
        control.describe_table(empty.table)
    spec = cache_table_spec(empty)
    spec["AttributeDefinitions"] = [
        a for a in spec["AttributeDefinitions"] if a["AttributeName"] != "cpk"
    ]
    spec["GlobalSecondaryIndexes"] = [
        g for g in spec["GlobalSecondaryIndexes"] if g["IndexName"] != "customer-index"
    ]
    control.create_table(spec, wait=True)
    control.create_table(leases_table_spec(empty))
    table = control.describe_table(empty.table)
    assert table["TableStatus"] == "ACTIVE" and table["StreamSpecification"]["StreamEnabled"]
    assert control.stream(table["LatestStreamArn"])["StreamStatus"] in ("ENABLED", "ENABLING")
    assert control.ttl(empty.table).get("TimeToLiveStatus") != "ENABLED"
    control.enable_ttl(empty.table, "expires_at")
    assert control.ttl(empty.table) == {
        "TimeToLiveStatus": "ENABLED",
        "AttributeName": "expires_at",
    }
    customer = next(
        g
        for g in cache_table_spec(empty)["GlobalSecondaryIndexes"]
        if g["IndexName"] == "customer-index"
    )
    control.add_index(
        empty.table,
        [
            {"AttributeName": "cpk", "AttributeType": "S"},
            {"AttributeName": "tsk", "AttributeType": "S"},
        ],
        customer,
    )
    names = {g["IndexName"] for g in control.describe_table(empty.table)["GlobalSecondaryIndexes"]}
    assert "customer-index" in names
    with pytest.raises(StoreError, match="CreateTable docsync-leases: ResourceInUseException"):
        control.create_table(leases_table_spec(empty))  # already there: named, not a raw error


def test_queues(empty: Settings) -> None:
    control = ControlStore(AwsClients(empty), empty.endpoint_url)
    with pytest.raises(NotFoundError, match=f"queue {empty.dlq}: not found"):
        control.queue_url(empty.dlq)
    url = control.create_queue(empty.dlq, {"VisibilityTimeout": "60"}, {"app": "docsync"})
    assert control.queue_url(empty.dlq) == url
    assert control.queue_arn(url).endswith(f":{empty.dlq}")


def test_kinesis_stream_and_an_unimplemented_destination(empty: Settings) -> None:
    clients = AwsClients(empty)
    control = ControlStore(clients, empty.endpoint_url)
    control.create_table(leases_table_spec(empty) | {"TableName": empty.table})
    with pytest.raises(NotFoundError):
        control.kinesis_summary("changes")
    control.create_kinesis_stream("changes", 2)
    control.wait_and_tag_kinesis_stream("changes", {"app": "docsync"})
    assert control.kinesis_summary("changes")["OpenShardCount"] == 2
    with pytest.raises(UnsupportedError):  # moto answers HTTP 500
        control.kinesis_destinations(empty.table)
    # against AWS (no endpoint) the same answer is a failure, not "unsupported"
    aws = ControlStore(clients, None)
    with pytest.raises(StoreError) as raised:
        aws.kinesis_destinations(empty.table)
    assert not isinstance(raised.value, UnsupportedError)


def test_a_refusal_is_a_store_error_naming_the_call_and_the_code(settings: Settings) -> None:
    clients = AwsClients(settings.replace({"aws.max_attempts": 1}))
    faults = Faults()
    for client in (clients.dynamodb, clients.s3, clients.sqs):
        faults.attach(client)
    control = ControlStore(clients, settings.endpoint_url)
    faults.respond("dynamodb", "DescribeTable", "AccessDeniedException")
    with pytest.raises(StoreError) as raised:
        control.describe_table(settings.table)
    assert str(raised.value) == f"table {settings.table}: AccessDeniedException injected"
    faults.respond("s3", "HeadBucket", "AccessDenied", 403)
    with pytest.raises(StoreError, match=f"bucket {settings.bucket}: AccessDenied injected"):
        control.head_bucket(settings.bucket)
    faults.respond("sqs", "GetQueueUrl", "InternalError", 500)
    with pytest.raises(StoreError, match=f"queue {settings.queue}: InternalError"):
        control.queue_url(settings.queue)
    faults.fail("dynamodb", "DescribeTimeToLive")
    with pytest.raises(StoreError, match="DescribeTimeToLive: Could not connect") as down:
        control.ttl(settings.table)
    assert isinstance(down.value.__cause__, EndpointConnectionError)  # doctor and /readyz
    assert not isinstance(down.value, NotFoundError)  # an outage is never "not there"


def test_probes_pass_change_nothing_and_name_a_refusal(settings: Settings) -> None:
    clients = AwsClients(settings.replace({"aws.max_attempts": 1}))
    probes = AccessProbes(clients, settings.bucket, settings.reserved_prefix)
    assert probes.identity().startswith("arn:aws:")
    assert probes.list_objects() == "ok"
    assert probes.read_object() == "ok"
    assert probes.write_object() in ("ok", "succeeded")
    assert probes.get_item(settings.table, "pk") == "ok"
    assert probes.query(settings.table) == "ok"
    assert probes.update_item(settings.table, "pk") == "ok"
    assert probes.update_item(settings.leases_table, "lease_key") == "ok"
    assert clients.dynamodb.scan(TableName=settings.table)["Count"] == 0
    assert clients.s3.list_objects_v2(Bucket=settings.bucket).get("KeyCount", 0) == 0
    faults = Faults()
    faults.attach(clients.dynamodb)
    faults.respond("dynamodb", "UpdateItem", "AccessDeniedException")
    with pytest.raises(StoreError, match="dynamodb:UpdateItem: AccessDeniedException injected"):
        probes.update_item(settings.table, "pk")
    dry = make_settings(str(settings.endpoint_url), dry_run=True)
    dry_probes = AccessProbes(AwsClients(dry), dry.bucket, dry.reserved_prefix)
    assert dry_probes.update_item(dry.table, "pk") == "dry-run"


def test_metrics_are_sent_within_the_limit_per_call(settings: Settings) -> None:
    counter = CallCounter()
    clients = AwsClients(settings.replace({"aws.max_attempts": 1}), counter)
    data: list[MetricDatumTypeDef] = [
        {
            "MetricName": "CacheHits",
            "Value": float(n),
            "Unit": "Count",
            "Dimensions": [{"Name": "Environment", "Value": f"e{n}"}],
        }
        for n in range(PUT_DATA_MAX * 2 + 1)
    ]
    store = MetricsStore(clients.cloudwatch)
    assert store.put("docsync-test", data) == 3
    assert counter.counts["cloudwatch.PutMetricData"] == 3
    listed = clients.cloudwatch.list_metrics(Namespace="docsync-test", MetricName="CacheHits")
    assert len(listed["Metrics"]) == PUT_DATA_MAX * 2 + 1
    faults = Faults()
    faults.attach(clients.cloudwatch)
    faults.fail("cloudwatch", "PutMetricData")
    with pytest.raises(StoreError, match="CloudWatch PutMetricData docsync-test failed") as down:
        store.put("docsync-test", data[:1])
    assert isinstance(down.value.__cause__, EndpointConnectionError)


def test_readiness_names_what_aws_raised_not_the_translation(settings: Settings) -> None:
    from engine.serve.health import Readiness

    assert Readiness(settings, parts=dict).check()[1]["aws"] == {
        "s3": "ok",
        "dynamodb": "ok",
        "sqs": "ok",
    }
    missing = settings.model_copy(update={"bucket": "nope", "table": "nope", "queue": "nope"})
    ready, body = Readiness(missing, parts=dict).check()
    assert not ready and body["aws"] == {
        "s3": "unreachable: ClientError",  # HeadBucket's 404 has no modelled error
        "dynamodb": "unreachable: ResourceNotFoundException",
        "sqs": "unreachable: QueueDoesNotExist",
    }
