"""Opaque, validated page tokens: a position in newest-first order, bound to one query.

The token carries the cursor (the last item's sort key and type) and the resolved time range,
signed with HMAC-SHA256 so a corrupted, forged or foreign token is refused instead of
silently skipping or repeating items.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass

from engine.exceptions import InvalidPageTokenError


@dataclass(frozen=True, slots=True)
class Cursor:
    sort_key: str  # modified_at#id of the last item returned
    type: str
    since: str  # the query's resolved range, fixed for all its pages
    until: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def fingerprint(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]


def encode(cursor: Cursor, query_fingerprint: str, secret: bytes) -> str:
    payload = json.dumps(
        {
            "v": 1,
            "f": query_fingerprint,
            "c": [cursor.sort_key, cursor.type, cursor.since, cursor.until],
        },
        separators=(",", ":"),
    ).encode()
    mac = hmac.new(secret, payload, hashlib.sha256).digest()[:16]
    return f"{_b64(payload)}.{_b64(mac)}"


def decode(token: str, query_fingerprint: str, secret: bytes) -> Cursor:
    try:
        payload_part, mac_part = token.split(".")
        payload, mac = _unb64(payload_part), _unb64(mac_part)
    except ValueError:
        raise InvalidPageTokenError("invalid page token: not a docsync page token") from None
    expected = hmac.new(secret, payload, hashlib.sha256).digest()[:16]
    canonical = _b64(payload) == payload_part and _b64(mac) == mac_part
    if not canonical or not hmac.compare_digest(mac, expected):
        raise InvalidPageTokenError("invalid page token: corrupted or not issued by this service")
    data = json.loads(payload)
    if data.get("v") != 1:
        raise InvalidPageTokenError("invalid page token: unknown version")
    if data.get("f") != query_fingerprint:
        raise InvalidPageTokenError(
            "invalid page token: it belongs to a query with other filters (type/customer/status)"
        )
    sort_key, type_name, since, until = data["c"]
    return Cursor(sort_key, type_name, since, until)
