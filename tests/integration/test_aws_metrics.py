"""Per-operation AWS metrics (engine/awsmetrics.py) from known workloads on the moto server.

Counters are process-wide, so every assertion is on the difference a workload made.
moto 5.2.5 returns ConsumedCapacity (a fixed figure, total only, no per-index split) for
GetItem, PutItem, UpdateItem, DeleteItem, Query, Scan, BatchGetItem, BatchWriteItem and
TransactGetItems, and an empty list for TransactWriteItems.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.stub import Stubber

from engine.app import Engine
from engine.awsmetrics import capacity_by_kind, operation_kind
from engine.documents import parse_document
from engine.exceptions import NotFoundError, WriteConflictError
from engine.metrics import REGISTRY
from engine.sample import sample_documents
from engine.settings import Settings
from tests.integration.faults import Faults


class Delta:
    """Reads Prometheus samples before and after a workload."""

    def __init__(self) -> None:
        self.before = self._all()

    @staticmethod
    def _all() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        out = {}
        for metric in REGISTRY.collect():
            for s in metric.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out

    def __call__(self, name: str, **labels: str) -> float:
        """The change of every sample named `name` whose labels include `labels`."""
        after = self._all()
        total = 0.0
        for (sample, sample_labels), value in after.items():
            if sample == name and set(labels.items()) <= set(sample_labels):
                total += value - self.before.get((sample, sample_labels), 0.0)
        return total


def doc(i: int = 0, **fields: Any) -> Any:
    raw = sample_documents(i + 1, seed=5, now=datetime.now(UTC))[i]
    return parse_document({**raw, **fields})


def test_write_and_read_counts_by_operation_status_and_kind(engine: Engine) -> None:
    table, bucket = engine.settings.table, engine.settings.bucket
    d = doc()
    delta = Delta()
    engine.pipeline.put(d)
    engine.reader.get(d.type, d.id)
    with pytest.raises(WriteConflictError):
        engine.pipeline.put(doc(1), expected_version=99)

    ops = "docsync_aws_operations_total"
    # the pipeline: intent (UpdateItem), S3 put, commit (TransactWriteItems: the entry and its
    # customer-index entries); then a hit (GetItem)
    assert delta(ops, service="dynamodb", operation="UpdateItem", target=table, status="ok",
                 kind="write") == 1  # fmt: skip
    assert delta(ops, service="s3", operation="PutObject", target=bucket, kind="write") == 1
    assert (
        delta(ops, service="dynamodb", operation="TransactWriteItems", status="ok", kind="write")
        == 1
    )
    assert delta(ops, service="dynamodb", operation="GetItem", status="ok", kind="read") == 1
    # the version mismatch: the intent is refused, S3 is not written
    assert delta(ops, operation="UpdateItem", status="conditional_failed", kind="write") == 1
    assert delta("docsync_dynamodb_conditional_check_failures_total", table=table) == 1
    assert delta("docsync_aws_errors_total", error_type="ConditionalCheckFailedException") == 1
    assert delta(ops) == 5
    assert delta("docsync_aws_operation_seconds_count", service="dynamodb") == 4
    assert delta("docsync_aws_items_returned_count", operation="GetItem") == 0  # 0 or 1: kept out
    assert delta("docsync_aws_throttles_total") == 0


def test_capacity_per_table_and_kind_is_recorded_for_each_operation(engine: Engine) -> None:
    """A document without customers commits with one PutItem (moto reports no capacity for
    TransactWriteItems: an empty list)."""
    table = engine.settings.table
    d = doc(customer_codes=[])
    delta = Delta()
    engine.pipeline.put(d)
    engine.reader.get(d.type, d.id)
    with pytest.raises(NotFoundError):
        engine.reader.get(d.type, "absent")  # a miss: GetItem, then S3 says not found
    cap = "docsync_dynamodb_consumed_capacity_units_total"
    for op in ("UpdateItem", "PutItem"):
        assert delta(cap, table=table, operation=op, capacity="write", kind="write") > 0
    assert delta(cap, table=table, operation="GetItem", capacity="read", kind="read") > 0
    assert delta(cap, capacity="read", kind="write") == 0  # the pipeline reads nothing
    kinds = capacity_by_kind()
    assert kinds["write"]["write"] > 0 and kinds["read"]["read"] > 0


def test_query_items_returned_and_scanned(engine: Engine) -> None:
    docs = [parse_document(x) for x in sample_documents(6, seed=9, now=datetime.now(UTC))]
    for x in docs:
        engine.pipeline.put(x)
    delta = Delta()
    with operation_kind("reconcile"):
        items = list(engine.cache.scan_all())
    documents = [i for i in items if not str(i["pk"]).startswith("_docsync#")]
    assert len(documents) == 6  # and their customer-index entries
    assert delta("docsync_aws_items_returned_sum", operation="Scan") == len(items)
    assert delta("docsync_dynamodb_items_scanned_sum", operation="Scan") == len(items)
    assert delta("docsync_aws_operations_total", operation="Scan", kind="reconcile") == 1


def test_outermost_kind_wins() -> None:
    from engine.awsmetrics import current_kind

    assert current_kind() == "other"
    with operation_kind("reconcile"), operation_kind("read"):
        assert current_kind() == "reconcile"
    assert current_kind() == "other"


@pytest.mark.parametrize(
    ("retry_mode", "attempts"),
    [("standard", 10), ("legacy", 3)],  # tests cap attempts at 2
)
def test_throttles_are_counted_per_attempt_and_the_call_once(
    settings: Settings, retry_mode: str, attempts: int
) -> None:
    """The retry policy counts throttles; under `aws.retry_mode = legacy` (botocore's own
    retries) the metrics watch `needs-retry` themselves: the same figure either way."""
    update = {"aws.retry_mode": retry_mode, "aws.max_attempts": attempts}
    engine = Engine.build(settings.replace(update))
    faults = Faults()
    faults.attach(engine.clients.dynamodb)
    d = doc()
    engine.pipeline.put(d)
    faults.respond("dynamodb", "GetItem", "ProvisionedThroughputExceededException", times=2)
    delta = Delta()
    assert engine.reader.get(d.type, d.id).cache == "hit"  # the third attempt answered
    assert delta("docsync_aws_throttles_total", service="dynamodb", operation="GetItem") == 2
    if retry_mode == "standard":  # retries by class are the per-class policy's
        retried = delta("docsync_aws_retries_total", operation="GetItem", error_class="throttling")
        assert retried == 2
    assert delta("docsync_aws_operations_total", operation="GetItem", status="ok") == 1
    assert delta("docsync_aws_operations_total", operation="GetItem") == 1


def stubbed_dynamodb(consumed_capacity: str = "INDEXES") -> tuple[Any, Stubber]:
    """A DynamoDB client with the metrics hooks, answered by botocore's Stubber: AWS response
    shapes moto never sends (unprocessed batch items, capacity per index), through the same
    hooks and the same botocore path as any call."""
    import boto3

    from engine.awsmetrics import AwsMetrics

    client = boto3.client(
        "dynamodb", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    AwsMetrics(consumed_capacity).register(client)
    stub = Stubber(client)
    stub.activate()
    return client, stub


def test_batch_unprocessed_items_and_errors_by_type() -> None:
    """moto never leaves batch items unprocessed: AWS's response shape, through the hooks."""
    from botocore.exceptions import EndpointConnectionError

    client, stub = stubbed_dynamodb()
    table = "tbl-batch"
    left = [{"PutRequest": {"Item": {"pk": {"S": k}}}} for k in ("a", "b")]
    stub.add_response("batch_write_item", {"UnprocessedItems": {table: left}})
    delta = Delta()
    client.batch_write_item(
        RequestItems={table: [*left, {"PutRequest": {"Item": {"pk": {"S": "c"}}}}]}
    )
    assert delta("docsync_dynamodb_batch_unprocessed_items_total", table=table) == 2
    stub.deactivate()

    def unreachable(**_: Any) -> None:
        raise EndpointConnectionError(endpoint_url="injected://dynamodb")

    client.meta.events.register("before-send.dynamodb.GetItem", unreachable)
    with pytest.raises(EndpointConnectionError):
        client.get_item(TableName=table, Key={"pk": {"S": "a"}})
    errors = delta("docsync_aws_errors_total", error_type="EndpointConnectionError", target=table)
    assert errors == 1
    assert delta("docsync_aws_operations_total", target=table, status="connection_error") == 1


