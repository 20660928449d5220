"""S3 Inventory reports as the reconciler reads them: small objects whole, data files streamed.

A report lives in its own destination bucket (not the documents bucket), so these reads name
the bucket per call. Errors go through the store seam, also while a streamed body is read: a
missing object is `NotFoundError` (the reconciler words it as bad input), anything else
`ObjectStoreError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.exceptions import ObjectStoreError
from engine.store.base import ErrorMap, StoreCall
from engine.store.errors import NOT_FOUND

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class Body:
    """A streamed object body whose read errors are the project's, like the call's."""

    def __init__(self, raw: Any, errors: ErrorMap, target: str) -> None:
        self._raw = raw
        self._errors = errors
        self._target = target

    def read(self, amt: int | None = None, /) -> bytes:
        with self._errors.mapped("GetObject", self._target):
            data: bytes = self._raw.read() if amt is None else self._raw.read(amt)
        return data

    def close(self) -> None:
        self._raw.close()


class InventoryStore:
    def __init__(self, client: S3Client) -> None:
        self._s3 = client
        self.errors = ErrorMap("S3", ObjectStoreError, not_found=NOT_FOUND)
        self._call = StoreCall(self.errors)

    def open(self, bucket: str, key: str) -> Body:
        """One GetObject; the caller reads the body as a stream and closes it."""
        target = f"s3://{bucket}/{key}"
        response = self._call(
            "GetObject", self._s3.get_object, target=target, Bucket=bucket, Key=key
        )
        return Body(response["Body"], self.errors, target)

    def read(self, bucket: str, key: str) -> bytes:
        """One GetObject, the whole body (a manifest, a checksum)."""
        body = self.open(bucket, key)
        try:
            return body.read()
        finally:
            body.close()
