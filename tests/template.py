"""deploy/template.yaml as CloudFormation reads it (short-form intrinsics as Ref / Fn::*),
shared by the unit tests of the template and the moto deploy tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cfnlint.decode import cfn_yaml  # type: ignore[import-untyped]  # cfn-lint has no py.typed

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "deploy" / "template.yaml"


def load_template() -> dict[str, Any]:
    data: dict[str, Any] = cfn_yaml.load(str(TEMPLATE))
    return data


def resources(kind: str) -> dict[str, dict[str, Any]]:
    """Logical id → resource, for one resource type."""
    return {n: r for n, r in load_template()["Resources"].items() if r["Type"] == kind}
