"""Where analytics rows and dead-lettered records go: JSON lines, in S3 under the reserved
prefix (every driver, Lambda included, and `docsync stats` from anywhere) or in a local
directory (`DOCSYNC_STREAMS_ANALYTICS_DIR`), laid out the same way.

S3 objects cannot be appended to, so each emission is one object:
`<kind>/<YYYY-MM-DD>/<HH>/<time>-<producer>-<digest>.jsonl` (under `_docsync/streams/` in S3).
The time is when the emission is stored (never a record's time: a consumer working through
an old backlog stores rows of last week's records today), so a reader lists only the hours
from its `since` to now and still finds every row whose records are in its range, however
late they were processed; it then filters the rows on their own `window_start` (record time).
The digest is of what the emission covers (its identity: stream, first record, positions),
and a reader keeps only the newest emission of each identity: a retried or redelivered
emission supersedes its earlier attempt wherever that sits, which is what keeps analytics
exactly once across crashes, redeliveries and bisected batches. S3 notifications are
configured for the document prefixes only, so these writes raise no event, and the listener
and the reconciler ignore the reserved prefix anyway.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from loguru import logger

from engine.exceptions import NotFoundError
from engine.store.objects import ObjectStore

if TYPE_CHECKING:
    from engine.aws import AwsClients
    from engine.settings import Settings, StreamSettings

ANALYTICS = "analytics"
DEAD_LETTER = "dead-letter"
# Clocks differ between hosts: readers list from this much before `since` and after now.
LOOKBACK = timedelta(hours=1)
_NAME = re.compile(r"\d{4}-\d{2}-\d{2}/\d{2}/[0-9A-Za-z][0-9A-Za-z._-]*")
_STAMP = re.compile(r"(\d{8}T\d{12}Z)-(.+)")


def emission_name(at: datetime, producer: str, *identity: str) -> str:
    """`<day>/<hour>/<time>-<producer>-<digest of identity>`, `at` being when it is stored.
    The same identity always gives the same `<producer>-<digest>`, so a later emission of it
    supersedes the earlier ones (`newest_per_identity`)."""
    at = at.astimezone(UTC)
    digest = hashlib.sha256("\x1f".join(identity).encode()).hexdigest()[:24]
    return f"{at:%Y-%m-%d}/{at:%H}/{at:%Y%m%dT%H%M%S%f}Z-{producer}-{digest}"


def fresh_name(producer: str) -> str:
    """A name used once: for what has no identity of its own (dead letters of a batch in
    which nothing decoded)."""
    return emission_name(datetime.now(UTC), producer, uuid.uuid4().hex)


def identity_of(name: str) -> tuple[str, str]:
    """(`<producer>-<digest>`, `<time>`) of an emission name; the name itself when it has no
    time stamp (then it is its own identity)."""
    leaf = name.rsplit("/", 1)[-1]
    match = _STAMP.fullmatch(leaf)
    return (match.group(2), match.group(1)) if match else (leaf, "")


def newest_per_identity(names: Iterable[str]) -> list[str]:
    """The names a reader keeps: of emissions with one identity, only the newest."""
    newest: dict[str, tuple[str, str]] = {}
    for name in names:
        identity, stamp = identity_of(name)
        if identity not in newest or stamp > newest[identity][0]:
            newest[identity] = (stamp, name)
    return sorted(name for _, name in newest.values())


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
        """Rows of the emissions stored since `since` (and some before, never fewer), only
        the newest emission of each identity. Rows of records older than `since` may be
        among them (a backlog processed late): callers filter on the rows' own times."""
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
        keys = [
            info.key
            for hour in _hours(since)
            for info in self.objects.list(f"{self.prefix}{kind}/{hour:%Y-%m-%d}/{hour:%H}/")
            if info.key.endswith(".jsonl")
        ]
        for key in newest_per_identity(k.removesuffix(".jsonl") for k in keys):
            try:
                body = self.objects.get(f"{key}.jsonl").body
            except NotFoundError:
                continue
            yield from _parse(body, key)


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
        paths: list[str] = []
        for hour in _hours(since):
            folder = self.directory / kind / f"{hour:%Y-%m-%d}" / f"{hour:%H}"
            if folder.is_dir():
                paths.extend(str(p.with_suffix("")) for p in folder.glob("*.jsonl"))
            if not days or days[-1].date() != hour.date():
                days.append(hour)
        for stem in newest_per_identity(paths):
            path = Path(f"{stem}.jsonl")
            try:
                body = path.read_bytes()
            except FileNotFoundError:
                continue
            yield from _parse(body, str(path))
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
        """The rows a reader sees (the newest emission of each identity), by kind."""
        return {
            kind: [row for name in newest_per_identity(named) for row in named[name]]
            for kind, named in self.objects.items()
        }

    def put(self, kind: str, name: str, rows: Sequence[Mapping[str, Any]]) -> str:
        self.objects.setdefault(kind, {})[_checked(name)] = [dict(r) for r in rows]
        return f"memory:{kind}/{name}"

    def exists(self, kind: str, name: str) -> bool:
        return name in self.objects.get(kind, {})

    def read(self, kind: str, since: datetime) -> Iterator[dict[str, Any]]:
        hours = {f"{hour:%Y-%m-%d}/{hour:%H}/" for hour in _hours(since)}
        named = self.objects.get(kind, {})
        listed = [name for name in named if name[:14] in hours]
        for name in newest_per_identity(listed):
            yield from named[name]


def build_sink(
    settings: Settings, config: StreamSettings, clients: AwsClients, producer: str
) -> RowSink:
    """The configured sink: a local directory if `analytics_dir` is set, else S3."""
    if config.analytics_dir:
        return FileRowSink(config.analytics_dir, producer)
    return S3RowSink(ObjectStore(clients.s3, settings.bucket), settings.reserved_prefix, producer)
