"""S3, the truth: get, head, put (returning S3's own ETag and time), delete, list.

Every call goes through the store seam (`base.StoreCall`): a missing key is `NotFoundError`
(`head` answers None), anything else `ObjectStoreError`; a conditional get that S3 answers
304 returns None. S3's breaker is a client hook (awsbreaker.py), so none is set here.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from engine.exceptions import NotFoundError, ObjectStoreError
from engine.store.base import ErrorMap, StoreCall
from engine.store.errors import NOT_FOUND

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    etag: str
    size: int
    last_modified: datetime
    version_id: str | None = None  # with bucket versioning on: this version of the object


@dataclass(frozen=True, slots=True)
class StoredObject:
    info: ObjectInfo
    body: bytes


def _etag(raw: str) -> str:
    return raw.strip('"')


def _response_time(response: dict[str, Any]) -> datetime:
    """S3's clock for a write: the response's Date header (same precision as LastModified)."""
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    date = headers.get("last-modified") or headers.get("date")
    if date:
        return parsedate_to_datetime(date).astimezone(UTC)
    return datetime.now(UTC).replace(microsecond=0)


def _version(response: Any) -> str | None:
    """S3's VersionId ("null", or absent, while versioning is off or suspended)."""
    value = response.get("VersionId")
    return str(value) if value and value != "null" else None


def _status(exc: ClientError) -> int | None:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(status) if status is not None else None


class _NotModified(Exception):
    """A conditional get's answer (304): S3 still holds that ETag. Never leaves the store."""


def _not_modified(op: str, exc: ClientError) -> Exception | None:
    return _NotModified() if op == "GetObject" and _status(exc) == 304 else None


class ObjectStore:
    def __init__(self, client: S3Client, bucket: str) -> None:
        self._s3 = client
        self.bucket = bucket
        # only reads name a missing key (or bucket); a failed write or listing is a failure
        self.errors = ErrorMap("S3", ObjectStoreError)
        self.read_errors = ErrorMap(
            "S3",
            ObjectStoreError,
            not_found=NOT_FOUND,
            missing=f"s3://{bucket}/{{target}} does not exist",
            special=_not_modified,
        )
        self._call = StoreCall(self.errors)
        self._read = StoreCall(self.read_errors)

    def get(self, key: str) -> StoredObject:
        stored = self._get(key)
        assert stored is not None  # only a conditional get can come back empty
        return stored

    def get_version(self, key: str, version_id: str) -> StoredObject:
        """One version of an object (bucket versioning on), e.g. from a history entry."""
        stored = self._get(key, version_id=version_id)
        assert stored is not None
        return stored

    def get_if_changed(self, key: str, etag: str) -> StoredObject | None:
        """GetObject with If-None-Match: None (a 304, no body sent) while S3 still holds
        `etag`, so checking an unchanged key costs one call and no download."""
        return self._get(key, if_none_match=f'"{etag}"')

    def _get(
        self, key: str, if_none_match: str | None = None, version_id: str | None = None
    ) -> StoredObject | None:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if if_none_match:
            kwargs["IfNoneMatch"] = if_none_match
        elif version_id:
            kwargs["VersionId"] = version_id
        try:
            response = self._read("GetObject", self._s3.get_object, target=key, **kwargs)
        except _NotModified:
            return None
        with self.read_errors.mapped("GetObject", key):
            body = response["Body"].read()
        info = ObjectInfo(
            key=key,
            etag=_etag(response["ETag"]),
            size=int(response["ContentLength"]),
            last_modified=response["LastModified"].astimezone(UTC),
            version_id=_version(response),
        )
        return StoredObject(info, body)

    def head(self, key: str) -> ObjectInfo | None:
        try:
            response = self._read(
                "HeadObject", self._s3.head_object, target=key, Bucket=self.bucket, Key=key
            )
        except NotFoundError:
            return None
        return ObjectInfo(
            key,
            _etag(response["ETag"]),
            int(response["ContentLength"]),
            response["LastModified"].astimezone(UTC),
            _version(response),
        )

    def put(self, key: str, body: bytes) -> ObjectInfo:
        """Single-part put with Content-MD5, so S3 rejects a body damaged in transit."""
        md5 = hashlib.md5(body, usedforsecurity=False)
        response = self._call(
            "PutObject",
            self._s3.put_object,
            target=key,
            Bucket=self.bucket,
            Key=key,
            Body=body,
            ContentType="application/json",
            ContentMD5=base64.b64encode(md5.digest()).decode(),
        )
        etag = _etag(response.get("ETag", "")) or md5.hexdigest()
        return ObjectInfo(key, etag, len(body), _response_time(dict(response)), _version(response))

    def delete(self, key: str) -> datetime:
        response = self._call(
            "DeleteObject", self._s3.delete_object, target=key, Bucket=self.bucket, Key=key
        )
        return _response_time(dict(response))

    def list(self, prefix: str, start_after: str = "") -> Iterator[ObjectInfo]:
        """Every object under `prefix`, in S3 key order (UTF-8 bytes), page by page."""
        paginator = self._s3.get_paginator("list_objects_v2")
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if start_after:
            kwargs["StartAfter"] = start_after
        with self.errors.mapped("ListObjectsV2", prefix):
            for page in paginator.paginate(**kwargs):
                for obj in page.get("Contents", []):
                    yield ObjectInfo(
                        obj["Key"],
                        _etag(obj["ETag"]),
                        int(obj["Size"]),
                        obj["LastModified"].astimezone(UTC),
                    )
