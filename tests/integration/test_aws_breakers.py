"""The S3 and SQS circuit breakers at the client seam: a fixed fault schedule walks one
through closed → open → half-open → closed with the configured thresholds (5 failures,
2 trial successes, 30 s), on an injected clock."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from engine.aws import AwsClients
from engine.awsbreaker import BreakerOpenError
from engine.metrics import REGISTRY
from engine.settings import Settings
from tests.integration.faults import Faults


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def gauge(name: str, state: str) -> float | None:
    return REGISTRY.get_sample_value(
        "docsync_circuit_breaker_state", {"breaker": name, "state": state}
    )


def test_s3_breaker_walks_closed_open_half_open_closed(settings: Settings) -> None:
    assert (settings.breaker.fail_max, settings.breaker.success_threshold) == (5, 2)
    assert settings.breaker.reset_s == 30.0
    clock = Clock()
    clients = AwsClients(settings.replace({"aws.max_attempts": 1}), clock=clock)
    s3 = clients.s3
    faults = Faults()
    faults.attach(s3)
    s3.put_object(Bucket=settings.bucket, Key="k", Body=b"{}")
    breaker = clients.breakers["s3"]

    def head() -> str:
        try:
            s3.head_object(Bucket=settings.bucket, Key="k")
            return "ok"
        except BreakerOpenError:
            return "refused"
        except ClientError:
            return "failed"

    def fail(times: int) -> list[str]:
        faults.respond("s3", "HeadObject", "InternalError", 500, times=times)
        return [head() for _ in range(times)]

    assert fail(4) == ["failed"] * 4 and breaker.state == "closed"
    assert head() == "ok"  # a success resets the count of consecutive failures
    assert fail(4) == ["failed"] * 4 and breaker.state == "closed"
    # the fifth in a row (mypy keeps the property narrowed across calls)
    assert fail(1) == ["failed"] and breaker.state == "open"  # type: ignore[comparison-overlap]
    assert gauge("s3", "open") == 1 and gauge("s3", "closed") == 0
    sent = len(faults.fired)
    assert [head() for _ in range(3)] == ["refused"] * 3  # failing fast: nothing sent
    assert len(faults.fired) == sent

    clock.now += 29.9
    assert head() == "refused"
    clock.now += 0.1
    assert fail(1) == ["failed"] and breaker.state == "open"  # a failed trial: open again
    clock.now += 30
    assert head() == "ok" and breaker.state == "half_open"  # 1 of 2 trial successes
    assert gauge("s3", "half_open") == 1
    assert head() == "ok" and breaker.state == "closed"
    assert gauge("s3", "closed") == 1 and gauge("s3", "open") == 0


def test_not_found_answers_are_not_outages(settings: Settings) -> None:
    clients = AwsClients(settings.replace({"aws.max_attempts": 1}), clock=Clock())
    for _ in range(8):
        with pytest.raises(ClientError):
            clients.s3.head_object(Bucket=settings.bucket, Key="missing")
    assert clients.breakers["s3"].state == "closed"


def test_sqs_has_a_breaker_and_the_probe_clients_have_none(settings: Settings) -> None:
    clients = AwsClients(settings)
    assert clients.sqs.get_queue_url(QueueName=settings.queue)["QueueUrl"]
    assert set(clients.breakers) == {"sqs"}
    clients.s3  # noqa: B018 - built on first use
    assert set(clients.breakers) == {"s3", "sqs"}
    off = AwsClients(settings.replace({"aws.breakers": False}))
    off.s3  # noqa: B018
    assert off.breakers == {}


def test_readyz_lists_the_breakers_and_an_open_one_degrades_it(settings: Settings) -> None:
    from engine.app import Engine
    from engine.serve.health import Readiness

    engine = Engine.build(settings)
    engine.clients.s3  # noqa: B018
    readiness = Readiness(settings, parts=dict, breakers=engine.breaker_states)
    ready, body = readiness.check()
    assert ready and body["status"] == "ready"
    assert body["breakers"] == {"dynamodb": "closed", "s3": "closed"}
    for _ in range(settings.breaker.fail_max):
        engine.clients.breakers["s3"].on_error(EndpointConnectionError(endpoint_url="x"))
    ready, body = Readiness(settings, parts=dict, breakers=engine.breaker_states).check()
    assert ready and body["status"] == "degraded" and body["breakers"]["s3"] == "open"
