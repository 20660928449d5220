"""An external sort of S3 rows into shards, on local disk.

A source that is not in key order (an S3 Inventory report) still has to feed the reconciler's
sorted merge. Rows are routed to their shard, buffered up to `run_size` in all, and spilled as
sorted runs to temporary files; a shard is read back as one k-way merge of its runs. Memory is
bounded by `run_size` and the merge fan-in, never by the number of rows.
"""

from __future__ import annotations

import bisect
import heapq
import json
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType

from engine.store.objects import ObjectInfo
from reconciler.shards import Shard

RUN_SIZE = 100_000
FAN_IN = 16  # runs merged at once: bounds the files open per shard
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _order(row: ObjectInfo) -> bytes:
    return row.key.encode()


class Router:
    """Which of the given shards hold a key: a bisect per type prefix, not a scan of all."""

    def __init__(self, shards: Iterable[Shard]) -> None:
        by_prefix: dict[str, list[tuple[bytes, Shard]]] = defaultdict(list)
        for shard in dict.fromkeys(shards):
            by_prefix[shard.prefix].append(((shard.first or "").encode(), shard))
        self._prefixes = {p: sorted(v, key=lambda pair: pair[0]) for p, v in by_prefix.items()}
        self._firsts = {p: [first for first, _ in v] for p, v in self._prefixes.items()}

    def shards_of(self, key: str) -> list[Shard]:
        found = []
        for prefix, candidates in self._prefixes.items():
            if not key.startswith(prefix):
                continue
            rest = key.encode()[len(prefix.encode()) :]
            at = bisect.bisect_right(self._firsts[prefix], rest) - 1
            if at >= 0 and candidates[at][1].contains(key):
                found.append(candidates[at][1])
        return found


def _write(path: Path, rows: Iterable[ObjectInfo]) -> None:
    with path.open("w", encoding="ascii") as out:  # JSON escapes every non-ASCII character
        for row in rows:
            micros = (row.last_modified - _EPOCH) // timedelta(microseconds=1)
            out.write(json.dumps([row.key, row.etag, row.size, micros]) + "\n")


def _read(path: Path) -> Iterator[ObjectInfo]:
    with path.open(encoding="ascii") as lines:
        for line in lines:
            key, etag, size, micros = json.loads(line)
            yield ObjectInfo(key, etag, size, _EPOCH + timedelta(microseconds=micros))


def _merge(paths: Sequence[Path]) -> Iterator[ObjectInfo]:
    return heapq.merge(*(_read(p) for p in paths), key=_order)


class ShardedRuns:
    """Rows added in any order; `rows(shard)` gives one shard's back in UTF-8 byte order.

    Use as a context manager (or call `close`): the runs live in a temporary directory.
    """

    def __init__(
        self,
        shards: Iterable[Shard],
        run_size: int = RUN_SIZE,
        fan_in: int = FAN_IN,
        directory: str | None = None,
    ) -> None:
        if run_size < 1 or fan_in < 2:
            raise ValueError("run_size must be >= 1 and fan_in >= 2")
        self.router = Router(shards)
        self.run_size, self.fan_in = run_size, fan_in
        self._tmp = tempfile.TemporaryDirectory(prefix="docsync-runs-", dir=directory)
        self.directory = Path(self._tmp.name)
        self._buffer: list[tuple[Shard, ObjectInfo]] = []
        self._runs: dict[Shard, list[Path]] = defaultdict(list)
        self._files = 0
        self.added = self.kept = 0

    def add(self, row: ObjectInfo) -> None:
        self.added += 1
        shards = self.router.shards_of(row.key)
        self.kept += bool(shards)
        for shard in shards:
            self._buffer.append((shard, row))
            if len(self._buffer) >= self.run_size:
                self._spill()

    def finish(self) -> ShardedRuns:
        """Spill what is buffered and merge each shard down to at most `fan_in` runs."""
        self._spill()
        for runs in self._runs.values():
            while len(runs) > self.fan_in:
                merged = self._path()
                _write(merged, _merge(runs[: self.fan_in]))
                for path in runs[: self.fan_in]:
                    path.unlink()
                runs[: self.fan_in] = []
                runs.append(merged)
        return self

    def rows(self, shard: Shard) -> Iterator[ObjectInfo]:
        last: bytes | None = None
        for row in _merge(list(self._runs.get(shard, []))):
            if _order(row) != last:  # a key listed twice (it should not be) counts once
                last = _order(row)
                yield row

    def close(self) -> None:
        self._buffer.clear()
        self._runs.clear()
        self._tmp.cleanup()

    def __enter__(self) -> ShardedRuns:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _spill(self) -> None:
        groups: dict[Shard, list[ObjectInfo]] = defaultdict(list)
        for shard, row in self._buffer:
            groups[shard].append(row)
        self._buffer.clear()
        for shard, rows in groups.items():
            path = self._path()
            _write(path, sorted(rows, key=_order))
            self._runs[shard].append(path)

    def _path(self) -> Path:
        self._files += 1
        return self.directory / f"{self._files:08d}.run"


__all__ = ["FAN_IN", "RUN_SIZE", "Router", "ShardedRuns"]
