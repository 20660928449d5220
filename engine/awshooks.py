"""One botocore handler per call event for all of docsync's per-call hooks (metrics, spans).

botocore's dispatch costs more than most hooks' bodies: each handler is called with a fresh
keyword dictionary, after a debug-log test, and its answer kept in a list (measured under
valgrind: ~6,000 instructions a handler on a cache-hit get, 0.2% of it). So the hooks that
watch every call share one handler per event (`before-parameter-build`, `after-call`,
`after-call-error`), which calls each in turn with positional arguments.

A hook is any object with `start(params, model, context)`, `finish(http_response, parsed,
context)` and `fail(exception, context)`; each keeps its own state in botocore's request
context (the dict that travels with the call).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol


class CallHook(Protocol):
    """Extra keywords (botocore's) are accepted and ignored: one hook alone is registered
    as it is, without a handler around it."""

    def start(
        self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any
    ) -> None: ...

    def finish(
        self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any
    ) -> None: ...

    def fail(self, exception: BaseException, context: dict[str, Any], **_: Any) -> None: ...


def register(client: Any, hooks: Sequence[CallHook]) -> None:
    """Attach `hooks` to every call of `client`, in order; `start` runs before any other
    `before-parameter-build` handler (so it sees the calls a dry run or a breaker stops)."""
    if not hooks:
        return
    events = client.meta.events
    start, finish, fail = _handlers(tuple(hooks))
    events.register_first("before-parameter-build.*.*", start)
    events.register("after-call.*.*", finish)
    events.register("after-call-error.*.*", fail)


def _handlers(
    hooks: tuple[CallHook, ...],
) -> tuple[Callable[..., None], Callable[..., None], Callable[..., None]]:
    if len(hooks) == 1:
        return hooks[0].start, hooks[0].finish, hooks[0].fail

    if len(hooks) == 2:  # metrics and spans: no loop over the tuple, no per-call iterator
        first, second = hooks

        def start2(params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
            first.start(params, model, context)
            second.start(params, model, context)

        def finish2(
            http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any
        ) -> None:
            first.finish(http_response, parsed, context)
            second.finish(http_response, parsed, context)

        def fail2(exception: BaseException, context: dict[str, Any], **_: Any) -> None:
            first.fail(exception, context)
            second.fail(exception, context)

        return start2, finish2, fail2

    def start(params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        for hook in hooks:
            hook.start(params, model, context)

    def finish(
        http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any
    ) -> None:
        for hook in hooks:
            hook.finish(http_response, parsed, context)

    def fail(exception: BaseException, context: dict[str, Any], **_: Any) -> None:
        for hook in hooks:
            hook.fail(exception, context)

    return start, finish, fail
