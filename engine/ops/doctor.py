"""`docsync doctor`: is a deployed environment what `docsync init` would have made?

Pure comparisons over what AWS describes (plain dicts) against the definitions in
`engine.infra` (never a copy of them). Each finding says what is wrong and the one command
that fixes it. Here: the finding type and the tables; `wiring.py` checks notifications and
queues; `survey.py` gathers the data and runs the permission probes.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any, Literal

from engine.infra import STREAM_VIEW
from engine.settings import Settings
from engine.store.item import TTL_ATTRIBUTE

Status = Literal["ok", "warn", "fail"]
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


def compact(value: Any) -> str:
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
        compact(definitions),
        "--global-secondary-index-updates",
        compact([{"Create": want}]),
    )
    delete = aws_cli(
        settings,
        "dynamodb",
        "update-table",
        "--table-name",
        table,
        "--global-secondary-index-updates",
        compact([{"Delete": {"IndexName": index}}]),
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

    def stream_spec(value: str) -> str:
        cmd = ("dynamodb", "update-table", "--table-name", name, "--stream-specification", value)
        return aws_cli(settings, *cmd)

    enable = stream_spec(f"StreamEnabled=true,StreamViewType={STREAM_VIEW}")
    if not stream.get("StreamEnabled"):
        return Check("cache-table.stream", "fail", "the table has no stream", enable)
    if stream.get("StreamViewType") != STREAM_VIEW:
        disable = stream_spec("StreamEnabled=false")
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
