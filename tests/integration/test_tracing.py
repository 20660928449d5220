"""Tracing (engine/tracing.py) with the SDK's in-memory exporter: engine spans with AWS call
spans inside them, the seed's attributes, never a document's content, HTTP request spans."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk.trace")

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from engine import tracing
from engine.app import Engine
from engine.documents import parse_document
from engine.reader import Query
from engine.sample import sample_documents


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    assert tracing.configure(SimpleSpanProcessor(exporter))
    yield exporter
    tracing.shutdown()


def by_name(exporter: InMemorySpanExporter) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for s in exporter.get_finished_spans():
        out.setdefault(s.name, []).append(s)
    return out


def test_engine_operations_wrap_their_aws_calls(
    engine: Engine, spans: InMemorySpanExporter
) -> None:
    d = parse_document(sample_documents(1, seed=2, now=datetime.now(UTC))[0])
    engine.pipeline.put(d)
    engine.reader.get(d.type, d.id)
    engine.reader.query(Query(types=(d.type,), limit=5))
    named = by_name(spans)
    put, get = named["docsync.put"][0], named["docsync.get"][0]
    assert put.attributes["docsync.doc.id"] == d.id and put.attributes["docsync.kind"] == "write"
    assert get.attributes["docsync.type_name"] == d.type
    assert named["docsync.query"][0].attributes["docsync.query.limit"] == 5
    aws = [s for s in spans.get_finished_spans() if s.name.startswith(("DynamoDB.", "S3."))]
    inside_put = [s.name for s in aws if s.parent and s.parent.span_id == put.context.span_id]
    assert sorted(inside_put) == [
        "DynamoDB.TransactWriteItems",  # the commit, with its customer-index entries
        "DynamoDB.UpdateItem",
        "S3.PutObject",
    ]
    get_item = named["DynamoDB.GetItem"][0]
    assert get_item.parent.span_id == get.context.span_id
    assert get_item.attributes["docsync.table"] == engine.settings.table
    assert get_item.attributes["docsync.pk"] == f"pk={d.type}#{d.id}"
    assert get_item.attributes["docsync.consistent_read"] is True
    assert "docsync.update_expr" in named["DynamoDB.UpdateItem"][0].attributes
    assert named["DynamoDB.Query"][0].attributes["docsync.index"]
    for s in spans.get_finished_spans():  # never the document's content
        for value in (s.attributes or {}).values():
            assert d.title not in str(value), (s.name, value)
            assert d.body.decode() not in str(value)


def test_http_requests_get_spans(engine: Engine, spans: InMemorySpanExporter) -> None:
    from tests.integration.test_api_routes import KEY, running_api

    d = parse_document(sample_documents(1, seed=2, now=datetime.now(UTC))[0])
    engine.pipeline.put(d)
    with running_api(engine) as api, api.client(KEY) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get(f"/v1/{d.type}/{d.id}").status_code == 200
    named = by_name(spans)
    assert "GET /healthz" in named
    route = next(n for n in named if n.startswith("GET /v1/"))
    request = named[route][0]
    get = named["docsync.get"][0]
    assert get.parent is not None and get.context.trace_id == request.context.trace_id


def test_off_unless_the_environment_asks() -> None:
    assert not tracing.wanted({})
    assert tracing.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert tracing.wanted({"OTEL_TRACES_EXPORTER": "console"})
    assert not tracing.wanted({"OTEL_TRACES_EXPORTER": "none"})
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}
    assert not tracing.wanted(env)
    assert not tracing.enabled()
    with tracing.span("x") as current:
        assert current is None


def test_reconcile_shards_are_spans_inside_the_run(
    engine: Engine, spans: InMemorySpanExporter
) -> None:
    from reconciler.run import Reconciler

    d = parse_document(sample_documents(1, seed=2, now=datetime.now(UTC))[0])
    engine.pipeline.put(d)
    Reconciler(engine).run()
    named = by_name(spans)
    run = named["docsync.reconcile"][0]
    shards = named["docsync.reconcile.shard"]
    assert len(shards) == engine.settings.reconcile.shards_per_type * 2
    assert all(s.parent is not None and s.parent.span_id == run.context.span_id for s in shards)
    prefixes = {s.attributes["docsync.shard.prefix"] for s in shards}
    assert prefixes == set(engine.settings.prefixes.values())


def test_a_failed_operation_is_an_error_span_without_the_message(
    engine: Engine, spans: InMemorySpanExporter
) -> None:
    from engine.exceptions import NotFoundError

    d = parse_document(sample_documents(1, seed=2, now=datetime.now(UTC))[0])
    with pytest.raises(NotFoundError):
        engine.reader.get(d.type, "missing-1")
    named = by_name(spans)
    get, read = named["docsync.get"][0], named["S3.GetObject"][0]
    assert read.parent is not None and read.parent.span_id == get.context.span_id
    assert (get.status.status_code.name, get.status.description) == ("ERROR", "NotFoundError")
    assert get.attributes["error.type"] == "NotFoundError" and not get.events
    assert read.status.status_code.name == "ERROR" and read.attributes["http.status_code"] == 404
    with pytest.raises(ValueError), tracing.span("docsync.x") as outer:
        raise ValueError("a message that may quote a document")
    assert outer is not None and not by_name(spans)["docsync.x"][0].events
