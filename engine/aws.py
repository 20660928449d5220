"""One factory for every AWS client: endpoint, region, retries, timeouts, pool size.

Two botocore hooks live here because they must see every call, whatever module makes it:
the dry-run guard (invariant 7: a mutating call is logged, never sent) and the call counter
(benchmarks report AWS calls per operation).

The adapter's hooks (seed 003) are registered here for the same reason, each in its module:
retries per error class (retries.py), per-operation metrics (awsmetrics.py) with the
consumed capacity they ask DynamoDB for (awscapacity.py), a tracing span
per call (awsspans.py), the S3 and SQS circuit breakers (awsbreaker.py), record and replay
(recording.py). The metrics and the spans watch every call through one handler per event
(awshooks.py): botocore's dispatch costs more than either hook's own work.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import boto3
import botocore.session
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.config import Config
from botocore.loaders import Loader
from loguru import logger

from engine import awscapacity, awshooks, awsmetrics, awsmodel, awsspans, retries, tracing
from engine.awsbreaker import ClientBreaker
from engine.breaker import CircuitBreaker
from engine.recording import Recorder, Replayer
from engine.settings import Settings
from engine.store.errors import is_outage

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

_READ_ONLY_PREFIXES = ("Get", "List", "Describe", "Head", "Query", "Scan", "BatchGet")
_READ_ONLY_EXTRA = {"ReceiveMessage", "SelectObjectContent"}


def is_mutating(operation: str) -> bool:
    return not (operation.startswith(_READ_ONLY_PREFIXES) or operation in _READ_ONLY_EXTRA)


@dataclass
class CallCounter:
    """Counts AWS calls by `service.Operation` (thread-safe); retries are not extra calls."""

    counts: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self, model: Any, **_: Any) -> None:
        with self._lock:
            self.counts[f"{model.service_model.service_name}.{model.name}"] += 1

    def total(self) -> int:
        with self._lock:
            return sum(self.counts.values())

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()


def _remember_target(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    """Keep the call's own arguments: by `before-call` they are already an HTTP request."""
    target = params.get("TableName") or params.get("Bucket") or params.get("QueueUrl") or ""
    key = params.get("Key")
    context["docsync_target"] = (str(target), key if isinstance(key, str) else None)


def _dry_run_guard(
    model: Any, context: dict[str, Any], **_: Any
) -> tuple[Any, dict[str, Any]] | None:
    if not is_mutating(model.name):
        return None
    service = model.service_model.service_name
    target, key = context.get("docsync_target", ("", None))
    logger.bind(op=f"{service}.{model.name}", dry_run=True, target=target, key=key).info(
        "dry run: {}.{} not sent", service, model.name
    )
    http = AWSResponse(url="dry-run://", status_code=200, headers=HTTPHeaders(), raw=None)
    return http, {"ResponseMetadata": {"HTTPStatusCode": 200, "HTTPHeaders": {}, "DryRun": True}}


_LOADER: Loader | None = None
_LOADER_LOCK = threading.Lock()


def _session(region: str | None, **credentials: str) -> boto3.session.Session:
    """A boto3 session over one process-wide botocore data loader: the service models are read
    from disk and parsed once per process, not once per session (about 25 ms a client; a CLI
    command or a test builds several sessions)."""
    global _LOADER  # noqa: PLW0603 - one loader per process, made on first use
    with _LOADER_LOCK:
        if _LOADER is None:
            _LOADER = awsmodel.OverlaidLoader()
        loader = _LOADER
    core = botocore.session.Session()
    core.register_component("data_loader", loader)
    return boto3.session.Session(botocore_session=core, region_name=region, **credentials)


