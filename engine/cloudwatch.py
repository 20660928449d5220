"""The figures the CloudWatch alarms watch (docs/metrics.md), from every mode.

One process-wide buffer: the code that produces a figure calls `record(name, value)` (the
reader, the stream drivers, the reconciler, the circuit breaker); whoever owns the process
calls `flush(settings)`: a Lambda handler at the end of each invocation, `docsync serve` and
the other commands every `metrics_flush_s` and at exit (`PeriodicFlush`). A flush writes EMF
lines (`metrics_sink = "emf"`, the CloudWatch agent / Container Insights / Lambda turn them into
metrics) or calls PutMetricData (`"putmetricdata"`); `"off"` drops the figures.

Every figure goes out under `metrics_namespace` with exactly one dimension, Environment =
`metrics_environment`, as the template's alarms expect. The EMF is written here rather than with
Powertools Metrics: Powertools shares one metric set among all its instances in a process (the
handlers' own `service`-dimensioned metrics would mix in) and is built for one flush per Lambda
invocation, not a thread-safe periodic flush in a server.

Counts are summed per flush (one value); latencies and ages keep every sample (so CloudWatch
computes p99 and Maximum), at most 100 per EMF document and 150 per PutMetricData datum; past
`SAMPLES_MAX` in one interval a uniform random sample of them (reservoir), so a process that
never flushes (a library user) holds bounded memory.
A dry run emits nothing: it changed nothing, and its figures would mislead the alarms.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any, Literal, Protocol

from loguru import logger

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch.type_defs import MetricDatumTypeDef

    from engine.aws import AwsClients
    from engine.settings import Settings

Unit = Literal["Count", "Milliseconds"]
Kind = Literal["sum", "max", "samples"]

# name → (unit, how a flush aggregates what was recorded since the last one)
CONTRACT: dict[str, tuple[Unit, Kind]] = {
    "CacheHits": ("Count", "sum"),
    "CacheMisses": ("Count", "sum"),
    "QueryLatency": ("Milliseconds", "samples"),
    "StreamIteratorAge": ("Milliseconds", "samples"),
    "DriftFound": ("Count", "sum"),
    "DriftRepaired": ("Count", "sum"),
    "ReconcileRuns": ("Count", "sum"),
    "CircuitBreakerOpen": ("Count", "max"),
}
DIMENSION = "Environment"
EMF_VALUES_MAX = 100  # values of one metric in one EMF document
PUT_VALUES_MAX = 150  # values of one PutMetricData datum
SAMPLES_MAX = 10_000  # samples of one metric kept per flush interval


class Watched(Protocol):
    """Something with a state that counts as open (a circuit breaker)."""

    @property
    def state(self) -> str: ...


class Buffer:
    """Thread-safe figures recorded since the last flush."""

    def __init__(self, samples_max: int = SAMPLES_MAX) -> None:
        self._lock = threading.Lock()
        self._samples: dict[str, list[float]] = {}
        self._seen: dict[str, int] = {}
        self._watched: weakref.WeakSet[Any] = weakref.WeakSet()
        self._samples_max = samples_max
        self._random = random.Random()

    def record(self, name: str, value: float) -> None:
        if name not in CONTRACT:
            raise ValueError(f"{name} is not a metric of the contract: {sorted(CONTRACT)}")
        kind, value = CONTRACT[name][1], float(value)
        with self._lock:
            kept = self._samples.setdefault(name, [])
            if kind == "sum":
                kept[:] = [(kept[0] if kept else 0.0) + value]
            elif kind == "max":
                kept[:] = [max(kept[0], value) if kept else value]
            else:
                seen = self._seen[name] = self._seen.get(name, 0) + 1
                if len(kept) < self._samples_max:
                    kept.append(value)
                else:  # reservoir sampling: every sample kept with the same chance
                    slot = self._random.randrange(seen)
                    if slot < self._samples_max:
                        kept[slot] = value

    def watch(self, breaker: Watched) -> None:
        """While `breaker` is open, every flush reports CircuitBreakerOpen = 1."""
        with self._lock:
            self._watched.add(breaker)

    def take(self) -> dict[str, list[float]]:
        """What to emit now (name → one value, or the samples), and an empty buffer."""
        with self._lock:
            taken, self._samples, self._seen = self._samples, {}, {}
            watched = list(self._watched)
        if any(b.state != "closed" for b in watched):
            taken["CircuitBreakerOpen"] = [1.0]
        return {name: taken[name] for name in sorted(taken)}

    def reset(self) -> None:
        """Forget everything, watched breakers too (tests)."""
        with self._lock:
            self._samples, self._seen = {}, {}
            self._watched = weakref.WeakSet()


BUFFER = Buffer()


def record(name: str, value: float) -> None:
    """Add one figure to the process's buffer (cheap: a lock and an append)."""
    BUFFER.record(name, value)


