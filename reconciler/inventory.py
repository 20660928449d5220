"""An S3 Inventory report (CSV) as the reconciler's S3 side, for buckets too large to list.

Listing a bucket of hundreds of millions of objects costs one call per 1,000 keys on every run;
S3 Inventory writes the same facts daily. The report is read once for all shards, file by file
as a stream (checksums verified), filtered to the documents bucket and to the shards being run,
and sorted on local disk (`reconciler.extsort`), so memory does not grow with the bucket.

The report is a snapshot up to a day old: the reconciler re-checks against S3 every drift found
with it before reporting or repairing it (`Reconciler._settle`). Objects written since the
snapshot and not cached are not seen until the next report.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import posixpath
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote_plus

from loguru import logger

from engine.exceptions import InventoryError, NotFoundError
from engine.store.inventory import Body, InventoryStore
from engine.store.objects import ObjectInfo
from reconciler.extsort import FAN_IN, RUN_SIZE, ShardedRuns
from reconciler.shards import Shard

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# Bucket and Key are in every report; the reconciler needs ETag and LastModifiedDate too.
REQUIRED_COLUMNS = ("Bucket", "Key", "ETag", "LastModifiedDate")
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class DataFile:
    key: str
    size: int
    md5: str | None  # of the compressed bytes


@dataclass(frozen=True, slots=True)
class Manifest:
    source_bucket: str
    destination_bucket: str
    columns: tuple[str, ...]  # the order of the fields in every row
    created_at: datetime
    files: tuple[DataFile, ...]


class _Readable(Protocol):
    def read(self, amt: int = ..., /) -> bytes: ...


def parse_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/key` → (bucket, key)."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not uri.startswith("s3://") or not bucket or not key or key.endswith("/"):
        raise InventoryError(
            f"inventory wants the manifest's S3 URI, s3://BUCKET/…/manifest.json: got {uri!r}",
            ["inventory"],
        )
    return bucket, key


def checksum_key(manifest_key: str) -> str:
    return posixpath.join(posixpath.dirname(manifest_key), "manifest.checksum")


def check_md5(data: bytes, expected: str, what: str) -> None:
    actual = hashlib.md5(data, usedforsecurity=False).hexdigest()
    if actual != expected.strip().lower():
        raise InventoryError(f"checksum mismatch for {what}: MD5 {actual}, expected {expected}")


def parse_manifest(raw: bytes, where: str) -> Manifest:
    """The fields of manifest.json the reconciler relies on, checked and named when wrong."""
    try:
        data: Any = json.loads(raw)
        fmt = str(data["fileFormat"])
        if fmt.upper() != "CSV":
            raise InventoryError(
                f"{where}: inventory format {fmt} is not supported: configure the report as CSV"
            )
        columns = tuple(c.strip() for c in str(data["fileSchema"]).split(","))
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise InventoryError(
                f"{where}: the report has no {', '.join(missing)} column(s); the reconciler"
                " compares them with the cache: add them to the inventory's optional fields"
            )
        destination = str(data["destinationBucket"])
        files = tuple(
            DataFile(str(f["key"]), int(f.get("size", 0)), f.get("MD5checksum"))
            for f in data["files"]
        )
        return Manifest(
            source_bucket=str(data["sourceBucket"]),
            destination_bucket=destination.removeprefix("arn:aws:s3:::"),
            columns=columns,
            created_at=datetime.fromtimestamp(int(data["creationTimestamp"]) / 1000, UTC),
            files=files,
        )
    except InventoryError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise InventoryError(f"{where}: not a valid inventory manifest ({exc!r})") from exc


def decode_key(raw: str) -> str:
    """Inventory keys are URL-encoded like S3 event keys: `+` is a space, `%2B` a plus."""
    return unquote_plus(raw)


def parse_rows(
    records: Iterable[list[str]], columns: Sequence[str], bucket: str, where: str
) -> Iterator[ObjectInfo]:
    """Rows of the documents bucket that are current objects (no old versions, no delete
    markers); the fields are found by the manifest's column order."""
    at = {name: n for n, name in enumerate(columns)}
    size_at = at.get("Size")
    latest_at, marker_at = at.get("IsLatest"), at.get("IsDeleteMarker")
    for line, fields in enumerate(records, start=1):
        if len(fields) != len(columns):
            raise InventoryError(
                f"{where}: row {line} has {len(fields)} fields, the schema {len(columns)}"
            )
        if fields[at["Bucket"]] != bucket:
            continue
        if latest_at is not None and fields[latest_at].lower() == "false":
            continue
        if marker_at is not None and fields[marker_at].lower() == "true":
            continue
        try:
            yield ObjectInfo(
                key=decode_key(fields[at["Key"]]),
                etag=fields[at["ETag"]].strip('"'),
                size=int(fields[size_at] or 0) if size_at is not None else 0,
                last_modified=_utc(fields[at["LastModifiedDate"]]),
            )
        except ValueError as exc:
            raise InventoryError(f"{where}: row {line}: {exc}") from exc


