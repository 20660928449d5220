"""A span per AWS call (seed 003 §7.1), from botocore hooks on every client (engine/aws.py).

Hand-written: the botocore instrumentation's ~740 calls per AWS call doubled tracing's cost.

The start time is taken at `before-parameter-build` and the span made whole at `after-call`
or `after-call-error` (`CallSpans`), under the span current then: the engine operation's, or
the HTTP request's. A call refused by an open breaker (`refused`) is an error span; one
stopped before its request exists (parameter validation, an exception at `before-call`) has
none. Attributes: `rpc.*`, `cloud.region`, `db.system`/`db.operation` (DynamoDB),
`messaging.system` (SQS), what the call touches (`docsync.table`, `.pk`, `.sk`, `.index`,
`.limit`, expressions, batch counts, `.bucket`, `.key`, `.queue`), then `http.status_code`,
`aws.request_id`, `retry_attempts` when retried and, on failure, `error.type` and an ERROR
status naming it. Never an item, a document, an object's or a message's body, nor a
service's error message. No X-Ray trace header is injected into the requests.
"""

from __future__ import annotations

import time
from typing import Any

from engine import awshooks, tracing

_SPAN = "docsync_span"
_SIMPLE = (str, int, float, bool)
_DYNAMODB_PARAMS = {
    "TableName": "docsync.table",
    "IndexName": "docsync.index",
    "Limit": "docsync.limit",
    "ConsistentRead": "docsync.consistent_read",
    "ConditionExpression": "docsync.condition",
    "UpdateExpression": "docsync.update_expr",
    "Segment": "docsync.segment",
    "TotalSegments": "docsync.total_segments",
}


_Started = tuple[int, str, Any, "CallSpans"]  # start (ns), operation, the call's arguments