def watch(breaker: Watched) -> None:
    BUFFER.watch(breaker)


def _chunks(values: list[float], size: int) -> Iterator[list[float]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def emf_documents(
    figures: dict[str, list[float]], namespace: str, environment: str, timestamp_ms: int
) -> list[dict[str, Any]]:
    """EMF documents (the CloudWatch embedded metric format) for `figures`: one, or more when
    a metric has more than 100 values. Pure, for tests and for any other writer."""
    docs: list[dict[str, Any]] = []
    per_metric = {name: list(_chunks(values, EMF_VALUES_MAX)) for name, values in figures.items()}
    for index in range(max((len(c) for c in per_metric.values()), default=0)):
        doc: dict[str, Any] = {DIMENSION: environment}
        metrics = []
        for name, chunks in per_metric.items():
            if index < len(chunks):
                chunk = chunks[index]
                doc[name] = chunk[0] if len(chunk) == 1 else chunk
                metrics.append({"Name": name, "Unit": CONTRACT[name][0]})
        doc["_aws"] = {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [
                {"Namespace": namespace, "Dimensions": [[DIMENSION]], "Metrics": metrics}
            ],
        }
        docs.append(doc)
    return docs


def metric_data(figures: dict[str, list[float]], environment: str) -> list[MetricDatumTypeDef]:
    """PutMetricData's MetricData for `figures` (same names, units and dimension as EMF)."""
    data: list[MetricDatumTypeDef] = []
    for name, values in figures.items():
        for chunk in _chunks(values, PUT_VALUES_MAX):
            datum: MetricDatumTypeDef = {
                "MetricName": name,
                "Dimensions": [{"Name": DIMENSION, "Value": environment}],
                "Unit": CONTRACT[name][0],
            }
            if len(chunk) == 1:
                datum["Value"] = chunk[0]
            else:
                datum["Values"] = chunk
            data.append(datum)
    return data


def flush(
    settings: Settings,
    clients: AwsClients | None = None,
    stream: IO[str] | None = None,
    buffer: Buffer = BUFFER,
) -> dict[str, list[float]]:
    """Emit what was recorded since the last flush; returns it. EMF goes to `stream` (default
    stdout) unless it is a terminal (no agent reads a terminal; a person would see JSON).
    Never raises: losing one interval's figures must not stop a handler or a server."""
    figures = buffer.take()
    sink = settings.metrics.sink
    if not figures or sink == "off" or settings.dry_run:
        return figures
    try:
        if sink == "emf":
            out = stream or sys.stdout
            if not out.isatty():
                stamp = int(time.time() * 1000)
                for doc in emf_documents(
                    figures, settings.metrics.namespace, settings.metrics.environment, stamp
                ):
                    out.write(json.dumps(doc, separators=(",", ":")) + "\n")
                out.flush()
        else:
            _put(settings, clients, figures)
    except Exception as exc:  # metrics are best effort by design
        logger.bind(op="cloudwatch.flush", sink=sink).warning("metrics not sent: {}", exc)
    return figures


def _put(settings: Settings, clients: AwsClients | None, figures: dict[str, list[float]]) -> None:
    from engine.store.metrics import MetricsStore  # the breaker imports this module: below it

    if clients is None:
        from engine.aws import AwsClients

        clients = AwsClients(settings)
    data = metric_data(figures, settings.metrics.environment)
    MetricsStore(clients.cloudwatch).put(settings.metrics.namespace, data)


class PeriodicFlush:
    """A daemon thread that flushes every `metrics_flush_s`, and once more on `stop()`."""

    def __init__(
        self, settings: Settings, clients: AwsClients | None = None, stream: IO[str] | None = None
    ) -> None:
        self.settings, self.clients, self.stream = settings, clients, stream
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cloudwatch-flush", daemon=True)

    def start(self) -> PeriodicFlush:
        if self.settings.metrics.sink == "putmetricdata" and self.clients is None:
            from engine.aws import AwsClients

            self.clients = AwsClients(self.settings)  # built once, not per flush
        if self.settings.metrics.sink != "off":
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.metrics.flush_s):
            flush(self.settings, self.clients, self.stream)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        flush(self.settings, self.clients, self.stream)
