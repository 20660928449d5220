"""`docsync reconcile` as a group: `report`, `repair`, `enqueue`, `work`, `collect`, `history`,
`schedule`; and the flag forms of earlier releases, which still work for one release with a
one-line deprecation on stderr, the same stdout and the same exit code."""

from __future__ import annotations

import pytest

from engine.app import Engine
from tests.e2e.conftest import Aws, Cli, Run
from tests.e2e.test_cli_reconcile import EXPECTED, EXPECTED_CHANGE, plant

pytestmark = pytest.mark.e2e

CLEAN = {"missing": 0, "stale": 0, "orphaned": 0, "invalid": 2, "in_sync": 10}


def deprecations(run: Run) -> list[str]:
    return [line for line in run.stderr.splitlines() if "deprecated" in line]


def test_report_then_repair_subcommands(cli: Cli, ready: Engine, aws: Aws) -> None:
    plant(ready, aws)
    drifted = cli("reconcile", "report", "--fail-on-drift", expect=1)
    assert drifted.json()["counts"] == EXPECTED
    assert deprecations(drifted) == []
    assert cli("reconcile", "report", "--type", "change").json()["counts"] == EXPECTED_CHANGE
    repaired = cli("reconcile", "repair").json()
    assert repaired["mode"] == "repair"
    assert repaired["counts"] == EXPECTED  # what it found, and then repaired
    assert cli("reconcile", "report", "--fail-on-drift").json()["counts"] == CLEAN


def test_enqueue_work_collect_subcommands(cli: Cli, ready: Engine, aws: Aws) -> None:
    plant(ready, aws)
    sent = cli("reconcile", "enqueue", "--repair").json()
    assert sent["mode"] == "repair" and sent["tasks"] > 1
    assert cli("reconcile", "work").json() == {"tasks_done": sent["tasks"]}
    collected = cli("reconcile", "collect", sent["run_id"]).json()
    assert collected["complete"] is True
    assert collected["counts"] == EXPECTED
    assert cli("reconcile", "report").json()["counts"] == CLEAN


def test_history_subcommand_and_its_deprecated_flag(cli: Cli, ready: Engine, aws: Aws) -> None:
    plant(ready, aws)
    cli("reconcile", "report")
    new = cli("reconcile", "history")
    old = cli("reconcile", "--history")
    assert new.json()["runs"] and new.json() == old.json()
    assert deprecations(new) == []
    assert deprecations(old) == [
        "docsync: warning: `docsync reconcile --history` is deprecated and will be removed in"
        " the next release: use `docsync reconcile history`"
    ]


def test_a_deprecated_repair_flag_keeps_its_output_and_exit_code(
    cli: Cli, ready: Engine, aws: Aws
) -> None:
    plant(ready, aws)
    old = cli("reconcile", "--repair", "--dry-run", "--fail-on-drift", expect=None)
    new = cli("reconcile", "repair", "--dry-run", "--fail-on-drift", expect=None)
    assert old.returncode == new.returncode == 1  # a dry run repairs nothing: drift remains
    assert old.json()["counts"] == new.json()["counts"] == EXPECTED
    assert len(deprecations(old)) == 1 and "use `docsync reconcile repair`" in old.stderr
    assert deprecations(new) == []


def test_the_bare_group_is_still_a_report_without_a_warning(
    cli: Cli, ready: Engine, aws: Aws
) -> None:
    plant(ready, aws)
    run = cli("reconcile", expect=None)
    assert run.returncode == 0 and run.json()["counts"] == EXPECTED
    assert deprecations(run) == []


def test_options_before_a_subcommand_are_refused(cli: Cli, ready: Engine) -> None:
    run = cli("reconcile", "--type", "change", "report", expect=2)
    assert "options go after the subcommand" in run.stderr


def test_schedule_is_a_subcommand(cli: Cli) -> None:
    out = cli("reconcile", "schedule", "--help").stdout
    assert "Run the reconcile schedule in the foreground" in out
    listed = cli("reconcile", "--help").stdout
    for name in ("report", "repair", "enqueue", "work", "collect", "history", "schedule"):
        assert f"\n  {name} " in listed
