"""Reconcile runs started over HTTP without waiting (`"wait": false`), tracked by id.

A reconcile of a large bucket outlasts any load balancer's idle timeout, so the API can start
one in the background (202 + Location) and answer its status later. The lease is taken in the
request (a run already going elsewhere is a 409 at once) and kept, renewed, by the run's own
thread. Runs are tracked by the replica that started them; every run's report is also saved
(directory and S3), as `docsync reconcile --history` shows.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from loguru import logger

from engine import keys

KEEP = 50  # finished runs remembered per process; older ones are in the reports


class ReconcileRuns:
    def __init__(self, keep: int = KEEP) -> None:
        self._runs: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._keep = keep

    def start(self, mode: str, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Run `work` in a thread of its own; returns the run's status (running)."""
        run_id = uuid.uuid4().hex[:16]
        status: dict[str, Any] = {
            "run_id": run_id,
            "mode": mode,
            "status": "running",
            "started_at": keys.iso(datetime.now(UTC)),
        }
        with self._lock:
            self._runs[run_id] = status
            while len(self._runs) > self._keep:
                self._runs.popitem(last=False)

        def run() -> None:
            try:
                outcome: dict[str, Any] = {"status": "done", "result": work()}
            except Exception as exc:  # reported to whoever asks for the run
                logger.bind(op="reconcile.http", run_id=run_id).exception("run failed")
                outcome = {"status": "failed", "error": str(exc)}
            outcome["finished_at"] = keys.iso(datetime.now(UTC))
            with self._lock:
                status.update(outcome)

        threading.Thread(target=run, name=f"reconcile-{run_id}", daemon=True).start()
        return dict(status)

    def get(self, run_id: str) -> dict[str, Any] | None:
        with self._lock:
            status = self._runs.get(run_id)
            return dict(status) if status is not None else None
