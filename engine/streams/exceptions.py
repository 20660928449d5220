"""The stream consumers' errors, drawn in the project's one tree (engine/exceptions.py) and
re-exported here for the modules that import them from their package."""

from __future__ import annotations

from engine.exceptions import (
    LeaseLostError,
    MalformedRecordError,
    StreamNotFoundError,
    StreamsError,
)

__all__ = ["LeaseLostError", "MalformedRecordError", "StreamNotFoundError", "StreamsError"]
