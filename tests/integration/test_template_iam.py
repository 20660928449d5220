"""Least privilege, checked: each function's handler runs against the stack deployed into moto
with a recorder on its AWS clients; every call it makes (action and resource ARN) must be
allowed by that function's role policy as moto's IAM holds it (the template, resolved).
Actions in a policy that the recording never used are listed below with the reason; the lists
must be exact, so a policy that grows or a justification that goes stale fails here.

moto does not enforce IAM; this test is the enforcement. A real account still needs the
first deploy's smoke run (docs/deploy.md) for what the Lambda service itself calls.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from engine import keys
from engine.app import Engine
from engine.documents import parse_document
from engine.lambdas import listener, reconcile, reconcile_tasks, runtime
from engine.lambdas import runtime as lambda_runtime
from engine.lambdas import stream as lambda_handler
from engine.local_moto import EmbeddedMoto
from engine.sample import sample_documents
from engine.settings import Settings, StreamSettings, load_settings
from reconciler import tasks
from tests.integration.stack import Stack, deploy
from tests.integration.test_lambda_handlers import delete_event, put_event, sqs_event
from tests.integration.test_streams_consumer import stream_records
from tests.integration.test_streams_lambda import lambda_shape

ACCOUNT, REGION = "123456789012", "us-east-1"
LOGS = "the Lambda runtime writes the function's own log stream with its role"
SQS_SOURCE = "the SQS event source mapping polls the queue with the function's role"
NOT_FOUND = (
    "S3 answers HEAD/GET of a missing key with 404 only to a caller allowed s3:ListBucket"
    " (403 otherwise); moto answers 404 regardless, so the recording never needs it"
)

REINDEX = (
    "a customer-index repair (CacheStore.reindex) conditions its transaction on the document's"
    " version; the recorded runs plant no index drift"
)

# Policy actions the recording does not use, per role, and why they are still granted.
UNUSED: dict[str, dict[str, str]] = {
    "ListenerRole": {
        "s3:ListBucket": NOT_FOUND + ": a delete event's HEAD must see the 404",
        "logs:CreateLogStream": LOGS,
        "logs:PutLogEvents": LOGS,
        "sqs:ReceiveMessage": SQS_SOURCE,
        "sqs:DeleteMessage": SQS_SOURCE,
        "sqs:ChangeMessageVisibility": SQS_SOURCE,
        "sqs:GetQueueAttributes": SQS_SOURCE,
    },
    "StreamConsumerRole": {
        "logs:CreateLogStream": LOGS,
        "logs:PutLogEvents": LOGS,
        "dynamodb:DescribeStream": "the stream event source mapping reads the stream",
        "dynamodb:GetRecords": "the stream event source mapping reads the stream",
        "dynamodb:GetShardIterator": "the stream event source mapping reads the stream",
        "dynamodb:ListStreams": "the stream event source mapping reads the stream",
        "sqs:SendMessage": "the mapping's on-failure destination, sent by the Lambda service",
        "s3:ListBucket": NOT_FOUND + ": sink.exists() of an emission not stored",
    },
    "ReconcileRole": {
        "logs:CreateLogStream": LOGS,
        "logs:PutLogEvents": LOGS,
        "dynamodb:ConditionCheckItem": REINDEX,
    },
    "ShardWorkerRole": {
        "dynamodb:ConditionCheckItem": REINDEX,
        "logs:CreateLogStream": LOGS,
        "logs:PutLogEvents": LOGS,
        "sqs:ReceiveMessage": SQS_SOURCE,
        "sqs:DeleteMessage": SQS_SOURCE,
        "sqs:ChangeMessageVisibility": SQS_SOURCE,
        "sqs:GetQueueAttributes": SQS_SOURCE,
    },
}

_SQS_BATCH = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}
_S3_ACTIONS = {
    "ListObjectsV2": "s3:ListBucket",
    "ListObjects": "s3:ListBucket",
    "HeadBucket": "s3:ListBucket",
    "HeadObject": "s3:GetObject",
    "GetObject": "s3:GetObject",
    "PutObject": "s3:PutObject",
    "DeleteObject": "s3:DeleteObject",
    "DeleteObjects": "s3:DeleteObject",
}
_TRANSACT = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}


@dataclass(frozen=True)
class Access:
    """One IAM authorization a call needs: action, resource ARN, and the s3:prefix of a list."""

    action: str
    resource: str
    prefix: str | None = None


@dataclass
class Recorder:
    """A botocore `before-call` hook (the CallCounter seam of engine/aws.py) that keeps what
    each call needs authorized, read from the request botocore is about to send."""

    accesses: list[Access] = field(default_factory=list)

    def __call__(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        service, op = model.service_model.service_name, model.name
        if service == "s3":
            self.accesses.append(_s3(op, params))
        elif service == "dynamodb":
            self.accesses.extend(_dynamodb(op, json.loads(params["body"] or b"{}")))
        elif service == "sqs":
            body = json.loads(params["body"] or b"{}")
            name = body.get("QueueName") or str(body.get("QueueUrl", "")).rsplit("/", 1)[-1]
            action = f"sqs:{_SQS_BATCH.get(op, op)}"
            self.accesses.append(Access(action, f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"))
        else:
            self.accesses.append(Access(f"{service}:{op}", "*"))

    def actions(self) -> set[str]:
        return {a.action for a in self.accesses}


def _s3(op: str, params: dict[str, Any]) -> Access:
    url = urlsplit(params["url"])
    bucket, _, key = unquote(url.path).lstrip("/").partition("/")
    action = _S3_ACTIONS.get(op, f"s3:{op}")
    if action == "s3:ListBucket":
        prefix = parse_qs(url.query).get("prefix", [""])[0]
        return Access(action, f"arn:aws:s3:::{bucket}", prefix)
    return Access(action, f"arn:aws:s3:::{bucket}/{key}")


def _dynamodb(op: str, body: dict[str, Any]) -> list[Access]:
    def arn(table: str, index: str | None = None) -> str:
        base = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}"
        return f"{base}/index/{index}" if index else base

    if op == "TransactWriteItems":
        out = []
        for entry in body["TransactItems"]:
            ((kind, spec),) = entry.items()
            out.append(Access(_TRANSACT[kind], arn(spec["TableName"])))
        return out
    if op in {"BatchWriteItem", "BatchGetItem"}:  # one access per table named in the request
        return [Access(f"dynamodb:{op}", arn(table)) for table in body["RequestItems"]]
    return [Access(f"dynamodb:{op}", arn(body["TableName"], body.get("IndexName")))]


def _listify(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def allowed(policy: dict[str, Any], access: Access) -> bool:
    for st in policy["Statement"]:
        if st["Effect"] != "Allow":
            continue
        if not any(fnmatch.fnmatchcase(access.action, a) for a in _listify(st["Action"])):
            continue
        if not any(fnmatch.fnmatchcase(access.resource, r) for r in _listify(st["Resource"])):
            continue
        wanted = st.get("Condition", {}).get("StringLike", {}).get("s3:prefix")
        if wanted is not None and not any(
            fnmatch.fnmatchcase(access.prefix or "", w) for w in _listify(wanted)
        ):
            continue
        return True
    return False


def policy_actions(policy: dict[str, Any]) -> set[str]:
    return {a for st in policy["Statement"] for a in _listify(st["Action"])}


@pytest.fixture
def stack(moto_server: EmbeddedMoto, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    deployed = deploy(moto_server)
    for name, value in deployed.env().items():
        monkeypatch.setenv(name, value)
    yield deployed
    runtime.reset_engine()
    lambda_runtime.use_stream_runtime(None)


def policies(stack: Stack) -> dict[str, dict[str, Any]]:
    """Role logical id → its (only) inline policy, resolved, as moto's IAM holds it."""
    iam = stack.client("iam")
    out = {}
    for role in iam.list_roles()["Roles"]:
        logical = role["RoleName"].removeprefix("ds-stack-").rsplit("-", 1)[0]
        (name,) = iam.list_role_policies(RoleName=role["RoleName"])["PolicyNames"]
        doc = iam.get_role_policy(RoleName=role["RoleName"], PolicyName=name)["PolicyDocument"]
        out[logical] = doc if isinstance(doc, dict) else _parse_policy(doc)
    return out


