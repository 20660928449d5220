"""Where analytics rows and dead-lettered records go: JSON lines, in S3 under the reserved
prefix (every driver, Lambda included, and `docsync stats` from anywhere) or in a local
directory (`DOCSYNC_STREAMS_ANALYTICS_DIR`).

S3 objects cannot be appended to, so each emission is one object, named by emission time:
`_docsync/streams/<kind>/<YYYY-MM-DD>/<HH>/<time>-<producer>-<id>.jsonl`; a reader lists only
the hours it needs. S3 notifications are configured for the document prefixes only, so these
writes raise no event, and the listener and the reconciler ignore the reserved prefix anyway.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from loguru import logger

from engine.exceptions import NotFoundError
from engine.store.objects import ObjectStore

if TYPE_CHECKING:
    from engine.aws import AwsClients
    from engine.settings import Settings
    from engine.streams.config import StreamSettings

ANALYTICS = "analytics"
DEAD_LETTER = "dead-letter"


class RowSink(Protocol):
    def write(self, kind: str, rows: Sequence[Mapping[str, Any]]) -> str | None:
        """Store rows; returns where (None when there was nothing to store)."""
        ...

    def read(self, kind: str, since: datetime) -> Iterator[dict[str, Any]]:
        """Rows emitted since `since` (a little before, never fewer)."""
        ...


def _lines(rows: Sequence[Mapping[str, Any]], producer: str, now: datetime) -> bytes:
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return "".join(
        json.dumps({**row, "emitted_at": stamp, "producer": producer}, default=str) + "\n"
        for row in rows
    ).encode()


def _parse(body: bytes, where: str) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(body.decode("utf-8", "replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            logger.bind(op="streams.sink", where=where, line=number).warning("unreadable row")
            continue
        if isinstance(row, dict):
            yield row


class S3RowSink:
    def __init__(self, objects: ObjectStore, reserved_prefix: str, producer: str) -> None:
        self.objects = objects
        self.prefix = f"{reserved_prefix}streams/"
        self.producer = producer

    def write(self, kind: str, rows: Sequence[Mapping[str, Any]]) -> str | None:
        if not rows:
            return None
        now = datetime.now(UTC)
        key = (
            f"{self.prefix}{kind}/{now:%Y-%m-%d}/{now:%H}/{now:%Y%m%dT%H%M%S%f}Z-"
            f"{self.producer}-{uuid.uuid4().hex[:8]}.jsonl"
        )
        self.objects.put(key, _lines(rows, self.producer, now))
        return f"s3://{self.objects.bucket}/{key}"

    def read(self, kind: str, since: datetime) -> Iterator[dict[str, Any]]:
        hour = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        end = datetime.now(UTC)
        while hour <= end:
            for info in self.objects.list(f"{self.prefix}{kind}/{hour:%Y-%m-%d}/{hour:%H}/"):
                try:
                    body = self.objects.get(info.key).body
                except NotFoundError:
                    continue
                yield from _parse(body, info.key)
            hour += timedelta(hours=1)


class FileRowSink:
    """One JSON Lines file per kind and UTC day, appended to (one process at a time)."""

    def __init__(self, directory: str | Path, producer: str) -> None:
        self.directory = Path(directory)
        self.producer = producer
        self._lock = threading.Lock()

    def _path(self, kind: str, day: datetime) -> Path:
        return self.directory / f"{kind}-{day:%Y-%m-%d}.jsonl"

    def write(self, kind: str, rows: Sequence[Mapping[str, Any]]) -> str | None:
        if not rows:
            return None
        now = datetime.now(UTC)
        path = self._path(kind, now)
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True)
            with path.open("ab") as out:
                out.write(_lines(rows, self.producer, now))
        return str(path)

    def read(self, kind: str, since: datetime) -> Iterator[dict[str, Any]]:
        day = since.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        end = datetime.now(UTC)
        while day <= end:
            path = self._path(kind, day)
            if path.is_file():
                yield from _parse(path.read_bytes(), str(path))
            day += timedelta(days=1)


class MemorySink:
    """For tests and dry runs: rows kept in memory."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = {}

    def write(self, kind: str, rows: Sequence[Mapping[str, Any]]) -> str | None:
        if not rows:
            return None
        self.rows.setdefault(kind, []).extend(dict(r) for r in rows)
        return f"memory:{kind}"

    def read(self, kind: str, since: datetime) -> Iterator[dict[str, Any]]:
        yield from self.rows.get(kind, [])


def build_sink(
    settings: Settings, config: StreamSettings, clients: AwsClients, producer: str
) -> RowSink:
    """The configured sink: a local directory if `analytics_dir` is set, else S3."""
    if config.analytics_dir:
        return FileRowSink(config.analytics_dir, producer)
    return S3RowSink(ObjectStore(clients.s3, settings.bucket), settings.reserved_prefix, producer)
