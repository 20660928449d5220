"""The `docsync` command line (DESIGN.md's CLI contract: stable, scripts depend on it)."""

from __future__ import annotations
