"""Deprecated path of the listener's Lambda handlers, kept because deployed functions name it
(`engine.events.handlers.sqs_handler`): the handlers live in engine/lambdas/listener.py and the
container's engine in engine/lambdas/runtime.py."""

from __future__ import annotations

from engine.lambdas.listener import RetryLaterError, s3_handler, sqs_handler
from engine.lambdas.runtime import engine, flush_alarm_metrics, reset_engine

__all__ = [
    "RetryLaterError",
    "engine",
    "flush_alarm_metrics",
    "reset_engine",
    "s3_handler",
    "sqs_handler",
]
