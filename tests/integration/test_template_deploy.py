"""deploy/template.yaml deployed into moto's CloudFormation, as docs/deploy.md tells a user to
deploy it: the resources match what `docsync init` creates, and the CLI works against the
stack's own resources by the names in its outputs.

moto leaves out (tests/integration/stack.py MOTO_FILTERED): alarms, the queue and bucket
policies, the event source mappings. It accepts but ignores: the bucket's notifications (the
test wires them with `docsync init`, the adopted-bucket step), PITR, SSE, deletion protection
and the Kinesis destination. docs/deploy.md lists what therefore needs a real account.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.app import Engine
from engine.infra import Infrastructure
from engine.local_moto import TEST_CREDENTIALS, EmbeddedMoto
from engine.sample import sample_documents
from tests.conftest import make_settings
from tests.integration.stack import MOTO_FILTERED, Stack, deploy
from tests.template import load_template

DOCSYNC = Path(sys.executable).parent / "docsync"
NOT_FROM_STACK = {"DOCSYNC_ENDPOINT_URL", "DOCSYNC_AWS_MAX_ATTEMPTS"}  # the tests' own


@pytest.fixture
def stack(moto_server: EmbeddedMoto) -> Iterator[Stack]:
    yield deploy(moto_server)


def docsync(stack: Stack, cwd: Path, *args: str, expect: int = 0) -> Any:
    """The CLI in a subprocess, configured only by DOCSYNC_* from the stack's outputs."""
    env = {**os.environ, **TEST_CREDENTIALS, **stack.env(), "DOCSYNC_FORMAT": "json"}
    proc = subprocess.run(
        [str(DOCSYNC), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd,
        check=False,
    )
    assert proc.returncode == expect, f"docsync {' '.join(args)}: {proc.returncode}\n{proc.stderr}"
    return json.loads(proc.stdout)


def test_everything_but_the_named_types_is_created(stack: Stack) -> None:
    template = load_template()["Resources"]
    removed_types = {template[name]["Type"] for name in stack.removed}
    assert removed_types == set(MOTO_FILTERED)
    listed = stack.client("cloudformation").list_stack_resources(StackName="ds-stack")
    created = {
        r["LogicalResourceId"]: r["ResourceStatus"]
        for r in listed["StackResourceSummaries"]
        if r["LogicalResourceId"]  # moto lists one nameless extra row
    }
    conditional_off = {"ChangesStream"}  # KinesisShardCount defaults to 0
    assert set(created) == set(template) - set(stack.removed) - conditional_off
    assert set(created.values()) == {"CREATE_COMPLETE"}
    assert {k for k in stack.outputs if k.endswith("FunctionArn")} == {
        "ListenerFunctionArn",
        "StreamConsumerFunctionArn",
        "ReconcileFunctionArn",
        "ShardWorkerFunctionArn",
    }


def _table(ddb: Any, name: str) -> dict[str, Any]:
    table = ddb.describe_table(TableName=name)["Table"]
    return {
        "KeySchema": table["KeySchema"],
        "AttributeDefinitions": sorted(
            table["AttributeDefinitions"], key=lambda a: a["AttributeName"]
        ),
        "GSIs": sorted(
            (
                {
                    "IndexName": g["IndexName"],
                    "KeySchema": g["KeySchema"],
                    "Projection": {
                        **g["Projection"],
                        "NonKeyAttributes": sorted(g["Projection"].get("NonKeyAttributes", [])),
                    },
                }
                for g in table.get("GlobalSecondaryIndexes", [])
            ),
            key=lambda g: str(g["IndexName"]),
        ),
        "Billing": table.get("BillingModeSummary", {}).get("BillingMode"),
        "Stream": table.get("StreamSpecification"),
    }


def _queue(sqs: Any, name: str) -> dict[str, Any]:
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attrs.get("RedrivePolicy", "{}"))
    return {
        "MaximumMessageSize": int(attrs["MaximumMessageSize"]),
        "MessageRetentionPeriod": int(attrs["MessageRetentionPeriod"]),
        "maxReceiveCount": int(redrive.get("maxReceiveCount", 0)),
        "dlq": str(redrive.get("deadLetterTargetArn", "")).rsplit(":", 1)[-1],
        "VisibilityTimeout": int(attrs["VisibilityTimeout"]),
    }


