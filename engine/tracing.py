"""OpenTelemetry tracing (seed 003 §7.1): off unless the standard OTEL_* environment asks.

On when `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
`OTEL_TRACES_EXPORTER` (otlp | console) is set, and `OTEL_SDK_DISABLED` is not true. Then
every AWS call gets a span (opentelemetry-instrumentation-botocore, with the seed's
attributes added by a request hook: table, index, key, limit, condition and update
expressions, batch and transaction sizes — never an item), every HTTP request of `serve`
(opentelemetry-instrumentation-fastapi), and every engine operation (put, get, query,
apply, reconcile shard, stream batch: `awsmetrics.kind_of`, with `argument_reader`).

The packages are the optional extra `tracing` (`pip install docsync[tracing]`); without
them this module imports cleanly and every span is a no-op costing one `is None` test.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from loguru import logger

_tracer: Any = None
_provider_used: Any = None
_configured = False
_SIMPLE = (str, int, float, bool)


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
    return _tracer is not None


def configure(provider: Any = None) -> bool:
    """Set tracing up once per process (a no-op unless asked); `provider` (an SDK
    TracerProvider) replaces the OTLP one, for tests. True when spans are recorded."""
    global _tracer, _provider_used, _configured  # noqa: PLW0603 - one provider per process
    if _configured and provider is None:
        return _tracer is not None
    _configured = True
    if provider is None and not wanted():
        return False
    try:
        from opentelemetry.instrumentation.botocore import BotocoreInstrumentor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError:
        logger.bind(op="tracing").warning(
            "OTEL_* asks for tracing but the `tracing` extra is not installed: tracing off"
        )
        return False
    if provider is None:
        name = os.environ.get("OTEL_SERVICE_NAME", "docsync")
        provider = TracerProvider(resource=Resource.create({"service.name": name}))
        if os.environ.get("OTEL_TRACES_EXPORTER", "otlp").lower() == "console":
            exporter: Any = ConsoleSpanExporter()
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()  # endpoint, headers, timeout: from OTEL_*
        provider.add_span_processor(BatchSpanProcessor(exporter))
    instrumentor = BotocoreInstrumentor()  # type: ignore[no-untyped-call]
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    instrumentor.instrument(tracer_provider=provider, request_hook=_request_hook)
    _tracer, _provider_used = provider.get_tracer("docsync"), provider
    logger.bind(op="tracing").info("tracing on")
    return True


def shutdown() -> None:
    """Undo `configure` (tests)."""
    global _tracer, _provider_used, _configured
    if _tracer is not None:
        from opentelemetry.instrumentation.botocore import BotocoreInstrumentor

        BotocoreInstrumentor().uninstrument()  # type: ignore[no-untyped-call]
    _tracer, _provider_used, _configured = None, None, False


def instrument_app(app: Any) -> None:
    """A span per HTTP request of the API (no-op while tracing is off)."""
    if _tracer is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, tracer_provider=_provider_used)


@contextmanager
def span(name: str, attributes: Mapping[str, Any] | None = None) -> Iterator[Any]:
    if _tracer is None:
        yield None
        return
    with _tracer.start_as_current_span(name, attributes=dict(attributes or {})) as current:
        yield current


def tracer() -> Any:
    """The SDK tracer while tracing is on, else None (one test on the hot path)."""
    return _tracer


def argument_reader(
    signature: inspect.Signature, names: tuple[str, ...]
) -> Callable[[Any, Any], dict[str, Any]]:
    """Span attributes from the named arguments of a call: plain values as they are, a
    document as its type and id, a dataclass as its plain fields. Never a body. Each
    argument's position comes from `signature` once, not from binding every call; an
    argument left to its default is not an attribute (as `bind_partial` had it)."""
    params = list(signature.parameters)
    spots = [(name, params.index(name) if name in params else -1) for name in names]

    def read(args: Any, kwargs: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, position in spots:
            if name in kwargs:
                value = kwargs[name]
            elif 0 <= position < len(args):
                value = args[position]
            else:
                continue
            if value is not None:
                out.update(_flatten(f"docsync.{name}", value))
        return out

    return read


def _flatten(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, _SIMPLE):
        return {prefix: value}
    if isinstance(value, tuple | list) and all(isinstance(v, str) for v in value):
        return {prefix: list(value)}
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


def _request_hook(span: Any, service_name: str, operation_name: str, api_params: Any) -> None:
    """The seed's DynamoDB span attributes (table, pk, sk, index, limit, expressions, counts);
    key values name an item, they are not its content."""
    if not span or not span.is_recording() or not isinstance(api_params, dict):
        return
    p = api_params
    attrs: dict[str, Any] = {}
    for name, attr in (
        ("TableName", "table"),
        ("IndexName", "index"),
        ("Limit", "limit"),
        ("ConsistentRead", "consistent_read"),
        ("ConditionExpression", "condition"),
        ("UpdateExpression", "update_expr"),
        ("Segment", "segment"),
        ("TotalSegments", "total_segments"),
        ("Bucket", "bucket"),
        ("Key", "key"),
    ):
        value = p.get(name)
        if isinstance(value, _SIMPLE):
            attrs[f"docsync.{attr}"] = value
        elif name == "Key" and isinstance(value, dict):
            for i, (k, v) in enumerate(sorted(value.items())):
                attrs["docsync.pk" if i == 0 else "docsync.sk"] = f"{k}={_scalar(v)}"
    if isinstance(p.get("RequestItems"), dict):
        attrs["docsync.tables"] = sorted(p["RequestItems"])
        items = p["RequestItems"].values()
        if operation_name == "BatchWriteItem":
            requests = [r for rs in items for r in rs]
            attrs["docsync.put_count"] = sum("PutRequest" in r for r in requests)
            attrs["docsync.delete_count"] = sum("DeleteRequest" in r for r in requests)
        else:
            attrs["docsync.item_count"] = sum(len(v.get("Keys", [])) for v in items)
    if isinstance(p.get("TransactItems"), list):
        attrs["docsync.item_count"] = len(p["TransactItems"])
    span.set_attributes(attrs)


def _scalar(value: Any) -> str:
    if isinstance(value, dict) and len(value) == 1:
        return str(next(iter(value.values())))
    return str(value)
