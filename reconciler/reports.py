"""Drift reports: JSON (the CLI contract), a text summary and Markdown for people; kept in a
directory and in S3 under the reserved prefix (which the listener and reconciler ignore)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from engine.app import Engine
from reconciler.diff import CLASSES
from reconciler.run import DRIFT, ReconcileResult

REPORTS = "reports/"


def report_name(result: ReconcileResult) -> str:
    """Sortable by start time, unique even for two runs in one second."""
    stamp = result.started_at.strftime("%Y%m%dT%H%M%S.%fZ")
    return f"{stamp}-{uuid.uuid4().hex[:6]}-{result.mode}"


def source_note(data: dict[str, Any]) -> str:
    """Where the S3 side came from, when it was not a listing (an inventory is a snapshot)."""
    source = data.get("s3_source", "list")
    if source == "list":
        return ""
    taken = data.get("inventory_created_at")
    return f"{source}" + (f", taken {taken}; drift verified against S3 now" if taken else "")


def to_text(data: dict[str, Any]) -> str:
    counts, repaired = data["counts"], data["repaired"]
    drift = sum(counts[c] for c in DRIFT)
    lines = [
        f"reconcile {data['mode']}{' (dry run)' if data['dry_run'] else ''}:"
        f" {data['compared']} keys in {data['shards']} shards, {data['duration_s']:.1f}s",
        "  " + "  ".join(f"{c} {counts[c]}" for c in CLASSES),
    ]
    if data["mode"] == "repair":
        lines.append("  repaired " + "  ".join(f"{c} {repaired[c]}" for c in DRIFT))
    if source_note(data):
        lines.append(f"  S3 side: {source_note(data)}")
    lines.append(
        f"  drift {drift}, remaining {data['remaining']}"
        + (
            f" (+{counts['invalid']} invalid objects: reported, never cached)"
            if counts["invalid"]
            else ""
        )
    )
    skipped = ", ".join(f"{k} {v}" for k, v in sorted(data["skipped"].items()))
    if skipped:
        lines.append(f"  not drift: {skipped}")
    for item in data["items"][:20]:
        lines.append(
            f"  {item['class']:<8} {item['key']}{'  (repaired)' if item['repaired'] else ''}"
        )
    if len(data["items"]) > 20 or data["items_truncated"]:
        lines.append(f"  … the full list (up to {data['items_cap']} items) is in the JSON report")
    return "\n".join(lines)


def to_markdown(data: dict[str, Any]) -> str:
    counts, repaired = data["counts"], data["repaired"]
    out = [
        f"# Drift report: {data['mode']}{' (dry run)' if data['dry_run'] else ''}",
        "",
        f"Started {data['started_at']}, {data['duration_s']:.1f} s, {data['compared']} keys"
        f" compared in {data['shards']} shards. Drift remaining: **{data['remaining']}**.",
        *([f"S3 side: {source_note(data)}."] if source_note(data) else []),
        "",
        "| class | found | repaired |",
        "|---|---:|---:|",
    ]
    out += [f"| {c} | {counts[c]} | {repaired.get(c, '')} |" for c in CLASSES]
    if data["skipped"]:
        out += [
            "",
            "Not drift: " + ", ".join(f"{k} {v}" for k, v in sorted(data["skipped"].items())),
        ]
    if data["items"]:
        out += [
            "",
            "| key | class | S3 ETag | cache ETag | S3 last modified | repaired |",
            "|---|---|---|---|---|---|",
        ]
        for item in data["items"]:
            s3, cache = item["s3"] or {}, item["cache"] or {}
            out.append(
                f"| `{item['key']}` | {item['class']} | {s3.get('etag', '')}"
                f" | {cache.get('etag', '')} | {s3.get('last_modified', '')}"
                f" | {'yes' if item['repaired'] else ''} |"
            )
        if data["items_truncated"]:
            out.append(
                f"\nOnly the first {data['items_cap']} items are listed; the counts are complete."
            )
    return "\n".join(out) + "\n"


def save(engine: Engine, result: ReconcileResult, report_dir: str | None) -> dict[str, str]:
    """Write JSON and Markdown to `report_dir` (if any) and to S3. Returns where."""
    data = result.as_dict()
    name = report_name(result)
    body = json.dumps(data, indent=2, ensure_ascii=False).encode()
    markdown = to_markdown(data).encode()
    where: dict[str, str] = {}
    if report_dir:
        directory = Path(report_dir)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"{name}.json").write_bytes(body)
        (directory / f"{name}.md").write_bytes(markdown)
        where["dir"] = str(directory / f"{name}.json")
    prefix = engine.settings.reserved_prefix + REPORTS
    engine.objects.put(f"{prefix}{name}.json", body)
    engine.objects.put(f"{prefix}{name}.md", markdown)
    where["s3"] = f"s3://{engine.settings.bucket}/{prefix}{name}.json"
    if engine.settings.dry_run:  # the guard dropped the puts: say so rather than point nowhere
        where["s3"] = "not written (dry run): " + where["s3"]
    return where


def history(engine: Engine, limit: int = 20) -> list[dict[str, Any]]:
    """Recent runs, newest first, with their counts."""
    prefix = engine.settings.reserved_prefix + REPORTS
    names = sorted(
        (info.key for info in engine.objects.list(prefix) if info.key.endswith(".json")),
        reverse=True,
    )[:limit]
    runs = []
    for key in names:
        data = json.loads(engine.objects.get(key).body)
        runs.append(
            {
                "report": key,
                "mode": data["mode"],
                "started_at": data["started_at"],
                "counts": data["counts"],
                "repaired": data["repaired"],
                "remaining": data["remaining"],
            }
        )
    return runs
