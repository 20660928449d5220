"""deploy/template.yaml passes cfn-lint and checkov, and every check it skips says why.

checkov lives in its own venv (.venv-scan, made by `make test`: its pins conflict with ours);
cfn-lint is in the dev extra.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.template import ROOT, TEMPLATE, load_template

CHECKOV = Path(os.environ.get("DOCSYNC_CHECKOV", ROOT / ".venv-scan" / "bin" / "checkov"))


def test_cfn_lint_is_clean() -> None:
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), str(TEMPLATE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == ""


def checkov_report() -> dict[str, Any]:
    if not CHECKOV.exists():
        pytest.fail(f"checkov not found at {CHECKOV}: run `make test` (it builds .venv-scan)")
    proc = subprocess.run(
        [
            str(CHECKOV),
            *("-f", str(TEMPLATE), "--framework", "cloudformation", "--output", "json"),
            *("--skip-download", "--soft-fail"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report: dict[str, Any] = json.loads(proc.stdout)
    return report


def test_checkov_reports_no_failed_check_and_every_skip_has_its_reason() -> None:
    report = checkov_report()
    results = report["results"]
    failed = [(c["check_id"], c["resource"]) for c in results["failed_checks"]]
    assert failed == []
    assert report["summary"]["failed"] == 0 and report["summary"]["parsing_errors"] == 0
    assert len(results["passed_checks"]) > 50
    skipped = results["skipped_checks"]
    assert skipped, "the template names its skips; checkov should have seen them"
    for check in skipped:
        assert len(check["check_result"].get("suppress_comment") or "") >= 20, check["check_id"]


def test_every_skip_in_the_template_names_a_check_and_a_reason() -> None:
    for name, resource in load_template()["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert str(skip["id"]).startswith("CKV_"), name
            assert len(str(skip.get("comment", ""))) >= 20, (name, skip["id"])
