"""Circuit breakers for S3 and SQS at the client seam (seed 003 §6.3).

DynamoDB's breaker sits in the cache store, where the read path falls back to S3. S3 and SQS
calls come from many modules, so their breakers are botocore hooks on the clients instead:
while one is open, calls fail at once with `BreakerOpenError` (a botocore ConnectionError, so
every caller's existing outage handling applies: the listener backs off and keeps its
messages, a read answers 503 at once instead of after a full retry budget). A call counts
once, after botocore's retries: 5xx and throttling answers and connection errors are
failures, any other answer (a 404 too) a success.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from engine import awsmetrics
from engine.breaker import CircuitBreaker, CircuitOpenError

_MARK = "docsync_breaker"


class BreakerOpenError(BotoConnectionError):
    fmt = "circuit breaker {name} is open: {operation} not sent"


class ClientBreaker:
    def __init__(self, breaker: CircuitBreaker) -> None:
        self.breaker = breaker

    def register(self, client: Any) -> None:
        service = client.meta.service_model.service_id.hyphenize()
        events = client.meta.events
        events.register(f"before-call.{service}", self.before_call)
        events.register(f"after-call.{service}", self.after_call)
        events.register(f"after-call-error.{service}", self.after_call_error)

    def before_call(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        try:
            self.breaker.before_call()
        except CircuitOpenError as exc:
            awsmetrics.refused(context, "breaker_open")
            raise BreakerOpenError(name=self.breaker.name, operation=model.name) from exc
        context[_MARK] = True

    def after_call(
        self, http_response: Any, parsed: dict[str, Any], model: Any, context: dict[str, Any],
        **_: Any,
    ) -> None:  # fmt: skip
        if not context.pop(_MARK, False):
            return
        if int(getattr(http_response, "status_code", 200)) < 300:
            self.breaker.on_success()
        else:
            self.breaker.on_error(ClientError(parsed, model.name))  # type: ignore[arg-type]

    def after_call_error(self, exception: BaseException, context: dict[str, Any], **_: Any) -> None:
        if context.pop(_MARK, False):
            self.breaker.on_error(exception)
