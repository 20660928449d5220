"""Shared hypothesis settings for the unit tests: no example database on disk, no deadline."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

FAST = settings(
    database=None,
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow],
)
