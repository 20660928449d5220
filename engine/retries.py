"""Retries per error class (seed 003 §6.1), inside botocore's own retry machinery.

botocore's standard mode retries every retryable error alike (3 attempts, one backoff).
The seed wants a budget per class: throttling waits are short and many, a service that says
"unavailable" needs longer pauses, and a conditional-check or validation failure is an answer,
never retried. So botocore's `RetryHandler`, its event adapter and its retry quota (the token
bucket that stops retry storms) stay; only the policy — which class, how many attempts, how
long to wait — is ours. It is registered on `needs-retry` in place of the standard one.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from botocore.retries import quota, special, standard
from pydantic import BaseModel, ConfigDict, Field, model_validator

THROTTLING = "throttling"
SERVER_ERROR = "server_error"
UNAVAILABLE = "unavailable"
TRANSACTION_CONFLICT = "transaction_conflict"
CLASSES = (THROTTLING, SERVER_ERROR, UNAVAILABLE, TRANSACTION_CONFLICT)

NEVER = frozenset(
    {
        "ConditionalCheckFailedException",
        "ValidationException",
        "SerializationException",
        "AccessDeniedException",
        "ResourceNotFoundException",
        "ItemCollectionSizeLimitExceededException",
    }
)
_UNAVAILABLE_CODES = frozenset({"ServiceUnavailable", "ServiceUnavailableException"})


class RetryRule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    max_attempts: int = Field(ge=1, le=50)  # attempts in all, the first one included
    base_ms: float = Field(gt=0)  # exponential backoff: up to base × 2^(retry-1), full jitter


_DEFAULTS: dict[str, dict[str, float]] = {
    THROTTLING: {"max_attempts": 10, "base_ms": 50},
    SERVER_ERROR: {"max_attempts": 3, "base_ms": 100},
    UNAVAILABLE: {"max_attempts": 3, "base_ms": 500},
    TRANSACTION_CONFLICT: {"max_attempts": 3, "base_ms": 100},
}


class RetryTable(BaseModel):
    """The `[retries]` table of the settings file; a class given in part keeps the rest of
    its defaults. Conditional-check and validation errors are never retried."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    throttling: RetryRule = RetryRule.model_validate(_DEFAULTS[THROTTLING])
    server_error: RetryRule = RetryRule.model_validate(_DEFAULTS[SERVER_ERROR])  # 5xx, timeouts
    unavailable: RetryRule = RetryRule.model_validate(_DEFAULTS[UNAVAILABLE])  # 503
    transaction_conflict: RetryRule = RetryRule.model_validate(_DEFAULTS[TRANSACTION_CONFLICT])
    max_backoff_ms: float = Field(20_000.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _partial_rules(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        merged = dict(data)
        for name, defaults in _DEFAULTS.items():
            if isinstance(data.get(name), dict):
                merged[name] = {**defaults, **data[name]}
        return merged

    def rule(self, error_class: str) -> RetryRule:
        rule: RetryRule = getattr(self, error_class)
        return rule


_std: Any = standard  # botocore-stubs lag the module (ThrottlingStatusCodeChecker, types)
_throttled = _std.OrRetryChecker(
    [_std.ThrottledRetryableChecker(), _std.ThrottlingStatusCodeChecker()]
)
_transient = _std.OrRetryChecker(
    [
        standard.TransientRetryableChecker(),
        standard.ModeledRetryableChecker(),
        special.RetryDDBChecksumError(),
        special.RetryIDPCommunicationError(),
    ]
)


def classify(context: Any) -> str | None:
    """The error's retry class, or None: not retried (success, conditional, validation, ...).

    `context` is botocore's RetryContext."""
    code = str(context.get_error_code() or "")
    if code in NEVER:
        return None
    if code == "TransactionConflictException":
        return TRANSACTION_CONFLICT
    if code == "TransactionCanceledException":
        reasons = (context.parsed_response or {}).get("CancellationReasons") or []
        codes = {str(r.get("Code", "None")) for r in reasons}
        return (
            TRANSACTION_CONFLICT
            if codes
            and codes <= {"None", "TransactionConflict"}
            and ("TransactionConflict" in codes)
            else None
        )
    if _throttled.is_retryable(context):
        return THROTTLING
    status = context.http_response.status_code if context.http_response is not None else 0
    if code in _UNAVAILABLE_CODES or status == 503:
        return UNAVAILABLE
    if _transient.is_retryable(context):
        return SERVER_ERROR
    return None


class ClassRetryPolicy:
    """botocore's RetryPolicy interface (`should_retry`, `compute_retry_delay`) per class.

    `cap_attempts` (settings.aws.max_attempts) bounds every class: probes and tests lower it.
    """

    def __init__(
        self,
        table: RetryTable,
        cap_attempts: int,
        rand: Callable[[], float] = random.random,
        on_retry: Callable[[Any, str], None] | None = None,
        on_throttle: Callable[[Any], None] | None = None,
    ) -> None:
        self.table, self.cap_attempts = table, cap_attempts
        self._rand, self._on_retry, self._on_throttle = rand, on_retry, on_throttle

    def max_attempts(self, error_class: str) -> int:
        return min(self.table.rule(error_class).max_attempts, self.cap_attempts)

    def should_retry(self, context: Any) -> bool:
        error_class = classify(context)
        if error_class is None:
            return False
        if error_class == THROTTLING and self._on_throttle is not None:
            self._on_throttle(context)  # every throttled attempt, the last one too
        retries = context.request_context.get("retries")
        limit = self.max_attempts(error_class)
        if retries is not None:
            retries["max"] = max(retries.get("max", 0), limit)
        if context.attempt_number >= limit:
            context.add_retry_metadata(MaxAttemptsReached=True)
            return False
        context.request_context["docsync_retry_class"] = error_class
        return True

    def compute_retry_delay(self, context: Any) -> float:
        """Full jitter (AWS's advice against synchronized retries), capped."""
        error_class = context.request_context.get("docsync_retry_class", SERVER_ERROR)
        ceiling = self.delay_ceiling_s(error_class, context.attempt_number)
        if self._on_retry is not None:
            self._on_retry(context, error_class)
        return float(self._rand() * ceiling)

    def delay_ceiling_s(self, error_class: str, attempt: int) -> float:
        base = self.table.rule(error_class).base_ms
        return float(min(base * 2 ** (attempt - 1), self.table.max_backoff_ms)) / 1000


def register(
    client: Any,
    table: RetryTable,
    cap_attempts: int,
    on_retry: Callable[[Any, str], None] | None = None,
    on_throttle: Callable[[Any], None] | None = None,
) -> ClassRetryPolicy:
    """Replace the client's standard retry handler (same unique id) with the per-class one.

    `on_retry` hears each retry decided, with its class; `on_throttle` each throttled
    attempt, retried or not (the metrics count them here: a handler of their own on
    `needs-retry` cost each call a botocore dispatch)."""
    service = client.meta.service_model.service_id.hyphenize()
    events = client.meta.events
    events.unregister(f"needs-retry.{service}", unique_id=f"retry-config-{service}")
    adapter = _std.RetryEventAdapter()
    retry_quota = _std.RetryQuotaChecker(quota.RetryQuota(), _std.ThrottlingErrorDetector(adapter))
    policy = ClassRetryPolicy(table, cap_attempts, on_retry=on_retry, on_throttle=on_throttle)
    handler = _std.RetryHandler(
        retry_policy=policy,
        retry_event_adapter=adapter,
        retry_quota=retry_quota,
        service_name=service,
    )
    events.register(f"after-call.{service}", retry_quota.release_retry_quota)
    events.register(
        f"needs-retry.{service}", handler.needs_retry, unique_id=f"retry-config-{service}"
    )
    return policy
