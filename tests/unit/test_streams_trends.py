"""engine/streams/trends.py: changes per document and time in each status, from history
entries with a known answer (times relative to a fixed origin: pure data, no clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from engine.streams.trends import trends

ORIGIN = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def entry(doc_id: str, version: int, change: str, status: str | None, hours: float,
          type_name: str = "change") -> dict[str, Any]:  # fmt: skip
    at = (ORIGIN + timedelta(hours=hours)).isoformat().replace("+00:00", "Z")
    out: dict[str, Any] = {"type": type_name, "id": doc_id, "version": version, "change": change}
    out["at"] = at
    if status is not None:
        out["status_to"] = status
    return out


def history() -> list[dict[str, Any]]:
    return [
        # CHG-1: draft 2 h, then approved; an edit within approved; then deleted after 5 h
        entry("CHG-1", 1, "create", "draft", 0),
        entry("CHG-1", 2, "update", "approved", 2),
        entry("CHG-1", 3, "update", "approved", 4),
        entry("CHG-1", 4, "delete", None, 7),
        # CHG-2: draft 4 h, then approved (still approved: that span is open)
        entry("CHG-2", 2, "update", "approved", 4),  # out of order on purpose
        entry("CHG-2", 1, "create", "draft", 0),
        # CHG-3: draft 6 h, then approved, recreated after a delete
        entry("CHG-3", 1, "create", "draft", 10),
        entry("CHG-3", 2, "update", "approved", 16),
        entry("CHG-3", 3, "delete", None, 17),
        entry("CHG-3", 4, "create", "draft", 18),
        entry("ANN-1", 1, "create", "published", 0, "announcement"),
    ]


def test_changes_per_document_and_time_in_each_status() -> None:
    out = trends(history(), ORIGIN.timestamp(), (ORIGIN + timedelta(days=1)).timestamp())
    assert out["documents"] == 4
    assert out["changes_per_document"]["change"] == {
        "documents": 3,
        "changes": 10,
        "median": 4,
        "max": 4,
    }
    assert out["busiest"][0] == {"type": "change", "id": "CHG-1", "changes": 4}
    draft_to_approved = out["transitions"]["change"]["draft→approved"]
    assert draft_to_approved["count"] == 3 and draft_to_approved["median_s"] == 4 * 3600
    assert draft_to_approved["max_s"] == 6 * 3600
    approved = out["time_in_status"]["change"]["approved"]
    assert approved["count"] == 2 and approved["median_s"] == 3 * 3600  # 5 h and 1 h
    assert "announcement" not in out["time_in_status"]  # its only span is still open


def test_only_what_ends_in_the_range_counts() -> None:
    since = (ORIGIN + timedelta(hours=3)).timestamp()
    until = (ORIGIN + timedelta(hours=5)).timestamp()
    out = trends(history(), since, until)
    assert out["changes_per_document"]["change"]["changes"] == 2  # CHG-1 v3, CHG-2 v2
    assert out["transitions"]["change"]["draft→approved"]["count"] == 1  # CHG-2's, 4 h
    assert "approved" not in out["time_in_status"].get("change", {})