class AwsClients:
    """The clients of one process, built lazily and shared by all threads (boto3 clients are)."""

    def __init__(
        self,
        settings: Settings,
        counter: CallCounter | None = None,
        clock: Callable[[], float] = time.monotonic,  # the S3 and SQS breakers' clock
    ) -> None:
        self.settings = settings
        self.counter = counter
        self._clock = clock
        self._session = _session(settings.region)
        self._config = Config(
            region_name=settings.region,
            retries={"mode": settings.aws.retry_mode, "max_attempts": settings.aws.max_attempts},
            connect_timeout=settings.aws.connect_timeout_s,
            read_timeout=settings.aws.read_timeout_s,
            max_pool_connections=settings.concurrency + 4,
            tcp_keepalive=True,
        )
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}
        self.breakers: dict[str, CircuitBreaker] = {}  # S3 and SQS (engine/awsbreaker.py)
        self._recorder: Recorder | None = None
        self._replayer: Replayer | None = None
        if settings.replay is not None:  # a replay needs no credentials: nothing is sent
            self._session = _session(
                settings.region, aws_access_key_id="replay", aws_secret_access_key="replay"
            )

    def endpoint_for(self, service: str) -> str | None:
        """boto3's AWS_ENDPOINT_URL_<SERVICE> wins for its service; then DOCSYNC_ENDPOINT_URL."""
        env_name = "AWS_ENDPOINT_URL_" + service.upper().replace("-", "_")
        if os.environ.get(env_name):
            return None  # boto3 reads it itself
        return self.settings.endpoint_url

    def client(self, service: str) -> Any:
        with self._lock:
            if service not in self._clients:
                session: Any = self._session  # boto3-stubs overloads want a literal name
                client = session.client(
                    service, endpoint_url=self.endpoint_for(service), config=self._config
                )
                if self.counter is not None:
                    client.meta.events.register("before-call.*.*", self.counter)
                self._adapter_hooks(service, client)
                if self.settings.dry_run:
                    client.meta.events.register("before-parameter-build.*.*", _remember_target)
                    client.meta.events.register("before-call.*.*", _dry_run_guard)
                self._clients[service] = client
            return self._clients[service]

    @property
    def s3(self) -> S3Client:
        client: S3Client = self.client("s3")
        return client

    @property
    def dynamodb(self) -> DynamoDBClient:
        client: DynamoDBClient = self.client("dynamodb")
        return client

    @property
    def sqs(self) -> SQSClient:
        client: SQSClient = self.client("sqs")
        return client

    @property
    def cloudwatch(self) -> CloudWatchClient:
        client: CloudWatchClient = self.client("cloudwatch")
        return client

    # -- the adapter's hooks (seed 003) -------------------------------------------------------

    def _adapter_hooks(self, service: str, client: Any) -> None:
        """Per-class retries (in place of botocore's standard policy), per-operation metrics,
        a span per call (a no-op while tracing is off: it may be switched on later), record or
        replay, and the S3 and SQS circuit breakers."""
        metrics = (
            awsmetrics.AwsMetrics(self.settings.aws.consumed_capacity)
            if self.settings.aws.metrics
            else None
        )
        if self.settings.aws.retry_mode != "legacy":
            retries.register(
                client,
                self.settings.retries,
                self.settings.aws.max_attempts,
                awsmetrics.count_retry,
                on_throttle=awsmetrics.count_throttle if metrics is not None else None,
            )
        elif metrics is not None:  # botocore's own retries: the metrics watch for throttles
            metrics.register_throttles(client)
        if metrics is not None:
            awscapacity.ask(client, metrics.consumed_capacity)
        hooks: list[awshooks.CallHook] = [metrics] if metrics is not None else []
        if tracing.available():  # its hooks wait, one `is None` test each, until tracing is on
            hooks.append(awsspans.CallSpans(client))
        awshooks.register(client, hooks)
        if self.settings.replay is not None:
            self._replayer = self._replayer or Replayer(self.settings.replay)
            self._replayer.register(client)
        elif self.settings.record is not None:
            self._recorder = self._recorder or Recorder(
                self.settings.record, self.settings.record_redact_bodies
            )
            self._recorder.register(client)
        if self.settings.aws.breakers and service in ("s3", "sqs"):
            s = self.settings
            breaker = CircuitBreaker(
                s.breaker.fail_max,
                s.breaker.reset_s,
                is_outage,
                clock=self._clock,
                name=service,
                success_threshold=s.breaker.success_threshold,
            )
            self.breakers[service] = breaker
            ClientBreaker(breaker).register(client)