def _parse_policy(text: str) -> dict[str, Any]:
    """moto's IAM returns a policy made by CloudFormation as the repr of a Python dict."""
    try:
        parsed: dict[str, Any] = json.loads(unquote(text))
    except json.JSONDecodeError:
        parsed = ast.literal_eval(text)
    return parsed


def recorded_engine() -> Recorder:
    """The handlers' per-container engine, built from the function's environment, with the
    recorder on every client it makes (the `stack` fixture forgets it afterwards)."""
    recorder = Recorder()
    runtime.use_engine(Engine.build(load_settings(), recorder))  # type: ignore[arg-type]
    return recorder


def setup_engine() -> Engine:
    """Plants data; its calls are not recorded."""
    return Engine.build(load_settings())


def sqs_records(stack: Stack, queue_output: str) -> dict[str, Any]:
    """Messages taken off a queue, in the Lambda SQS event shape."""
    sqs = stack.client("sqs")
    url = stack.outputs[queue_output]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    records: list[dict[str, Any]] = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages", []
        )
        if not messages:
            return {"Records": records}
        for m in messages:
            records.append(
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": {"ApproximateReceiveCount": "1"},
                    "messageAttributes": {},
                    "md5OfBody": m["MD5OfBody"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": arn,
                    "awsRegion": REGION,
                }
            )