def test_tables_and_queues_match_what_init_creates(stack: Stack, moto_server: EmbeddedMoto) -> None:
    """`docsync init` on other names in the same moto, then both compared resource by resource."""
    settings = make_settings(
        moto_server.endpoint,
        bucket="init-documents",
        table="init-cache",
        leases_table="init-leases",
        history_table="init-history",
        queue="init-events",
        dlq="init-events-dlq",
        work_queue="init-tasks",
    )
    Infrastructure(settings, Engine.build(settings).clients).init()
    ddb, sqs, out = stack.client("dynamodb"), stack.client("sqs"), stack.outputs

    assert _table(ddb, out["TableName"]) == _table(ddb, "init-cache")
    assert _table(ddb, out["LeasesTableName"]) == _table(ddb, "init-leases")
    assert _table(ddb, out["HistoryTableName"]) == _table(ddb, "init-history")
    assert len(_table(ddb, out["TableName"])["GSIs"]) == 4  # customer, time, status, key

    stack_q = {
        "dlq": _queue(sqs, out["DeadLetterQueueName"]),
        "events": _queue(sqs, out["QueueName"]),
        "work": _queue(sqs, out["WorkQueueName"]),
    }
    init_q = {
        "dlq": _queue(sqs, "init-events-dlq"),
        "events": _queue(sqs, "init-events"),
        "work": _queue(sqs, "init-tasks"),
    }
    # The visibility timeouts differ on purpose: init's (60 s) suits `docsync listen` pollers,
    # the stack's are six times its functions' timeouts (60 s listener, 900 s shard worker).
    assert (stack_q["events"]["VisibilityTimeout"], stack_q["work"]["VisibilityTimeout"]) == (
        360,
        5400,
    )
    for q in (*stack_q.values(), *init_q.values()):
        q.pop("VisibilityTimeout")
        assert q["MaximumMessageSize"] >= 64 * 1024  # an S3 notification may need 64 KB
    assert stack_q["events"]["dlq"] == stack_q["work"]["dlq"] == out["DeadLetterQueueName"]
    for q in (stack_q, init_q):
        for name in ("events", "work"):
            q[name].pop("dlq")
    assert stack_q == init_q

    s3 = stack.client("s3")
    assert s3.head_bucket(Bucket=out["BucketName"])["ResponseMetadata"]["HTTPStatusCode"] == 200
    encryption = s3.get_bucket_encryption(Bucket=out["BucketName"])
    rules = encryption["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    # moto ignores PublicAccessBlockConfiguration, OwnershipControls and LifecycleConfiguration
    # of a bucket created by CloudFormation: the unit test of the template checks them.


def test_functions_schedules_and_environment(stack: Stack) -> None:
    """Each function runs its handler with DOCSYNC_* naming the stack's own resources, and
    the schedules invoke the reconcile function with their mode."""
    lam, out = stack.client("lambda"), stack.outputs
    handlers = {
        "ListenerFunctionArn": "engine.lambdas.listener.sqs_handler",
        "StreamConsumerFunctionArn": "engine.lambdas.stream.stream_handler",
        "ReconcileFunctionArn": "engine.lambdas.reconcile.handler",
        "ShardWorkerFunctionArn": "engine.lambdas.reconcile_tasks.sqs_handler",
    }
    expected_env = {k: v for k, v in stack.env().items() if k not in NOT_FROM_STACK}
    for output, handler in handlers.items():
        config = lam.get_function_configuration(FunctionName=out[output])
        assert config["Handler"] == handler
        env = {k: str(v) for k, v in config["Environment"]["Variables"].items()}
        assert expected_env.items() <= env.items(), (output, env)
        assert env["DOCSYNC_METRICS_ENVIRONMENT"] == "ds-stack"
    events = stack.client("events")
    targets = {}
    for rule in events.list_rules()["Rules"]:
        for target in events.list_targets_by_rule(Rule=rule["Name"])["Targets"]:
            targets[json.loads(target["Input"])["mode"]] = (
                rule["ScheduleExpression"],
                target["Arn"],
            )
    assert targets == {
        "report": ("cron(0 * * * ? *)", out["ReconcileFunctionArn"]),
        "repair": ("cron(30 3 * * ? *)", out["ReconcileFunctionArn"]),
    }


def resolve(value: Any, names: dict[str, str]) -> Any:
    """The few intrinsics of the queue policy (Ref, Fn::GetAtt, Fn::Sub on a string) resolved
    from `names`, as CloudFormation would."""
    if isinstance(value, list):
        return [resolve(v, names) for v in value]
    if not isinstance(value, dict):
        return value
    if "Ref" in value:
        return names[value["Ref"]]
    if "Fn::GetAtt" in value:
        return names[".".join(value["Fn::GetAtt"])]
    if "Fn::Sub" in value:
        text = str(value["Fn::Sub"])
        for name, resolved in names.items():
            text = text.replace("${" + name + "}", resolved)
        return text
    return {k: resolve(v, names) for k, v in value.items()}


def apply_queue_policy(stack: Stack) -> None:
    """What AWS::SQS::QueuePolicy would do on a real account (moto's CloudFormation lacks it)."""
    sqs, url = stack.client("sqs"), stack.outputs["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    names = {
        "EventQueue.Arn": arn,
        "AWS::Partition": "aws",
        "AWS::AccountId": "123456789012",
        "BucketName": stack.outputs["BucketName"],
    }
    document = load_template()["Resources"]["EventQueuePolicy"]["Properties"]["PolicyDocument"]
    policy = json.dumps(resolve(document, names))
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": policy})


def test_cli_put_get_listen_against_the_stack(stack: Stack, tmp_path: Path) -> None:
    """docs/deploy.md's steps: `docsync doctor` names exactly what moto left out; `docsync init`
    with the stack's names adds only what CloudFormation could not (notifications on an adopted
    bucket; in moto, on any bucket); then a write through the pipeline, a read, and a direct S3
    write caught by the listener."""
    before = docsync(stack, tmp_path, "doctor", expect=1)
    failed = {c["check"] for c in before["checks"] if c["status"] == "fail"}
    assert failed == {
        "cache-table.ttl",  # moto's CloudFormation ignores TimeToLiveSpecification
        "queue.s3-policy",  # and has no AWS::SQS::QueuePolicy
        "bucket.notifications[change]",  # and ignores NotificationConfiguration
        "bucket.notifications[announcement]",
    }, before
    apply_queue_policy(stack)

    report = docsync(stack, tmp_path, "init")
    status = {(r["kind"], r["name"]): r["status"] for r in report["resources"]}
    out = stack.outputs
    for kind, name in (
        ("bucket", out["BucketName"]),
        ("table", out["TableName"]),
        ("table", out["LeasesTableName"]),
        ("table", out["HistoryTableName"]),
        ("queue", out["QueueName"]),
        ("queue", out["DeadLetterQueueName"]),
        ("queue", out["WorkQueueName"]),
    ):
        assert status[(kind, name)] == "exists", report
    assert status[("bucket-notifications", out["BucketName"])] == "created"
    after = docsync(stack, tmp_path, "doctor")
    assert after["ok"] is True, after

    written, direct = sample_documents(2, seed=11)
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(written), encoding="utf-8")
    put = docsync(stack, tmp_path, "put", "--type", written["object_type"], str(path))
    assert put["id"] == written["id"]
    got = docsync(stack, tmp_path, "get", "--type", written["object_type"], written["id"])
    assert got["id"] == written["id"] and got["title"] == written["title"]

    prefix = "changes/" if direct["object_type"] == "change" else "announcements/"
    stack.client("s3").put_object(
        Bucket=out["BucketName"],
        Key=f"{prefix}{direct['id']}.json",
        Body=json.dumps(direct).encode(),
    )
    drained = docsync(stack, tmp_path, "listen", "--drain", "--wait", "1")
    assert drained["failed"] == 0 and drained["applied"] >= 1, drained
    item = stack.client("dynamodb").get_item(
        TableName=out["TableName"], Key={"pk": {"S": f"{direct['object_type']}#{direct['id']}"}}
    )
    assert item.get("Item", {}).get("state", {}).get("S") == "live", item


