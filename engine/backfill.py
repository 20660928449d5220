"""Warm the cache from S3: list, read, validate, fill with writes that never go backwards.

Concurrent (a bounded pool) and rate-limited (the cache store's token bucket). The reconciler
will make this the repair of `missing`; the fill itself is `Reader.fill`, shared with reads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from loguru import logger

from engine import keys
from engine.documents import parse_document
from engine.exceptions import DocsyncError, InvalidDocumentError, NotFoundError
from engine.reader import Reader
from engine.store.objects import ObjectInfo


@dataclass
class BackfillCounts:
    listed: int = 0
    filled: int = 0
    already_current: int = 0
    filtered: int = 0
    out_of_window: int = 0
    invalid: int = 0
    failed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Backfill:
    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self.settings = reader.settings
        self._lock = threading.Lock()

    def run(
        self,
        types: Iterable[str],
        since: datetime | None = None,
        customer: str | None = None,
        on_listed: Callable[[int], None] | None = None,
        on_done: Callable[[], None] | None = None,
    ) -> BackfillCounts:
        counts = BackfillCounts()
        window = keys.window_start(self.settings.cache_ttl_days)
        prefixes = self.settings.prefixes()
        todo: list[tuple[str, ObjectInfo]] = []
        for type_name in types:
            for info in self.reader.objects.list(prefixes[type_name]):
                counts.listed += 1
                if info.last_modified <= window:
                    counts.out_of_window += 1
                elif since is not None and info.last_modified < since:
                    counts.filtered += 1
                elif keys.key_to_doc(info.key, {type_name: prefixes[type_name]}) is None:
                    counts.invalid += 1
                else:
                    todo.append((type_name, info))
        if on_listed:
            on_listed(len(todo))

        def one(item: tuple[str, ObjectInfo]) -> None:
            outcome = self._fill(item[0], item[1].key, customer)
            with self._lock:
                setattr(counts, outcome, getattr(counts, outcome) + 1)
            if on_done:
                on_done()

        with ThreadPoolExecutor(self.settings.concurrency) as pool:
            list(pool.map(one, todo))
        logger.bind(op="backfill", dry_run=self.settings.dry_run, **counts.as_dict()).info("done")
        return counts

    def _fill(self, type_name: str, key: str, customer: str | None) -> str:
        log = logger.bind(op="backfill.fill", key=key)
        try:
            stored = self.reader.objects.get(key)
            doc = parse_document(stored.body, type_name)
        except NotFoundError:
            return "filtered"  # deleted since the listing
        except InvalidDocumentError as exc:
            log.warning("not a valid document: {}", exc)
            return "invalid"
        except DocsyncError as exc:
            log.error("read failed: {}", exc)
            return "failed"
        if customer is not None and customer not in doc.customer_codes:
            return "filtered"
        if self.settings.dry_run:
            log.bind(dry_run=True).info("dry run: would fill the cache entry")
            return "filled"
        try:
            filled = self.reader.fill(doc, stored, source="backfill")
        except DocsyncError as exc:
            log.error("fill failed: {}", exc)
            return "failed"
        return "filled" if filled else "already_current"
