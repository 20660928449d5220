"""S3 `sequencer` values: order events for one key only.

S3 says: right-pad the shorter value with zeros, then compare as strings. Values are hex and
their case varies between sources, so they are upper-cased and padded to one fixed width; the
stored form then compares correctly with DynamoDB's string comparison.
"""

from __future__ import annotations

import re

WIDTH = 40
_HEX = re.compile(r"^[0-9A-Fa-f]{1,40}$")


def normalize_sequencer(value: object) -> str | None:
    if not isinstance(value, str) or not _HEX.match(value):
        return None
    return value.upper().ljust(WIDTH, "0")


def newer(a: str | None, b: str | None) -> bool | None:
    """Is `a` after `b`? None when either is unknown (moto sends none)."""
    if a is None or b is None:
        return None
    return a > b
