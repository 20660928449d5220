"""engine/spansink.py's `Sink`: spans built whole and handed to the processors keep what the
SDK would have given them: parents and traces, the sampler from OTEL_TRACES_SAMPLER, the span
limits from OTEL_*, the resource, an ERROR status without the message, and an OTLP encoding."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk.trace")

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from engine import tracing

SAMPLER_ENV = ("OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG")
LIMIT_ENV = ("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT")


@pytest.fixture
def traced(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Configure with an in-memory exporter after the test has set its environment."""
    for name in SAMPLER_ENV + LIMIT_ENV + ("OTEL_SERVICE_NAME",):
        monkeypatch.delenv(name, raising=False)
    tracing.shutdown()
    exporter = InMemorySpanExporter()

    def start(**env: str) -> InMemorySpanExporter:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        assert tracing.configure(SimpleSpanProcessor(exporter))
        return exporter

    yield start
    tracing.shutdown()


def _call(name: str, attributes: dict[str, Any], fn: Any = lambda: None) -> Any:
    return tracing.run_in_span(name, attributes, fn, (), {})


def test_an_operation_parents_what_runs_inside_it(traced: Any) -> None:
    spans = traced(OTEL_SERVICE_NAME="docsync-test")
    with tracing.span("docsync.outer", {"docsync.kind": "read"}) as outer:
        assert outer is not None
        outer.set_attribute("docsync.found", 3)
        _call("docsync.inner", {"docsync.doc_id": "a"})
    _call("docsync.alone", {})
    inner, outer_span, alone = spans.get_finished_spans()
    assert inner.parent is not None and inner.parent.span_id == outer_span.context.span_id
    assert inner.context.trace_id == outer_span.context.trace_id
    assert outer_span.parent is None and alone.parent is None
    assert alone.context.trace_id != outer_span.context.trace_id  # a new trace per root
    assert dict(outer_span.attributes) == {"docsync.kind": "read", "docsync.found": 3}
    assert outer_span.kind is SpanKind.INTERNAL
    assert outer_span.resource.attributes["service.name"] == "docsync-test"
    assert outer_span.instrumentation_scope.name == "docsync"
    assert outer_span.start_time <= inner.start_time <= inner.end_time <= outer_span.end_time


def test_an_sdk_span_is_the_parent_of_an_engine_span(traced: Any) -> None:
    """The HTTP request's span (the FastAPI instrumentation, the SDK's path) parents the
    operation it serves."""
    spans = traced()
    with tracing.provider().get_tracer("http").start_as_current_span("GET /v1/x"):
        _call("docsync.get", {})
    get, request = spans.get_finished_spans()
    assert get.parent is not None and get.parent.span_id == request.context.span_id
    assert get.context.trace_id == request.context.trace_id


def test_a_failure_is_an_error_span_naming_the_type_only(traced: Any) -> None:
    spans = traced()

    def fail() -> None:
        raise KeyError("a message that may quote a document")

    with pytest.raises(KeyError):
        _call("docsync.get", {"docsync.doc_id": "a"}, fail)
    (span,) = spans.get_finished_spans()
    assert (span.status.status_code, span.status.description) == (StatusCode.ERROR, "KeyError")
    assert span.attributes["error.type"] == "KeyError" and not span.events
    assert "quote" not in str(dict(span.attributes))


@pytest.mark.parametrize(
    ("sampler", "arg", "recorded"),
    [
        ("always_off", None, 0),
        ("parentbased_always_off", None, 0),  # the root is dropped, so is its child
        ("traceidratio", "0", 0),
        ("parentbased_traceidratio", "1", 2),
        ("always_on", None, 2),
        ("parentbased_always_on", None, 2),
    ],
)
def test_the_sampler_from_the_environment_decides(
    traced: Any, sampler: str, arg: str | None, recorded: int
) -> None:
    env = {"OTEL_TRACES_SAMPLER": sampler} | ({"OTEL_TRACES_SAMPLER_ARG": arg} if arg else {})
    spans = traced(**env)
    with tracing.span("docsync.outer"):
        _call("docsync.inner", {})
    assert len(spans.get_finished_spans()) == recorded


