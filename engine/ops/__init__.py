"""Operator tools: inspect and redrive the DLQ (`dlq`), check a deployment (`doctor`)."""

from __future__ import annotations
