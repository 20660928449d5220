"""`docsync init`: every AWS resource the engine needs, created idempotently.

A second run changes nothing and says what already exists. In a dry run the botocore guard
drops every mutating call, and the report says what would be created.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from engine import keys
from engine.aws import AwsClients
from engine.exceptions import NotFoundError, StoreError
from engine.settings import Settings
from engine.store.control import ControlStore, UnsupportedError

NOTIFY_EVENTS = ["s3:ObjectCreated:*", "s3:ObjectRemoved:*", "s3:LifecycleExpiration:*"]
MAX_MESSAGE_BYTES = 262_144  # S3 notifications reach 64 KB; smaller limits lose them
KEY_INDEX_ATTRS = [
    "etag",
    "size",
    "s3_last_modified",
    "sequencer",
    "state",
    "expires_at",
    "p_tx",
    "p_at",
    "customers",  # the reconciler checks a document's customer-index entries against them
]
TTL_ATTRIBUTE = "expires_at"
DLQ_RETENTION_S = 14 * 86400  # the longest SQS allows: a DLQ outlives its sources' messages
STREAM_VIEW = "NEW_AND_OLD_IMAGES"


def cache_table_spec(settings: Settings) -> dict[str, Any]:
    """CreateTable arguments of the cache table: `init` creates it from these, and `doctor`
    compares a deployed table against them."""

    def gsi(name: str, hash_key: str, range_key: str, projection: dict[str, Any]) -> Any:
        return {
            "IndexName": name,
            "KeySchema": [
                {"AttributeName": hash_key, "KeyType": "HASH"},
                {"AttributeName": range_key, "KeyType": "RANGE"},
            ],
            "Projection": projection,
        }

    return {
        "TableName": settings.table,
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [
            {"AttributeName": name, "AttributeType": "S"}
            for name in ("pk", "tpk", "tsk", "spk", "kpk", "s3_key", "cpk")
        ],
        "GlobalSecondaryIndexes": [
            gsi(keys.CUSTOMER_INDEX, "cpk", "tsk", {"ProjectionType": "ALL"}),
            gsi(keys.TIME_INDEX, "tpk", "tsk", {"ProjectionType": "ALL"}),
            gsi(keys.STATUS_INDEX, "spk", "tsk", {"ProjectionType": "ALL"}),
            gsi(
                keys.KEY_INDEX,
                "kpk",
                "s3_key",
                {"ProjectionType": "INCLUDE", "NonKeyAttributes": KEY_INDEX_ATTRS},
            ),
        ],
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": STREAM_VIEW},
        "Tags": _tags(settings),
    }


def _customer_gsi(settings: Settings) -> Any:
    spec = cache_table_spec(settings)["GlobalSecondaryIndexes"]
    return dict(next(g for g in spec if g["IndexName"] == keys.CUSTOMER_INDEX))


def leases_table_spec(settings: Settings) -> dict[str, Any]:
    """CreateTable arguments of the leases table (stream checkpoints and locks)."""
    return {
        "TableName": settings.leases_table,
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "lease_key", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "lease_key", "AttributeType": "S"}],
        "Tags": _tags(settings),
    }


def _tags(settings: Settings) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in settings.init.tags.items()]


def noncurrent_expiry(settings: Settings) -> dict[str, Any]:
    """With versioning on, the lifecycle rule that bounds what it keeps."""
    return {
        "ID": "docsync-noncurrent-expiry",
        "Status": "Enabled",
        "Filter": {"Prefix": ""},
        "NoncurrentVersionExpiration": {"NoncurrentDays": settings.init.noncurrent_version_days},
    }


def redrive_policy(dlq_arn: str) -> dict[str, str]:
    """A queue's redrive policy: after 5 failed receives, a message moves to the DLQ."""
    return {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"}


def queue_policy(settings: Settings, name: str) -> dict[str, Any]:
    """The event queue's policy: S3 may send the bucket's notifications to it."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AllowS3Notifications",
                "Effect": "Allow",
                "Principal": {"Service": "s3.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": f"arn:aws:sqs:{settings.region}:*:{name}",
                "Condition": {"ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{settings.bucket}"}},
            }
        ],
    }


def wanted_notifications(settings: Settings, queue_arn: str) -> list[dict[str, Any]]:
    """One queue notification per document type, filtered on its prefix."""
    return [
        {
            "Id": f"docsync-{type_name}",
            "QueueArn": queue_arn,
            "Events": NOTIFY_EVENTS,
            "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}},
        }
        for type_name, prefix in settings.prefixes.items()
    ]


@dataclass
class InitReport:
    resources: list[dict[str, str]] = field(default_factory=list)

    def add(self, kind: str, name: str, status: str, detail: str = "") -> None:
        row = {"kind": kind, "name": name, "status": status}
        if detail:
            row["detail"] = detail
        self.resources.append(row)

    def as_dict(self) -> dict[str, Any]:
        return {"resources": self.resources}


class Infrastructure:
    """What `init` creates and what its report says; the calls are engine/store/control.py's."""

    def __init__(self, settings: Settings, clients: AwsClients) -> None:
        self.s = settings
        self.control = ControlStore(clients, settings.endpoint_url)
        self._created = "would create" if settings.dry_run else "created"

    def init(self) -> InitReport:
        report = InitReport()
        self._bucket(report)
        self._cache_table(report)
        self._leases_table(report)
        self._history_table(report)
        dlq_arn = self._queue(report, self.s.dlq, redrive_to=None)
        queue_arn = self._queue(report, self.s.queue, redrive_to=dlq_arn)
        self._queue(report, self.s.work_queue, redrive_to=dlq_arn, s3_source=False)
        self._notifications(report, queue_arn)
        return report

    # -- S3 -----------------------------------------------------------------------------------

    def _bucket(self, report: InitReport) -> None:
        try:
            self.control.head_bucket(self.s.bucket)
            report.add("bucket", self.s.bucket, "exists")
        except NotFoundError:
            self.control.create_bucket(self.s.bucket, self.s.region, self.s.init.tags)
            report.add("bucket", self.s.bucket, self._created)
        if self.s.init.versioning:
            if self.control.versioning(self.s.bucket) != "Enabled":
                self.control.enable_versioning(self.s.bucket, [noncurrent_expiry(self.s)])
                report.add(
                    "bucket-versioning",
                    self.s.bucket,
                    "enabled",
                    f"noncurrent versions expire after {self.s.init.noncurrent_version_days} days",
                )
            else:
                report.add("bucket-versioning", self.s.bucket, "exists")

    def _notifications(self, report: InitReport, queue_arn: str) -> None:
        wanted = wanted_notifications(self.s, queue_arn)
        current: dict[str, Any]
        try:
            current = self.control.notifications(self.s.bucket)
        except (NotFoundError, StoreError):  # unreadable (a dry run's new bucket): write ours
            current = {}
        existing = {c.get("Id"): c for c in current.get("QueueConfigurations", [])}
        if all(_same_notification(existing.get(w["Id"]), w) for w in wanted):
            report.add("bucket-notifications", self.s.bucket, "exists")
            return
        others = [
            c
            for c in current.get("QueueConfigurations", [])
            if c.get("Id") not in {w["Id"] for w in wanted}
        ]
        config: dict[str, Any] = {"QueueConfigurations": others + wanted}
        for extra in ("TopicConfigurations", "LambdaFunctionConfigurations"):
            if current.get(extra):
                config[extra] = current[extra]
        self.control.put_notifications(self.s.bucket, config)
        report.add("bucket-notifications", self.s.bucket, self._created, ", ".join(NOTIFY_EVENTS))

    # -- DynamoDB -----------------------------------------------------------------------------

    def _table_exists(self, name: str) -> bool:
        try:
            self.control.describe_table(name)
            return True
        except NotFoundError:
            return False

    def _ttl(self, report: InitReport, table: str, existed: bool, label: str) -> None:
        """TTL on `expires_at`; a table created in a dry run has none to describe."""
        ttl = self.control.ttl(table) if existed or not self.s.dry_run else {}
        if ttl.get("TimeToLiveStatus") in {"ENABLED", "ENABLING"}:
            report.add("table-ttl", label, "exists")
        else:
            self.control.enable_ttl(table, TTL_ATTRIBUTE)
            report.add("table-ttl", label, self._created)

    def _cache_table(self, report: InitReport) -> None:
        existed = self._table_exists(self.s.table)
        if existed:
            report.add("table", self.s.table, "exists")
            self._customer_index(report)
        else:
            self.control.create_table(cache_table_spec(self.s), wait=not self.s.dry_run)
            report.add(
                "table", self.s.table, self._created, "GSIs: customer, time, status, key; stream"
            )
            report.add("table-index", keys.CUSTOMER_INDEX, self._created)
        self._ttl(report, self.s.table, existed, TTL_ATTRIBUTE)

    def _customer_index(self, report: InitReport) -> None:
        """A table created before the customer index gets it added (DynamoDB backfills a new
        GSI from the items; the entries themselves come from `docsync reconcile --repair`)."""
        table = self.control.describe_table(self.s.table)
        names = {g.get("IndexName") for g in table.get("GlobalSecondaryIndexes", [])}
        if keys.CUSTOMER_INDEX in names:
            report.add("table-index", keys.CUSTOMER_INDEX, "exists")
            return
        self.control.add_index(
            self.s.table,
            [
                {"AttributeName": "cpk", "AttributeType": "S"},
                {"AttributeName": "tsk", "AttributeType": "S"},
            ],
            _customer_gsi(self.s),
        )
        report.add(
            "table-index", keys.CUSTOMER_INDEX, self._created, "then reconcile --repair fills it"
        )

    def _leases_table(self, report: InitReport) -> None:
        if self._table_exists(self.s.leases_table):
            report.add("table", self.s.leases_table, "exists")
            return
        self.control.create_table(leases_table_spec(self.s))
        report.add("table", self.s.leases_table, self._created, "checkpoints and locks")

    def _history_table(self, report: InitReport) -> None:
        """Every committed change (engine/store/history.py): no stream, no GSI, own TTL."""
        from engine.store.history import table_definition

        name = self.s.history_table
        existed = self._table_exists(name)
        if existed:
            report.add("table", name, "exists")
        else:
            spec = {**table_definition(name), "Tags": _tags(self.s)}
            self.control.create_table(spec, wait=not self.s.dry_run)
            report.add("table", name, self._created, "document history")
        self._ttl(report, name, existed, f"{name}.expires_at")

    # -- Kinesis Data Streams destination (for the KCL consumer) -------------------------------

    def enable_kinesis_destination(
        self, report: InitReport | None = None, stream_name: str | None = None, shards: int = 1
    ) -> InitReport:
        """`docsync init --kinesis`: a Kinesis data stream (default `<table>-changes`) and the
        cache table's Kinesis streaming destination into it, with millisecond timestamps.
        Idempotent. Endpoints that do not implement the destination (moto) are reported."""
        report = report or InitReport()
        name = stream_name or f"{self.s.table}-changes"
        try:
            summary = self.control.kinesis_summary(name)
            report.add("kinesis-stream", name, "exists")
        except NotFoundError:
            self.control.create_kinesis_stream(name, shards)
            if not self.s.dry_run:
                self.control.wait_and_tag_kinesis_stream(name, self.s.init.tags)
            report.add("kinesis-stream", name, self._created, f"{shards} shard(s)")
            summary = {} if self.s.dry_run else self.control.kinesis_summary(name)
        arn = summary.get(
            "StreamARN", f"arn:aws:kinesis:{self.s.region}:000000000000:stream/{name}"
        )
        try:
            current = self.control.kinesis_destinations(self.s.table)
        except UnsupportedError:
            report.add(
                "table-kinesis-destination",
                name,
                "unsupported",
                f"{self.s.endpoint_url} does not implement Kinesis streaming destinations",
            )
            return report
        live = {"ACTIVE", "ENABLING", "UPDATING"}
        if any(d.get("StreamArn") == arn and d.get("DestinationStatus") in live for d in current):
            report.add("table-kinesis-destination", name, "exists")
            return report
        self.control.enable_kinesis_destination(self.s.table, arn)
        report.add("table-kinesis-destination", name, self._created, "timestamps in ms")
        return report

    # -- SQS ----------------------------------------------------------------------------------

    def _queue(
        self, report: InitReport, name: str, redrive_to: str | None, s3_source: bool = True
    ) -> str:
        attributes = {
            "MaximumMessageSize": str(MAX_MESSAGE_BYTES),
            "MessageRetentionPeriod": str(self.s.init.queue_retention_days * 86400),
            "VisibilityTimeout": "60",
            "ReceiveMessageWaitTimeSeconds": "20",
        }
        if redrive_to:
            attributes["RedrivePolicy"] = json.dumps(redrive_policy(redrive_to))
            if s3_source:
                attributes["Policy"] = json.dumps(queue_policy(self.s, name))
        else:
            attributes["MessageRetentionPeriod"] = str(DLQ_RETENTION_S)
        try:
            url = self.control.queue_url(name)
            report.add("queue", name, "exists")
        except NotFoundError:
            url = self.control.create_queue(name, attributes, self.s.init.tags)
            report.add(
                "queue", name, self._created, "DLQ" if redrive_to is None else "redrive → DLQ"
            )
        if not url:  # dry run: nothing was created
            return f"arn:aws:sqs:{self.s.region}:000000000000:{name}"
        return self.control.queue_arn(url)


def _same_notification(current: dict[str, Any] | None, wanted: dict[str, Any]) -> bool:
    if current is None:
        return False
    rules = current.get("Filter", {}).get("Key", {}).get("FilterRules", [])
    prefix = {r.get("Name", "").lower(): r.get("Value") for r in rules}.get("prefix")
    return (
        current.get("QueueArn") == wanted["QueueArn"]
        and sorted(current.get("Events", [])) == sorted(wanted["Events"])
        and prefix == wanted["Filter"]["Key"]["FilterRules"][0]["Value"]
    )
