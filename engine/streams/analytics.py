"""Stream analytics: tumbling windows (by record time) per document type, with breakdowns per
customer and status, status transitions and sync lag.

A row is a sum over some records of one window and type, and rows ADD UP: a window may be
emitted in several rows (at every checkpoint, by several Lambda invocations or KCL shards), and
`merge_rows` gives the same figures as one row would. Histograms are bucket counts, so merged
percentiles stay right.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from engine.keys import tumbling_start
from engine.readmetrics.buckets import LAG_S
from engine.readmetrics.histogram import Histogram

ROW_VERSION = 1
CHANGES = ("creates", "updates", "deletes")
_COUNTS = ("records", *CHANGES, "ttl_expiries", "fills")


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class TypeWindow:
    """The figures of one document type in one window."""

    window_start: datetime
    window_s: int
    type: str
    counts: Counter[str] = field(default_factory=Counter)
    writes: Counter[str] = field(default_factory=Counter)  # by sync_source
    customers: dict[str, Counter[str]] = field(default_factory=dict)
    statuses: dict[str, Counter[str]] = field(default_factory=dict)
    transitions: Counter[str] = field(default_factory=Counter)  # "old→new"
    partitions: Counter[str] = field(default_factory=Counter)  # GSI writes: "index partition"
    sync_lag: Histogram = field(default_factory=lambda: Histogram(LAG_S))

    def change(self, kind: str, customers: Iterable[str], status: str | None) -> None:
        """kind: creates | updates | deletes."""
        self.counts[kind] += 1
        for customer in dict.fromkeys(customers):
            self.customers.setdefault(customer, Counter())[kind] += 1
        if status:
            self.statuses.setdefault(status, Counter())[kind] += 1

    def as_row(self) -> dict[str, Any]:
        return {
            "v": ROW_VERSION,
            "window_start": _iso(self.window_start),
            "window_s": self.window_s,
            "type": self.type,
            **{name: self.counts[name] for name in _COUNTS},
            "writes": dict(sorted(self.writes.items())),
            "customers": {c: _changes(n) for c, n in sorted(self.customers.items())},
            "statuses": {s: _changes(n) for s, n in sorted(self.statuses.items())},
            "transitions": dict(sorted(self.transitions.items())),
            "sync_lag_s": self.sync_lag.as_dict(),
            **({"partitions": dict(sorted(self.partitions.items()))} if self.partitions else {}),
        }

    def add_row(self, row: Mapping[str, Any]) -> None:
        for name in _COUNTS:
            self.counts[name] += int(row.get(name, 0))
        self.writes.update({k: int(v) for k, v in row.get("writes", {}).items()})
        for target, source in ((self.customers, "customers"), (self.statuses, "statuses")):
            for key, changes in row.get(source, {}).items():
                target.setdefault(key, Counter()).update({k: int(v) for k, v in changes.items()})
        self.transitions.update({k: int(v) for k, v in row.get("transitions", {}).items()})
        self.partitions.update({k: int(v) for k, v in row.get("partitions", {}).items()})
        lag = Histogram.from_dict(LAG_S, row.get("sync_lag_s", {"buckets": []}))
        self.sync_lag.counts = [
            a + b for a, b in zip(self.sync_lag.counts, lag.counts, strict=True)
        ]
        self.sync_lag.total += lag.total
        self.sync_lag.peak = max(self.sync_lag.peak, lag.peak)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> TypeWindow:
        start = datetime.fromisoformat(str(row["window_start"]).replace("Z", "+00:00"))
        window = cls(start, int(row["window_s"]), str(row["type"]))
        window.add_row(row)
        return window


def _changes(counter: Counter[str]) -> dict[str, int]:
    return {kind: counter[kind] for kind in CHANGES}


class Windows:
    """Open windows of one consumer: filled record by record, taken as rows at checkpoints."""

    def __init__(self, window_s: int = 60) -> None:
        self.window_s = window_s
        self._open: dict[tuple[datetime, str], TypeWindow] = {}

    def at(self, ts: datetime, type_name: str) -> TypeWindow:
        start = datetime.fromtimestamp(tumbling_start(ts.timestamp(), self.window_s), UTC)
        key = (start, type_name)
        if key not in self._open:
            self._open[key] = TypeWindow(start, self.window_s, type_name)
        return self._open[key]

    def take_rows(self) -> list[dict[str, Any]]:
        """Every open window as a row (oldest first); they start again from zero."""
        rows = [w.as_row() for _, w in sorted(self._open.items(), key=lambda kv: kv[0])]
        self._open.clear()
        return rows

    def restore(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Put rows back (their emission failed): the next take carries them again."""
        for row in rows:
            start = datetime.fromisoformat(str(row["window_start"]).replace("Z", "+00:00"))
            key = (start, str(row["type"]))
            if key not in self._open:
                self._open[key] = TypeWindow(start, int(row["window_s"]), str(row["type"]))
            self._open[key].add_row(row)

    def discard(self) -> None:
        self._open.clear()

    def __len__(self) -> int:
        return len(self._open)


def merge_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows of the same window and type summed into one; newest window first."""
    merged: dict[tuple[str, int, str], TypeWindow] = {}
    for row in rows:
        key = (str(row["window_start"]), int(row["window_s"]), str(row["type"]))
        if key in merged:
            merged[key].add_row(row)
        else:
            merged[key] = TypeWindow.from_row(row)
    ordered = sorted(merged.items(), key=lambda kv: (kv[0][0], kv[0][2]), reverse=True)
    return [w.as_row() for _, w in ordered]
