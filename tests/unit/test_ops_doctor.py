"""Doctor's comparisons: plain descriptions of AWS resources against `engine.infra`."""

from __future__ import annotations

import copy
import json
import shlex
from typing import Any

import pytest

from engine.infra import cache_table_spec, leases_table_spec, wanted_notifications
from engine.ops.doctor import Check, check_stream, check_table, check_ttl, report
from engine.ops.wiring import (
    check_dlq_depth,
    check_dlq_retention,
    check_notifications,
    check_queue,
)
from engine.settings import Settings, load_settings

DLQ_ARN = "arn:aws:sqs:us-east-1:123456789012:docsync-events-dlq"
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:docsync-events"
URL = "http://sqs/123456789012/docsync-events"


@pytest.fixture
def settings() -> Settings:
    return load_settings(None)


def described(spec: dict[str, Any]) -> dict[str, Any]:
    """What DescribeTable returns for a table created from `spec`."""
    table = copy.deepcopy({k: v for k, v in spec.items() if k not in ("Tags", "BillingMode")})
    for gsi in table.get("GlobalSecondaryIndexes", []):
        gsi["IndexStatus"] = "ACTIVE"
    table["TableStatus"] = "ACTIVE"
    return table


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.check: c for c in checks}


def test_a_table_as_init_creates_it_passes(settings: Settings) -> None:
    spec = cache_table_spec(settings)
    checks = check_table(settings, "cache-table", spec, described(spec))
    assert [c.status for c in checks] == ["ok"] * len(checks)
    assert {c.check for c in checks} >= {
        "cache-table.gsi[time-index]",
        "cache-table.gsi[status-index]",
        "cache-table.gsi[key-index]",
    }
    leases = leases_table_spec(settings)
    assert all(c.status == "ok" for c in check_table(settings, "l", leases, described(leases)))


def test_a_missing_table_fails_with_init(settings: Settings) -> None:
    [check] = check_table(settings, "cache-table", cache_table_spec(settings), None)
    assert (check.status, check.fix) == ("fail", "docsync init")


def test_a_missing_gsi_names_the_index_and_a_command_that_creates_it(settings: Settings) -> None:
    spec = cache_table_spec(settings)
    table = described(spec)
    table["GlobalSecondaryIndexes"] = [
        g for g in table["GlobalSecondaryIndexes"] if g["IndexName"] != "status-index"
    ]
    check = by_name(check_table(settings, "cache-table", spec, table))[
        "cache-table.gsi[status-index]"
    ]
    assert check.status == "fail" and "missing" in check.detail
    argv = shlex.split(check.fix)
    assert argv[:3] == ["aws", "dynamodb", "update-table"]
    [create] = json.loads(argv[argv.index("--global-secondary-index-updates") + 1])
    wanted = next(g for g in spec["GlobalSecondaryIndexes"] if g["IndexName"] == "status-index")
    assert create == {"Create": wanted}
    definitions = json.loads(argv[argv.index("--attribute-definitions") + 1])
    assert {d["AttributeName"] for d in definitions} == {"spk", "tsk"}


def test_gsi_projection_and_keys_are_compared(settings: Settings) -> None:
    spec = cache_table_spec(settings)
    table = described(spec)
    key_index = next(g for g in table["GlobalSecondaryIndexes"] if g["IndexName"] == "key-index")
    key_index["Projection"]["NonKeyAttributes"] = list(
        reversed(key_index["Projection"]["NonKeyAttributes"])
    )  # order does not matter
    assert by_name(check_table(settings, "t", spec, table))["t.gsi[key-index]"].status == "ok"
    key_index["Projection"] = {"ProjectionType": "KEYS_ONLY"}
    time_index = next(g for g in table["GlobalSecondaryIndexes"] if g["IndexName"] == "time-index")
    time_index["KeySchema"] = time_index["KeySchema"][:1]
    time_index["IndexStatus"] = "ACTIVE"
    checks = by_name(check_table(settings, "t", spec, table))
    assert checks["t.gsi[key-index]"].status == "fail"
    assert "projection" in checks["t.gsi[key-index]"].detail
    assert "Delete" in checks["t.gsi[key-index]"].fix and "Create" in checks["t.gsi[key-index]"].fix
    assert checks["t.gsi[time-index]"].status == "fail"