def test_an_adopted_bucket_is_left_as_it_was_and_init_adds_only_notifications(
    moto_server: EmbeddedMoto,
) -> None:
    """docs/deploy.md, "Adopting a bucket": the stack does not create or change the bucket;
    `docsync init` with the stack's names adds the notifications and keeps the bucket's own."""
    doc = sample_documents(1, seed=12)[0]
    prefix = "changes/" if doc["object_type"] == "change" else "announcements/"
    key = f"{prefix}{doc['id']}.json"
    existing = {key: json.dumps(doc).encode(), "other/keep.bin": b"\x00"}
    stack = deploy(moto_server, adopt=existing)
    assert "DocumentBucket" not in {
        r["LogicalResourceId"]
        for r in stack.client("cloudformation").list_stack_resources(StackName="ds-stack")[
            "StackResourceSummaries"
        ]
    }
    s3, bucket = stack.client("s3"), stack.outputs["BucketName"]
    sqs = stack.client("sqs")
    other_url = sqs.create_queue(QueueName="someone-elses")["QueueUrl"]
    other_arn = sqs.get_queue_attributes(QueueUrl=other_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    theirs = {
        "Id": "theirs",
        "QueueArn": other_arn,
        "Events": ["s3:ObjectCreated:*"],
        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "other/"}]}},
    }
    s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={"QueueConfigurations": [theirs]}
    )

    settings = make_settings(
        stack.endpoint,
        **{
            k.removeprefix("DOCSYNC_").lower(): v
            for k, v in stack.env().items()
            if k not in NOT_FROM_STACK and k != "DOCSYNC_REGION"
        },
    )
    report = Infrastructure(settings, Engine.build(settings).clients).init()
    created = {(r["kind"], r["status"]) for r in report.resources} - {("table-ttl", "created")}
    assert ("bucket-notifications", "created") in created
    assert {s for k, s in created if k != "bucket-notifications"} == {"exists"}, report

    config = s3.get_bucket_notification_configuration(Bucket=bucket)["QueueConfigurations"]
    ids = {c.get("Id") for c in config}
    assert {"theirs", "docsync-change", "docsync-announcement"} <= ids
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert {o["Key"] for o in listed} == set(existing)


