"""What deploy/template.yaml must say and moto cannot show (it does not create alarms, queue
or bucket policies, or event source mappings): checked on the template itself."""

from __future__ import annotations

from typing import Any

import pytest

from engine.infra import NOTIFY_EVENTS
from tests.template import load_template, resources

CONTRACT = {
    "CacheHits",
    "CacheMisses",
    "QueryLatency",
    "StreamIteratorAge",
    "DriftRepaired",
    "ReconcileRuns",
    "CircuitBreakerOpen",
}  # shared/METRICS_CONTRACT.md: the figures an alarm watches
HANDLERS = {
    "ListenerFunction": "engine.lambdas.listener.sqs_handler",
    "StreamConsumerFunction": "engine.lambdas.stream.stream_handler",
    "ReconcileFunction": "engine.lambdas.reconcile.handler",
    "ShardWorkerFunction": "engine.lambdas.reconcile_tasks.sqs_handler",
}


def props(logical: str) -> dict[str, Any]:
    properties: dict[str, Any] = load_template()["Resources"][logical]["Properties"]
    return properties


def _metric_stats(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    """(namespace, name, dimensions) of every metric an alarm reads, plain or metric math."""
    p = alarm["Properties"]
    if "MetricName" in p:
        return [p]
    return [m["MetricStat"]["Metric"] for m in p["Metrics"] if "MetricStat" in m]


def test_alarms_read_the_contract_metrics_with_only_the_environment_dimension() -> None:
    seen = set()
    for name, alarm in resources("AWS::CloudWatch::Alarm").items():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopicArn"}], name
        for metric in _metric_stats(alarm):
            if metric["Namespace"] == {"Ref": "MetricsNamespace"}:
                seen.add(metric["MetricName"])
                assert metric["MetricName"] in CONTRACT, name
                assert metric["Dimensions"] == [
                    {"Name": "Environment", "Value": {"Ref": "AWS::StackName"}}
                ], name
            else:
                assert metric["Namespace"] in {"AWS/Lambda", "AWS/SQS"}, name
    assert seen == CONTRACT


def test_no_reconcile_alarm_breaches_on_missing_data_over_two_periods() -> None:
    p = props("NoReconcileAlarm")
    assert p["TreatMissingData"] == "breaching"
    assert p["EvaluationPeriods"] == 2 and p["Period"] == {"Ref": "ReconcileReportPeriodSeconds"}
    assert (p["ComparisonOperator"], p["Threshold"]) == ("LessThanThreshold", 1)


def test_every_function_has_its_handler_its_own_role_and_the_metrics_environment() -> None:
    functions = resources("AWS::Lambda::Function")
    assert {n: f["Properties"]["Handler"] for n, f in functions.items()} == HANDLERS
    roles = [f["Properties"]["Role"]["Fn::GetAtt"][0] for f in functions.values()]
    assert len(set(roles)) == len(roles) == 4
    for name, function in functions.items():
        env = function["Properties"]["Environment"]["Variables"]
        assert env["DOCSYNC_METRICS_ENVIRONMENT"] == {"Ref": "AWS::StackName"}, name
        assert env["DOCSYNC_TABLE"] == {"Ref": "CacheTable"}, name
        assert env["DOCSYNC_BUCKET"] == {"Ref": "BucketName"}, name
        assert function["Properties"]["Code"] == {
            "S3Bucket": {"Ref": "CodeBucket"},
            "S3Key": {"Ref": "CodeKey"},
        }


def test_roles_name_no_wildcard_action_and_no_wildcard_resource() -> None:
    for name, role in resources("AWS::IAM::Role").items():
        for policy in role["Properties"]["Policies"]:
            for st in policy["PolicyDocument"]["Statement"]:
                actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
                assert all("*" not in a for a in actions), (name, actions)
                targets = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
                assert "*" not in targets, name


def test_event_sources_report_partial_failures_and_bound_their_retries() -> None:
    mappings = resources("AWS::Lambda::EventSourceMapping")
    assert len(mappings) == 3
    for name, mapping in mappings.items():
        assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"], name
    stream = props("StreamConsumerEventSource")
    assert stream["BisectBatchOnFunctionError"] is True
    assert 0 < stream["MaximumRetryAttempts"] <= 10
    assert stream["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["StreamFailureQueue", "Arn"]
    }


@pytest.mark.parametrize(("queue", "function_timeout"), [("EventQueue", 60), ("WorkQueue", 900)])
def test_queues_fit_their_functions_and_s3_notifications(queue: str, function_timeout: int) -> None:
    p = props(queue)
    assert p["MaximumMessageSize"] >= 64 * 1024
    assert p["VisibilityTimeout"] >= 6 * function_timeout  # AWS's advice for SQS sources
    assert p["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}


def test_the_bucket_is_private_encrypted_tls_only_and_retained() -> None:
    template = load_template()["Resources"]
    bucket = template["DocumentBucket"]
    assert bucket["DeletionPolicy"] == "Retain"
    block = bucket["Properties"]["PublicAccessBlockConfiguration"]
    assert block == dict.fromkeys(
        ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True
    )
    (tls,) = template["DocumentBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert tls["Effect"] == "Deny" and tls["Condition"] == {
        "Bool": {"aws:SecureTransport": "false"}
    }
    events = {
        (c["Event"], c["Filter"]["S3Key"]["Rules"][0]["Value"]["Ref"])
        for c in bucket["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    }
    assert events == {
        (e, p) for e in NOTIFY_EVENTS for p in ("ChangePrefix", "AnnouncementPrefix")
    }  # the same as `docsync init` (engine/infra.py NOTIFY_EVENTS, one per document prefix)
    (allow,) = props("EventQueuePolicy")["PolicyDocument"]["Statement"]
    assert allow["Principal"] == {"Service": "s3.amazonaws.com"}
    assert "aws:SourceArn" in allow["Condition"]["ArnLike"]


def test_every_variable_the_functions_get_is_a_setting() -> None:
    """A misspelt DOCSYNC_* variable would be silently ignored and the default used."""
    from engine.settings import env_names

    known = env_names()  # the current names only: a deprecated one fails here too
    for name, function in resources("AWS::Lambda::Function").items():
        for variable in function["Properties"]["Environment"]["Variables"]:
            assert variable in known, (name, variable)
