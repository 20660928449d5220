"""OpenTelemetry tracing (seed 003 §7.1): off unless the standard OTEL_* environment asks.

On when `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
`OTEL_TRACES_EXPORTER` (otlp | console) is set, and `OTEL_SDK_DISABLED` is not true. Then
every AWS call gets a span (engine/awsspans.py: botocore hooks with the seed's attributes —
table, key names, index, limit, expressions, batch sizes — never an item), every HTTP request
of `serve` (opentelemetry-instrumentation-fastapi), and every engine operation (put, get,
query, apply, reconcile shard, stream batch: `awsmetrics.kind_of` calls `run_in_span`).

Spans are built whole and handed to the span processors (engine/spansink.py: the SDK's
`Span` object costs more than the get it would trace); the provider's sampler, ids,
resource, limits and batch export stay the SDK's. The packages are the optional extra `tracing`
(`pip install docsync[tracing]`); without them this module imports cleanly and every span
is a no-op costing one `is None` test.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import inspect
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from loguru import logger

from engine.spansink import Opened, Sink

_SIMPLE = (str, int, float, bool)
_sink: Sink | None = None
_provider_used: Any = None
_configured = False


def wanted(env: Mapping[str, str] = os.environ) -> bool:
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "").lower() == "none":
        return False
    return any(
        env.get(name)
        for name in (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_TRACES_EXPORTER",
        )
    )


def enabled() -> bool:
    return _sink is not None


@functools.cache
def available() -> bool:
    """The `tracing` extra is installed: without it the AWS clients get no span hooks."""
    return importlib.util.find_spec("opentelemetry.sdk") is not None


def configure(processor: Any = None) -> bool:
    """Set tracing up once per process (a no-op unless asked). `processor` (an SDK span
    processor) replaces the OTLP or console export, for tests and benchmarks. True when
    spans are recorded."""
    global _sink, _provider_used, _configured  # noqa: PLW0603 - one provider per process
    if _configured and processor is None:
        return _sink is not None
    _configured = True
    if processor is None and not wanted():
        return False
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError:
        logger.bind(op="tracing").warning(
            "OTEL_* asks for tracing but the `tracing` extra is not installed: tracing off"
        )
        return False
    name = os.environ.get("OTEL_SERVICE_NAME", "docsync")
    provider = TracerProvider(resource=Resource.create({"service.name": name}))  # sampler: OTEL_*
    if processor is None:
        if os.environ.get("OTEL_TRACES_EXPORTER", "otlp").lower() == "console":
            exporter: Any = ConsoleSpanExporter()
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()  # endpoint, headers, timeout: from OTEL_*
        processor = BatchSpanProcessor(exporter)
    provider.add_span_processor(processor)  # the HTTP requests' spans take the SDK's path
    _sink, _provider_used = Sink(provider, (processor,)), provider
    logger.bind(op="tracing").info("tracing on")
    return True


def flush(timeout_ms: int = 5000) -> None:
    """Export the spans ended so far, before a Lambda returns: a frozen sandbox would hold
    them until its next invocation, or lose them when reclaimed (a no-op while off)."""
    if _provider_used is not None:
        _provider_used.force_flush(timeout_ms)


def shutdown() -> None:
    """Undo `configure` (tests, benchmarks): spans already ended are exported first and the
    processors stopped."""
    global _sink, _provider_used, _configured
    if _provider_used is not None:
        _provider_used.shutdown()
    _sink, _provider_used, _configured = None, None, False


def instrument_app(app: Any) -> None:
    """A span per HTTP request of the API (no-op while tracing is off)."""
    if _sink is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, tracer_provider=_provider_used)


def provider() -> Any:
    """The SDK TracerProvider while tracing is on (for instrumentations), else None."""
    return _provider_used


def sink() -> Sink | None:
    """Where spans go while tracing is on, else None (one test on the hot path)."""
    return _sink


@contextmanager
def span(name: str, attributes: Mapping[str, Any] | None = None) -> Iterator[Opened | None]:
    """An engine operation's span around a block (`run_in_span` for a call)."""
    if _sink is None:
        yield None
        return
    opened = _sink.open(name, _sink.internal, dict(attributes or {}))
    start = time.time_ns()
    token = _sink.attach(_sink.current(opened))
    try:
        yield opened
    except BaseException as exc:  # as `run_in_span`: no exception event
        _sink.detach(token)
        _sink.close(opened, start, type(exc).__name__)
        raise
    _sink.detach(token)
    _sink.close(opened, start)


def run_in_span(
    name: str, attributes: dict[str, Any], fn: Callable[..., Any], args: Any, kwargs: Any
) -> Any:
    """`fn(*args, **kwargs)` inside a span made current for it (the AWS calls' parent). A
    failed call's span is an ERROR naming the exception's type, with no exception event:
    its message may quote a document."""
    opened = _sink.open(name, _sink.internal, attributes)  # type: ignore[union-attr]
    start = time.time_ns()
    sink = opened.sink
    token = sink.attach(sink.current(opened))
    try:
        result = fn(*args, **kwargs)
    except BaseException as exc:
        sink.detach(token)
        sink.close(opened, start, type(exc).__name__)
        raise
    sink.detach(token)
    sink.close(opened, start)
    return result


def argument_reader(
    signature: inspect.Signature, names: tuple[str, ...], fixed: Mapping[str, Any] | None = None
) -> Callable[[Any, Any], dict[str, Any]]:
    """Span attributes from the named arguments of a call: plain values as they are, a
    document as its type and id, a dataclass as its plain fields. Never a body. Each
    argument's position comes from `signature` once, not from binding every call; an
    argument left to its default is not an attribute (as `bind_partial` had it). `fixed`:
    attributes every call carries."""
    params = list(signature.parameters)
    spots = [
        (name, f"docsync.{name}", params.index(name) if name in params else -1) for name in names
    ]
    base = dict(fixed or {})

    def read(args: Any, kwargs: Any) -> dict[str, Any]:
        out = dict(base)
        for name, attribute, position in spots:
            if name in kwargs:
                value = kwargs[name]
            elif 0 <= position < len(args):
                value = args[position]
            else:
                continue
            if type(value) is str:  # the common case (type names, ids), without a call
                out[attribute] = value
            elif value is not None:
                out.update(_flatten(attribute, value))
        return out

    return read


def _flatten(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, _SIMPLE):
        return {prefix: value}
    if isinstance(value, tuple | list) and all(isinstance(v, str) for v in value):
        return {prefix: tuple(value)}
    if isinstance(value, dict) and isinstance(value.get("Records"), list):
        return {f"{prefix}.records": len(value["Records"])}
    if hasattr(value, "type") and hasattr(value, "id"):  # a document: never its content
        return {f"{prefix}.type": str(value.type), f"{prefix}.id": str(value.id)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for field in dataclasses.fields(value):
            if field.name in ("body", "document"):
                continue
            inner = getattr(value, field.name)
            if isinstance(inner, _SIMPLE):
                out[f"{prefix}.{field.name}"] = inner
        return out
    return {}
