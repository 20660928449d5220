"""One botocore handler per call event for docsync's per-call hooks (engine/awshooks.py)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from engine import awshooks


class Recording:
    def __init__(self, name: str, log: list[tuple[str, str, str]]) -> None:
        self.name, self.log = name, log

    def start(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        self.log.append((self.name, "start", model.name))
        context.setdefault("seen", []).append(self.name)

    def finish(
        self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any
    ) -> None:
        self.log.append((self.name, "finish", ",".join(context["seen"])))

    def fail(self, exception: BaseException, context: dict[str, Any], **_: Any) -> None:
        self.log.append((self.name, "fail", type(exception).__name__))


def client() -> Any:
    return boto3.client(
        "dynamodb", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )


@pytest.mark.parametrize("count", [1, 2, 3])
def test_every_hook_sees_every_call_in_order_with_one_handler_per_event(count: int) -> None:
    log: list[tuple[str, str, str]] = []
    c = client()
    before = {e: len(list(c.meta.events._emitter._handlers.prefix_search(e))) for e in EVENTS}
    hooks = [Recording(f"h{i}", log) for i in range(count)]
    awshooks.register(c, hooks)
    after = {e: len(list(c.meta.events._emitter._handlers.prefix_search(e))) for e in EVENTS}
    assert all(after[e] == before[e] + 1 for e in EVENTS)  # one handler, whatever the count
    with Stubber(c) as stub:
        stub.add_response("get_item", {})
        c.get_item(TableName="t", Key={"pk": {"S": "a"}})
    names = [h.name for h in hooks]
    seen = ",".join(names)
    assert log == [(n, "start", "GetItem") for n in names] + [(n, "finish", seen) for n in names]


def test_a_failed_call_reaches_every_hook() -> None:
    from botocore.exceptions import EndpointConnectionError

    log: list[tuple[str, str, str]] = []
    c = client()
    awshooks.register(c, [Recording("a", log), Recording("b", log)])

    def unreachable(**_: Any) -> None:
        raise EndpointConnectionError(endpoint_url="http://nowhere")

    c.meta.events.register_first("before-send.*.*", unreachable)
    with pytest.raises(EndpointConnectionError):
        c.get_item(TableName="t", Key={"pk": {"S": "a"}})
    assert [(n, kind) for n, kind, _ in log][-2:] == [("a", "fail"), ("b", "fail")]


def test_no_hooks_register_nothing() -> None:
    c = client()
    before = {e: len(list(c.meta.events._emitter._handlers.prefix_search(e))) for e in EVENTS}
    awshooks.register(c, [])
    assert before == {
        e: len(list(c.meta.events._emitter._handlers.prefix_search(e))) for e in EVENTS
    }


EVENTS = (
    "before-parameter-build.dynamodb.GetItem",
    "after-call.dynamodb.GetItem",
    "after-call-error.dynamodb.GetItem",
)