def test_a_dropped_parent_still_carries_its_trace_to_children(traced: Any) -> None:
    """Unsampled: nothing exported, and the child is dropped because its parent was."""
    spans = traced(OTEL_TRACES_SAMPLER="parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG="0")
    with tracing.span("docsync.outer") as outer:
        assert outer is not None and outer.attributes is None
        assert not outer.context.trace_flags.sampled
    assert spans.get_finished_spans() == ()


def test_span_limits_from_the_environment_apply(traced: Any) -> None:
    spans = traced(OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT="4", OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT="2")
    _call("docsync.get", {"a": "abcdefgh", "b": ("xyzxyz", "q"), "c": 7})
    (span,) = spans.get_finished_spans()
    assert dict(span.attributes) == {"b": ("xyzx", "q"), "c": 7}  # the SDK keeps the newest
    assert span.dropped_attributes == 1


def test_the_spans_encode_for_otlp(traced: Any) -> None:
    """What the OTLP exporter sends: ids, parents, kinds, attributes and status survive."""
    spans = traced()
    outer_attributes = {"docsync.tables": ("a", "b"), "docsync.limit": 5}
    with tracing.span("docsync.outer", outer_attributes), pytest.raises(ValueError):
        _call("docsync.inner", {"docsync.kind": "read"}, lambda: int("x"))
    request = encode_spans(spans.get_finished_spans())
    (encoded_scope,) = request.resource_spans[0].scope_spans
    assert encoded_scope.scope.name == "docsync"
    inner, outer = encoded_scope.spans
    assert inner.parent_span_id == outer.span_id and inner.trace_id == outer.trace_id
    assert inner.status.code == 2 and inner.status.message == "ValueError"  # ERROR
    values = {a.key: a.value for a in outer.attributes}
    assert [v.string_value for v in values["docsync.tables"].array_value.values] == ["a", "b"]
    assert values["docsync.limit"].int_value == 5


def test_the_console_exporter_prints_them(traced: Any) -> None:
    """`OTEL_TRACES_EXPORTER=console`: the SDK's console exporter reads the spans as JSON."""
    import io
    import json

    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    out = io.StringIO()
    tracing.shutdown()
    assert tracing.configure(SimpleSpanProcessor(ConsoleSpanExporter(out=out)))
    with tracing.span("docsync.outer", {"docsync.tables": ("a",)}):
        _call("docsync.inner", {"docsync.kind": "read"})
    tracing.shutdown()
    printed = json.loads("[" + out.getvalue().replace("}\n{", "},\n{") + "]")
    assert [s["name"] for s in printed] == ["docsync.inner", "docsync.outer"]
    assert printed[0]["parent_id"] == printed[1]["context"]["span_id"]
    assert printed[1]["attributes"] == {"docsync.tables": ["a"]}


def test_a_lambda_exports_its_spans_before_it_returns(traced: Any) -> None:
    """The batch processor waits 5 s or 512 spans; a frozen Lambda sandbox would hold the
    spans. Every handler ends with `flush_alarm_metrics`, which flushes them."""
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from engine.lambdas import runtime

    exporter = InMemorySpanExporter()
    tracing.shutdown()
    assert tracing.configure(BatchSpanProcessor(exporter, schedule_delay_millis=600_000))
    runtime.reset_engine()
    _call("docsync.apply", {})
    assert exporter.get_finished_spans() == ()
    runtime.flush_alarm_metrics()
    assert [s.name for s in exporter.get_finished_spans()] == ["docsync.apply"]


def test_threads_keep_their_own_parents(traced: Any) -> None:
    """The current operation is per thread (contextvars): concurrent gets never adopt each
    other's spans."""
    import threading

    spans = traced()
    barrier = threading.Barrier(8)

    def work(i: int) -> None:
        with tracing.span(f"docsync.outer.{i}"):
            barrier.wait(timeout=10)  # every outer span is open at once
            _call(f"docsync.inner.{i}", {})

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    finished = {s.name: s for s in spans.get_finished_spans()}
    assert len(finished) == 16
    for i in range(8):
        inner, outer = finished[f"docsync.inner.{i}"], finished[f"docsync.outer.{i}"]
        assert inner.parent is not None and inner.parent.span_id == outer.context.span_id
    assert len({s.context.trace_id for s in finished.values()}) == 8
