"""The control plane: describe and create the deployment's resources (bucket, tables, queues,
streams). `docsync init` creates through it, `docsync doctor` and `/readyz` describe through it.

Thin by design: which resources to create and what a report says stay with the callers
(engine/infra.py, engine/ops/survey.py, engine/serve/health.py). Errors go through the seam
(`StoreCall`) with operator wording: a missing resource is a `NotFoundError` ("table x: not
found"), anything else a `StoreError` naming the call and AWS's code ("bucket x: AccessDenied
…"), raised from botocore's error so a caller can still tell a missing credential or an
unreachable endpoint (`__cause__`). No breaker or limiter: these calls are few, and a probe
must ask AWS itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from engine.exceptions import DocsyncError, NotFoundError, StoreError
from engine.store.base import ErrorMap, StoreCall
from engine.store.errors import error_code

if TYPE_CHECKING:
    from engine.aws import AwsClients

MISSING = frozenset(
    {
        "ResourceNotFoundException",
        "NoSuchBucket",
        "404",
        "NotFound",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
    }
)


class OperatorErrors(ErrorMap):
    """The seam's classification, worded for an operator: `what: Code message`."""

    def translate(self, op: str, exc: Exception, target: str = "") -> Exception:
        out = super().translate(op, exc, target)
        if out is exc or not isinstance(out, DocsyncError):
            return out
        what = f"{op} {target}".strip()
        if isinstance(out, NotFoundError):
            return NotFoundError(f"{what}: not found")
        if isinstance(exc, ClientError):
            message = exc.response.get("Error", {}).get("Message", "")
            return type(out)(f"{what}: {error_code(exc)} {message}".strip())
        return type(out)(f"{what}: {exc}")


CONTROL_ERRORS = OperatorErrors("AWS", StoreError, not_found=MISSING)


class UnsupportedError(StoreError):
    """The endpoint does not implement the call (moto answers HTTP 500)."""


def _http_status(exc: BaseException | None) -> int:
    if not isinstance(exc, ClientError):
        return 0
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


