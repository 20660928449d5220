"""AWS-call spans (engine/awsspans.py) on the moto server: the seed's attributes for DynamoDB,
S3 and SQS calls, error spans (a refused condition, throttles retried and exhausted), their
parents (the engine operation, the HTTP request), and never a body in any attribute."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk.trace")

from botocore.exceptions import ClientError
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from engine.app import Engine
from engine.documents import Document, parse_document
from engine.reader import Query
from engine.sample import sample_documents
from engine.settings import Settings
from tests.integration import test_tracing
from tests.integration.faults import Faults
from tests.integration.test_tracing import by_name

spans = test_tracing.spans  # the fixture: the SDK's in-memory exporter behind tracing

THROTTLE = "ProvisionedThroughputExceededException"


def doc(seed: int = 3, **fields: Any) -> Document:
    raw = sample_documents(1, seed=seed, now=datetime.now(UTC))[0]
    return parse_document({**raw, **fields})


def only(exporter: InMemorySpanExporter, name: str) -> Any:
    found = by_name(exporter).get(name, [])
    assert len(found) == 1, (name, sorted(by_name(exporter)))
    return found[0]


def test_dynamodb_call_spans_carry_the_seed_attributes(
    engine: Engine, spans: InMemorySpanExporter
) -> None:
    d = doc()
    engine.pipeline.put(d)
    spans.clear()
    engine.reader.get(d.type, d.id)
    get_item = only(spans, "DynamoDB.GetItem")
    a = get_item.attributes
    assert get_item.kind is SpanKind.CLIENT and get_item.status.status_code is StatusCode.UNSET
    assert (a["rpc.system"], a["rpc.service"], a["rpc.method"]) == (
        "aws-api",
        "DynamoDB",
        "GetItem",
    )
    assert a["cloud.region"] == engine.clients.dynamodb.meta.region_name
    assert (a["db.system"], a["db.operation"]) == ("dynamodb", "GetItem")
    assert a["docsync.table"] == engine.settings.table
    assert a["docsync.pk"] == f"pk={d.type}#{d.id}" and a["docsync.consistent_read"] is True
    assert a["http.status_code"] == 200 and a["aws.request_id"]
    assert "retry_attempts" not in a and "error.type" not in a
    assert get_item.end_time >= get_item.start_time

    spans.clear()
    engine.reader.query(Query(types=(d.type,), limit=5))
    query = by_name(spans)["DynamoDB.Query"][0].attributes
    assert query["docsync.index"] and query["docsync.limit"]
    assert str(query["docsync.pk"]).split("=", 1)[1].startswith(d.type)


def test_s3_and_sqs_call_spans_name_the_bucket_key_and_queue(
    engine: Engine, spans: InMemorySpanExporter
) -> None:
    d = doc()
    engine.pipeline.put(d)
    put = by_name(spans)["S3.PutObject"][0].attributes
    assert put["rpc.service"] == "S3" and put["docsync.bucket"] == engine.settings.bucket
    assert str(put["docsync.key"]).endswith(d.id + ".json") or d.id in str(put["docsync.key"])
    assert put["http.status_code"] == 200 and put["aws.request_id"]
    assert "db.system" not in put

    sqs = engine.clients.sqs
    url = sqs.create_queue(QueueName="spans-test")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="hello")
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=3)
    send, receive = only(spans, "SQS.SendMessage"), only(spans, "SQS.ReceiveMessage")
    assert send.attributes["messaging.system"] == "aws_sqs"
    assert send.attributes["docsync.queue"] == "spans-test"
    assert (receive.attributes["rpc.method"], receive.attributes["docsync.limit"]) == (
        "ReceiveMessage",
        3,
    )


def test_a_refused_condition_is_an_error_span(engine: Engine, spans: InMemorySpanExporter) -> None:
    ddb, table = engine.clients.dynamodb, engine.settings.table
    item = {"pk": {"S": "spans#1"}}
    ddb.put_item(TableName=table, Item=item)
    with pytest.raises(ClientError):
        ddb.put_item(TableName=table, Item=item, ConditionExpression="attribute_not_exists(pk)")
    ok, refused = by_name(spans)["DynamoDB.PutItem"]
    assert ok.status.status_code is StatusCode.UNSET
    assert refused.status.status_code is StatusCode.ERROR
    assert refused.status.description == "ConditionalCheckFailedException"
    a = refused.attributes
    assert a["error.type"] == "ConditionalCheckFailedException" and a["http.status_code"] == 400
    assert a["docsync.condition"] == "attribute_not_exists(pk)" and a["docsync.pk"] == "pk=spans#1"
    assert "retry_attempts" not in a  # never retried (engine/retries.py)


def test_a_throttle_retried_is_one_span_with_its_retries(
    settings: Settings, spans: InMemorySpanExporter
) -> None:
    engine = Engine.build(settings.replace({"aws.max_attempts": 10}))
    faults = Faults()
    faults.attach(engine.clients.dynamodb)
    d = doc()
    engine.pipeline.put(d)
    faults.respond("dynamodb", "GetItem", THROTTLE, times=2)
    spans.clear()
    assert engine.reader.get(d.type, d.id).cache == "hit"
    get_item = only(spans, "DynamoDB.GetItem")
    assert get_item.status.status_code is StatusCode.UNSET
    assert get_item.attributes["retry_attempts"] == 2
    assert get_item.attributes["http.status_code"] == 200


def test_a_throttle_that_outlasts_the_retries_is_an_error_span_under_the_get(
    engine: Engine, spans: InMemorySpanExporter
) -> None:
    faults = Faults()
    faults.attach(engine.clients.dynamodb)
    d = doc()
    engine.pipeline.put(d)
    faults.respond("dynamodb", "GetItem", THROTTLE, times=engine.settings.aws.max_attempts)
    spans.clear()
    assert engine.reader.get(d.type, d.id).source == "s3"  # the cache unavailable: S3 answers
    get_item, get = only(spans, "DynamoDB.GetItem"), only(spans, "docsync.get")
    assert get_item.status.status_code is StatusCode.ERROR
    a = get_item.attributes
    assert (a["error.type"], a["http.status_code"]) == (THROTTLE, 400)
    assert a["retry_attempts"] == engine.settings.aws.max_attempts - 1
    assert get_item.parent.span_id == get.context.span_id
    assert only(spans, "S3.GetObject").parent.span_id == get.context.span_id


def test_aws_spans_parent_under_the_request_and_the_engine_operation(
    engine: Engine, spans: InMemorySpanExporter
) -> None:
    from tests.integration.test_api_routes import KEY, running_api

    d = doc()
    engine.pipeline.put(d)
    spans.clear()
    with running_api(engine) as api, api.client(KEY) as client:
        assert client.get(f"/v1/{d.type}/{d.id}").status_code == 200
    finished = spans.get_finished_spans()
    request = next(s for s in finished if s.kind is SpanKind.SERVER and "/v1/" in s.name)
    get, get_item = only(spans, "docsync.get"), only(spans, "DynamoDB.GetItem")
    assert get_item.parent.span_id == get.context.span_id
    chain = {s.context.span_id: s for s in finished}
    parent = chain.get(get.parent.span_id)
    while parent is not None and parent.context.span_id != request.context.span_id:
        parent = chain.get(parent.parent.span_id) if parent.parent else None
    assert parent is request  # the get sits inside the HTTP request's span
    assert get_item.context.trace_id == request.context.trace_id


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_no_attribute_ever_holds_a_body(
    engine: Engine, spans: InMemorySpanExporter, seed: int
) -> None:
    """Whatever the documents hold, no span of any call (writes, reads, queries, deletes,
    S3 and SQS bodies) carries a piece of it."""
    marker = f"SECRET-{seed}-body-content"
    d = doc(seed, title=f"{marker} title", note=marker)
    engine.pipeline.put(d)
    engine.reader.get(d.type, d.id)
    engine.reader.query(Query(types=(d.type,), limit=5))
    engine.pipeline.put(doc(seed, id=d.id, title=f"{marker} again", note=marker * 2))
    engine.pipeline.delete(d.type, d.id)
    ddb = engine.clients.dynamodb
    ddb.put_item(
        TableName=engine.settings.table,
        Item={"pk": {"S": f"x#{seed}"}, "body": {"S": marker}},
    )
    ddb.batch_write_item(
        RequestItems={
            engine.settings.table: [
                {"PutRequest": {"Item": {"pk": {"S": "y"}, "b": {"S": marker}}}}
            ]
        }
    )
    sqs = engine.clients.sqs
    url = sqs.create_queue(QueueName=f"spans-{seed}")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"note": marker}))
    sqs.receive_message(QueueUrl=url)
    finished = spans.get_finished_spans()
    assert {"docsync.put", "DynamoDB.PutItem", "S3.PutObject", "SQS.SendMessage"} <= {
        s.name for s in finished
    }
    for s in finished:
        texts = [str(v) for v in (s.attributes or {}).values()]
        texts += [str(v) for e in s.events for v in (e.attributes or {}).values()]
        texts.append(str(s.status.description))
        for text in texts:
            assert marker not in text, (s.name, text)
            assert d.body.decode() not in text


def test_a_call_refused_by_an_open_breaker_is_an_error_span(
    settings: Settings, spans: InMemorySpanExporter
) -> None:
    from engine.aws import AwsClients
    from engine.awsbreaker import BreakerOpenError

    clients = AwsClients(settings.replace({"aws.max_attempts": 1}))
    s3 = clients.s3
    faults = Faults()
    faults.attach(s3)
    faults.respond("s3", "HeadObject", "InternalError", 500, times=settings.breaker.fail_max)
    for _ in range(settings.breaker.fail_max):
        with pytest.raises(ClientError):
            s3.head_object(Bucket=settings.bucket, Key="k")
    spans.clear()
    with pytest.raises(BreakerOpenError):
        s3.head_object(Bucket=settings.bucket, Key="k")
    refused = only(spans, "S3.HeadObject")
    assert refused.status.status_code is StatusCode.ERROR
    assert refused.attributes["error.type"] == "breaker_open"
    assert refused.attributes["docsync.key"] == "k"


def test_a_connection_error_is_an_error_span_with_its_retries(
    settings: Settings, spans: InMemorySpanExporter
) -> None:
    from botocore.exceptions import EndpointConnectionError

    from engine.aws import AwsClients

    ddb = AwsClients(settings.replace({"aws.breakers": False})).dynamodb

    def unreachable(**_: Any) -> None:
        raise EndpointConnectionError(endpoint_url="injected://dynamodb")

    ddb.meta.events.register("before-send.dynamodb.GetItem", unreachable)
    with pytest.raises(EndpointConnectionError):
        ddb.get_item(TableName=settings.table, Key={"pk": {"S": "k"}})
    failed = only(spans, "DynamoDB.GetItem")
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["error.type"] == "EndpointConnectionError"
    assert failed.attributes["retry_attempts"] == settings.aws.max_attempts - 1
    assert "http.status_code" not in failed.attributes
