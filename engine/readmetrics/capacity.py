"""Consumed capacity per operation kind, carried by the read-metrics flush to the cache table
so that `docsync stats` adds up every process's figures (not only its own).

The counters are this process's Prometheus ones (`awsmetrics.capacity_by_kind()`); the taker is
process-wide, so that two flushers in one process (an engine per test, a library caller's own)
never carry the same units twice. In the metrics item each kind's units are two numbers,
`cap_<kind>_read` and `cap_<kind>_write`, ADDed by the flush's one UpdateItem (item.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from engine.awsmetrics import KINDS, capacity_by_kind

Capacity = dict[str, dict[str, float]]  # kind → {"read": units, "write": units}
SIDES = ("read", "write")
# The flush's own UpdateItem is kind "other": carrying only that would make every flush
# cause the next one (an idle process would write every interval). It rides along instead.
_RIDES_ALONG = "other"


def attribute(kind: str, side: str) -> str:
    return f"cap_{kind}_{side}"


def adds(capacity: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """The item attributes one flush ADDs (non-zero units only, rounded to 1/1000)."""
    out: dict[str, float] = {}
    for kind in KINDS:
        for side in SIDES:
            value = round(float(capacity.get(kind, {}).get(side, 0.0)), 3)
            if value:
                out[attribute(kind, side)] = value
    return out


def of_image(image: Mapping[str, Any] | None) -> Capacity:
    """The units a metrics item (or its image) holds, per kind (kinds with none left out)."""
    out: Capacity = {}
    for kind in KINDS:
        sides = {side: float((image or {}).get(attribute(kind, side), 0) or 0) for side in SIDES}
        if any(sides.values()):
            out[kind] = sides
    return out


def total(*parts: Mapping[str, Mapping[str, float]]) -> Capacity:
    """Several items' (or flushes') units added up."""
    out: Capacity = {}
    for part in parts:
        for kind, sides in part.items():
            into = out.setdefault(kind, dict.fromkeys(SIDES, 0.0))
            for side in SIDES:
                into[side] += float(sides.get(side, 0.0))
    return out


def worth_a_flush(capacity: Mapping[str, Mapping[str, float]]) -> bool:
    return any(kind != _RIDES_ALONG and any(sides.values()) for kind, sides in capacity.items())


class CapacityTaker:
    """Hands out what the counters gained since the previous take (process-wide: `TAKER`)."""

    def __init__(self, source: Callable[[], Capacity] = capacity_by_kind) -> None:
        self._source = source
        self._taken: Capacity = {}
        self._lock = threading.Lock()

    def take(self) -> Capacity:
        with self._lock:
            now = self._source()
            delta: Capacity = {}
            for kind, sides in now.items():
                before = self._taken.get(kind, {})
                gained = {side: sides.get(side, 0.0) - before.get(side, 0.0) for side in SIDES}
                if any(v > 0 for v in gained.values()):
                    delta[kind] = gained
            self._taken = {kind: dict(sides) for kind, sides in now.items()}
            return delta

    def give_back(self, capacity: Capacity) -> None:
        """Units taken but not flushed (a flush that only had "other" to carry) wait for the
        next take."""
        with self._lock:
            for kind, sides in capacity.items():
                into = self._taken.setdefault(kind, dict.fromkeys(SIDES, 0.0))
                for side in SIDES:
                    into[side] -= sides.get(side, 0.0)


TAKER = CapacityTaker()