def check(stack: Stack, role: str, recorder: Recorder) -> None:
    policy = policies(stack)[role]
    denied = sorted(
        {(a.action, a.resource, a.prefix) for a in recorder.accesses if not allowed(policy, a)}
    )
    assert not denied, f"{role} lacks: {denied}"
    assert recorder.accesses, "the scenario made no AWS call: it proves nothing"
    unused = policy_actions(policy) - recorder.actions()
    assert unused == set(UNUSED[role]), (
        f"{role}: unused {sorted(unused)} vs justified {sorted(UNUSED[role])}"
    )


def _docs(n: int, seed: int) -> list[Any]:
    return [parse_document(raw) for raw in sample_documents(n, seed=seed)]


def test_listener_role_covers_the_sqs_handler(stack: Stack) -> None:
    """Events on three documents, one per write path: new (a whole-image put), changed with
    the cache claiming a newer position (conditional update after an S3 re-check), deleted
    (a tombstone)."""
    seed = setup_engine()
    settings: Settings = seed.settings
    fresh, changed, gone = _docs(3, 21)
    key = {d.id: f"{settings.prefixes[d.type]}{d.id}.json" for d in (fresh, changed, gone)}
    seed.objects.put(key[fresh.id], fresh.body)
    seed.pipeline.put(changed)
    seed.objects.put(key[changed.id], changed.body + b" ")
    _claim_future_position(seed, changed.type, changed.id)
    seed.pipeline.put(gone)
    seed.objects.delete(key[gone.id])

    bodies = []
    for doc in (fresh, changed):
        event = put_event(settings, "x", doc.body)
        event["Records"][0]["s3"]["object"]["key"] = key[doc.id]
        bodies.append((str(uuid.uuid4()), json.dumps(event)))
    delete = delete_event(settings, "x")
    delete["Records"][0]["s3"]["object"]["key"] = key[gone.id]
    bodies.append((str(uuid.uuid4()), json.dumps(delete)))
    recorder = recorded_engine()
    assert listener.sqs_handler(sqs_event(*bodies), None) == {"batchItemFailures": []}
    assert seed.cache.get_item(fresh.type, fresh.id) is not None
    check(stack, "ListenerRole", recorder)


def _intent(seed: Engine, doc: Any) -> None:
    """Step 1 of the write pipeline, and the writer dies: a stuck intent for the stream's
    repair."""
    seed.cache.begin(
        doc.type,
        doc.id,
        tx=uuid.uuid4().hex,
        etag=doc.etag,
        op="put",
        stale_before=datetime.now(UTC),
        expected_version=None,
    )


