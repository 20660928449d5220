"""Record and replay every AWS call of a run (seed 003 §10.5), as botocore hooks.

`DOCSYNC_RECORD=path` appends one JSON line per HTTP attempt: the request (method, URL,
headers, body) and the response (status, headers, body), or the exception. Credentials never
reach the file (`Authorization`, the session token); with `record_redact_bodies` neither do
documents (S3 object bodies, the cache items' `body` attribute) — such a recording still
replays the same calls, but not the same contents.

`DOCSYNC_REPLAY=path` answers every attempt from the recording at `before-send`, so nothing
goes on the network and botocore still parses, validates checksums and retries as it did.
Requests carry what changes from run to run (signatures, dates, the pipeline's transaction
ids, timestamps in conditions), so they are not matched byte for byte: each (service,
operation) has its recorded sequence, and the next unused entry with the same stable part
(method, URL path, table, key, index, queue) is served — in order, so a single-threaded run
replays exactly, and concurrent ones replay per key. moto's own recorder (`/moto-api/recorder`)
records the server side only and replays into a moto server; this needs no server at all.
"""

from __future__ import annotations

import base64
import io
import json
import re
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.exceptions import BotoCoreError
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.response import StreamingBody

SECRET_HEADERS = frozenset({"authorization", "x-amz-security-token"})
REDACTED = "<redacted>"
CONTENT_ATTRIBUTES = frozenset({"body", "title"})  # what a cache item holds of a document


class ReplayMismatchError(BotoCoreError):
    fmt = "replay: no recorded {service}.{operation} left for {stable}"


def _text(body: Any) -> dict[str, str]:
    if body is None:
        return {"text": ""}
    if isinstance(body, str):
        return {"text": body}
    data = bytes(body)
    try:
        return {"text": data.decode()}
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode()}


def _bytes(stored: dict[str, str]) -> bytes:
    if "base64" in stored:
        return base64.b64decode(stored["base64"])
    return stored.get("text", "").encode()


def _redact_items(value: Any, placeholders: frozenset[str] = frozenset()) -> Any:
    """DynamoDB JSON with the document's content attributes replaced, in items and in the
    values an update expression assigns to them (`SET #a0 = :v0`)."""
    if isinstance(value, dict):
        names = value.get("ExpressionAttributeNames") or {}
        hidden = {n for n, attr in names.items() if attr in CONTENT_ATTRIBUTES}
        assigned = re.findall(r"(#\w+)\s*=\s*(:\w+)", str(value.get("UpdateExpression", "")))
        placeholders |= {p for n, p in assigned if n in hidden}
        return {
            k: {"S": REDACTED}
            if (k in CONTENT_ATTRIBUTES or k in placeholders) and isinstance(v, dict)
            else _redact_items(v, placeholders)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redact_items(v, placeholders) for v in value]
    return value


def _redact_body(service: str, body: dict[str, str]) -> dict[str, str]:
    if service == "s3":
        return {"text": REDACTED} if body.get("text") or body.get("base64") else body
    try:
        return {"text": json.dumps(_redact_items(json.loads(_bytes(body) or b"{}")))}
    except ValueError:
        return body


def stable_part(service: str, method: str, url: str, body: bytes) -> str:
    """What identifies a request across runs (see the module docstring)."""
    parts = [method, urlsplit(url).path]
    if service != "s3" and body:
        try:
            data = json.loads(body)
        except ValueError:
            data = {}
        for name in ("TableName", "IndexName", "Key", "QueueUrl"):
            if name in data:
                value = data[name]
                if name == "QueueUrl":
                    value = urlsplit(str(value)).path
                parts.append(f"{name}={json.dumps(value, sort_keys=True)}")
    return " ".join(parts)


def _names(event_name: str) -> tuple[str, str]:
    _, service, operation = event_name.split(".")[:3]
    return service, operation