def test_dry_run_calls_are_counted_as_such_and_capacity_is_asked_for() -> None:
    from engine.aws import AwsClients
    from engine.settings import load_settings

    settings = load_settings(
        None, dry_run=True, endpoint_url="http://127.0.0.1:9", aws={"max_attempts": 1}
    )
    ddb = AwsClients(settings).dynamodb
    sent: list[dict[str, Any]] = []  # the request as serialized, before the guard answers
    ddb.meta.events.register_first(  # the guard's own key: first of its handlers
        "before-call.*.*", lambda params, **_: sent.append(json.loads(params["body"]))
    )
    delta = Delta()
    ddb.put_item(TableName="t", Item={"pk": {"S": "a"}})  # not sent: the dry-run guard
    assert delta("docsync_aws_operations_total", operation="PutItem", status="dry_run") == 1
    assert sent[0]["ReturnConsumedCapacity"] == "INDEXES"


def test_capacity_per_index_read_and_write_from_an_aws_shaped_response() -> None:
    """AWS with INDEXES returns the table's and each index's units (moto sends a total)."""
    client, stub = stubbed_dynamodb()
    stub.add_response(
        "put_item",
        {
            "ConsumedCapacity": {
                "TableName": "tbl",
                "CapacityUnits": 3.0,
                "Table": {"CapacityUnits": 1.0, "WriteCapacityUnits": 1.0},
                "GlobalSecondaryIndexes": {
                    "time-index": {"CapacityUnits": 1.0, "WriteCapacityUnits": 1.0},
                    "key-index": {"CapacityUnits": 1.0, "WriteCapacityUnits": 1.0},
                },
            }
        },
    )
    stub.add_response(
        "transact_get_items",
        {
            "Responses": [{"Item": {"pk": {"S": "a"}}}],
            "ConsumedCapacity": [{"TableName": "tbl", "CapacityUnits": 2.0}],
        },
    )
    delta = Delta()
    with operation_kind("reconcile"):
        client.put_item(TableName="tbl", Item={"pk": {"S": "a"}})
    cap = "docsync_dynamodb_consumed_capacity_units_total"
    assert delta(cap, table="tbl", capacity="write", kind="reconcile") == 3.0  # no double count
    assert delta(cap, table="tbl", index="", capacity="write") == 1.0
    assert delta(cap, table="tbl", index="time-index", capacity="write") == 1.0
    assert delta(cap, table="tbl", capacity="read") == 0
    with operation_kind("read"):
        client.transact_get_items(
            TransactItems=[{"Get": {"TableName": "tbl", "Key": {"pk": {"S": "a"}}}}]
        )
    assert delta(cap, table="tbl", operation="TransactGetItems", capacity="read") == 2.0


