"""The one seam every store calls AWS through: guard, call, translate.

In the spirit of httpx's `map_httpcore_exceptions`, botocore's errors become the project's own
in one place: each store declares an `ErrorMap` (which `StoreError` subclass an outage and a
failure become, which error codes mean "not found"), and a `StoreCall` wraps every call with
the store's circuit breaker and rate limiter (both optional; the S3 and SQS breakers are client
hooks, see awsbreaker.py). Call counting, dry-run, retries and metrics are botocore hooks on
the client itself (aws.py), so they apply to every store without code here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import BotoCoreError, ClientError

from engine.breaker import CircuitBreaker, CircuitOpenError
from engine.exceptions import NotFoundError, StoreError
from engine.ratelimit import TokenBucket
from engine.store.errors import error_code, is_conditional_failure, is_outage

T = TypeVar("T")
_de = TypeDeserializer()


class ConditionFailed(Exception):
    """A conditional write found the item in another state; `item` is that state (or None).

    Control flow between a store and its caller (a lost race is an outcome, not an error),
    so it is deliberately outside the `DocsyncError` tree.
    """

    def __init__(self, item: dict[str, Any] | None) -> None:
        super().__init__("condition failed")
        self.item = item


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _de.deserialize(v) for k, v in item.items()}


def condition_failure(op: str, exc: ClientError) -> Exception:
    """ConditionalCheckFailed (or a transaction cancelled by one) → `ConditionFailed` with
    the item as it was; a transaction cancelled for another reason (a conflict) → StoreError."""
    old: Any = exc.response.get("Item")
    reasons = exc.response.get("CancellationReasons", []) or []
    for reason in reasons:
        if reason.get("Code") == "ConditionalCheckFailed":
            old = reason.get("Item")
            break
    else:
        if "CancellationReasons" in exc.response:
            return StoreError(f"DynamoDB {op} cancelled: {exc}")
    return ConditionFailed(_plain(old) if old else None)


@dataclass(frozen=True, slots=True)
class ErrorMap:
    """How one store's botocore errors become the project's exceptions."""

    service: str
    failed: type[StoreError] = StoreError
    unavailable: type[StoreError] | None = None
    not_found: frozenset[str] = frozenset()
    conditional: bool = False
    missing: str = "{what}: not found"  # the NotFoundError's text; may name {target}, {exc}
    # a store's own reading of an error the rules do not cover (an answer S3 sends as an
    # error, an operation an endpoint lacks): the exception to raise instead, or None
    special: Callable[[str, ClientError], Exception | None] | None = None

    def translate(self, op: str, exc: Exception, target: str = "") -> Exception:
        """The exception to raise instead of `exc` (anything not botocore's passes through)."""
        if not isinstance(exc, ClientError | BotoCoreError):
            return exc
        what = f"{self.service} {op}" + (f" {target}" if target else "")
        if isinstance(exc, ClientError):
            special = self.special(op, exc) if self.special is not None else None
            if special is not None:
                return special
            if self.conditional and is_conditional_failure(exc):
                return condition_failure(op, exc)
            if error_code(exc) in self.not_found:
                return NotFoundError(self.missing.format(what=what, target=target, exc=exc))
        if is_outage(exc):
            return (self.unavailable or self.failed)(f"{what} failed: {exc}")
        return self.failed(f"{what} failed: {exc}")

    @contextmanager
    def mapped(self, op: str, target: str = "") -> Iterator[None]:
        """Translate what the block raises; for paginators and streamed bodies, where the
        call is not one function."""
        try:
            yield
        except (ClientError, BotoCoreError) as exc:
            raise self.translate(op, exc, target) from exc


class StoreCall:
    """Calls one AWS operation for a store: breaker, limiter, then the call, errors mapped."""

    def __init__(
        self,
        errors: ErrorMap,
        breaker: CircuitBreaker | None = None,
        limiter: TokenBucket | None = None,
    ) -> None:
        self.errors = errors
        self.breaker = breaker
        self.limiter = limiter

    def __call__(self, op: str, fn: Callable[..., T], /, target: str = "", **kwargs: Any) -> T:
        if self.breaker is not None:
            try:
                self.breaker.before_call()
            except CircuitOpenError as exc:
                failure = self.errors.unavailable or self.errors.failed
                raise failure(f"{self.errors.service} {op}: circuit breaker open") from exc
        if self.limiter is not None:
            self.limiter.acquire()
        try:
            result: T = fn(**kwargs)
        except Exception as exc:
            if self.breaker is not None:
                self.breaker.on_error(exc)
            translated = self.errors.translate(op, exc, target)
            if translated is exc:
                raise
            raise translated from exc
        if self.breaker is not None:
            self.breaker.on_success()
        return result
