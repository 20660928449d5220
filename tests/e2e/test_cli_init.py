"""`docsync init`: creates every resource, is idempotent, and a dry run creates nothing."""

from __future__ import annotations

from tests.e2e.conftest import BUCKET, DLQ, LEASES, QUEUE, TABLE, Aws, Cli

EXPECTED = [
    ("bucket", BUCKET),
    ("table", TABLE),
    ("table-index", "customer-index"),
    ("table-ttl", "expires_at"),
    ("table", LEASES),
    ("table", "docsync-history"),
    ("table-ttl", "docsync-history.expires_at"),
    ("queue", DLQ),
    ("queue", QUEUE),
    ("queue", "docsync-reconcile-tasks"),
    ("bucket-notifications", BUCKET),
]


def test_init_creates_everything_then_reports_it_exists(cli: Cli, aws: Aws) -> None:
    assert aws.bucket_names() == set()

    first = cli("init").json()
    assert [(r["kind"], r["name"]) for r in first["resources"]] == EXPECTED
    assert {r["status"] for r in first["resources"]} == {"created"}, first

    # What it says it created is really there.
    assert BUCKET in aws.bucket_names()
    assert {TABLE, LEASES} <= aws.table_names()
    table = aws.dynamodb.describe_table(TableName=TABLE)["Table"]
    assert {g["IndexName"] for g in table["GlobalSecondaryIndexes"]} == {
        "customer-index",
        "time-index",
        "status-index",
        "key-index",
    }
    assert table["StreamSpecification"]["StreamEnabled"] is True
    ttl = aws.dynamodb.describe_time_to_live(TableName=TABLE)["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] in {"ENABLED", "ENABLING"}
    assert ttl["AttributeName"] == "expires_at"
    queue_url = aws.sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    aws.sqs.get_queue_url(QueueName=DLQ)
    attrs = aws.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    assert DLQ in attrs["RedrivePolicy"]
    notifications = aws.s3.get_bucket_notification_configuration(Bucket=BUCKET)
    prefixes = {
        rule["Value"]
        for config in notifications["QueueConfigurations"]
        for rule in config["Filter"]["Key"]["FilterRules"]
    }
    assert prefixes == {"changes/", "announcements/"}

    second = cli("init").json()
    assert [(r["kind"], r["name"]) for r in second["resources"]] == EXPECTED
    assert {r["status"] for r in second["resources"]} == {"exists"}, second


def test_init_dry_run_on_a_fresh_server_creates_nothing(cli: Cli, aws: Aws) -> None:
    run = cli("init", "--dry-run", expect=None)
    # Whatever it prints, nothing may have been created.
    assert aws.bucket_names() == set()
    assert aws.table_names() == set()
    assert aws.sqs.list_queues().get("QueueUrls", []) == []
    assert run.returncode == 0, str(run)
    report = run.json()
    assert [(r["kind"], r["name"]) for r in report["resources"]] == EXPECTED
    assert {r["status"] for r in report["resources"]} == {"would create"}


def test_init_dry_run_after_init_reports_everything_exists(cli: Cli, aws: Aws) -> None:
    cli("init")
    before = aws.dynamodb.describe_time_to_live(TableName=TABLE)["TimeToLiveDescription"]
    report = cli("init", "--dry-run").json()
    assert [(r["kind"], r["name"]) for r in report["resources"]] == EXPECTED
    # Nothing is missing, so a dry run has nothing it "would create".
    statuses = {(r["kind"], r["name"]): r["status"] for r in report["resources"]}
    assert set(statuses.values()) == {"exists"}, statuses
    after = aws.dynamodb.describe_time_to_live(TableName=TABLE)["TimeToLiveDescription"]
    assert after == before