def test_lambda_publishes_the_figures_as_emf(monkeypatch: pytest.MonkeyPatch) -> None:
    from aws_lambda_powertools.metrics import Metrics

    from engine import awsmetrics

    monkeypatch.setattr(awsmetrics.EMF, "enabled", True)
    awsmetrics.EMF.take()
    client, stub = stubbed_dynamodb()
    answer = {"Items": [], "Count": 2, "ConsumedCapacity": {"TableName": "t", "CapacityUnits": 0.5}}
    stub.add_response("query", answer)
    with operation_kind("stream"):
        client.query(
            TableName="t",
            KeyConditionExpression="pk = :k",
            ExpressionAttributeValues={":k": {"S": "a"}},
        )
    target = Metrics(namespace="docsync-test", service="test")
    awsmetrics.to_emf(target)
    published = {name: m["Value"] for name, m in target.metric_set.items()}
    assert published == {"dynamodb_calls_stream": [1.0], "dynamodb_read_capacity_stream": [0.5]}
    assert awsmetrics.EMF.take() == {}  # a delta: flushed once


@pytest.mark.parametrize("setting", ["INDEXES", "TOTAL", "NONE"])
def test_capacity_is_asked_per_index_only_where_an_index_can_be_charged(setting: str) -> None:
    """INDEXES for writes and for queries or scans of an index; a read of the table alone
    asks TOTAL (the same units, a smaller answer); the setting TOTAL or NONE is kept."""
    client, stub = stubbed_dynamodb(setting)
    asked: dict[str, str | None] = {}

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        body = json.loads(params["body"])  # what is sent
        label = model.name + (" (index)" if "IndexName" in body else "")
        asked[label] = body.get("ReturnConsumedCapacity")

    client.meta.events.register_first("before-call.*.*", record)  # the Stubber's key, first
    key = {"pk": {"S": "a"}}
    calls: list[tuple[str, dict[str, Any]]] = [
        ("get_item", {"TableName": "tbl", "Key": key}),
        ("batch_get_item", {"RequestItems": {"tbl": {"Keys": [key]}}}),
        ("query", {"TableName": "tbl", "KeyConditionExpression": "pk = :p"}),
        ("query", {"TableName": "tbl", "IndexName": "idx", "KeyConditionExpression": "pk = :p"}),
        ("scan", {"TableName": "tbl", "IndexName": "idx"}),
        ("put_item", {"TableName": "tbl", "Item": key}),
        ("update_item", {"TableName": "tbl", "Key": key}),
        ("delete_item", {"TableName": "tbl", "Key": key}),
        ("transact_write_items", {"TransactItems": [{"Put": {"TableName": "tbl", "Item": key}}]}),
    ]
    for method, params in calls:
        stub.add_response(method, {})
        getattr(client, method)(**params)
    table_reads = ("GetItem", "BatchGetItem", "Query")
    writes = ("Query (index)", "Scan (index)", "PutItem", "UpdateItem", "DeleteItem")
    by_setting: dict[str, dict[str, str | None]] = {
        "INDEXES": {**dict.fromkeys(table_reads, "TOTAL"), **dict.fromkeys(writes, "INDEXES")},
        "TOTAL": dict.fromkeys(table_reads + writes, "TOTAL"),
        "NONE": dict.fromkeys(table_reads + writes, None),
    }
    expected = by_setting[setting]
    expected["TransactWriteItems"] = None if setting == "NONE" else setting
    assert asked == expected