def test_stream_consumer_role_covers_the_stream_handler(stack: Stack) -> None:
    """Committed writes (analytics, history), and three stuck intents the repair settles in
    the invocation, one per path: a writer that died after its S3 put (committed), one that
    died before it on a new document (removed) and on an existing one (restored)."""
    seed = setup_engine()
    *committed, after_put, new_before = _docs(6, 22)  # ids are unique within one corpus
    for doc in committed:
        seed.pipeline.put(doc)
    _intent(seed, after_put)
    seed.objects.put(f"{seed.settings.prefixes[after_put.type]}{after_put.id}.json", after_put.body)
    _intent(seed, new_before)
    existing = committed[0]
    _intent(seed, parse_document({**json.loads(existing.body), "title": "never reached S3"}))
    arn = stack.outputs["TableStreamArn"]
    event = {"Records": [lambda_shape(r, arn) for r in stream_records(seed)]}
    recorder = Recorder()
    settings = load_settings(None, inflight_grace_s=0.0)
    lambda_runtime.use_stream_runtime(
        lambda_runtime.build_stream_runtime(settings, StreamSettings(), recorder)  # type: ignore[arg-type]
    )
    assert lambda_handler.stream_handler(event, None) == {"batchItemFailures": []}
    repaired = seed.cache.get_item(after_put.type, after_put.id)
    assert repaired is not None and repaired.get("etag") == after_put.etag
    assert seed.cache.get_item(new_before.type, new_before.id) is None
    restored = seed.cache.get_item(existing.type, existing.id)
    assert restored is not None and restored.get("etag") == existing.etag
    assert "p_tx" not in restored
    check(stack, "StreamConsumerRole", recorder)


def _claim_future_position(seed: Engine, type_name: str, doc_id: str) -> None:
    """The entry claims an S3 position a day ahead: a fix must take the conditional-update
    path (never a whole-image put), whatever the clocks' seconds."""
    future_ms = int((datetime.now(UTC) + timedelta(days=1)).timestamp() * 1000)
    seed.clients.dynamodb.update_item(
        TableName=seed.settings.table,
        Key={"pk": {"S": keys.cache_pk(type_name, doc_id)}},
        UpdateExpression="SET s3_last_modified = :f",
        ExpressionAttributeValues={":f": {"N": str(future_ms)}},
    )


def _plant_drift(seed: Engine) -> None:
    """One of each class the repair fixes, each taking a fixed path: missing (S3 only: a
    whole-image put), stale (the cache claims a newer S3 position than S3 has, so only the
    conditional update after an S3 re-check may fix it), orphaned (cache only: a tombstone)."""
    missing, stale, orphan = _docs(3, 23)
    prefixes = seed.settings.prefixes
    seed.objects.put(f"{prefixes[missing.type]}{missing.id}.json", missing.body)
    seed.pipeline.put(stale)
    seed.objects.put(f"{prefixes[stale.type]}{stale.id}.json", stale.body + b" ")
    _claim_future_position(seed, stale.type, stale.id)
    seed.pipeline.put(orphan)
    seed.objects.delete(f"{prefixes[orphan.type]}{orphan.id}.json")


def test_reconcile_role_covers_the_scheduled_handler(stack: Stack) -> None:
    seed = setup_engine()
    _plant_drift(seed)
    recorder = recorded_engine()
    repaired = reconcile.handler({"mode": "repair"}, None)
    assert repaired["ran"] and sum(repaired["repaired"].values()) == 3, repaired
    assert reconcile.handler({"mode": "report"}, None)["remaining"] == 0
    assert reconcile.handler({"mode": "report", "enqueue": True}, None)["enqueued"]["tasks"] > 0
    check(stack, "ReconcileRole", recorder)


def test_shard_worker_role_covers_the_task_handler(stack: Stack) -> None:
    seed = setup_engine()
    _plant_drift(seed)
    tasks.enqueue(seed, "repair")
    event = sqs_records(stack, "WorkQueueUrl")
    assert event["Records"]
    recorder = recorded_engine()
    assert reconcile_tasks.sqs_handler(event, None) == {"batchItemFailures": []}
    check(stack, "ShardWorkerRole", recorder)


def test_the_check_catches_a_missing_permission(stack: Stack) -> None:
    """The matcher can say no: a write the listener's role does not grant."""
    policy = policies(stack)["ListenerRole"]
    bucket = stack.outputs["BucketName"]
    assert allowed(policy, Access("s3:GetObject", f"arn:aws:s3:::{bucket}/changes/a.json"))
    assert not allowed(policy, Access("s3:PutObject", f"arn:aws:s3:::{bucket}/changes/a.json"))
    assert not allowed(policy, Access("s3:GetObject", f"arn:aws:s3:::{bucket}/other/a.json"))
    stream_policy = policies(stack)["StreamConsumerRole"]
    assert allowed(
        stream_policy, Access("s3:PutObject", f"arn:aws:s3:::{bucket}/_docsync/streams/a")
    )
    assert not allowed(stream_policy, Access("s3:PutObject", f"arn:aws:s3:::{bucket}/changes/a"))


_: Callable[..., Any] = check  # keep the helper's name visible to readers of the module
