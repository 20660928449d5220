"""`docsync doctor`, the wiring: S3 notifies the queue, the queues redrive to the DLQ.

Pure comparisons over GetBucketNotificationConfiguration and GetQueueAttributes results,
against the definitions in `engine.infra`.
"""

from __future__ import annotations

import json
from typing import Any

from engine.infra import DLQ_RETENTION_S, MAX_MESSAGE_BYTES, queue_policy, redrive_policy
from engine.ops.doctor import INIT, Check, aws_cli, compact, ok
from engine.settings import Settings

MIN_MESSAGE_BYTES = 64 * 1024  # an S3 notification may be this large


# -- S3 notifications ---------------------------------------------------------------------------


def _rule(config: dict[str, Any], name: str) -> str:
    rules = config.get("Filter", {}).get("Key", {}).get("FilterRules", [])
    return str({r.get("Name", "").lower(): r.get("Value") for r in rules}.get(name) or "")


def _prefix(config: dict[str, Any]) -> str:
    return _rule(config, "prefix")


def _serves(config: dict[str, Any], prefix: str) -> bool:
    """Does this rule see every document key under `prefix` (`<prefix><id>.json`)?"""
    return prefix.startswith(_prefix(config)) and ".json".endswith(_rule(config, "suffix"))


def check_notifications(
    settings: Settings, queue_arn: str, config: dict[str, Any], wanted: list[dict[str, Any]]
) -> list[Check]:
    """Every document type's prefix reaches the queue with create and remove events."""
    queue_configs = [c for c in config.get("QueueConfigurations", []) if c.get("QueueArn")]
    checks = []
    for want in wanted:
        type_name = str(want["Id"]).removeprefix("docsync-")
        prefix = _prefix(want)
        check = f"bucket.notifications[{type_name}]"
        serving = [c for c in queue_configs if c["QueueArn"] == queue_arn and _serves(c, prefix)]
        events = sorted({e for c in serving for e in c.get("Events", [])})
        missing = [e for e in want["Events"] if e not in events]
        if not serving:
            detail = f"no notification sends {prefix}* to queue {settings.queue}"
            if config.get("EventBridgeConfiguration") is not None:
                detail += " (EventBridge is on: doctor cannot see its rules)"
            checks.append(Check(check, "fail", detail, INIT))
        elif missing:
            checks.append(Check(check, "fail", f"{prefix}* lacks {', '.join(missing)}", INIT))
        else:
            checks.append(ok(check, f"{prefix}* → {settings.queue} ({', '.join(events)})"))
    return checks


# -- queues -------------------------------------------------------------------------------------


def _set_attributes(settings: Settings, url: str, attributes: dict[str, str]) -> str:
    return aws_cli(
        settings, "sqs", "set-queue-attributes", "--queue-url", url, "--attributes",
        compact(attributes),
    )  # fmt: skip


def check_queue(
    settings: Settings,
    label: str,
    name: str,
    url: str,
    attributes: dict[str, str],
    dlq_arn: str | None,
    s3_source: bool,
) -> list[Check]:
    """Redrive to the DLQ, message size, and (for the event queue) S3 allowed to send."""
    checks = []
    policy = _json(attributes.get("RedrivePolicy"))
    if dlq_arn is None:  # init creates the DLQ but leaves an existing queue's policy alone
        same_account = attributes.get("QueueArn", "").rsplit(":", 1)[0]
        policy_for = redrive_policy(f"{same_account}:{settings.dlq}")
        checks.append(
            Check(
                f"{label}.redrive",
                "fail",
                f"the DLQ {settings.dlq} does not exist",
                f"{INIT} && "
                + _set_attributes(settings, url, {"RedrivePolicy": compact(policy_for)}),
            )
        )
    elif not policy:
        wanted_policy = redrive_policy(dlq_arn)
        checks.append(
            Check(
                f"{label}.redrive",
                "fail",
                f"queue {name} has no redrive policy: failing messages are retried until they"
                " expire, then lost",
                _set_attributes(settings, url, {"RedrivePolicy": compact(wanted_policy)}),
            )
        )
    elif policy.get("deadLetterTargetArn") != dlq_arn:
        wanted_policy = redrive_policy(dlq_arn)
        checks.append(
            Check(
                f"{label}.redrive",
                "fail",
                f"queue {name} redrives to {policy.get('deadLetterTargetArn')}, not {dlq_arn}",
                _set_attributes(settings, url, {"RedrivePolicy": compact(wanted_policy)}),
            )
        )
    else:
        checks.append(
            ok(
                f"{label}.redrive",
                f"→ {settings.dlq} after {policy.get('maxReceiveCount')} receives",
            )
        )
    size = int(attributes.get("MaximumMessageSize", 0) or 0)
    if size < MIN_MESSAGE_BYTES:
        checks.append(
            Check(
                f"{label}.max-message-size",
                "fail",
                f"MaximumMessageSize is {size} bytes: an S3 notification may need 64 KB",
                _set_attributes(settings, url, {"MaximumMessageSize": str(MAX_MESSAGE_BYTES)}),
            )
        )
    else:
        checks.append(ok(f"{label}.max-message-size", f"{size} bytes"))
    if s3_source:
        checks.append(_check_s3_may_send(settings, label, url, attributes))
    return checks


def _check_s3_may_send(
    settings: Settings, label: str, url: str, attributes: dict[str, str]
) -> Check:
    policy = _json(attributes.get("Policy"))
    for statement in policy.get("Statement", []) if policy else []:
        principal = statement.get("Principal", {})
        services = principal.get("Service", []) if isinstance(principal, dict) else []
        services = [services] if isinstance(services, str) else services
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if (
            statement.get("Effect") == "Allow"
            and "s3.amazonaws.com" in services
            and any(a in ("sqs:SendMessage", "sqs:*") for a in actions)
        ):
            return ok(f"{label}.s3-policy", "S3 may send to the queue")
    name = url.rstrip("/").rsplit("/", 1)[-1]
    return Check(
        f"{label}.s3-policy",
        "fail",
        "the queue policy does not let S3 send notifications (AWS refuses to wire them)",
        _set_attributes(settings, url, {"Policy": compact(queue_policy(settings, name))}),
    )


def check_dlq_retention(
    settings: Settings, dlq_url: str, dlq: dict[str, str], sources: dict[str, dict[str, str]]
) -> Check:
    """A message keeps its first enqueue time in the DLQ: a DLQ that keeps messages for less
    time than its sources may delete them as soon as they arrive."""
    keep = int(dlq.get("MessageRetentionPeriod", 0) or 0)
    shorter = [
        name
        for name, attrs in sources.items()
        if int(attrs.get("MessageRetentionPeriod", 0) or 0) > keep
    ]
    if shorter:
        return Check(
            "dlq.retention",
            "warn",
            f"the DLQ keeps messages {keep} s, less than {', '.join(shorter)}",
            _set_attributes(settings, dlq_url, {"MessageRetentionPeriod": str(DLQ_RETENTION_S)}),
        )
    return ok("dlq.retention", f"{keep // 86400} days, no shorter than its sources")


def check_dlq_depth(settings: Settings, dlq: dict[str, str]) -> Check:
    """Not a fault of the deployment, but an operator wants to know: events are waiting."""
    waiting = int(dlq.get("ApproximateNumberOfMessages", 0) or 0)
    if waiting:
        return Check(
            "dlq.depth",
            "warn",
            f"about {waiting} message(s) wait on {settings.dlq}",
            "docsync dlq (see what they are), then docsync dlq redrive",
        )
    return ok("dlq.depth", f"{settings.dlq} is empty")


def _json(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
