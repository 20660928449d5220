"""`docsync doctor` on a fresh environment, then on broken ones, and its fixes applied."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from typing import Any

from engine.cli.ops_cmds import doctor_cmd
from engine.local_moto import TEST_CREDENTIALS
from tests.e2e.conftest import DLQ, QUEUE, TABLE, Aws, Cli

EXPECTED = {
    "identity",
    "bucket",
    "cache-table",
    "cache-table.key-schema",
    "cache-table.gsi[time-index]",
    "cache-table.gsi[status-index]",
    "cache-table.gsi[key-index]",
    "cache-table.stream",
    "cache-table.ttl",
    "leases-table",
    "queue",
    "queue.redrive",
    "queue.max-message-size",
    "queue.s3-policy",
    "work-queue",
    "work-queue.redrive",
    "dlq",
    "dlq.depth",
    "dlq.retention",
    "bucket.notifications[change]",
    "bucket.notifications[announcement]",
    "access.s3.list",
    "access.s3.read",
    "access.s3.write",
    "access.cache.read",
    "access.cache.query",
    "access.cache.write",
    "access.stream.read",
    "access.leases.read",
    "access.leases.write",
}


def findings(data: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {c["check"]: c for c in data["checks"]}


def failed(data: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {name: c for name, c in findings(data).items() if c["status"] == "fail"}


def apply_fix(cli: Cli, aws: Aws, fix: str) -> None:
    """Run a finding's fix as an operator would: `docsync …` and `aws …` command lines."""
    for part in fix.split(" && "):
        argv = shlex.split(part)
        if argv[0] == "docsync":
            cli(*argv[1:], "--format", "json")
        elif shutil.which("aws"):
            env = cli.env() | TEST_CREDENTIALS
            subprocess.run(argv, check=True, capture_output=True, env=env, timeout=60)
        else:  # the same call through boto3: `--table-name` → TableName, JSON values parsed
            client = getattr(aws, argv[1])
            kwargs: dict[str, Any] = {}
            for flag, value in zip(argv[3::2], argv[4::2], strict=True):
                if flag in ("--region", "--endpoint-url"):
                    continue
                name = "".join(w.capitalize() for w in flag[2:].split("-"))
                kwargs[name] = json.loads(value) if value[:1] in "[{" else value
            getattr(client, argv[2].replace("-", "_"))(**kwargs)


def test_a_fresh_init_environment_is_all_ok(cli: Cli) -> None:
    cli("init", "--format", "json")
    data = cli("doctor", "--format", "json").json()
    assert data["ok"] is True
    assert {c["status"] for c in data["checks"]} == {"ok"}, failed(data)
    assert set(findings(data)) >= EXPECTED
    assert all(f'"{field}"' in str(doctor_cmd.help) for field in ("ok", "checks", "fix"))
    text = cli("doctor", "--format", "text")
    assert "access.cache.write" in text.stdout and "all checks passed" in text.stdout


def test_a_broken_environment_names_each_finding_with_its_fix(cli: Cli, aws: Aws) -> None:
    cli("init", "--format", "json")
    aws.s3.put_bucket_notification_configuration(
        Bucket="docsync-documents", NotificationConfiguration={}
    )
    aws.dynamodb.update_time_to_live(
        TableName=TABLE, TimeToLiveSpecification={"Enabled": False, "AttributeName": "expires_at"}
    )
    queue = aws.sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    aws.sqs.set_queue_attributes(
        QueueUrl=queue, Attributes={"RedrivePolicy": "", "MaximumMessageSize": "1024"}
    )
    run = cli("doctor", "--format", "json", expect=1)
    data = run.json()
    assert data["ok"] is False
    bad = failed(data)
    assert set(bad) == {
        "bucket.notifications[change]",
        "bucket.notifications[announcement]",
        "cache-table.ttl",
        "queue.redrive",
        "queue.max-message-size",
        "queue.s3-policy",  # moto: SetQueueAttributes drops a Policy it is not given
    }
    assert all(c["fix"] for c in bad.values())
    assert "docsync-events" in bad["queue.redrive"]["detail"]
    text = cli("doctor", "--format", "text", expect=1).stdout
    assert "6 check(s) failed" in text and "cache-table.ttl" in text

    for fix in dict.fromkeys(c["fix"] for c in bad.values()):
        apply_fix(cli, aws, fix)
    assert cli("doctor", "--format", "json").json()["ok"] is True


def test_a_hand_made_table_without_a_gsi_or_stream_and_no_dlq(cli: Cli, aws: Aws) -> None:
    aws.dynamodb.create_table(
        TableName=TABLE,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": "S"} for name in ("pk", "tpk", "tsk")
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "time-index",
                "KeySchema": [
                    {"AttributeName": "tpk", "KeyType": "HASH"},
                    {"AttributeName": "tsk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )  # no stream, no TTL, two GSIs short
    cli("init", "--format", "json")  # keeps the table as it is; creates the rest
    aws.sqs.delete_queue(QueueUrl=aws.sqs.get_queue_url(QueueName=DLQ)["QueueUrl"])

    data = cli("doctor", "--format", "json", expect=1).json()
    bad = failed(data)
    assert {
        "cache-table.gsi[status-index]",
        "cache-table.gsi[key-index]",
        "cache-table.stream",
        "dlq",
        "queue.redrive",
        "work-queue.redrive",
    } <= set(bad)
    assert "missing" in bad["cache-table.gsi[key-index]"]["detail"]
    assert "update-table" in bad["cache-table.gsi[key-index]"]["fix"]
    assert bad["dlq"]["fix"] == "docsync init"
    assert "TTL" not in json.dumps(bad)  # init turned TTL on for the existing table

    for name in ("cache-table.gsi[status-index]", "cache-table.gsi[key-index]",
                 "queue.redrive", "work-queue.redrive"):  # fmt: skip
        apply_fix(cli, aws, bad[name]["fix"])
    after = failed(cli("doctor", "--format", "json", expect=1).json())
    after.pop("queue.s3-policy", None)  # moto: SetQueueAttributes drops a Policy not given
    assert set(after) == {"cache-table.stream"}  # the one left unfixed
