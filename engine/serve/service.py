"""`docsync serve`: one process, one Engine (one set of clients), one metrics registry, and
the parts the settings switch on: listener, consumer, scheduler, api.

SIGTERM / SIGINT: readiness turns to `stopping`, then intake stops everywhere (the API stops
accepting connections, the listener stops receiving, the consumer stops reading, the
scheduler starts no run), in-flight work finishes (requests, held messages, a running
reconcile), the consumer checkpoints as it stops, the read metrics are flushed, and the
process exits 0, all within `shutdown_timeout_s` (exit 1 if a part overran it: nothing is
lost even then, since unacknowledged messages go back to the queue).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

from loguru import logger

from engine.app import Engine
from engine.readmetrics.flush import MetricsFlusher
from engine.serve.health import Readiness
from engine.serve.parts import ListenerPart, SchedulerPart, consumer_factory
from engine.serve.supervisor import Backoff, Part, Supervisor
from engine.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from engine.serve.apikeys import ApiKeys
    from engine.serve.server import HttpServer

PART_NAMES = ("listener", "consumer", "scheduler", "api")
STOP_ORDER = ["api", "listener", "consumer", "scheduler"]


class Service:
    def __init__(
        self,
        engine: Engine,
        *,
        host: str | None = None,
        port: int | None = None,
        enabled: Collection[str] | None = None,
        api_keys: ApiKeys | None = None,
        parts: dict[str, Callable[[], Part]] | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        """`enabled` names the parts to run (default: the serve_* settings); `api_keys`
        replaces the configured keys; `parts` replaces every part (tests plug their own in)."""
        self.engine = engine
        self.settings: Settings = engine.settings
        self.host = host or self.settings.serve.host
        self.port = self.settings.serve.port if port is None else port
        self.supervisor = Supervisor(
            backoff or Backoff(max_s=self.settings.serve.part_restart_max_s)
        )
        self.readiness = Readiness(
            self.settings,
            self.supervisor.status,
            lambda: self.supervisor.stopping,
            breakers=engine.breaker_states,
        )
        self.skipped: dict[str, str] = {}
        self.app: FastAPI | None = None
        self.api_server: HttpServer | None = None
        self._enabled = enabled
        self._api_keys = api_keys
        self._flusher: MetricsFlusher | None = None
        self._stop_requested = threading.Event()
        for name, factory in (parts if parts is not None else self._parts()).items():
            self.supervisor.add(name, factory)

    def _parts(self) -> dict[str, Callable[[], Part]]:
        s, engine = self.settings, self.engine
        enabled = {
            "listener": s.serve.listener,
            "consumer": s.serve.consumer,
            "scheduler": s.serve.scheduler,
            "api": s.serve.api,
        }
        if self._enabled is not None:
            enabled = {name: name in self._enabled for name in PART_NAMES}
        parts: dict[str, Callable[[], Part]] = {}
        if enabled["listener"]:
            parts["listener"] = lambda: ListenerPart(engine)
        if enabled["consumer"]:
            factory, why = consumer_factory(engine)
            if factory is None:
                self.skipped["consumer"] = why
            else:
                parts["consumer"] = factory
        if enabled["scheduler"]:
            SchedulerPart(engine)  # a wrong cron expression fails here (exit 2), not in a loop
            parts["scheduler"] = lambda: SchedulerPart(engine)
        if enabled["api"]:
            from engine.serve.app import create_app
            from engine.serve.server import HttpServer

            # No key configured: ConfigError (exit 2); the API never runs open.
            app = self.app = create_app(engine, self.readiness, self._api_keys)
            grace = max(1.0, s.serve.shutdown_timeout_s - 2)

            def api() -> Part:
                self.api_server = HttpServer(app, self.host, self.port, graceful_timeout_s=grace)
                return self.api_server

            parts["api"] = api
        for name, on in enabled.items():
            if not on:
                self.skipped[name] = "off in settings"
        return parts

    @property
    def api_url(self) -> str | None:
        """Where the API listens, once it does (`port=0` picks a free port)."""
        server = self.api_server
        return server.url if server is not None and server.healthy() else None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> Service:
        log = logger.bind(op="serve", parts=self.supervisor.names, skipped=self.skipped)
        for name, why in self.skipped.items():
            level = "WARNING" if name == "consumer" and why != "off in settings" else "INFO"
            log.log(level, "part {} not running: {}", name, why)
        self._flusher = _start_metrics_flush(self.engine)
        self.supervisor.start()
        where = f" on http://{self.host}:{self.port}" if "api" in self.supervisor.names else ""
        log.info("docsync serve started{}", where)
        return self

    def request_stop(self) -> None:
        """Signal-safe: only sets a flag; `wait()` does the shutdown."""
        self._stop_requested.set()

    def stop(self) -> bool:
        """Stop intake, finish in-flight work, flush; True when everything stopped in time."""
        timeout = self.settings.serve.shutdown_timeout_s
        logger.bind(op="serve.stop", timeout_s=timeout).info("stopping: intake off, finishing")
        clean = self.supervisor.stop(timeout, order=STOP_ORDER)
        if self._flusher is not None:
            self._flusher.stop()  # the last read-metrics delta
        logger.bind(op="serve.stop", clean=clean, **_final_counts(self.engine)).info(
            "docsync serve stopped"
        )
        return clean

    def wait(self) -> int:
        """Block until a stop is requested, then stop. Returns the exit code."""
        while not self._stop_requested.wait(0.5):
            pass
        return 0 if self.stop() else 1

    def run(self) -> int:
        """The process: start, wait for SIGTERM / SIGINT, stop; the exit code."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.request_stop())
        self.start()
        return self.wait()


def _start_metrics_flush(engine: Engine) -> MetricsFlusher | None:
    """The read path's hit/miss flush into the cache table (not in a dry run)."""
    if engine.settings.dry_run:
        return None
    conf = engine.settings.streams
    return MetricsFlusher(
        engine.cache,
        engine.reader.stats,
        interval_s=conf.flush_interval_s,
        window_s=conf.metrics_window_s,
        ttl_days=conf.metrics_ttl_days,
    ).start()


def _final_counts(engine: Engine) -> dict[str, Any]:
    stats = engine.reader.stats
    return {"hits": stats.hits, "misses": stats.misses, "s3_fallbacks": stats.s3_fallbacks}
