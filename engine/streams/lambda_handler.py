"""Deprecated path of the stream consumer's Lambda handlers, kept because deployed functions
name it (`engine.streams.lambda_handler.stream_handler`): they live in engine/lambdas/stream.py."""

from __future__ import annotations

from engine.lambdas.stream import kinesis_handler, stream_handler

__all__ = ["kinesis_handler", "stream_handler"]