def test_successes_recorded_from_many_threads_are_all_counted_when_read() -> None:
    """Successes are appended to a deque and folded into prometheus in batches: a read
    folds first, and no call is lost or counted twice while threads record and read at once
    (fold batches of 64; 8 threads × 203 calls leaves a part batch pending)."""
    import threading

    from engine import awsmetrics

    client, stub = stubbed_dynamodb()
    table, threads, calls = "tbl-fold", 8, 203
    for _ in range(threads * calls):
        stub.add_response(
            "get_item", {"ConsumedCapacity": {"TableName": table, "CapacityUnits": 0.5}}
        )
    delta = Delta()
    lock = threading.Lock()  # the Stubber's queue is not thread-safe; the fold is the point

    def work() -> None:
        for _ in range(calls):
            with lock:
                client.get_item(TableName=table, Key={"pk": {"S": "a"}})
            awsmetrics.capacity_by_kind()  # a reader folding while others record

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    total = threads * calls
    assert delta("docsync_aws_operations_total", operation="GetItem", target=table) == total
    assert delta("docsync_aws_operation_seconds_count", operation="GetItem", target=table) == total
    assert delta("docsync_dynamodb_consumed_capacity_units_total", table=table) == total * 0.5
    assert not awsmetrics._PENDING  # every recorded call folded by the reads
    stub.deactivate()
