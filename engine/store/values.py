"""DynamoDB's Python types as plain JSON-friendly values: the stores hand these to the
capabilities above them (the stream records, the lease items, the metrics items)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import Binary


def plain(value: Any) -> Any:
    """DynamoDB's Python types → JSON-friendly ones (Decimal → int/float, Binary → bytes)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Binary):
        return value.value  # type: ignore[attr-defined]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((plain(v) for v in value), key=repr)
    return value
