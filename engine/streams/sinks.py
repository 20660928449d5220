"""Where analytics rows and dead-lettered records go: JSON lines, in S3 under the reserved
prefix (every driver, Lambda included, and `docsync stats` from anywhere) or in a local
directory (`DOCSYNC_STREAMS_ANALYTICS_DIR`), laid out the same way.

S3 objects cannot be appended to, so each emission is one object:
`<kind>/<YYYY-MM-DD>/<HH>/<time>-<producer>-<digest>.jsonl` (under `_docsync/streams/` in S3),
a reader lists only the hours it needs. The driver chooses the name (`emission_name`) from
what the emission covers, and a put under a name replaces what it held: a retried emission
overwrites its earlier attempt instead of adding to it, which is what keeps analytics exactly
once across crashes and redeliveries. S3 notifications are configured for the document
prefixes only, so these writes raise no event, and the listener and the reconciler ignore the
reserved prefix anyway.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
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
# Lambda and KCL emissions sit in the hour of their first record, which may precede the
# emission itself: readers list from this much before `since`.
LOOKBACK = timedelta(hours=1)
_NAME = re.compile(r"\d{4}-\d{2}-\d{2}/\d{2}/[0-9A-Za-z][0-9A-Za-z._-]*")


def emission_name(at: datetime, producer: str, *identity: str) -> str:
    """`<day>/<hour>/<time>-<producer>-<digest of identity>`: the same identity (and time)
    always gives the same name, so storing an emission again overwrites it."""
    at = at.astimezone(UTC)
    digest = hashlib.sha256("\x1f".join(identity).encode()).hexdigest()[:24]
    return f"{at:%Y-%m-%d}/{at:%H}/{at:%Y%m%dT%H%M%S%f}Z-{producer}-{digest}"


def fresh_name(producer: str) -> str:
    """A name used once: for what has no identity of its own (dead letters of a batch in
    which nothing decoded)."""
    return emission_name(datetime.now(UTC), producer, uuid.uuid4().hex)


def _checked(name: str) -> str:
    if not _NAME.fullmatch(name):  # names also come back from the leases table
        raise ValueError(f"not an emission name: {name!r}")
    return name


class RowSink(Protocol):
    def put(self, kind: str, name: str, rows: Sequence[Mapping[str, Any]]) -> str:
        """Store rows as the one object `name` (an `emission_name`), replacing whatever that
        name held, even with no rows; returns where. All or nothing: a reader (or `exists`)
        never sees half an emission."""
        ...

    def exists(self, kind: str, name: str) -> bool:
        """Whether an emission of that name is stored (a crashed attempt's fate)."""
        ...

    def read(self, kind: str, since: datetime) -> Iterator[dict[str, Any]]:
        """Rows of the emissions made since `since` (and some before, never fewer)."""
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


def _hours(since: datetime) -> Iterator[datetime]:
    hour = (since.astimezone(UTC) - LOOKBACK).replace(minute=0, second=0, microsecond=0)
    end = datetime.now(UTC) + LOOKBACK  # clocks differ: a record's time may be ahead of ours
    while hour <= end:
        yield hour
        hour += timedelta(hours=1)


class S3RowSink:
    def __init__(self, objects: ObjectStore, reserved_prefix: str, producer: str) -> None:
        self.objects = objects
        self.prefix = f"{reserved_prefix}streams/"
        self.producer = producer

    def _key(self, kind: str, name: str) -> str:
        return f"{self.prefix}{kind}/{_checked(name)}.jsonl"

    def put(self, kind: str, name: str, rows: Sequence[Mapping[str, Any]]) -> str:
        key = self._key(kind, name)
        self.objects.put(key, _lines(rows, self.producer, datetime.now(UTC)))
        return f"s3://{self.objects.bucket}/{key}"

    def exists(self, kind: str, name: str) -> bool:
        return self.objects.head(self._key(kind, name)) is not None

    def read(self, kind: str, since: datetime) -> Iterator[dict[str, Any]]:
        for hour in _hours(since):
            for info in self.objects.list(f"{self.prefix}{kind}/{hour:%Y-%m-%d}/{hour:%H}/"):
                try:
                    body = self.objects.get(info.key).body
                except NotFoundError:
                    continue
                yield from _parse(body, info.key)


class FileRowSink:
    """The S3 layout in a local directory; each file written whole (temporary file, fsync,
    rename), so a crash never leaves half an emission behind."""

    def __init__(self, directory: str | Path, producer: str) -> None:
        self.directory = Path(directory)
        self.producer = producer
        self._lock = threading.Lock()

    def _path(self, kind: str, name: str) -> Path:
        return self.directory / kind / f"{_checked(name)}.jsonl"

    def put(self, kind: str, name: str, rows: Sequence[Mapping[str, Any]]) -> str:
        path = self._path(kind, name)
        body = _lines(rows, self.producer, datetime.now(UTC))
        with self._lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
            with temporary.open("wb") as out:
                out.write(body)
                out.flush()
                os.fsync(out.fileno())
            temporary.replace(path)
        return str(path)

    def exists(self, kind: str, name: str) -> bool:
        return self._path(kind, name).is_file()

    def read(self, kind: str, since: datetime) -> Iterator[dict[str, Any]]:
        days: list[datetime] = []
        for hour in _hours(since):
            folder = self.directory / kind / f"{hour:%Y-%m-%d}" / f"{hour:%H}"
            if folder.is_dir():
                for path in sorted(folder.glob("*.jsonl")):
                    yield from _parse(path.read_bytes(), str(path))
            if not days or days[-1].date() != hour.date():
                days.append(hour)
        for day in days:  # earlier versions appended to one file per kind and day
            legacy = self.directory / f"{kind}-{day:%Y-%m-%d}.jsonl"
            if legacy.is_file():
                yield from _parse(legacy.read_bytes(), str(legacy))


class MemorySink:
    """For tests and dry runs: emissions kept in memory, by name."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, list[dict[str, Any]]]] = {}

    @property
    def rows(self) -> dict[str, list[dict[str, Any]]]:
        """Every stored row, by kind."""
        return {
            kind: [row for rows in named.values() for row in rows]
            for kind, named in self.objects.items()
        }

    def put(self, kind: str, name: str, rows: Sequence[Mapping[str, Any]]) -> str:
        self.objects.setdefault(kind, {})[_checked(name)] = [dict(r) for r in rows]
        return f"memory:{kind}/{name}"

    def exists(self, kind: str, name: str) -> bool:
        return name in self.objects.get(kind, {})

    def read(self, kind: str, since: datetime) -> Iterator[dict[str, Any]]:
        yield from self.rows.get(kind, [])


def build_sink(
    settings: Settings, config: StreamSettings, clients: AwsClients, producer: str
) -> RowSink:
    """The configured sink: a local directory if `analytics_dir` is set, else S3."""
    if config.analytics_dir:
        return FileRowSink(config.analytics_dir, producer)
    return S3RowSink(ObjectStore(clients.s3, settings.bucket), settings.reserved_prefix, producer)
