"""Per-operation AWS metrics (seed 003 §7.2), from botocore hooks on every client.

Registered by `AwsClients`, so every DynamoDB, S3 and SQS call is measured whatever module
makes it: operations by service, operation, target (table, bucket, queue) and status;
durations; DynamoDB consumed capacity per table and index, read and write (asked of every
operation whose model accepts it, by engine/awscapacity.py); items returned and
scanned; throttles (every throttled attempt, retried or not); conditional-check failures;
unprocessed batch items; errors by type.

The operation kind (read, write, listener, reconcile, stream) comes from a context variable
that the entry points set with `operation_kind(...)`: the outermost one wins, so the reads a
reconcile makes are the reconcile's cost. Lambda publishes the same figures as EMF
(`to_emf`), from a delta kept beside the Prometheus counters.

A successful call's count, duration and table capacity reach prometheus in batches (`fold`):
every reader of those metrics folds first, so nothing read is behind. Throttles are counted
by the retry policy (`count_throttle`), which classifies every attempt anyway.
"""

from __future__ import annotations

import functools
import inspect
import os
import threading
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

from prometheus_client import Counter, Histogram
from prometheus_client.metrics_core import Metric

from engine import awscapacity, awshooks, awsspans, tracing
from engine.metrics import REGISTRY
from engine.readmetrics.buckets import AWS_CALL_LATENCY_S, ITEMS

if TYPE_CHECKING:
    from aws_lambda_powertools.metrics import Metrics

KINDS = ("read", "write", "listener", "reconcile", "stream", "other")
_KIND: ContextVar[str] = ContextVar("docsync_operation_kind", default="other")


class _FoldedCounter(Counter):
    """A Counter whose readers see the calls still pending (`fold` first)."""

    def collect(self) -> Iterable[Metric]:
        fold()
        return super().collect()


class _FoldedHistogram(Histogram):
    """A Histogram whose readers see the calls still pending (`fold` first), and which
    takes a fold's durations at once (`observe_many`)."""

    def collect(self) -> Iterable[Metric]:
        fold()
        return super().collect()

    def observe_many(self, durations: Sequence[float]) -> None:
        """`observe` of each of `durations`, with one update of the sum and one of each
        bucket touched: the same figures for a fraction of the locks. A duration goes to the
        first bucket whose bound is not below it, as `observe` places it. On a labelled
        child (`labels(...)`), as the fold calls it."""
        placed: dict[int, int] = {}
        for seconds in durations:
            i = bisect_left(self._upper_bounds, seconds)
            placed[i] = placed.get(i, 0) + 1
        for i, n in placed.items():
            self._buckets[i].inc(n)
        self._sum.inc(sum(durations))


OPERATIONS = _FoldedCounter(
    "docsync_aws_operations",
    "AWS calls by service, operation, target (table, bucket, queue), status and kind.",
    ["service", "operation", "target", "status", "kind"],
    registry=REGISTRY,
)
OPERATION_SECONDS = _FoldedHistogram(
    "docsync_aws_operation_seconds",
    "AWS call duration, retries included.",
    ["service", "operation", "target"],
    buckets=AWS_CALL_LATENCY_S,
    registry=REGISTRY,
)
CONSUMED_CAPACITY = _FoldedCounter(
    "docsync_dynamodb_consumed_capacity_units",
    "DynamoDB capacity units consumed, per table and index ('' = the table), read or write.",
    ["table", "index", "operation", "capacity", "kind"],
    registry=REGISTRY,
)
ITEMS_RETURNED = Histogram(
    "docsync_aws_items_returned",
    "Items per response (not GetItem): DynamoDB Count, SQS messages, S3 keys listed.",
    ["service", "operation", "target"],
    buckets=ITEMS,
    registry=REGISTRY,
)
ITEMS_SCANNED = Histogram(
    "docsync_dynamodb_items_scanned",
    "DynamoDB ScannedCount per Query/Scan page (items read before the filter).",
    ["table", "operation"],
    buckets=ITEMS,
    registry=REGISTRY,
)
THROTTLES = Counter(
    "docsync_aws_throttles",
    "Throttled attempts (retried or not).",
    ["service", "operation", "target"],
    registry=REGISTRY,
)
RETRIES = Counter(
    "docsync_aws_retries",
    "Retries made, by error class (the [retries] table).",
    ["service", "operation", "error_class"],
    registry=REGISTRY,
)
CONDITIONAL_FAILURES = Counter(
    "docsync_dynamodb_conditional_check_failures",
    "Conditional writes refused (ConditionalCheckFailed, or a transaction cancelled by one).",
    ["table", "operation"],
    registry=REGISTRY,
)
UNPROCESSED_ITEMS = Counter(
    "docsync_dynamodb_batch_unprocessed_items",
    "Items a batch call handed back unprocessed.",
    ["table", "operation"],
    registry=REGISTRY,
)
ERRORS = Counter(
    "docsync_aws_errors",
    "Failed AWS calls by error type (service error code or exception class).",
    ["service", "error_type", "target"],
    registry=REGISTRY,
)

_THROTTLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "SlowDown",
        "TooManyRequestsException",
        "RequestThrottled",
    }
)
_READ_OPS = ("Get", "BatchGet", "TransactGet", "Query", "Scan")


_children: dict[tuple[Any, tuple[str, ...]], Any] = {}


def _child(metric: Any, *labels: str) -> Any:
    """`metric.labels(...)`, remembered: half the hooks' cost was prometheus' label lookup."""
    key = (metric, labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


@contextmanager
def operation_kind(kind: str) -> Iterator[None]:
    """Attribute the AWS calls made inside to `kind`, unless an outer entry point already did."""
    if _KIND.get() != "other":
        yield
        return
    token = _KIND.set(kind)
    try:
        yield
    finally:
        _KIND.reset(token)


def current_kind() -> str:
    return _KIND.get()


class _Labels:
    """One (service, operation, target, kind)'s children, resolved once and shared by every
    call with those labels: the hooks run on every AWS call, and prometheus' `labels(...)`
    (a lock and a dict lookup per metric) was most of their cost."""

    __slots__ = (
        "calls_emf",
        "capacity",
        "kind",
        "ok",
        "operation",
        "seconds",
        "service",
        "side",
        "target",
    )

    def __init__(self, service: str, operation: str, target: str, kind: str) -> None:
        self.ok = OPERATIONS.labels(service, operation, target, "ok", kind)
        self.seconds = OPERATION_SECONDS.labels(service, operation, target)
        self.calls_emf = f"{service}_calls_{kind}"
        self.service, self.operation, self.target, self.kind = service, operation, target, kind
        self.side = "read" if operation.startswith(_READ_OPS) else "write"  # of a total
        self.capacity: dict[tuple[str, str, str], Any] = {}  # (table, index, side) → child

    def capacity_of(self, table: str, index: str, side: str) -> Any:
        key = (table, index, side)
        child = self.capacity.get(key)
        if child is None:
            child = self.capacity[key] = CONSUMED_CAPACITY.labels(
                table, index, self.operation, side, self.kind
            )
        return child


_labels: dict[tuple[str, str, str, str], _Labels] = {}
_labels_lock = threading.Lock()
# the operations whose answers carry counts of items (returned, scanned, unprocessed)
_COUNTED = frozenset(
    {
        "Query",
        "Scan",
        "BatchGetItem",
        "BatchWriteItem",
        "ReceiveMessage",
        "ListObjects",
        "ListObjectsV2",
    }
)
_CALL = "docsync_call"  # the context's key: (labels, start) of the call in flight
_Call = tuple[_Labels, float]


def _labels_of(service: str, operation: str, target: str, kind: str) -> _Labels:
    key = (service, operation, target, kind)
    found = _labels.get(key)
    if found is None:
        with _labels_lock:  # one per key, though two threads meet it at once
            found = _labels.setdefault(key, _Labels(service, operation, target, kind))
    return found


def _target(params: dict[str, Any]) -> str:
    for name in ("TableName", "Bucket", "QueueName"):
        if params.get(name):
            return str(params[name])
    if params.get("QueueUrl"):
        return str(params["QueueUrl"]).rstrip("/").rsplit("/", 1)[-1]
    if isinstance(params.get("RequestItems"), dict):
        return ",".join(sorted(params["RequestItems"]))
    if isinstance(params.get("TransactItems"), list):
        tables = {
            str(v.get("TableName"))
            for item in params["TransactItems"]
            for v in item.values()
            if isinstance(v, dict) and v.get("TableName")
        }
        return ",".join(sorted(tables))
    return ""


def _error_code(parsed: dict[str, Any]) -> str:
    return str((parsed.get("Error") or {}).get("Code") or "")


def _status(code: str, http_status: int) -> str:
    if http_status < 300:
        return "ok"
    if code == "ConditionalCheckFailedException":
        return "conditional_failed"
    if code in _THROTTLE_CODES:
        return "throttled"
    return "server_error" if http_status >= 500 else "client_error"


class _EmfDelta:
    """Counts since the last EMF flush, keyed by metric name; kept in Lambda only."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._lock = threading.Lock()
        self._values: dict[str, float] = {}

    def add(self, name: str, value: float) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._values[name] = self._values.get(name, 0.0) + value

    def take(self) -> dict[str, float]:
        with self._lock:
            out = dict(self._values)
            self._values.clear()
        return out


EMF = _EmfDelta(enabled=bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME")))


class AwsMetrics:
    """The per-call hooks (`start`, `finish`, `fail`), registered with the other per-call
    hooks by `engine.awshooks.register`; throttles are counted by the retry policy
    (`count_throttle`), or here with botocore's legacy retries (`register_throttles`)."""

    def __init__(self, consumed_capacity: str = "INDEXES") -> None:
        self.consumed_capacity = consumed_capacity  # asked by engine.awscapacity
        self._services: dict[Any, str] = {}  # operation model → its service's name

    def register(self, client: Any) -> None:
        """These hooks alone on `client`, throttles and the capacity asked included (a
        client of its own)."""
        awshooks.register(client, [self])
        self.register_throttles(client)
        awscapacity.ask(client, self.consumed_capacity)

    def register_throttles(self, client: Any) -> None:
        client.meta.events.register("needs-retry.*.*", self.needs_retry)

    # -- hooks ----------------------------------------------------------------------------

    def start(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        service = self._services.get(model)
        if service is None:  # botocore keeps one model per operation
            service = self._services[model] = model.service_model.service_name
        labels = _labels_of(service, model.name, _target(params), _KIND.get())
        context[_CALL] = (labels, time.perf_counter())

    def needs_retry(
        self,
        response: tuple[Any, dict[str, Any]] | None,
        request_dict: dict[str, Any],
        **_: Any,
    ) -> None:
        if response is None or "Error" not in response[1]:  # an answer, not a throttle
            return
        if _error_code(response[1]) in _THROTTLE_CODES:
            _throttled(request_dict.get("context", {}).get(_CALL))

    def finish(
        self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any
    ) -> None:
        call: _Call | None = context.get(_CALL)
        if call is None:
            return
        labels = call[0]
        http_status = int(getattr(http_response, "status_code", 200))
        if http_status < 300 and not (parsed.get("ResponseMetadata") or {}).get("DryRun"):
            seconds = time.perf_counter() - call[1]  # the common case: recorded, folded later
            if EMF.enabled:
                EMF.add(labels.calls_emf, 1)
            if labels.operation in _COUNTED:
                _results(labels, parsed)
            _PENDING.append((labels, seconds, _table_units(labels, parsed)))
            if len(_PENDING) >= FOLD_EVERY:
                fold()
            return
        code = _error_code(parsed)
        status = "dry_run" if http_status < 300 else _status(code, http_status)
        _finish(call, status, code)
        if status == "dry_run":
            _results(labels, parsed)
        elif labels.service == "dynamodb" and (
            code == "ConditionalCheckFailedException"
            or (
                code == "TransactionCanceledException"
                and any(
                    r.get("Code") == "ConditionalCheckFailed"
                    for r in parsed.get("CancellationReasons") or []
                )
            )
        ):
            _child(CONDITIONAL_FAILURES, labels.target, labels.operation).inc()
            EMF.add("dynamodb_conditional_check_failures", 1)
        _capacity(labels, parsed.get("ConsumedCapacity"))

    def fail(self, exception: BaseException, context: dict[str, Any], **_: Any) -> None:
        call: _Call | None = context.get(_CALL)
        if call is not None:
            _finish(call, "connection_error", type(exception).__name__)


# -- the calls' successes, folded in batches ----------------------------------------------

FOLD_EVERY = 64  # calls; the call that reaches it folds them (~0.1 ms on a cache-hit get)
_PENDING: deque[tuple[_Labels, float, float]] = deque()  # (labels, seconds, table units)
_FOLD_LOCK = threading.Lock()


def fold() -> None:
    """The successful calls recorded since the last fold, into the Prometheus figures.

    A success is recorded as one tuple appended to a deque (atomic: no lock), and its count,
    duration and table capacity reach prometheus here, in a batch: every `FOLD_EVERY`
    calls, and whenever one of those metrics is read (a scrape, `docsync stats`). Measured
    on a cache-hit get, prometheus' three updates per call (two locks each, on memory that
    is cold again by the next call) cost more than the rest of the hooks together."""
    if not _PENDING:
        return
    with _FOLD_LOCK:
        durations: dict[_Labels, list[float]] = {}
        units: dict[_Labels, float] = {}
        while _PENDING:
            try:
                labels, seconds, used = _PENDING.popleft()
            except IndexError:  # another thread's fold took the last one
                break
            durations.setdefault(labels, []).append(seconds)
            if used:
                units[labels] = units.get(labels, 0.0) + used
        for labels, series in durations.items():
            labels.ok.inc(len(series))
            labels.seconds.observe_many(series)
        for labels, used in units.items():
            labels.capacity_of(labels.target, "", labels.side).inc(used)


# -- figures ------------------------------------------------------------------------------


def _throttled(call: _Call | None) -> None:
    if call is not None:
        labels = call[0]
        _child(THROTTLES, labels.service, labels.operation, labels.target).inc()
        EMF.add(f"{labels.service}_throttles", 1)


def count_throttle(context: Any) -> None:
    """The retry policy's callback: an attempt throttled (retried or not)."""
    _throttled(context.request_context.get(_CALL))


def _finish(call: _Call, status: str, error_type: str) -> None:
    """A call that did not succeed, or a dry run's (a success is folded: `finish`)."""
    labels, seconds = call[0], time.perf_counter() - call[1]
    service, target = labels.service, labels.target
    _child(OPERATIONS, service, labels.operation, target, status, labels.kind).inc()
    labels.seconds.observe(seconds)
    if EMF.enabled:
        EMF.add(labels.calls_emf, 1)
    if status != "dry_run":
        _child(ERRORS, labels.service, error_type or status, labels.target).inc()
        EMF.add(f"{labels.service}_errors", 1)


def _results(labels: _Labels, parsed: dict[str, Any]) -> None:
    returned: float | None = None
    operation = labels.operation
    if "Count" in parsed:
        returned = parsed["Count"]
    elif operation == "BatchGetItem":
        returned = sum(len(v) for v in (parsed.get("Responses") or {}).values())
    elif operation == "ReceiveMessage":
        returned = len(parsed.get("Messages") or [])
    elif operation in ("ListObjectsV2", "ListObjects"):
        returned = parsed.get("KeyCount", len(parsed.get("Contents") or []))
    if returned is not None:
        _child(ITEMS_RETURNED, labels.service, operation, labels.target).observe(returned)
    if "ScannedCount" in parsed:
        _child(ITEMS_SCANNED, labels.target, operation).observe(parsed["ScannedCount"])
    unprocessed = parsed.get("UnprocessedItems") or parsed.get("UnprocessedKeys") or {}
    for table, pending in unprocessed.items():
        n = len(pending.get("Keys", [])) if isinstance(pending, dict) else len(pending)
        if n:
            _child(UNPROCESSED_ITEMS, table, operation).inc(n)
            EMF.add("dynamodb_unprocessed_items", n)


def _table_units(labels: _Labels, parsed: dict[str, Any]) -> float:
    """The units of a TOTAL answer for the call's own table ({TableName, CapacityUnits}: a
    cache-hit get's), left to `fold`; any other capacity is counted now."""
    consumed = parsed.get("ConsumedCapacity")
    if not consumed:
        return 0.0
    if (
        type(consumed) is dict
        and len(consumed) == 2
        and consumed.get("TableName") == labels.target
        and "CapacityUnits" in consumed
    ):
        value = float(consumed["CapacityUnits"] or 0)
        if value and EMF.enabled:
            EMF.add(f"dynamodb_{labels.side}_capacity_{labels.kind}", value)
        return value
    _capacity(labels, consumed)
    return 0.0


def _capacity(labels: _Labels, consumed: Any) -> None:
    if not consumed:
        return
    for entry in consumed if isinstance(consumed, list) else (consumed,):
        table = str(entry.get("TableName", labels.target))
        gsis, lsis = entry.get("GlobalSecondaryIndexes"), entry.get("LocalSecondaryIndexes")
        parts: Any = (("", entry.get("Table") or entry),)  # the common case: no index
        if gsis or lsis:
            parts = [("", entry["Table"])] if entry.get("Table") else []
            parts.extend({**(gsis or {}), **(lsis or {})}.items())
        for index, units in parts:
            for capacity, value in _split(units, labels.side):
                labels.capacity_of(table, index, capacity).inc(value)
                if EMF.enabled:
                    EMF.add(f"dynamodb_{capacity}_capacity_{labels.kind}", value)


def _split(units: dict[str, Any], default: str) -> list[tuple[str, float]]:
    """Read and write units; only a total (TOTAL mode, moto) counts as the operation's side."""
    read = float(units.get("ReadCapacityUnits") or 0)
    write = float(units.get("WriteCapacityUnits") or 0)
    if read or write:
        return [(name, v) for name, v in (("read", read), ("write", write)) if v]
    total = float(units.get("CapacityUnits") or 0)
    return [(default, total)] if total else []


def capacity_by_kind() -> dict[str, dict[str, float]]:
    """This process's consumed capacity so far: kind → {read, write}."""
    out: dict[str, dict[str, float]] = {}
    for metric in CONSUMED_CAPACITY.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                side = out.setdefault(sample.labels["kind"], {"read": 0.0, "write": 0.0})
                side[sample.labels["capacity"]] += sample.value
    return out


def to_emf(target: Metrics) -> None:
    """Add the AWS figures since the last flush to a Powertools Metrics (Lambda handlers)."""
    from aws_lambda_powertools.metrics import MetricUnit

    for name, value in sorted(EMF.take().items()):
        target.add_metric(name=name, unit=MetricUnit.Count, value=value)


def count_retry(context: Any, error_class: str) -> None:
    """The retry policy's callback: one retry decided for `error_class`."""
    model = context.operation_model
    service = model.service_model.service_name if model is not None else ""
    _child(RETRIES, service, model.name if model is not None else "", error_class).inc()


F = TypeVar("F", bound=Callable[..., Any])


def kind_of(kind: str, span: str | None = None, attrs: tuple[str, ...] = ()) -> Callable[[F], F]:
    """Decorator form of `operation_kind` for an entry point (one line at the caller); with
    `span`, the call is also a tracing span with the arguments named in `attrs`. Where each
    argument sits is read from the signature once, here, not bound per call."""

    def decorate(fn: F) -> F:
        read = tracing.argument_reader(inspect.signature(fn), attrs, {"docsync.kind": kind})

        def call(args: Any, kwargs: Any) -> Any:
            if span is None or tracing.sink() is None:
                return fn(*args, **kwargs)
            return tracing.run_in_span(span, read(args, kwargs), fn, args, kwargs)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if _KIND.get() != "other":  # an outer entry point owns the calls
                return call(args, kwargs)
            token = _KIND.set(kind)
            try:
                return call(args, kwargs)
            finally:
                _KIND.reset(token)

        return wrapper  # type: ignore[return-value]

    return decorate


def refused(context: dict[str, Any], status: str) -> None:
    """A call stopped before it was sent (an open circuit breaker)."""
    awsspans.refused(context, status)
    call: _Call | None = context.get(_CALL)
    if call is not None:
        labels = call[0]
        service, target = labels.service, labels.target
        _child(OPERATIONS, service, labels.operation, target, status, labels.kind).inc()
        _child(ERRORS, service, status, target).inc()