def _utc(value: str) -> datetime:
    ts = datetime.fromisoformat(value)
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


class _Md5Reader:
    """Hashes the compressed bytes as gzip reads them, so a file is read from S3 once."""

    def __init__(self, raw: _Readable) -> None:
        self._raw = raw
        self.md5 = hashlib.md5(usedforsecurity=False)

    def read(self, size: int = -1) -> bytes:
        chunk = self._raw.read(size) if size >= 0 else self._raw.read()
        self.md5.update(chunk)
        return chunk

    def seek(self, offset: int, whence: int = 0) -> int:
        raise io.UnsupportedOperation("an inventory data file is read once, forwards")

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass


def read_data_file(
    body: _Readable, file: DataFile, columns: Sequence[str], bucket: str
) -> Iterator[ObjectInfo]:
    """One gzip-compressed CSV data file, streamed; its MD5 is checked once it is read."""
    hashed = _Md5Reader(body)
    try:
        gz = gzip.GzipFile(fileobj=hashed, mode="rb")
        with io.TextIOWrapper(gz, encoding="utf-8", newline="") as text:
            yield from parse_rows(csv.reader(text), columns, bucket, file.key)
        hashed.drain()
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, csv.Error) as exc:
        raise InventoryError(f"inventory data file {file.key} is unreadable: {exc}") from exc
    if file.md5 is not None and hashed.md5.hexdigest() != file.md5.lower():
        raise InventoryError(
            f"checksum mismatch for inventory data file {file.key}: MD5"
            f" {hashed.md5.hexdigest()}, the manifest says {file.md5}"
        )


class InventorySource:
    """One inventory report: `sort(shards)` reads it once and returns the shards' S3 sides."""

    def __init__(
        self,
        store: InventoryStore,
        uri: str,
        manifest: Manifest,
        bucket: str,
        run_size: int = RUN_SIZE,
        fan_in: int = FAN_IN,
        tmp_dir: str | None = None,
    ) -> None:
        self._store = store
        self.uri, self.manifest, self.bucket = uri, manifest, bucket
        self.run_size, self.fan_in, self.tmp_dir = run_size, fan_in, tmp_dir

    @classmethod
    def open(cls, client: S3Client, uri: str, bucket: str, **options: Any) -> InventorySource:
        """Read and check the manifest (and manifest.checksum, when present)."""
        where, key = parse_uri(uri)
        store = InventoryStore(client)
        raw = _read(store, where, key, "inventory manifest")
        try:
            checksum = _read(store, where, checksum_key(key), "manifest checksum")
        except InventoryError:
            checksum = None  # optional
        if checksum is not None:
            check_md5(raw, checksum.decode("ascii", "replace"), uri)
        manifest = parse_manifest(raw, uri)
        if manifest.source_bucket != bucket:
            raise InventoryError(
                f"{uri} is an inventory of bucket {manifest.source_bucket},"
                f" not of the documents bucket {bucket}"
            )
        return cls(store, uri, manifest, bucket, **options)

    @property
    def created_at(self) -> datetime:
        return self.manifest.created_at

    @property
    def label(self) -> str:
        return f"inventory:{self.uri}"

    def rows(self) -> Iterator[ObjectInfo]:
        """Every current object of the documents bucket in the report, in file order."""
        for file in self.manifest.files:
            body = self._body(file.key)
            try:
                yield from read_data_file(body, file, self.manifest.columns, self.bucket)
            finally:
                body.close()

    def sort(self, shards: Sequence[Shard]) -> ShardedRuns:
        """One pass over the report for all `shards`; the caller closes the result."""
        runs = ShardedRuns(shards, self.run_size, self.fan_in, self.tmp_dir)
        try:
            for row in self.rows():
                runs.add(row)
            runs.finish()
        except BaseException:
            runs.close()
            raise
        logger.bind(
            op="reconcile.inventory",
            inventory=self.uri,
            files=len(self.manifest.files),
            rows=runs.added,
            kept=runs.kept,
        ).info("inventory read: {} of {} rows in the shards run", runs.kept, runs.added)
        return runs

    def _body(self, key: str) -> Body:
        bucket = self.manifest.destination_bucket
        try:
            return self._store.open(bucket, key)
        except NotFoundError as exc:
            raise InventoryError(f"inventory data file s3://{bucket}/{key} does not exist") from exc


def _read(store: InventoryStore, bucket: str, key: str, what: str) -> bytes:
    try:
        return store.read(bucket, key)
    except NotFoundError as exc:
        raise InventoryError(f"{what} s3://{bucket}/{key} does not exist") from exc


__all__ = [
    "DataFile",
    "InventoryError",
    "InventorySource",
    "Manifest",
    "decode_key",
    "parse_manifest",
    "parse_rows",
    "parse_uri",
]
