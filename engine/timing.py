"""One log line per operation, with `op` and `duration_ms` (and whatever the body adds)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from loguru import logger


@contextmanager
def timed(log: Any = logger, message: str = "ok") -> Iterator[dict[str, Any]]:
    """Yields a dict the body fills with fields for the closing line; logs failures too."""
    fields: dict[str, Any] = {}
    start = time.perf_counter()
    try:
        yield fields
    except Exception as exc:
        ms = round((time.perf_counter() - start) * 1000, 2)
        log.bind(duration_ms=ms, error=type(exc).__name__, **fields).warning("failed: {}", exc)
        raise
    ms = round((time.perf_counter() - start) * 1000, 2)
    log.bind(duration_ms=ms, **fields).info(message)