class ControlStore:
    def __init__(self, clients: AwsClients, endpoint_url: str | None = None) -> None:
        self._clients = clients  # each client built on first use (no kinesis unless asked)
        self._endpoint_url = endpoint_url
        self._call = StoreCall(CONTROL_ERRORS)

    def _tags(self, tags: dict[str, str]) -> list[dict[str, str]]:
        return [{"Key": k, "Value": v} for k, v in tags.items()]

    # -- S3 -------------------------------------------------------------------------------------

    def head_bucket(self, bucket: str) -> None:
        self._call("bucket", self._clients.s3.head_bucket, bucket, Bucket=bucket)

    def create_bucket(self, bucket: str, region: str, tags: dict[str, str]) -> None:
        """CreateBucket (us-east-1 takes no location constraint), then its tags."""
        s3 = self._clients.s3
        kwargs: dict[str, Any] = {"Bucket": bucket}
        if region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        self._call("CreateBucket", s3.create_bucket, bucket, **kwargs)
        self._call(
            "PutBucketTagging",
            s3.put_bucket_tagging,
            bucket,
            Bucket=bucket,
            Tagging={"TagSet": self._tags(tags)},
        )

    def versioning(self, bucket: str) -> str | None:
        """The bucket's versioning status (None: never enabled)."""
        response = self._call(
            "GetBucketVersioning", self._clients.s3.get_bucket_versioning, bucket, Bucket=bucket
        )
        status = response.get("Status")
        return str(status) if status else None

    def enable_versioning(self, bucket: str, lifecycle_rules: list[dict[str, Any]]) -> None:
        """Versioning on, and the lifecycle rules that bound what it keeps."""
        s3 = self._clients.s3
        self._call(
            "PutBucketVersioning",
            s3.put_bucket_versioning,
            bucket,
            Bucket=bucket,
            VersioningConfiguration={"Status": "Enabled"},
        )
        self._call(
            "PutBucketLifecycleConfiguration",
            s3.put_bucket_lifecycle_configuration,
            bucket,
            Bucket=bucket,
            LifecycleConfiguration={"Rules": lifecycle_rules},
        )

    def notifications(self, bucket: str) -> dict[str, Any]:
        s3 = self._clients.s3
        return dict(
            self._call(
                "GetBucketNotificationConfiguration",
                s3.get_bucket_notification_configuration,
                Bucket=bucket,
            )
        )

    def put_notifications(self, bucket: str, config: dict[str, Any]) -> None:
        s3 = self._clients.s3
        self._call(
            "PutBucketNotificationConfiguration",
            s3.put_bucket_notification_configuration,
            bucket,
            Bucket=bucket,
            NotificationConfiguration=config,
        )

    # -- DynamoDB -------------------------------------------------------------------------------

    def describe_table(self, name: str) -> dict[str, Any]:
        """DescribeTable's `Table`; NotFoundError when there is none."""
        response = self._call("table", self._clients.dynamodb.describe_table, name, TableName=name)
        return dict(response["Table"])

    def create_table(self, spec: dict[str, Any], wait: bool = False) -> None:
        """CreateTable from its arguments; `wait`: until it is ACTIVE (never in a dry run:
        the table does not exist)."""
        ddb, name = self._clients.dynamodb, str(spec["TableName"])
        self._call("CreateTable", ddb.create_table, name, **spec)
        if wait:
            waiter = ddb.get_waiter("table_exists")
            self._call("table_exists", waiter.wait, name, TableName=name)

    def add_index(
        self, table: str, attributes: list[dict[str, Any]], index: dict[str, Any]
    ) -> None:
        """A GSI on an existing table (DynamoDB backfills it from the items)."""
        self._call(
            "UpdateTable",
            self._clients.dynamodb.update_table,
            table,
            TableName=table,
            AttributeDefinitions=attributes,
            GlobalSecondaryIndexUpdates=[{"Create": index}],
        )

    def ttl(self, name: str) -> dict[str, Any]:
        """DescribeTimeToLive's `TimeToLiveDescription` ({} when there is none)."""
        ddb = self._clients.dynamodb
        response = self._call("DescribeTimeToLive", ddb.describe_time_to_live, TableName=name)
        return dict(response.get("TimeToLiveDescription", {}))

    def enable_ttl(self, name: str, attribute: str) -> None:
        self._call(
            "UpdateTimeToLive",
            self._clients.dynamodb.update_time_to_live,
            name,
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": attribute},
        )

    def kinesis_destinations(self, table: str) -> list[dict[str, Any]]:
        """The table's Kinesis streaming destinations; UnsupportedError where a local endpoint
        does not implement them."""
        ddb = self._clients.dynamodb
        try:
            response = self._call(
                "DescribeKinesisStreamingDestination",
                ddb.describe_kinesis_streaming_destination,
                table,
                TableName=table,
            )
        except StoreError as exc:
            if self._endpoint_url and _http_status(exc.__cause__) >= 500:
                raise UnsupportedError(str(exc)) from exc.__cause__
            raise
        return [dict(d) for d in response.get("KinesisDataStreamDestinations", [])]

    def enable_kinesis_destination(self, table: str, stream_arn: str) -> None:
        """Stream the table's changes into `stream_arn`, with millisecond timestamps."""
        self._call(
            "EnableKinesisStreamingDestination",
            self._clients.dynamodb.enable_kinesis_streaming_destination,
            table,
            TableName=table,
            StreamArn=stream_arn,
            EnableKinesisStreamingConfiguration={
                "ApproximateCreationDateTimePrecision": "MILLISECOND"
            },
        )

    def stream(self, arn: str) -> dict[str, Any]:
        """DynamoDB Streams' StreamDescription (one shard of it: enough to see its status)."""
        streams = self._clients.client("dynamodbstreams")
        response = self._call("DescribeStream", streams.describe_stream, StreamArn=arn, Limit=1)
        return dict(response.get("StreamDescription", {}))

    # -- Kinesis Data Streams ----------------------------------------------------------------------

    def kinesis_summary(self, name: str) -> dict[str, Any]:
        """DescribeStreamSummary's `StreamDescriptionSummary`; NotFoundError when none."""
        kinesis = self._clients.client("kinesis")
        response = self._call(
            "kinesis-stream", kinesis.describe_stream_summary, name, StreamName=name
        )
        return dict(response.get("StreamDescriptionSummary", {}))

    def create_kinesis_stream(self, name: str, shards: int) -> None:
        kinesis = self._clients.client("kinesis")
        self._call("CreateStream", kinesis.create_stream, name, StreamName=name, ShardCount=shards)

    def wait_and_tag_kinesis_stream(self, name: str, tags: dict[str, str]) -> None:
        """Until the new stream exists, then its tags (AWS refuses tags on a CREATING one)."""
        kinesis = self._clients.client("kinesis")
        waiter = kinesis.get_waiter("stream_exists")
        self._call("stream_exists", waiter.wait, name, StreamName=name)
        self._call("AddTagsToStream", kinesis.add_tags_to_stream, name, StreamName=name, Tags=tags)

    # -- SQS ------------------------------------------------------------------------------------

    def queue_url(self, name: str) -> str:
        """GetQueueUrl; NotFoundError when there is no such queue."""
        response = self._call("queue", self._clients.sqs.get_queue_url, name, QueueName=name)
        return str(response["QueueUrl"])

    def create_queue(self, name: str, attributes: dict[str, str], tags: dict[str, str]) -> str:
        """CreateQueue; its URL ("" in a dry run, where nothing was created)."""
        response = self._call(
            "CreateQueue",
            self._clients.sqs.create_queue,
            name,
            QueueName=name,
            Attributes=attributes,
            tags=tags,
        )
        return str(response.get("QueueUrl", ""))

    def queue_arn(self, url: str) -> str:
        sqs = self._clients.sqs
        response = self._call(
            "GetQueueAttributes",
            sqs.get_queue_attributes,
            url,
            QueueUrl=url,
            AttributeNames=["QueueArn"],
        )
        return str(response["Attributes"]["QueueArn"])
