"""Fault injection through botocore's own event hooks, so failures take the production path.

`fail` raises a connection error before the request is sent (the service never sees it);
`crash_after` raises SimulatedCrash after the service applied the call, and since it is a
BaseException the engine's `except Exception` recovery does not run: a dead process.
`respond` answers an attempt with a service error instead of sending it (`before-send`), so
botocore parses it and its retry machinery sees it like a real throttle or 5xx.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.exceptions import EndpointConnectionError


class SimulatedCrash(BaseException):
    """The process died here."""


class Faults:
    def __init__(self) -> None:
        self.plan: dict[tuple[str, str], list[str]] = {}
        self.fired: list[tuple[str, str, str]] = []

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-call.*.*", self._before)
        client.meta.events.register("after-call.*.*", self._after)
        client.meta.events.register("before-send.*.*", self._send)

    def fail(self, service: str, operation: str, times: int = 1) -> None:
        self.plan.setdefault((service, operation), []).extend(["fail"] * times)

    def crash_after(self, service: str, operation: str) -> None:
        self.plan.setdefault((service, operation), []).append("crash")

    def respond(
        self, service: str, operation: str, code: str, status: int = 400, times: int = 1
    ) -> None:
        """The next `times` attempts of the operation get error `code` with HTTP `status`."""
        self.plan.setdefault((service, operation), []).extend([f"respond:{code}:{status}"] * times)

    def clear(self) -> None:
        self.plan.clear()

    def _next(self, model: Any, kind: str) -> bool:
        key = (model.service_model.service_name, model.name)
        queue = self.plan.get(key)
        if queue and queue[0] == kind:
            queue.pop(0)
            self.fired.append((*key, kind))
            return True
        return False

    def _before(self, model: Any, **_: Any) -> None:
        if self._next(model, "fail"):
            raise EndpointConnectionError(endpoint_url=f"injected://{model.name}")

    def _after(self, model: Any, **_: Any) -> None:
        if self._next(model, "crash"):
            raise SimulatedCrash(f"crash after {model.name}")

    def _send(self, request: Any, **kwargs: Any) -> AWSResponse | None:
        service, operation = kwargs["event_name"].split(".")[1:3]
        queue = self.plan.get((service, operation))
        if not queue or not queue[0].startswith("respond:"):
            return None
        _, code, status = queue.pop(0).split(":")
        self.fired.append((service, operation, code))
        return error_response(request.url, service, code, int(status))


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body


def error_response(url: str, service: str, code: str, status: int) -> AWSResponse:
    """An AWS error as the service's protocol writes it (JSON for DynamoDB and SQS, XML for S3)."""
    if service == "s3":
        body = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
        headers = {"Content-Type": "application/xml"}
    else:
        error = {"__type": f"com.amazonaws.{service}#{code}", "message": "injected"}
        body = json.dumps(error).encode()
        headers = {
            "Content-Type": "application/x-amz-json-1.0",
            "x-amzn-query-error": f"{code};Sender",
        }
    return AWSResponse(url, status, HTTPHeaders.from_dict(headers), _Raw(body))
