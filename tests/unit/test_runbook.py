"""docs/runbook.md covers every alarm deploy/template.yaml creates: a section whose anchor
the alarm's description links to, and the alarm's own name in that section or its heading."""

from __future__ import annotations

import re

from tests.template import ROOT, resources

RUNBOOK = ROOT / "docs" / "runbook.md"


def sections() -> dict[str, str]:
    """GitHub anchor of every `##`/`###` heading → the text under it."""
    out: dict[str, str] = {}
    anchor = ""
    for line in RUNBOOK.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"#{2,3} (.+)", line)
        if heading:
            title = heading.group(1).strip().lower()
            anchor = re.sub(r"[^a-z0-9 _-]", "", title).replace(" ", "-")
            out[anchor] = title + "\n"
        elif anchor:
            out[anchor] += line + "\n"
    return out


def alarm_suffix(resource: dict[str, object]) -> str:
    name = resource["Properties"]["AlarmName"]  # type: ignore[index]
    text = name["Fn::Sub"] if isinstance(name, dict) else name
    assert str(text).startswith("${AWS::StackName}-"), text
    return str(text).removeprefix("${AWS::StackName}-")


def test_every_alarm_links_to_a_runbook_section_that_names_it() -> None:
    alarms = resources("AWS::CloudWatch::Alarm")
    assert len(alarms) >= 12
    found = sections()
    for logical, alarm in alarms.items():
        description = str(alarm["Properties"]["AlarmDescription"])
        link = re.search(r"docs/runbook\.md#([a-z0-9-]+)", description)
        assert link, f"{logical}: its description links to no runbook section"
        section = found.get(link.group(1))
        assert section is not None, f"{logical}: no section #{link.group(1)} in the runbook"
        assert alarm_suffix(alarm) in section, f"{logical}: #{link.group(1)} does not name it"
        assert "**Recover.**" in section and "**First checks.**" in section, logical


def test_the_situations_the_issue_names_have_sections() -> None:
    found = sections()
    for anchor in (
        "a-stuck-in-flight-write",
        "the-circuit-breaker-open",
        "persistent-drift",
        "the-dlq",
        "rotating-api-keys-docsync-serves-http-api",
        "capacity-and-cost-of-a-reconcile-on-a-large-bucket",
    ):
        assert anchor in found, (anchor, sorted(found))