def test_a_backfilling_gsi_is_a_warning(settings: Settings) -> None:
    spec = cache_table_spec(settings)
    table = described(spec)
    table["GlobalSecondaryIndexes"][0]["IndexStatus"] = "CREATING"
    statuses = {c.status for c in check_table(settings, "t", spec, table)}
    assert statuses == {"ok", "warn"}


def test_a_wrong_key_schema_fails_and_says_to_recreate(settings: Settings) -> None:
    spec = cache_table_spec(settings)
    table = described(spec)
    table["KeySchema"] = [{"AttributeName": "id", "KeyType": "HASH"}]
    check = by_name(check_table(settings, "t", spec, table))["t.key-schema"]
    assert check.status == "fail" and "delete-table" in check.fix and "docsync init" in check.fix
    table = described(spec)
    table["AttributeDefinitions"] = [{"AttributeName": "pk", "AttributeType": "N"}]
    check = by_name(check_table(settings, "t", spec, table))["t.key-schema"]
    assert check.status == "fail" and "pk is N" in check.detail


@pytest.mark.parametrize(
    ("stream", "status", "fix_part"),
    [
        ({"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}, "ok", ""),
        (None, "fail", "StreamEnabled=true,StreamViewType=NEW_AND_OLD_IMAGES"),
        ({"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}, "fail", "StreamEnabled=false"),
    ],
)
def test_stream_must_carry_both_images(
    settings: Settings, stream: dict[str, Any] | None, status: str, fix_part: str
) -> None:
    table: dict[str, Any] = {"TableName": "t"}
    if stream is not None:
        table["StreamSpecification"] = stream
    check = check_stream(settings, table)
    assert check.status == status and fix_part in check.fix


@pytest.mark.parametrize(
    ("description", "status"),
    [
        ({"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}, "ok"),
        ({"TimeToLiveStatus": "ENABLING", "AttributeName": "expires_at"}, "ok"),
        ({"TimeToLiveStatus": "DISABLED", "AttributeName": "expires_at"}, "fail"),
        ({"TimeToLiveStatus": "DISABLED"}, "fail"),
        ({"TimeToLiveStatus": "ENABLED", "AttributeName": "ttl"}, "fail"),
        ({"TimeToLiveStatus": "DISABLING", "AttributeName": "expires_at"}, "fail"),
    ],
)
def test_ttl_must_be_on_expires_at(
    settings: Settings, description: dict[str, Any], status: str
) -> None:
    check = check_ttl(settings, description)
    assert check.status == status
    assert (check.fix == "") == (status == "ok")


def test_notifications_cover_every_type_prefix(settings: Settings) -> None:
    wanted = wanted_notifications(settings, QUEUE_ARN)
    config = {"QueueConfigurations": copy.deepcopy(wanted)}
    assert {c.status for c in check_notifications(settings, QUEUE_ARN, config, wanted)} == {"ok"}
    # one rule for the whole bucket covers every prefix
    whole = {"QueueConfigurations": [{**wanted[0], "Filter": {}}]}
    assert {c.status for c in check_notifications(settings, QUEUE_ARN, whole, wanted)} == {"ok"}
    # a suffix filter that lets `.json` through serves; any other hides the documents
    json_only = copy.deepcopy(wanted)
    for rule in json_only:
        rule["Filter"]["Key"]["FilterRules"].append({"Name": "suffix", "Value": ".json"})
    listing = {"QueueConfigurations": json_only}
    assert {c.status for c in check_notifications(settings, QUEUE_ARN, listing, wanted)} == {"ok"}
    for rule in json_only:
        rule["Filter"]["Key"]["FilterRules"][-1]["Value"] = ".csv"
    assert {c.status for c in check_notifications(settings, QUEUE_ARN, listing, wanted)} == {"fail"}
    # one type missing, another without deletes, and nothing at all
    partial = copy.deepcopy(wanted[:1])
    partial[0]["Events"] = ["s3:ObjectCreated:*"]
    checks = by_name(
        check_notifications(settings, QUEUE_ARN, {"QueueConfigurations": partial}, wanted)
    )
    assert checks["bucket.notifications[change]"].status == "fail"
    assert "s3:ObjectRemoved:*" in checks["bucket.notifications[change]"].detail
    assert checks["bucket.notifications[announcement]"].status == "fail"
    none = check_notifications(settings, QUEUE_ARN, {}, wanted)
    assert [(c.status, c.fix) for c in none] == [("fail", "docsync init")] * len(wanted)
    other_queue = {"QueueConfigurations": [{**w, "QueueArn": DLQ_ARN} for w in wanted]}
    assert {c.status for c in check_notifications(settings, QUEUE_ARN, other_queue, wanted)} == {
        "fail"
    }


def queue_attributes(**overrides: str) -> dict[str, str]:
    policy = {
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "s3.amazonaws.com"},
                "Action": "sqs:SendMessage",
            }
        ]
    }
    attrs = {
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": DLQ_ARN, "maxReceiveCount": "5"}),
        "MaximumMessageSize": "262144",
        "Policy": json.dumps(policy),
    }
    attrs.update(overrides)
    return {k: v for k, v in attrs.items() if v}


def test_a_queue_as_init_creates_it_passes(settings: Settings) -> None:
    checks = check_queue(settings, "queue", "q", URL, queue_attributes(), DLQ_ARN, True)
    assert [c.status for c in checks] == ["ok", "ok", "ok"]


def test_queue_findings_carry_a_set_queue_attributes_fix(settings: Settings) -> None:
    attrs = queue_attributes(RedrivePolicy="", MaximumMessageSize="1024", Policy="")
    checks = by_name(check_queue(settings, "queue", "q", URL, attrs, DLQ_ARN, True))
    redrive = checks["queue.redrive"]
    assert redrive.status == "fail"
    argv = shlex.split(redrive.fix)
    attributes = json.loads(argv[argv.index("--attributes") + 1])
    assert json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"] == DLQ_ARN
    assert URL in argv
    size = checks["queue.max-message-size"]
    assert size.status == "fail" and "MaximumMessageSize" in size.fix
    assert checks["queue.s3-policy"].status == "fail"
    wrong = queue_attributes(
        RedrivePolicy=json.dumps({"deadLetterTargetArn": QUEUE_ARN, "maxReceiveCount": "5"})
    )
    assert by_name(check_queue(settings, "queue", "q", URL, wrong, DLQ_ARN, True))[
        "queue.redrive"
    ].status == ("fail")
    attrs = queue_attributes(QueueArn=QUEUE_ARN)
    no_dlq = by_name(check_queue(settings, "queue", "q", URL, attrs, None, False))
    init, set_policy = no_dlq["queue.redrive"].fix.split(" && ")
    assert init == "docsync init"
    argv = shlex.split(set_policy)
    policy = json.loads(json.loads(argv[argv.index("--attributes") + 1])["RedrivePolicy"])
    assert policy["deadLetterTargetArn"] == DLQ_ARN
    assert "queue.s3-policy" not in no_dlq


def test_a_dlq_that_keeps_messages_less_long_than_its_sources_is_a_warning(
    settings: Settings,
) -> None:
    dlq = {"MessageRetentionPeriod": str(86400)}
    check = check_dlq_retention(
        settings, URL, dlq, {"docsync-events": {"MessageRetentionPeriod": str(4 * 86400)}}
    )
    assert check.status == "warn" and "MessageRetentionPeriod" in check.fix
    long = {"MessageRetentionPeriod": str(14 * 86400)}
    assert check_dlq_retention(settings, URL, long, {"q": dlq}).status == "ok"


def test_the_report_fails_only_on_failures() -> None:
    assert report([Check("a", "ok", ""), Check("b", "warn", "")])["ok"] is True
    failed = report([Check("a", "ok", ""), Check("b", "fail", "x", "fix it")])
    assert failed["ok"] is False
    assert failed["checks"][1] == {"check": "b", "status": "fail", "detail": "x", "fix": "fix it"}


def test_fix_commands_name_the_endpoint_and_region(settings: Settings) -> None:
    local = load_settings(None, endpoint_url="http://127.0.0.1:5000", region="eu-west-1")
    check = check_stream(local, {"TableName": "t"})
    argv = shlex.split(check.fix)
    assert argv[argv.index("--region") + 1] == "eu-west-1"
    assert argv[argv.index("--endpoint-url") + 1] == "http://127.0.0.1:5000"
    assert "--endpoint-url" not in check_stream(settings, {"TableName": "t"}).fix


def test_messages_waiting_on_the_dlq_are_a_warning_that_points_to_docsync_dlq(
    settings: Settings,
) -> None:
    waiting = check_dlq_depth(settings, {"ApproximateNumberOfMessages": "3"})
    assert waiting.status == "warn" and "3 message" in waiting.detail
    assert waiting.fix.startswith("docsync dlq")
    assert check_dlq_depth(settings, {"ApproximateNumberOfMessages": "0"}).status == "ok"
