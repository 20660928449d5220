"""Runs the parts of `docsync serve` in threads, restarts a failing part with exponential
backoff, and reports each part's state (for /readyz and the metrics) instead of letting one
die silently. Shutdown asks every part to stop, then waits for them within one deadline.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from loguru import logger
from prometheus_client import Counter, Gauge

from engine.metrics import REGISTRY

State = Literal["starting", "running", "backoff", "stopping", "stopped"]

PART_UP = Gauge(
    "docsync_serve_part_up", "1 while a part of serve is running.", ["part"], registry=REGISTRY
)
PART_RESTARTS = Counter(
    "docsync_serve_part_restarts",
    "Restarts of a part of serve after a failure.",
    ["part"],
    registry=REGISTRY,
)


@runtime_checkable
class Part(Protocol):
    """One long-running piece of the worker (listener, consumer, scheduler, HTTP API)."""

    name: str

    def run(self) -> None:
        """Block until `stop()` (then return) or a failure (then raise)."""

    def stop(self) -> None:
        """Stop intake and finish in-flight work, so that `run()` returns. Thread-safe,
        idempotent, and allowed before `run()`."""


@runtime_checkable
class Probed(Protocol):
    def healthy(self) -> bool:
        """Running and able to do its job (e.g. the HTTP server is listening)."""


class PartExited(Exception):
    """A part's `run()` returned although nobody asked it to stop."""


@dataclass(frozen=True, slots=True)
class Backoff:
    initial_s: float = 1.0
    max_s: float = 60.0
    reset_after_s: float = 60.0  # a part that ran this long healthy starts again at initial_s

    def next(self, delay: float) -> float:
        return min(delay * 2, self.max_s)

    def jittered(self, delay: float) -> float:
        return delay * (1 + random.random() * 0.1)


@dataclass
class PartStatus:
    name: str
    state: State = "starting"
    restarts: int = 0
    last_error: str | None = None
    since: float = field(default_factory=time.time)
    retry_at: float | None = None

    def as_dict(self, healthy: bool) -> dict[str, Any]:
        data: dict[str, Any] = {
            "state": self.state,
            "healthy": healthy,
            "restarts": self.restarts,
            "since": round(self.since, 3),
        }
        if self.last_error:
            data["last_error"] = self.last_error
        if self.retry_at is not None:
            data["retry_in_s"] = round(max(0.0, self.retry_at - time.time()), 1)
        return data


class _Slot:
    def __init__(self, name: str, factory: Callable[[], Part]) -> None:
        self.name = name
        self.factory = factory
        self.status = PartStatus(name)
        self.current: Part | None = None
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()


class Supervisor:
    def __init__(self, backoff: Backoff | None = None) -> None:
        self.backoff = backoff or Backoff()
        self._slots: dict[str, _Slot] = {}
        self._stopping = threading.Event()

    def add(self, name: str, factory: Callable[[], Part]) -> None:
        """Register a part; `factory` builds a fresh instance for each (re)start."""
        if name in self._slots:
            raise ValueError(f"part {name!r} is already registered")
        self._slots[name] = _Slot(name, factory)

    @property
    def names(self) -> list[str]:
        return list(self._slots)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def start(self) -> None:
        for slot in self._slots.values():
            slot.thread = threading.Thread(
                target=self._loop, args=(slot,), name=f"serve-{slot.name}", daemon=True
            )
            slot.thread.start()

    def _loop(self, slot: _Slot) -> None:
        delay = self.backoff.initial_s
        log = logger.bind(op="serve.part", part=slot.name)
        while not self._stopping.is_set():
            started = time.monotonic()
            error: BaseException | None = None
            try:
                part = slot.factory()
                with slot.lock:
                    slot.current = part
                    self._set(slot, "running")
                if self._stopping.is_set():  # stop() ran before we published the part
                    part.stop()
                log.info("part {} running", slot.name)
                part.run()
                if not self._stopping.is_set():
                    error = PartExited(f"{slot.name} returned without being asked to stop")
            except (Exception, SystemExit) as exc:  # uvicorn exits on a bind failure
                error = exc
            if self._stopping.is_set():
                if error is not None:
                    log.warning("part {} failed while stopping: {!r}", slot.name, error)
                break
            assert error is not None
            if time.monotonic() - started >= self.backoff.reset_after_s:
                delay = self.backoff.initial_s
            wait = self.backoff.jittered(delay)
            with slot.lock:
                slot.current = None
                slot.status.restarts += 1
                slot.status.last_error = f"{type(error).__name__}: {error}"[:500]
                slot.status.retry_at = time.time() + wait
                self._set(slot, "backoff")
            PART_RESTARTS.labels(slot.name).inc()
            log.bind(error=type(error).__name__, retry_in_s=round(wait, 2)).error(
                "part {} failed ({}); restarting in {:.1f}s", slot.name, error, wait
            )
            self._stopping.wait(wait)
            delay = self.backoff.next(delay)
        with slot.lock:
            slot.current = None
            slot.status.retry_at = None
            self._set(slot, "stopped")
        log.info("part {} stopped", slot.name)

    @staticmethod
    def _set(slot: _Slot, state: State) -> None:
        slot.status.state = state
        slot.status.since = time.time()
        if state == "running":
            slot.status.retry_at = None
        PART_UP.labels(slot.name).set(1 if state == "running" else 0)

    def status(self) -> dict[str, dict[str, Any]]:
        out = {}
        for slot in self._slots.values():
            with slot.lock:
                part = slot.current
                healthy = slot.status.state == "running" and (
                    not isinstance(part, Probed) or part.healthy()
                )
                out[slot.name] = slot.status.as_dict(healthy)
        return out

    def healthy(self) -> bool:
        return all(s["healthy"] for s in self.status().values())

    def stop(self, timeout_s: float, order: list[str] | None = None) -> bool:
        """Ask every part to stop (in `order` first, then the rest) and wait for them, all
        within `timeout_s`. True when every part has stopped in time."""
        self._stopping.set()
        names = [*(order or []), *[n for n in self._slots if n not in (order or [])]]
        for name in names:
            slot = self._slots.get(name)
            if slot is None:
                continue
            with slot.lock:
                part = slot.current
                if slot.status.state in ("running", "starting"):
                    self._set(slot, "stopping")
            if part is not None:
                try:
                    part.stop()
                except Exception as exc:
                    logger.bind(op="serve.part", part=name).error("stop failed: {!r}", exc)
        deadline = time.monotonic() + timeout_s
        clean = True
        for slot in self._slots.values():
            if slot.thread is None:
                continue
            slot.thread.join(max(0.0, deadline - time.monotonic()))
            if slot.thread.is_alive():
                clean = False
                logger.bind(op="serve.stop", part=slot.name).error(
                    "part {} did not stop within {:.0f}s", slot.name, timeout_s
                )
        return clean
