"""The AWS side of `docsync doctor`: describe what is deployed, and probe each permission.

Every call goes through the client factory and is translated here: a missing resource is a
`NotFoundError`, anything else (AccessDenied included) a `StoreError` naming the call.

The permission probes change nothing, by construction:
- reads ask for keys that cannot exist (`_docsync#doctor-probe`, `_docsync/doctor/probe`);
- writes are conditional and cannot succeed: an UpdateItem whose condition is
  `attribute_exists(k) AND attribute_not_exists(k)`, and a PutObject with `If-Match` on an
  ETag no object has. AWS checks permissions before conditions, so the expected refusal
  (ConditionalCheckFailed, NoSuchKey / PreconditionFailed) proves the write is allowed.
In a dry run the write probes are not sent (the guard in engine/aws.py) and say so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    NoCredentialsError,
)

from engine.aws import AwsClients
from engine.exceptions import DocsyncError, NotFoundError, StoreError
from engine.infra import cache_table_spec, leases_table_spec, wanted_notifications
from engine.keys import TIME_INDEX
from engine.ops import doctor, wiring
from engine.ops.doctor import Check
from engine.settings import Settings
from engine.store.errors import error_code
from engine.store.queue import QueueRef, QueueStore

Outcome = Literal["ok", "dry-run", "succeeded"]
MISSING = {"ResourceNotFoundException", "NoSuchBucket", "404", "NotFound"}
IMPOSSIBLE = "attribute_exists(#k) AND attribute_not_exists(#k)"
NO_SUCH_ETAG = '"00000000000000000000000000000000"'


class Environment:
    """Describe calls and permission probes for one settings' resources."""

    def __init__(self, settings: Settings, clients: AwsClients) -> None:
        self.s = settings
        self.clients = clients
        self.probe_pk = f"{settings.reserved_prefix.rstrip('/')}#doctor-probe"
        self.probe_key = f"{settings.reserved_prefix}doctor/probe"

    def _call(self, what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        except ClientError as exc:
            if error_code(exc) in MISSING:
                raise NotFoundError(f"{what}: not found") from exc
            message = exc.response.get("Error", {}).get("Message", "")
            raise StoreError(f"{what}: {error_code(exc)} {message}".strip()) from exc
        except BotoCoreError as exc:
            raise StoreError(f"{what}: {exc}") from exc

    def _refused(self, what: str, expected: set[str], fn: Callable[..., Any], **kw: Any) -> Outcome:
        """A call that must be refused with one of `expected` (proof that it was allowed)."""
        try:
            response = fn(**kw)
        except ClientError as exc:
            if error_code(exc) in expected:
                return "ok"
            message = exc.response.get("Error", {}).get("Message", "")
            raise StoreError(f"{what}: {error_code(exc)} {message}".strip()) from exc
        except BotoCoreError as exc:
            raise StoreError(f"{what}: {exc}") from exc
        return "dry-run" if response.get("ResponseMetadata", {}).get("DryRun") else "succeeded"

    # -- describe ------------------------------------------------------------------------------

    def identity(self) -> str:
        """The principal docsync runs as: the one every `allow …` fix is about."""
        sts = self.clients.client("sts")
        return str(self._call("sts:GetCallerIdentity", sts.get_caller_identity)["Arn"])

    def head_bucket(self) -> None:
        self._call(f"bucket {self.s.bucket}", self.clients.s3.head_bucket, Bucket=self.s.bucket)

    def notifications(self) -> dict[str, Any]:
        return dict(
            self._call(
                "GetBucketNotificationConfiguration",
                self.clients.s3.get_bucket_notification_configuration,
                Bucket=self.s.bucket,
            )
        )

    def table(self, name: str) -> dict[str, Any] | None:
        try:
            response = self._call(
                f"table {name}", self.clients.dynamodb.describe_table, TableName=name
            )
        except NotFoundError:
            return None
        return dict(response["Table"])

    def ttl(self, name: str) -> dict[str, Any]:
        response = self._call(
            "DescribeTimeToLive", self.clients.dynamodb.describe_time_to_live, TableName=name
        )
        return dict(response.get("TimeToLiveDescription", {}))

    def stream(self, arn: str) -> dict[str, Any]:
        streams = self.clients.client("dynamodbstreams")
        response = self._call("DescribeStream", streams.describe_stream, StreamArn=arn, Limit=1)
        return dict(response.get("StreamDescription", {}))

    # -- probes -------------------------------------------------------------------------------

    def probe_list(self) -> Outcome:
        self._call(
            "s3:ListBucket",
            self.clients.s3.list_objects_v2,
            Bucket=self.s.bucket,
            Prefix=self.s.reserved_prefix,
            MaxKeys=1,
        )
        return "ok"

    def probe_read_object(self) -> Outcome:
        s3 = self.clients.s3
        return self._refused(
            "s3:GetObject", {"404", "NoSuchKey"}, s3.head_object, Bucket=self.s.bucket,
            Key=self.probe_key,
        )  # fmt: skip

    def probe_write_object(self) -> Outcome:
        s3 = self.clients.s3
        outcome = self._refused(
            "s3:PutObject",
            {"NoSuchKey", "PreconditionFailed", "404", "412"},
            s3.put_object,
            Bucket=self.s.bucket,
            Key=self.probe_key,
            Body=b"",
            IfMatch=NO_SUCH_ETAG,
        )
        if outcome == "succeeded":  # an endpoint that ignores If-Match: take the probe back
            self._call(
                "s3:DeleteObject", s3.delete_object, Bucket=self.s.bucket, Key=self.probe_key
            )
        return outcome

    def probe_get_item(self, table: str, key: str) -> Outcome:
        ddb = self.clients.dynamodb
        self._call(
            "dynamodb:GetItem", ddb.get_item, TableName=table, Key={key: {"S": self.probe_pk}}
        )
        return "ok"

    def probe_query(self, table: str) -> Outcome:
        ddb = self.clients.dynamodb
        self._call(
            "dynamodb:Query",
            ddb.query,
            TableName=table,
            IndexName=TIME_INDEX,
            KeyConditionExpression="tpk = :p",
            ExpressionAttributeValues={":p": {"S": self.probe_pk}},
            Limit=1,
        )
        return "ok"

    def probe_update_item(self, table: str, key: str) -> Outcome:
        ddb = self.clients.dynamodb
        return self._refused(
            "dynamodb:UpdateItem",
            {"ConditionalCheckFailedException"},
            ddb.update_item,
            TableName=table,
            Key={key: {"S": self.probe_pk}},
            UpdateExpression="SET doctor_probe = :v",
            ConditionExpression=IMPOSSIBLE,
            ExpressionAttributeNames={"#k": key},
            ExpressionAttributeValues={":v": {"S": "never written"}},
        )


def _attempt(checks: list[Check], check: str, fix: str, fn: Callable[[], Any]) -> tuple[bool, Any]:
    """Run one step; an error becomes a failed check instead of stopping the doctor."""
    try:
        return True, fn()
    except DocsyncError as exc:
        checks.append(Check(check, "fail", str(exc), fix))
        return False, None


def _probe(
    checks: list[Check], check: str, action: str, resource: str, fn: Callable[[], Outcome]
) -> None:
    done, outcome = _attempt(
        checks, check, f"allow {action} on {resource} to the role docsync runs as", fn
    )
    if not done:
        return
    if outcome == "ok":
        checks.append(doctor.ok(check, f"{action} allowed"))
    elif outcome == "dry-run":
        checks.append(
            Check(check, "warn", f"{action} not checked: dry run", "run without DOCSYNC_DRY_RUN")
        )
    else:
        checks.append(Check(check, "warn", f"{action}: the endpoint ignored the probe's condition"))


def run(settings: Settings, clients: AwsClients) -> list[Check]:
    """Every check, in the order an operator would fix them."""
    env = Environment(settings, clients)
    checks: list[Check] = []
    init = doctor.INIT

    try:
        arn = env.identity()
        checks.append(doctor.ok("identity", f"running as {arn} in {settings.region}"))
    except DocsyncError as exc:
        cause = exc.__cause__
        if isinstance(cause, NoCredentialsError | ConnectionError):
            where = settings.endpoint_url or f"AWS in {settings.region}"
            fix = (
                "configure AWS credentials (AWS_PROFILE, or a role)"
                if isinstance(cause, NoCredentialsError)
                else f"check the endpoint, region and network: {where}"
            )
            return [Check("identity", "fail", str(exc), fix)]  # nothing else can be checked
        checks.append(Check("identity", "fail", str(exc), "allow sts:GetCallerIdentity"))

    bucket_ok = False
    try:
        env.head_bucket()
        bucket_ok = True
        checks.append(doctor.ok("bucket", f"bucket {settings.bucket} exists"))
    except NotFoundError:
        checks.append(Check("bucket", "fail", f"bucket {settings.bucket} does not exist", init))
    except DocsyncError as exc:
        grant = f"allow s3:ListBucket on arn:aws:s3:::{settings.bucket}"
        checks.append(Check("bucket", "fail", str(exc), grant))

    describe = "allow dynamodb:DescribeTable and dynamodb:DescribeTimeToLive on "
    done, cache = _attempt(
        checks, "cache-table", describe + settings.table, lambda: env.table(settings.table)
    )
    if done:
        checks += doctor.check_table(settings, "cache-table", cache_table_spec(settings), cache)
    if cache is not None:
        checks.append(doctor.check_stream(settings, cache))
        done, ttl = _attempt(
            checks, "cache-table.ttl", describe + settings.table, lambda: env.ttl(settings.table)
        )
        if done:
            checks.append(doctor.check_ttl(settings, ttl))
    done, leases = _attempt(
        checks, "leases-table", describe + settings.leases_table,
        lambda: env.table(settings.leases_table),
    )  # fmt: skip
    if done:
        checks += doctor.check_table(settings, "leases-table", leases_table_spec(settings), leases)

    queues, attributes = _queues(settings, QueueStore(clients.sqs, settings.endpoint_url), checks)
    dlq, queue = queues.get("dlq"), queues.get("queue")
    for label, s3_source in (("queue", True), ("work-queue", False)):
        ref = queues.get(label)
        if ref is not None:
            checks += wiring.check_queue(
                settings, label, ref.name, ref.url, attributes[label],
                dlq.arn if dlq else None, s3_source,
            )  # fmt: skip
    if dlq is not None:
        sources = {ref.name: attributes[k] for k, ref in queues.items() if k != "dlq"}
        checks.append(wiring.check_dlq_retention(settings, dlq.url, attributes["dlq"], sources))
        checks.append(wiring.check_dlq_depth(settings, attributes["dlq"]))
    if bucket_ok and queue is not None:
        done, config = _attempt(
            checks,
            "bucket.notifications",
            f"allow s3:GetBucketNotification on arn:aws:s3:::{settings.bucket}",
            env.notifications,
        )
        if done:
            wanted = wanted_notifications(settings, queue.arn)
            checks += wiring.check_notifications(settings, queue.arn, config, wanted)

    _access(env, checks, bucket_ok, cache, leases)
    return checks


def _access(
    env: Environment,
    checks: list[Check],
    bucket_ok: bool,
    cache: dict[str, Any] | None,
    leases: dict[str, Any] | None,
) -> None:
    """One harmless call of each kind the engine makes, on the resources that exist."""
    if bucket_ok:
        bucket = f"arn:aws:s3:::{env.s.bucket}"
        _probe(checks, "access.s3.list", "s3:ListBucket", bucket, env.probe_list)
        _probe(checks, "access.s3.read", "s3:GetObject", f"{bucket}/*", env.probe_read_object)
        _probe(checks, "access.s3.write", "s3:PutObject", f"{bucket}/*", env.probe_write_object)
    if cache is not None:
        arn = str(cache.get("TableArn", env.s.table))
        _probe(checks, "access.cache.read", "dynamodb:GetItem", arn,
               lambda: env.probe_get_item(env.s.table, "pk"))  # fmt: skip
        _probe(checks, "access.cache.query", "dynamodb:Query", f"{arn}/index/*",
               lambda: env.probe_query(env.s.table))  # fmt: skip
        _probe(checks, "access.cache.write", "dynamodb:UpdateItem", arn,
               lambda: env.probe_update_item(env.s.table, "pk"))  # fmt: skip
        stream_arn = str(cache.get("LatestStreamArn") or "")
        if stream_arn and (cache.get("StreamSpecification") or {}).get("StreamEnabled"):
            _probe(checks, "access.stream.read", "dynamodb:DescribeStream", stream_arn,
                   lambda: _stream_enabled(env, stream_arn))  # fmt: skip
    if leases is not None:
        arn = str(leases.get("TableArn", env.s.leases_table))
        _probe(checks, "access.leases.read", "dynamodb:GetItem", arn,
               lambda: env.probe_get_item(env.s.leases_table, "lease_key"))  # fmt: skip
        _probe(checks, "access.leases.write", "dynamodb:UpdateItem", arn,
               lambda: env.probe_update_item(env.s.leases_table, "lease_key"))  # fmt: skip


def _queues(
    settings: Settings, store: QueueStore, checks: list[Check]
) -> tuple[dict[str, QueueRef], dict[str, dict[str, str]]]:
    """The three queues by label (those that exist) and their attributes
    (sqs:GetQueueAttributes on each is also the queue permission probe)."""
    found: dict[str, QueueRef] = {}
    attributes: dict[str, dict[str, str]] = {}
    names = {"dlq": settings.dlq, "queue": settings.queue, "work-queue": settings.work_queue}
    for label, name in names.items():
        try:
            ref = store.lookup(name)
            attributes[label] = store.attributes(ref.url, name)
        except NotFoundError:
            checks.append(Check(label, "fail", f"queue {name} does not exist", doctor.INIT))
            continue
        except DocsyncError as exc:
            grant = f"allow sqs:GetQueueUrl, sqs:GetQueueAttributes on {name}"
            checks.append(Check(label, "fail", str(exc), grant))
            continue
        found[label] = ref
        checks.append(doctor.ok(label, f"queue {name} exists"))
    return found, attributes


def _stream_enabled(env: Environment, arn: str) -> Outcome:
    status = env.stream(arn).get("StreamStatus", "ENABLED")
    if status not in ("ENABLED", "ENABLING"):
        raise StoreError(f"stream {arn} is {status}")
    return "ok"
