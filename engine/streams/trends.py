"""Trends from document history (`docsync stats`): changes per document, time spent in each
status, time between status transitions (e.g. the median draft → approved per type). Pure:
entries in (as the history table holds them), figures out.

A document's entries are walked in version order. A status is entered at the entry that first
shows it (a create, or an update whose status differs) and left at the next entry that shows
another one (or a delete); the time between is one span. Spans still open (the status a
document is in now) are not counted. Only spans and changes that end in [since, until] count,
so a range shows what completed in it.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any


def _at(entry: Mapping[str, Any]) -> float | None:
    value = entry.get("at")
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _summary(samples: list[float]) -> dict[str, Any]:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    return {
        "count": len(ordered),
        "median_s": round(statistics.median(ordered), 3),
        "p90_s": round(p90, 3),
        "max_s": round(ordered[-1], 3),
    }


def trends(
    entries: Iterable[Mapping[str, Any]], since: float, until: float, top: int = 10
) -> dict[str, Any]:
    by_doc: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for entry in entries:
        by_doc[(str(entry["type"]), str(entry["id"]))].append(entry)
    changes: dict[tuple[str, str], int] = {}
    in_status: dict[tuple[str, str], list[float]] = defaultdict(list)
    between: dict[tuple[str, str], list[float]] = defaultdict(list)
    for (type_name, doc_id), items in by_doc.items():
        items.sort(key=lambda e: int(e["version"]))
        n = 0
        status: str | None = None
        entered: float | None = None
        for entry in items:
            at = _at(entry)
            if at is None:
                continue
            if since <= at <= until:
                n += 1
            now = None if entry.get("change") == "delete" else entry.get("status_to")
            if now == status:
                continue
            if status is not None and entered is not None and since <= at <= until:
                in_status[(type_name, status)].append(at - entered)
                if now is not None:
                    between[(type_name, f"{status}→{now}")].append(at - entered)
            status, entered = (str(now), at) if now is not None else (None, None)
        if n:
            changes[(type_name, doc_id)] = n
    per_type: dict[str, list[int]] = defaultdict(list)
    for (type_name, _), n in changes.items():
        per_type[type_name].append(n)
    busiest = sorted(changes.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return {
        "documents": len(changes),
        "changes_per_document": {
            t: {
                "documents": len(ns),
                "changes": sum(ns),
                "median": statistics.median(ns),
                "max": max(ns),
            }
            for t, ns in sorted(per_type.items())
        },
        "busiest": [{"type": t, "id": i, "changes": n} for (t, i), n in busiest],
        "time_in_status": _nest(in_status),
        "transitions": _nest(between),
    }


def _nest(samples: Mapping[tuple[str, str], list[float]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = defaultdict(dict)
    for (type_name, name), values in sorted(samples.items()):
        out[type_name][name] = _summary(values)
    return dict(out)