class CallSpans:
    """The hooks of one client; while tracing is off each costs one `is None` test.

    The span is made whole at the end, with the start time taken at the start: built once
    with every attribute (`spansink.Sink`), rather than a span opened and then amended. Its
    parent is the span current at the start, which is still current at the end: the hooks
    run in the caller's thread."""

    def __init__(self, client: Any) -> None:
        self._service = client.meta.service_model.service_name
        self._service_id = str(client.meta.service_model.service_id)
        self._region = client.meta.region_name or ""
        self._opening: dict[str, tuple[str, Any, dict[str, Any]]] = {}

    def register(self, client: Any) -> None:
        """These hooks alone on `client` (engine/aws.py registers them with the metrics')."""
        awshooks.register(client, [self])

    def start(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if tracing.sink() is not None:
            context[_SPAN] = (time.time_ns(), model.name, params, self)

    def finish(
        self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any
    ) -> None:
        started: _Started | None = context.pop(_SPAN, None)
        if started is None:
            return
        meta = parsed.get("ResponseMetadata") or {}
        status = int(getattr(http_response, "status_code", 0) or meta.get("HTTPStatusCode", 0))
        attrs = self._attributes(started, context)
        attrs["http.status_code"] = status
        if meta.get("RequestId"):
            attrs["aws.request_id"] = meta["RequestId"]
        if meta.get("DryRun"):
            attrs["docsync.dry_run"] = True
        error = str((parsed.get("Error") or {}).get("Code") or status) if status >= 400 else None
        self._emit(started, attrs, error)

    def fail(self, exception: BaseException, context: dict[str, Any], **_: Any) -> None:
        started: _Started | None = context.pop(_SPAN, None)
        if started is not None:
            self._emit(started, self._attributes(started, context), type(exception).__name__)

    def _attributes(self, started: _Started, context: dict[str, Any]) -> dict[str, Any]:
        operation, params = started[1], started[2]
        fixed = self._opening.get(operation) or self._open(operation)
        attrs = request_attributes(self._service, operation, params, dict(fixed[2]))
        attempt = (context.get("retries") or {}).get("attempt")  # botocore's: 1 = the first
        if attempt and attempt > 1:
            attrs["retry_attempts"] = attempt - 1
        return attrs

    def _emit(self, started: _Started, attrs: dict[str, Any], error: str | None) -> None:
        sink = tracing.sink()
        if sink is None:  # switched off during the call
            return
        name, kind, _ = self._opening[started[1]]
        sink.close(sink.open(name, kind, attrs), started[0], error)

    def _open(self, operation: str) -> tuple[str, Any, dict[str, Any]]:
        """The span's name, kind and fixed attributes, once per operation."""
        from opentelemetry.trace import SpanKind

        fixed: dict[str, Any] = {
            "rpc.system": "aws-api",
            "rpc.service": self._service_id,
            "rpc.method": operation,
            "cloud.region": self._region,
        }
        if self._service == "dynamodb":
            fixed.update({"db.system": "dynamodb", "db.operation": operation})
        elif self._service == "sqs":
            fixed["messaging.system"] = "aws_sqs"
        opening = self._opening[operation] = (
            f"{self._service_id}.{operation}",
            SpanKind.CLIENT,
            fixed,
        )
        return opening


def refused(context: dict[str, Any], error_type: str) -> None:
    """The span of a call stopped before it was sent (an open circuit breaker)."""
    started: _Started | None = context.pop(_SPAN, None)
    if started is not None:
        spans = started[3]
        spans._emit(started, spans._attributes(started, context), error_type)


def request_attributes(
    service: str, operation: str, params: dict[str, Any], out: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What the call touches, from its own arguments: names and key values, never a body
    (added to `out` when given)."""
    out = {} if out is None else out
    if service == "dynamodb":
        _dynamodb(operation, params, out)
    elif service == "s3":
        for name, attr in (("Bucket", "docsync.bucket"), ("Key", "docsync.key")):
            if isinstance(params.get(name), str):
                out[attr] = params[name]
    elif service == "sqs":
        url = params.get("QueueUrl")
        if isinstance(url, str):
            out["docsync.queue"] = url.rstrip("/").rsplit("/", 1)[-1]
        if isinstance(params.get("Entries"), list):
            out["docsync.item_count"] = len(params["Entries"])
        if isinstance(params.get("MaxNumberOfMessages"), int):
            out["docsync.limit"] = params["MaxNumberOfMessages"]
    return out


def _dynamodb(operation: str, p: dict[str, Any], out: dict[str, Any]) -> None:
    for name, value in p.items():  # a call's few arguments, not the table of names
        attr = _DYNAMODB_PARAMS.get(name)
        if attr is not None and isinstance(value, _SIMPLE):
            out[attr] = value
    key = p.get("Key")
    if isinstance(key, dict):
        for i, (k, v) in enumerate(sorted(key.items())):
            out["docsync.pk" if i == 0 else "docsync.sk"] = f"{k}={_scalar(v)}"
    elif operation == "PutItem" and isinstance(p.get("Item"), dict):
        for name in ("pk", "sk"):  # the cache table's key names; the rest is the item's body
            if name in p["Item"]:
                out[f"docsync.{name}"] = f"{name}={_scalar(p['Item'][name])}"
    elif isinstance(p.get("KeyConditionExpression"), str):
        pk = _partition_of(p)
        if pk:
            out["docsync.pk"] = pk
    if isinstance(p.get("RequestItems"), dict):
        items = p["RequestItems"]
        out["docsync.tables"] = tuple(sorted(items))
        if operation == "BatchWriteItem":
            requests = [r for rs in items.values() for r in rs]
            out["docsync.put_count"] = sum("PutRequest" in r for r in requests)
            out["docsync.delete_count"] = sum("DeleteRequest" in r for r in requests)
        else:
            out["docsync.item_count"] = sum(len(v.get("Keys", [])) for v in items.values())
    if isinstance(p.get("TransactItems"), list):
        out["docsync.item_count"] = len(p["TransactItems"])
        named = {
            str(v["TableName"])
            for item in p["TransactItems"]
            for v in item.values()
            if isinstance(v, dict) and v.get("TableName")
        }
        out["docsync.tables"] = tuple(sorted(named))


def _partition_of(p: dict[str, Any]) -> str | None:
    """`name=value` of a query's partition key: the first `a = :v` of its key condition."""
    left, equal, right = str(p["KeyConditionExpression"]).partition("=")
    if not equal:
        return None
    name, placeholder = left.strip().split(" ")[-1], right.strip().split(" ")[0]
    name = (p.get("ExpressionAttributeNames") or {}).get(name, name)
    value = (p.get("ExpressionAttributeValues") or {}).get(placeholder)
    return None if value is None else f"{name}={_scalar(value)}"


def _scalar(value: Any) -> str:
    if isinstance(value, dict) and len(value) == 1:
        return str(next(iter(value.values())))
    return str(value)
