"""Lambda entry points that have no home in a capability package (scheduled reconcile)."""

from __future__ import annotations