def test_removing_the_stack_never_touches_the_bucket_or_the_tables(stack: Stack) -> None:
    """DeletionPolicy Retain: the bucket with every object, both tables and the DLQ stay."""
    s3, bucket = stack.client("s3"), stack.outputs["BucketName"]
    s3.put_object(Bucket=bucket, Key="changes/kept.json", Body=b"{}")
    cfn = stack.client("cloudformation")
    cfn.delete_stack(StackName="ds-stack")
    (summary,) = [s for s in cfn.list_stacks()["StackSummaries"] if s["StackName"] == "ds-stack"]
    assert summary["StackStatus"] == "DELETE_COMPLETE"
    assert s3.get_object(Bucket=bucket, Key="changes/kept.json")["Body"].read() == b"{}"
    tables = set(stack.client("dynamodb").list_tables()["TableNames"])
    kept = {stack.outputs[name] for name in ("TableName", "LeasesTableName", "HistoryTableName")}
    assert kept <= tables
    queues = stack.client("sqs").list_queues().get("QueueUrls", [])
    assert [q.rsplit("/", 1)[-1] for q in queues] == [stack.outputs["DeadLetterQueueName"]]
    assert stack.client("lambda").list_functions()["Functions"] == []


def test_the_dashboard_is_valid_json_with_every_alarm_figure(stack: Stack) -> None:
    body = stack.client("cloudwatch").get_dashboard(DashboardName=stack.outputs["DashboardName"])
    widgets = json.loads(body["DashboardBody"])["widgets"]
    text = json.dumps(widgets)
    for figure in (
        "CacheHits",
        "CacheMisses",
        "QueryLatency",
        "StreamIteratorAge",
        "IteratorAge",
        "DriftFound",
        "DriftRepaired",
        "ReconcileRuns",
        "CircuitBreakerOpen",
        "ApproximateNumberOfMessagesVisible",
        "Errors",
    ):
        assert f'"{figure}"' in text, figure
    for side in ("read", "write"):  # capacity per operation kind, from the Lambda EMF
        assert f"SEARCH('{{docsync,service}} dynamodb {side} capacity', 'Sum', 300)" in text
    (alarms,) = [w for w in widgets if w["type"] == "alarm"]
    assert len(alarms["properties"]["alarms"]) == len(
        [r for r in load_template()["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    )
    names = {
        r["Properties"]["AlarmName"]["Fn::Sub"].replace("${AWS::StackName}", "ds-stack")
        for r in load_template()["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
    }
    assert {a.rsplit(":alarm:", 1)[-1] for a in alarms["properties"]["alarms"]} == names


def test_the_kinesis_destination_for_kcl_is_optional(moto_server: EmbeddedMoto) -> None:
    """KinesisShardCount > 0 adds the data stream the table streams into (moto ignores the
    table's KinesisStreamSpecification: that part needs a real account)."""
    stack = deploy(moto_server, kinesis_shards=2)
    arn = stack.outputs["KinesisStreamArn"]
    summary = stack.client("kinesis").describe_stream_summary(StreamName=arn.rsplit("/", 1)[-1])
    assert summary["StreamDescriptionSummary"]["OpenShardCount"] == 2
