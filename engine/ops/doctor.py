"""`docsync doctor`: is a deployed environment what `docsync init` would have made?

Pure comparisons over what AWS describes (plain dicts) against the definitions in
`engine.infra` (never a copy of them). Each finding says what is wrong and the one command
that fixes it; `run` (in `survey.py`) gathers the data and the permission probes.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any, Literal

from engine.infra import (
    DLQ_RETENTION_S,
    MAX_MESSAGE_BYTES,
    STREAM_VIEW,
    TTL_ATTRIBUTE,
    queue_policy,
    redrive_policy,
)
from engine.settings import Settings

Status = Literal["ok", "warn", "fail"]
MIN_MESSAGE_BYTES = 64 * 1024  # an S3 notification may be this large
INIT = "docsync init"


@dataclass(frozen=True, slots=True)
class Check:
    check: str
    status: Status
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"check": self.check, "status": self.status, "detail": self.detail, "fix": self.fix}


def ok(check: str, detail: str) -> Check:
    return Check(check, "ok", detail)


def report(checks: list[Check]) -> dict[str, Any]:
    return {
        "ok": all(c.status != "fail" for c in checks),
        "checks": [c.as_dict() for c in checks],
    }


def aws_cli(settings: Settings, *args: str) -> str:
    """An `aws` command line for the same endpoint and region docsync uses."""
    extra = ["--region", settings.region]
    if settings.endpoint_url:
        extra += ["--endpoint-url", settings.endpoint_url]
    return shlex.join(["aws", *args, *extra])


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


# -- tables -------------------------------------------------------------------------------------


def _keys(schema: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(str(k["AttributeName"]), str(k["KeyType"])) for k in schema]


def _projection(value: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    return str(value.get("ProjectionType", "")), tuple(sorted(value.get("NonKeyAttributes", [])))


def _attribute_types(definitions: list[dict[str, Any]]) -> dict[str, str]:
    return {str(d["AttributeName"]): str(d["AttributeType"]) for d in definitions}


def check_table(
    settings: Settings, label: str, spec: dict[str, Any], table: dict[str, Any] | None
) -> list[Check]:
    """Key schema, key attribute types and every expected GSI (keys, projection, status)."""
    name = str(spec["TableName"])
    if table is None:
        return [Check(label, "fail", f"table {name} does not exist", INIT)]
    checks = [ok(label, f"table {name} exists ({table.get('TableStatus', '?')})")]
    recreate = (
        f"{aws_cli(settings, 'dynamodb', 'delete-table', '--table-name', name)} && {INIT}"
        " (a cache: S3 keeps the truth; then `docsync backfill`)"
    )
    want_keys, have_keys = _keys(spec["KeySchema"]), _keys(table.get("KeySchema", []))
    want_types = _attribute_types(spec["AttributeDefinitions"])
    have_types = _attribute_types(table.get("AttributeDefinitions", []))
    wrong_types = sorted(
        f"{a} is {have_types[a]}, want {t}"
        for a, t in want_types.items()
        if a in have_types and have_types[a] != t
    )
    if want_keys != have_keys:
        checks.append(
            Check(f"{label}.key-schema", "fail", f"key {have_keys}, want {want_keys}", recreate)
        )
    elif wrong_types:
        checks.append(Check(f"{label}.key-schema", "fail", "; ".join(wrong_types), recreate))
    else:
        checks.append(ok(f"{label}.key-schema", f"key {want_keys}"))
    have_gsis = {str(g["IndexName"]): g for g in table.get("GlobalSecondaryIndexes", []) or []}
    for gsi in spec.get("GlobalSecondaryIndexes", []):
        checks.append(_check_gsi(settings, label, name, spec, gsi, have_gsis.get(gsi["IndexName"])))
    return checks


def _check_gsi(
    settings: Settings,
    label: str,
    table: str,
    spec: dict[str, Any],
    want: dict[str, Any],
    have: dict[str, Any] | None,
) -> Check:
    index = str(want["IndexName"])
    check = f"{label}.gsi[{index}]"
    used = {k["AttributeName"] for k in want["KeySchema"]}
    definitions = [d for d in spec["AttributeDefinitions"] if d["AttributeName"] in used]
    create = aws_cli(
        settings,
        "dynamodb",
        "update-table",
        "--table-name",
        table,
        "--attribute-definitions",
        _compact(definitions),
        "--global-secondary-index-updates",
        _compact([{"Create": want}]),
    )
    delete = aws_cli(
        settings,
        "dynamodb",
        "update-table",
        "--table-name",
        table,
        "--global-secondary-index-updates",
        _compact([{"Delete": {"IndexName": index}}]),
    )
    if have is None:
        return Check(check, "fail", f"index {index} is missing", create)
    problems = []
    if _keys(have.get("KeySchema", [])) != _keys(want["KeySchema"]):
        problems.append(f"key {_keys(have.get('KeySchema', []))}, want {_keys(want['KeySchema'])}")
    if _projection(have.get("Projection", {})) != _projection(want["Projection"]):
        problems.append(
            f"projection {_projection(have.get('Projection', {}))},"
            f" want {_projection(want['Projection'])}"
        )
    if problems:  # neither keys nor projection of a GSI can change in place
        return Check(check, "fail", "; ".join(problems), f"{delete}, wait, then {create}")
    status = str(have.get("IndexStatus", "ACTIVE"))
    if status != "ACTIVE":
        return Check(check, "warn", f"index {index} is {status}", "wait until it is ACTIVE")
    return ok(check, f"index {index}: keys and projection as expected")


def check_stream(settings: Settings, table: dict[str, Any]) -> Check:
    name = str(table.get("TableName", settings.table))
    stream = table.get("StreamSpecification") or {}
    enable = aws_cli(
        settings,
        "dynamodb",
        "update-table",
        "--table-name",
        name,
        "--stream-specification",
        f"StreamEnabled=true,StreamViewType={STREAM_VIEW}",
    )
    if not stream.get("StreamEnabled"):
        return Check("cache-table.stream", "fail", "the table has no stream", enable)
    if stream.get("StreamViewType") != STREAM_VIEW:
        disable = aws_cli(
            settings,
            "dynamodb",
            "update-table",
            "--table-name",
            name,
            "--stream-specification",
            "StreamEnabled=false",
        )
        return Check(
            "cache-table.stream",
            "fail",
            f"stream view is {stream.get('StreamViewType')}, want {STREAM_VIEW}",
            f"{disable} && {enable}",
        )
    return ok("cache-table.stream", f"stream enabled, {STREAM_VIEW}")


def check_ttl(settings: Settings, description: dict[str, Any]) -> Check:
    status = description.get("TimeToLiveStatus", "DISABLED")
    attribute = description.get("AttributeName")
    if status in ("ENABLED", "ENABLING") and attribute == TTL_ATTRIBUTE:
        return ok("cache-table.ttl", f"TTL {status.lower()} on {TTL_ATTRIBUTE}")
    if status in ("ENABLED", "ENABLING"):
        return Check(
            "cache-table.ttl",
            "fail",
            f"TTL is on {attribute}, want {TTL_ATTRIBUTE}: expired entries are never removed",
            aws_cli(
                settings,
                "dynamodb",
                "update-time-to-live",
                "--table-name",
                settings.table,
                "--time-to-live-specification",
                f"Enabled=false,AttributeName={attribute}",
            )
            + f" && {INIT}",
        )
    if status == "DISABLING":  # TTL cannot be enabled again for up to an hour
        return Check("cache-table.ttl", "fail", "TTL is being disabled", f"wait, then {INIT}")
    return Check(
        "cache-table.ttl",
        "fail",
        f"TTL is {status.lower()}: expired entries and tombstones are never removed",
        INIT,
    )


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
        _compact(attributes),
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
                + _set_attributes(settings, url, {"RedrivePolicy": _compact(policy_for)}),
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
                _set_attributes(settings, url, {"RedrivePolicy": _compact(wanted_policy)}),
            )
        )
    elif policy.get("deadLetterTargetArn") != dlq_arn:
        wanted_policy = redrive_policy(dlq_arn)
        checks.append(
            Check(
                f"{label}.redrive",
                "fail",
                f"queue {name} redrives to {policy.get('deadLetterTargetArn')}, not {dlq_arn}",
                _set_attributes(settings, url, {"RedrivePolicy": _compact(wanted_policy)}),
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
        _set_attributes(settings, url, {"Policy": _compact(queue_policy(settings, name))}),
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