class Recorder:
    """Appends every attempt of every client it is registered on to one JSON-lines file."""

    def __init__(self, path: Path, redact_bodies: bool = False) -> None:
        self.path, self.redact_bodies = Path(path), redact_bodies
        self._lock = threading.Lock()
        self._pending = threading.local()

    def register(self, client: Any) -> None:
        client.meta.events.register("before-send.*.*", self.before_send)
        client.meta.events.register("response-received.*.*", self.response_received)

    def before_send(self, request: Any, event_name: str, **_: Any) -> None:
        service, operation = _names(event_name)
        headers = {
            k: REDACTED if k.lower() in SECRET_HEADERS else str(v)
            for k, v in request.headers.items()
        }
        body = _text(request.body if not hasattr(request.body, "read") else b"<stream>")
        self._pending.entry = {
            "service": service,
            "operation": operation,
            "request": {"method": request.method, "url": request.url, "headers": headers},
            "stable": stable_part(service, request.method, request.url, _bytes(body)),
        }
        if self.redact_bodies:
            body = _redact_body(service, body)
        self._pending.entry["request"]["body"] = body

    def response_received(
        self,
        response_dict: dict[str, Any] | None,
        parsed_response: dict[str, Any] | None,
        exception: BaseException | None,
        **_: Any,
    ) -> None:
        entry = getattr(self._pending, "entry", None)
        self._pending.entry = None
        if entry is None:
            return
        if response_dict is None:
            entry["exception"] = {"type": type(exception).__name__, "message": str(exception)}
        else:
            raw = response_dict.get("body")
            if not isinstance(raw, bytes | bytearray) and parsed_response is not None:
                stream = parsed_response.get("Body")
                raw = stream.read() if stream is not None else b""
                parsed_response["Body"] = StreamingBody(io.BytesIO(raw), len(raw))
            body = _text(raw)
            headers = {k: str(v) for k, v in response_dict.get("headers", {}).items()}
            if self.redact_bodies:
                body = _redact_body(entry["service"], body)
                headers.pop("x-amz-crc32", None)  # the body no longer matches it
            entry["response"] = {
                "status": response_dict.get("status_code"),
                "headers": headers,
                "body": body,
            }
        line = json.dumps(entry, sort_keys=True)
        with self._lock, self.path.open("a", encoding="utf-8") as out:
            out.write(line + "\n")


class _Raw:
    """What botocore reads a response body from: `stream()` for content, `read()` for
    streaming outputs (S3 GetObject)."""

    def __init__(self, data: bytes) -> None:
        self._buffer = io.BytesIO(data)

    def stream(self, **_: Any) -> Any:
        yield self._buffer.read()

    def read(self, amt: int | None = None) -> bytes:
        return self._buffer.read(amt) if amt is not None else self._buffer.read()

    def close(self) -> None:
        self._buffer.close()


class Replayer:
    """Serves a recording back at `before-send`; nothing is sent."""

    def __init__(self, path: Path, loop: bool = False) -> None:
        """`loop`: serve the same entries again and again (benchmarks of the client side)."""
        self._loop = loop
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if line.strip():
                entry = json.loads(line)
                self._entries[(entry["service"], entry["operation"])].append(entry)

    def register(self, client: Any) -> None:
        client.meta.events.register_first("before-send.*.*", self.before_send)

    def remaining(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._entries.values())

    def _take(self, service: str, operation: str, stable: str) -> dict[str, Any]:
        with self._lock:
            queue = self._entries.get((service, operation), [])
            for i, entry in enumerate(queue):
                if entry.get("stable") == stable:
                    return entry if self._loop else queue.pop(i)
            if queue:
                return queue[0] if self._loop else queue.pop(0)
        raise ReplayMismatchError(service=service, operation=operation, stable=stable)

    def before_send(self, request: Any, event_name: str, **_: Any) -> AWSResponse:
        service, operation = _names(event_name)
        body = request.body if isinstance(request.body, bytes | bytearray) else b""
        if isinstance(request.body, str):
            body = request.body.encode()
        entry = self._take(service, operation, stable_part(service, request.method, request.url,
                                                           bytes(body)))  # fmt: skip
        if "exception" in entry:
            raise BotoConnectionError(error=RuntimeError(f"replayed {entry['exception']['type']}"))
        response = entry["response"]
        data = _bytes(response["body"])
        return AWSResponse(
            request.url,
            int(response["status"]),
            HTTPHeaders.from_dict(response["headers"]),
            _Raw(data),
        )
