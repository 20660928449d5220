"""Who docsync runs as, and harmless probes of each permission it needs (`docsync doctor`).

The probes change nothing, by construction:
- reads ask for keys that cannot exist (`_docsync#doctor-probe`, `_docsync/doctor/probe`);
- writes are conditional and cannot succeed: an UpdateItem whose condition is
  `attribute_exists(k) AND attribute_not_exists(k)`, and a PutObject with `If-Match` on an
  ETag no object has. AWS checks permissions before conditions, so the expected refusal
  (ConditionalCheckFailed, NoSuchKey / PreconditionFailed) proves the write is allowed.
In a dry run the write probes are not sent (the guard in engine/aws.py) and say so.

Errors go through the control plane's map (operator wording); a probe's expected refusal is
its "not found", so the seam tells it from a real refusal (AccessDenied) without a second
translation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

from engine.exceptions import NotFoundError
from engine.keys import TIME_INDEX
from engine.store.base import StoreCall
from engine.store.control import CONTROL_ERRORS

if TYPE_CHECKING:
    from engine.aws import AwsClients

Outcome = Literal["ok", "dry-run", "succeeded"]
IMPOSSIBLE = "attribute_exists(#k) AND attribute_not_exists(#k)"
NO_SUCH_ETAG = '"00000000000000000000000000000000"'


class AccessProbes:
    def __init__(self, clients: AwsClients, bucket: str, reserved_prefix: str) -> None:
        self._clients = clients
        self.bucket = bucket
        self.probe_pk = f"{reserved_prefix.rstrip('/')}#doctor-probe"
        self.probe_key = f"{reserved_prefix}doctor/probe"
        self.reserved_prefix = reserved_prefix
        self._call = StoreCall(CONTROL_ERRORS)

    def _refused(
        self, what: str, expected: Iterable[str], fn: Callable[..., Any], **kw: Any
    ) -> Outcome:
        """A call that must be refused with one of `expected` (proof that it was allowed)."""
        call = StoreCall(replace(CONTROL_ERRORS, not_found=frozenset(expected)))
        try:
            response = call(what, fn, **kw)
        except NotFoundError:
            return "ok"
        return "dry-run" if response.get("ResponseMetadata", {}).get("DryRun") else "succeeded"

    def identity(self) -> str:
        """The principal docsync runs as: the one every `allow …` fix is about."""
        sts = self._clients.client("sts")
        return str(self._call("sts:GetCallerIdentity", sts.get_caller_identity)["Arn"])

    def list_objects(self) -> Outcome:
        self._call(
            "s3:ListBucket",
            self._clients.s3.list_objects_v2,
            Bucket=self.bucket,
            Prefix=self.reserved_prefix,
            MaxKeys=1,
        )
        return "ok"

    def read_object(self) -> Outcome:
        s3 = self._clients.s3
        return self._refused(
            "s3:GetObject", {"404", "NoSuchKey"}, s3.head_object, Bucket=self.bucket,
            Key=self.probe_key,
        )  # fmt: skip

    def write_object(self) -> Outcome:
        s3 = self._clients.s3
        outcome = self._refused(
            "s3:PutObject",
            {"NoSuchKey", "PreconditionFailed", "404", "412"},
            s3.put_object,
            Bucket=self.bucket,
            Key=self.probe_key,
            Body=b"",
            IfMatch=NO_SUCH_ETAG,
        )
        if outcome == "succeeded":  # an endpoint that ignores If-Match: take the probe back
            self._call("s3:DeleteObject", s3.delete_object, Bucket=self.bucket, Key=self.probe_key)
        return outcome

    def get_item(self, table: str, key: str) -> Outcome:
        ddb = self._clients.dynamodb
        self._call(
            "dynamodb:GetItem", ddb.get_item, TableName=table, Key={key: {"S": self.probe_pk}}
        )
        return "ok"

    def query(self, table: str) -> Outcome:
        self._call(
            "dynamodb:Query",
            self._clients.dynamodb.query,
            TableName=table,
            IndexName=TIME_INDEX,
            KeyConditionExpression="tpk = :p",
            ExpressionAttributeValues={":p": {"S": self.probe_pk}},
            Limit=1,
        )
        return "ok"

    def update_item(self, table: str, key: str) -> Outcome:
        return self._refused(
            "dynamodb:UpdateItem",
            {"ConditionalCheckFailedException"},
            self._clients.dynamodb.update_item,
            TableName=table,
            Key={key: {"S": self.probe_pk}},
            UpdateExpression="SET doctor_probe = :v",
            ConditionExpression=IMPOSSIBLE,
            ExpressionAttributeNames={"#k": key},
            ExpressionAttributeValues={":v": {"S": "never written"}},
        )
