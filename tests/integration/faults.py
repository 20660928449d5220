"""Fault injection through botocore's own event hooks, so failures take the production path.

`fail` raises a connection error before the request is sent (the service never sees it);
`crash_after` raises SimulatedCrash after the service applied the call, and since it is a
BaseException the engine's `except Exception` recovery does not run: a dead process.
"""

from __future__ import annotations

from typing import Any

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

    def fail(self, service: str, operation: str, times: int = 1) -> None:
        self.plan.setdefault((service, operation), []).extend(["fail"] * times)

    def crash_after(self, service: str, operation: str) -> None:
        self.plan.setdefault((service, operation), []).append("crash")

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
