"""The object store's twin: one S3 bucket in memory (`engine/store/abc.py` `Objects`)."""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime

from engine.exceptions import NotFoundError
from engine.store.objects import ObjectInfo, StoredObject

Clock = Callable[[], datetime]


def s3_clock() -> datetime:
    """S3 reports times to the second (LastModified, Date)."""
    return datetime.now(UTC).replace(microsecond=0)


class MemoryObjectStore:
    """One bucket in memory: MD5 ETags, second-precision times, versions when enabled."""

    def __init__(self, bucket: str = "memory", versioning: bool = False, clock: Clock = s3_clock):
        self.bucket = bucket
        self.versioning = versioning
        self._clock = clock
        self._lock = threading.Lock()
        self._current: dict[str, StoredObject] = {}
        self._versions: dict[tuple[str, str], StoredObject] = {}
        self._serial = itertools.count(1)

    def get(self, key: str) -> StoredObject:
        with self._lock:
            stored = self._current.get(key)
        if stored is None:
            raise NotFoundError(f"memory://{self.bucket}/{key} does not exist")
        return stored

    def get_version(self, key: str, version_id: str) -> StoredObject:
        with self._lock:
            stored = self._versions.get((key, version_id))
        if stored is None:
            raise NotFoundError(f"memory://{self.bucket}/{key}?versionId={version_id}: none")
        return stored

    def get_if_changed(self, key: str, etag: str) -> StoredObject | None:
        stored = self.get(key)
        return None if stored.info.etag == etag else stored

    def head(self, key: str) -> ObjectInfo | None:
        with self._lock:
            stored = self._current.get(key)
        return stored.info if stored else None

    def put(self, key: str, body: bytes) -> ObjectInfo:
        etag = hashlib.md5(body, usedforsecurity=False).hexdigest()
        with self._lock:
            version = f"v{next(self._serial):012d}" if self.versioning else None
            info = ObjectInfo(key, etag, len(body), self._clock(), version)
            stored = StoredObject(info, bytes(body))
            self._current[key] = stored
            if version:
                self._versions[(key, version)] = stored
        return info

    def delete(self, key: str) -> datetime:
        with self._lock:
            self._current.pop(key, None)
        return self._clock()

    def list(self, prefix: str, start_after: str = "") -> Iterator[ObjectInfo]:
        with self._lock:  # a snapshot, like one listing page after another of a quiet bucket
            infos = [s.info for k, s in self._current.items() if k.startswith(prefix)]
        after = start_after.encode()
        for info in sorted(infos, key=lambda i: i.key.encode()):
            if info.key.encode() > after:
                yield replace(info, version_id=None)  # a listing carries no version ids
